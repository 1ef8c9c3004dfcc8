//! `PUT /v1/users/{userId}`

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let sdk = natter_functions::sdk_config().await;
    let domain = natter_functions::domain(&sdk)?;
    natter_functions::serve_http(domain, "put-user").await
}
