//! `PUT /v1/conversations/{conversationId}`

use natter::domain::PutConversation;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    natter_functions::serve_http::<PutConversation>().await
}
