//! WebSocket route `loadMore`.

use natter::ws::WsLoadMore;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    natter_functions::serve_ws::<WsLoadMore>().await
}
