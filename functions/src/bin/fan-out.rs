//! The table's stream consumer: turns message changes into WebSocket pushes.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let sdk = natter_functions::sdk_config().await;
    natter_functions::serve_fan_out(&sdk).await
}
