//! WebSocket route `hello`.

use natter::ws::WsHello;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    natter_functions::serve_ws::<WsHello>().await
}
