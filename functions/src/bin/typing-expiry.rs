//! The typing queue's consumer: each message is one expiry check of a typer item.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    natter_functions::serve_typing_expiry().await
}
