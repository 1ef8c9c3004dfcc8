//! The WebSocket API's `$connect` authorizer (REQUEST type, the `token` query parameter).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    natter_functions::serve_ws_authorizer().await
}
