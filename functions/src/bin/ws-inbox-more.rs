//! WebSocket route `inboxMore`.

use natter::ws::WsInboxMore;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    natter_functions::serve_ws::<WsInboxMore>().await
}
