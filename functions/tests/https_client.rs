//! The functions' one HTTPS client (`natter_functions::https_client`): it trusts exactly the
//! Amazon Trust Services roots, and the SDK clients built over it work (against moto, at
//! `NATTER_TEST_DYNAMODB_ENDPOINT`).

use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::Credentials;
use natter_functions::{amazon_roots, https_client, AMAZON_ROOTS, AMAZON_ROOTS_PEM};

#[test]
fn it_trusts_each_amazon_root_once_and_nothing_else() {
    let roots = amazon_roots();
    assert_eq!(
        roots.len(),
        AMAZON_ROOTS.len(),
        "one certificate per root name"
    );
    for name in AMAZON_ROOTS {
        let holding = roots
            .iter()
            .filter(|pem| {
                let der = pem_body(pem);
                der.windows(name.len()).any(|w| w == name.as_bytes())
            })
            .count();
        assert_eq!(holding, 1, "{name} is trusted once");
    }
}

#[test]
fn the_bundle_built_into_the_crate_is_the_amazon_roots() {
    assert_eq!(AMAZON_ROOTS_PEM, amazon_roots().concat());
    assert_eq!(
        AMAZON_ROOTS_PEM
            .matches("-----BEGIN CERTIFICATE-----")
            .count(),
        AMAZON_ROOTS.len()
    );
}

fn pem_body(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("the PEM body is base64")
}

#[tokio::test]
async fn sdk_clients_over_it_reach_dynamodb() {
    let endpoint = std::env::var("NATTER_TEST_DYNAMODB_ENDPOINT").unwrap_or_else(|_| {
        panic!("NATTER_TEST_DYNAMODB_ENDPOINT is not set: run scripts/test, which starts moto (this test never skips)")
    });
    // Building the client's connector is where the roots are decoded: a root the TLS stack
    // could not take would fail here.
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "https-test"))
        .endpoint_url(endpoint)
        .load()
        .await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    client
        .list_tables()
        .limit(1)
        .send()
        .await
        .expect("ListTables through the shared client");
}
