//! WebSocket route `typing`.

use natter::ws::WsTyping;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    natter_functions::serve_ws::<WsTyping>().await
}
