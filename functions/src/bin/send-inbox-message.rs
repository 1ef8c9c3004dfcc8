//! `POST /v1/inbox`

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let sdk = natter_functions::sdk_config().await;
    let inbox = natter_functions::inbox(&sdk)?;
    natter_functions::serve_inbox_http(inbox, "send-inbox-message").await
}
