//! The table's stream consumer: turns message and inbox changes into WebSocket pushes.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    natter_functions::serve_fan_out().await
}
