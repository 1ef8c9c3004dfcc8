//! WebSocket route `ping`.

use natter::ws::WsPing;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    natter_functions::serve_ws::<WsPing>().await
}
