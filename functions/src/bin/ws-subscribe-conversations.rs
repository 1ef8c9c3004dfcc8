//! WebSocket route `subscribeConversations`.

use natter::ws::WsSubscribeConversations;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    natter_functions::serve_ws::<WsSubscribeConversations>().await
}
