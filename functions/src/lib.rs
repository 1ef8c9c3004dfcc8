//! What every function's `main` shares: configuration from the environment, the clients built
//! once per cold start, and the Lambda runtime loop around a library handler.

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayV2CustomAuthorizerV2Request, ApiGatewayV2httpRequest};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use natter::auth::AuthConfig;
use natter::clock::{Clock, SystemClock};
use natter::config::Config;
use natter::domain::Domain;
use natter::store::dynamo::DynamoStore;

/// The AWS configuration every client of this process is built from.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// The domain over the DynamoDB table named by `TABLE_NAME`.
pub fn domain(sdk: &aws_config::SdkConfig) -> Result<Domain, Error> {
    init_tracing();
    let table = std::env::var("TABLE_NAME").map_err(|_| "TABLE_NAME is not set")?;
    let config = Config::from_env()?;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), table);
    Ok(Domain::new(Arc::new(store), Arc::new(SystemClock), config))
}

/// Runs the HTTP API handler of `function` (a name from `natter::routes::HTTP_ROUTES`).
pub async fn serve_http(domain: Domain, function: &'static str) -> Result<(), Error> {
    let domain = &domain;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2httpRequest>| async move {
            Ok::<_, Error>(natter::http::handle(domain, function, event.payload).await)
        },
    ))
    .await
}

/// Runs the HTTP API authorizer with the secrets from `SIGNING_SECRET` and `SECRET_KEY`.
pub async fn serve_authorizer() -> Result<(), Error> {
    init_tracing();
    let secret = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
    let config = AuthConfig {
        signing_secret: secret("SIGNING_SECRET")?.into_bytes(),
        secret_key: secret("SECRET_KEY")?,
    };
    let config = &config;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2CustomAuthorizerV2Request>| async move {
            let now = (SystemClock.now_ms() / 1000) as u64;
            Ok::<_, Error>(natter::authorizer::authorize(config, &event.payload, now))
        },
    ))
    .await
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .without_time()
        .try_init();
}
