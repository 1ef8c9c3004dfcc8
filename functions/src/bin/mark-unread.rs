//! `POST /v1/conversations/{conversationId}/unread`

use natter::domain::MarkUnread;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    natter_functions::serve_http::<MarkUnread>().await
}
