//! `DELETE /v1/inbox`

use natter::domain::ClearInbox;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    natter_functions::serve_http::<ClearInbox>().await
}
