//! `POST /v1/conversations/{conversationId}/read`

use natter::domain::MarkRead;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    natter_functions::serve_http::<MarkRead>().await
}
