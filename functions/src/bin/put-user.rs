//! `PUT /v1/users/{userId}`

use natter::domain::PutUser;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    natter_functions::serve_http::<PutUser>().await
}
