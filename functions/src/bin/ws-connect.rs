//! WebSocket route `$connect`.

use natter::ws::WsConnect;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    natter_functions::serve_ws::<WsConnect>().await
}
