//! `GET /v1/conversations/{conversationId}/messages/{messageId}`

use natter::domain::GetMessage;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    natter_functions::serve_http::<GetMessage>().await
}
