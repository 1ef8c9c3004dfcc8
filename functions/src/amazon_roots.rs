//! The root certificates the functions trust: those of Amazon Trust Services, picked by name
//! from Mozilla's root store (`webpki-root-certs`). This file is the library's module and is
//! also included by `build.rs`, which writes the picked roots into the crate as one PEM bundle
//! (`AMAZON_ROOTS_PEM`), so that a cold start does not pick them again.

/// The root CAs of Amazon Trust Services, by subject common name: the roots of the
/// certificates of DynamoDB, API Gateway, SQS and Secrets Manager endpoints.
pub const AMAZON_ROOTS: &[&str] = &[
    "Amazon Root CA 1",
    "Amazon Root CA 2",
    "Amazon Root CA 3",
    "Amazon Root CA 4",
    "Starfield Services Root Certificate Authority - G2",
];

/// `AMAZON_ROOTS` from Mozilla's root store, as PEM, the form the SDK's trust store takes. Only
/// these few: decoding PEM is slow on purpose (constant-time base64), and all of Mozilla's ~150
/// roots cost 2 ms of every cold start.
pub fn amazon_roots() -> Vec<String> {
    use base64::Engine;
    let names: Vec<memchr::memmem::Finder> = AMAZON_ROOTS
        .iter()
        .map(|name| memchr::memmem::Finder::new(name.as_bytes()))
        .collect();
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .filter(|der| names.iter().any(|name| name.find(der.as_ref()).is_some()))
        .map(|der| {
            let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
            format!("-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n")
        })
        .collect()
}
