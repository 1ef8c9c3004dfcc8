//! WebSocket route `subscribe`.

use natter::ws::WsSubscribe;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    natter_functions::serve_ws::<WsSubscribe>().await
}
