//! `DELETE /v1/conversations/{conversationId}/messages/{messageId}/reactions/{emoji}`

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let sdk = natter_functions::sdk_config().await;
    let domain = natter_functions::domain(&sdk)?;
    natter_functions::serve_http(domain, "remove-reaction").await
}
