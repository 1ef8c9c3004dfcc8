//! The floor the cold-init benchmark measures every function against: a `lambda_runtime` binary
//! that answers each event with itself, built with the workspace's release profile like the
//! functions are (`cargo build --release -p natter-functions --example hello-lambda`).

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(event.payload)
    }))
    .await
}
