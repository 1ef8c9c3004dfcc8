//! The functions' real bootstraps, started as Lambda starts them (`natter_local::lambda_runtime_api`:
//! Lambda's environment and a Runtime API on loopback, every AWS endpoint at moto, at
//! `NATTER_TEST_DYNAMODB_ENDPOINT`): a function that uses the table opens its DynamoDB connection
//! at init and then answers; one that does not, starts without it.

use std::path::Path;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::Credentials;
use natter::clock::{Clock, SystemClock};
use natter::store::dynamo::{DynamoStore, WARM_UP_LOG};
use natter_local::lambda_runtime_api::{http_event, lambda_env, ws_event, RuntimeApi};
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(30);

fn endpoint() -> String {
    std::env::var("NATTER_TEST_DYNAMODB_ENDPOINT").unwrap_or_else(|_| {
        panic!("NATTER_TEST_DYNAMODB_ENDPOINT is not set: run scripts/test, which starts moto (this test never skips)")
    })
}

/// A new table on moto, and a function's environment over it.
async fn environment(function: &str) -> Vec<(String, String)> {
    let endpoint = endpoint();
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "bootstrap"))
        .endpoint_url(&endpoint)
        .load()
        .await;
    let table = format!("bootstrap-{function}-{}", SystemClock.now_ms());
    DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &table)
        .create_table_if_missing()
        .await
        .expect("the table is created");
    let mut env = lambda_env(function, &endpoint);
    env.push(("TABLE_NAME".into(), table));
    env.push(("RUST_LOG".into(), "info".into()));
    env
}

/// An ELF file's type (`e_type`, at byte 16): 2 a position-dependent executable, 3 a
/// position-independent one (or a shared library).
fn elf_type(binary: &str) -> u16 {
    let bytes = std::fs::read(binary).expect("the binary reads");
    assert_eq!(&bytes[..4], b"\x7fELF", "{binary} is an ELF file");
    u16::from_le_bytes([bytes[16], bytes[17]])
}

#[test]
fn a_bootstrap_is_linked_at_a_fixed_address_so_its_start_relocates_nothing() {
    const ET_EXEC: u16 = 2;
    for binary in [
        env!("CARGO_BIN_EXE_ws-ping"),
        env!("CARGO_BIN_EXE_send-message"),
    ] {
        assert_eq!(elf_type(binary), ET_EXEC, "{binary} is not linked -no-pie");
    }
}

fn user_verdict(user_id: &str) -> Value {
    json!({"kind": "user", "userId": user_id, "exp": SystemClock.now_ms() / 1000 + 600})
}

#[tokio::test]
async fn a_table_function_opens_its_connection_at_init_then_answers() {
    let env = environment("get-user").await;
    let api = RuntimeApi::start().await.expect("the Runtime API starts");
    let route = natter::routes::HTTP_ROUTES
        .iter()
        .find(|r| r.function == "get-user")
        .expect("get-user's route");
    let event = http_event(
        route,
        "/v1/users/ann",
        &[("userId".to_string(), "ann".to_string())].into(),
        None,
        user_verdict("ann"),
    )
    .expect("the event");
    let run = api
        .run(
            Path::new(env!("CARGO_BIN_EXE_get-user")),
            &env,
            vec![event.clone(), event],
            LIMIT,
        )
        .await
        .expect("get-user starts and answers twice");
    for invocation in &run.invocations {
        assert_eq!(
            invocation.response["statusCode"], 404,
            "no such user yet: {}",
            invocation.response
        );
    }
    let warm_up = run
        .log(WARM_UP_LOG)
        .unwrap_or_else(|| panic!("get-user logs its warm-up at init:\n{}", run.stdout));
    assert!(warm_up["fields"]["elapsed_us"].as_u64().is_some());
    assert_eq!(warm_up["level"], "INFO", "the warm-up succeeded: {warm_up}");
    let usage = run.init_usage.expect("the init's usage, read from /proc");
    assert!(
        usage.cpu > std::time::Duration::ZERO && usage.minor_faults > 0,
        "{usage:?}"
    );
}

#[tokio::test]
async fn a_function_without_the_table_starts_without_a_warm_up() {
    let env = environment("ws-ping").await;
    let api = RuntimeApi::start().await.expect("the Runtime API starts");
    let event = ws_event("ping", "ann", Some(&json!({"action": "ping"}))).expect("the event");
    let run = api
        .run(
            Path::new(env!("CARGO_BIN_EXE_ws-ping")),
            &env,
            vec![event],
            LIMIT,
        )
        .await
        .expect("ws-ping starts and answers");
    let response = &run.invocations[0].response;
    assert_eq!(response["statusCode"], 200, "{response}");
    let frame: Value = serde_json::from_str(response["body"].as_str().unwrap_or_default())
        .expect("the reply is a JSON frame");
    assert_eq!(frame["type"], "pong");
    assert!(
        run.log(WARM_UP_LOG).is_none(),
        "ws-ping holds no table action"
    );
}
