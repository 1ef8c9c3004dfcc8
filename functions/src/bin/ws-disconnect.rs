//! WebSocket route `$disconnect`.

use natter::ws::WsDisconnect;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    natter_functions::serve_ws::<WsDisconnect>().await
}
