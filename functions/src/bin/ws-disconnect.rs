//! WebSocket route `$disconnect`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let sdk = natter_functions::sdk_config().await;
    let ctx = natter_functions::ws_context(&sdk)?;
    natter_functions::serve_ws(ctx, "ws-disconnect").await
}
