//! `DELETE /v1/conversations/{conversationId}/messages/{messageId}`

use natter::domain::DeleteMessage;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    natter_functions::serve_http::<DeleteMessage>().await
}
