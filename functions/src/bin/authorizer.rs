//! The HTTP API's Lambda authorizer.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    natter_functions::serve_authorizer().await
}
