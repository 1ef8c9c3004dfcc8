//! `GET /v1/users/{userId}`

use natter::domain::GetUser;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    natter_functions::serve_http::<GetUser>().await
}
