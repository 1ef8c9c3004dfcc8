//! `POST /v1/conversations/{conversationId}/messages`

use natter::domain::SendMessage;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    natter_functions::serve_http::<SendMessage>().await
}
