//! WebSocket route `$default`.

use natter::ws::WsDefault;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    natter_functions::serve_ws::<WsDefault>().await
}
