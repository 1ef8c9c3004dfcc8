//! WebSocket route `unsubscribe`.

use natter::ws::WsUnsubscribe;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    natter_functions::serve_ws::<WsUnsubscribe>().await
}
