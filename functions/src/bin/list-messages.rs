//! `GET /v1/conversations/{conversationId}/messages`

use natter::domain::ListMessages;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    natter_functions::serve_http::<ListMessages>().await
}
