//! `GET /v1/inbox`

use natter::domain::ListInbox;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    natter_functions::serve_http::<ListInbox>().await
}
