//! `POST /v1/inbox`

use natter::domain::SendInboxMessage;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    natter_functions::serve_http::<SendInboxMessage>().await
}
