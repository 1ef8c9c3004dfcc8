//! Picks the Amazon Trust Services roots from Mozilla's (`src/amazon_roots.rs`, the same code the
//! library exposes) and writes them as one PEM bundle, `$OUT_DIR/amazon_roots.pem`, which the
//! library includes as `AMAZON_ROOTS_PEM`.
//!
//! It also links every bootstrap (and the hello binary it is measured against) as a position-
//! dependent executable, `-no-pie`. A position-independent one has its pointers in static data
//! (vtables, the SDK's tables, tracing's callsites: about 21,000 in a function) relocated by the
//! dynamic loader at every start, which writes, and so copies, each of those 80 pages: 85 of a
//! function's 310 page faults at init, about 0.25 ms of its CPU (docs/benchmarks.md, *Cold
//! init*). Linked at a fixed address they need no relocation. The cost is that the binary's own
//! image is not randomized (its libraries, heap and stack still are), as Go's binaries on Lambda
//! never were; a later `-no-pie` wins over the `-pie` rustc passes, with gcc and with the zig
//! linker `cargo lambda` uses.

#[path = "src/amazon_roots.rs"]
mod amazon_roots;

fn main() {
    println!("cargo::rerun-if-changed=src/amazon_roots.rs");
    // The bootstraps and the hello binary only: the tests and the library are linked as usual.
    println!("cargo::rustc-link-arg-bins=-no-pie");
    println!("cargo::rustc-link-arg-examples=-no-pie");
    let out_dir = std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR");
    let bundle = amazon_roots::amazon_roots().concat();
    std::fs::write(
        std::path::Path::new(&out_dir).join("amazon_roots.pem"),
        bundle,
    )
    .expect("OUT_DIR is writable");
}
