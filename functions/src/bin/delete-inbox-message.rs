//! `DELETE /v1/inbox/{messageId}`

use natter::domain::DeleteInboxMessage;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    natter_functions::serve_http::<DeleteInboxMessage>().await
}
