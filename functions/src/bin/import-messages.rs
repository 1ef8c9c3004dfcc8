//! `POST /v1/import/conversations/{conversationId}/messages`

use natter::domain::ImportMessages;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    natter_functions::serve_http::<ImportMessages>().await
}
