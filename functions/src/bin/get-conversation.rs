//! `GET /v1/conversations/{conversationId}`

use natter::domain::GetConversation;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    natter_functions::serve_http::<GetConversation>().await
}
