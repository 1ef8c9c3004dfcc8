//! Picks the Amazon Trust Services roots from Mozilla's (`src/amazon_roots.rs`, the same code the
//! library exposes) and writes them as one PEM bundle, `$OUT_DIR/amazon_roots.pem`, which the
//! library includes as `AMAZON_ROOTS_PEM`.

#[path = "src/amazon_roots.rs"]
mod amazon_roots;

fn main() {
    println!("cargo::rerun-if-changed=src/amazon_roots.rs");
    let out_dir = std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR");
    let bundle = amazon_roots::amazon_roots().concat();
    std::fs::write(
        std::path::Path::new(&out_dir).join("amazon_roots.pem"),
        bundle,
    )
    .expect("OUT_DIR is writable");
}
