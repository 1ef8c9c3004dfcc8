//! `GET /v1/users/{userId}/conversations`

use natter::domain::ListConversations;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    natter_functions::serve_http::<ListConversations>().await
}
