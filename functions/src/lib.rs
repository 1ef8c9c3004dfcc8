//! What every function's `main` shares: one `SdkConfig` and one DynamoDB client per cold start,
//! the services over the table named by `TABLE_NAME`, and the Lambda runtime loop around the
//! operation the binary names by type.

use std::sync::Arc;

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayV2CustomAuthorizerV2Request,
    ApiGatewayV2httpRequest, ApiGatewayWebsocketProxyRequest,
};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use natter::auth::AuthConfig;
use natter::clock::{Clock, SystemClock};
use natter::config::Config;
use natter::fanout::{FanOut, ManagementApiPusher};
use natter::http::{HttpOperation, HttpService};
use natter::services::Services;
use natter::ws::{WsOperation, WsService};

/// The AWS configuration every client of this process is built from.
async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// The services over the table named by `TABLE_NAME`, with the deployment's settings.
fn services(sdk: &aws_config::SdkConfig) -> Result<Services, Error> {
    init_tracing();
    let table = std::env::var("TABLE_NAME").map_err(|_| "TABLE_NAME is not set")?;
    Ok(Services::dynamodb(
        aws_sdk_dynamodb::Client::new(sdk),
        &table,
        Arc::new(SystemClock),
        Config::from_env()?,
    ))
}

/// Runs HTTP API operation `O` (e.g. `serve_http::<SendMessage>()`).
pub async fn serve_http<O: HttpOperation>() -> Result<(), Error> {
    let services = services(&sdk_config().await)?;
    let service = &HttpService::new::<O>(&services);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2httpRequest>| async move {
            Ok::<_, Error>(service.handle(event.payload).await)
        },
    ))
    .await
}

/// Runs WebSocket route operation `O` (e.g. `serve_ws::<WsSubscribe>()`).
pub async fn serve_ws<O: WsOperation>() -> Result<(), Error> {
    let services = services(&sdk_config().await)?;
    let service = &WsService::new::<O>(&services);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<_, Error>(service.handle(event.payload).await)
        },
    ))
    .await
}

/// Runs the HTTP API authorizer with the secrets from `SIGNING_SECRET` and `SECRET_KEY`.
pub async fn serve_authorizer() -> Result<(), Error> {
    let config = &auth_config_from_env()?;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2CustomAuthorizerV2Request>| async move {
            let now = (SystemClock.now_ms() / 1000) as u64;
            Ok::<_, Error>(natter::authorizer::authorize(config, &event.payload, now))
        },
    ))
    .await
}

/// Runs the `$connect` REQUEST authorizer with the secrets from `SIGNING_SECRET` and
/// `SECRET_KEY`. A refused token fails the invocation with `Unauthorized`, which API Gateway
/// answers with 401.
pub async fn serve_ws_authorizer() -> Result<(), Error> {
    let config = &auth_config_from_env()?;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest>| async move {
            let now = (SystemClock.now_ms() / 1000) as u64;
            natter::ws::authorize(config, &event.payload, now).map_err(|e| {
                tracing::info!(reason = %e, "connection refused");
                Error::from("Unauthorized")
            })
        },
    ))
    .await
}

/// Runs the stream fan-out: posts through the management API at `WEBSOCKET_ENDPOINT` with
/// `FANOUT_CONCURRENCY` posts in flight, and reports batch item failures. Both clients come from
/// one `SdkConfig`.
pub async fn serve_fan_out() -> Result<(), Error> {
    let sdk = sdk_config().await;
    let services = services(&sdk)?;
    let endpoint =
        std::env::var("WEBSOCKET_ENDPOINT").map_err(|_| "WEBSOCKET_ENDPOINT is not set")?;
    let pusher = Arc::new(ManagementApiPusher::for_endpoint(&sdk, &endpoint));
    let fan_out = &FanOut::new(&services, pusher, natter::fanout::concurrency_from_env()?);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<aws_lambda_events::dynamodb::Event>| async move {
            Ok::<_, Error>(fan_out.handle_stream_event(event.payload).await)
        },
    ))
    .await
}

/// The secrets only the authorizers hold: `SIGNING_SECRET` and `SECRET_KEY`.
fn auth_config_from_env() -> Result<AuthConfig, Error> {
    init_tracing();
    auth_config_from(|name| std::env::var(name).ok())
}

/// The authorizers' configuration from these variables. A secret that is unset, empty or has
/// surrounding whitespace (`auth::validate_secret`) fails the init, so the function never runs
/// with a secret that could not authenticate anything.
fn auth_config_from(var: impl Fn(&str) -> Option<String>) -> Result<AuthConfig, Error> {
    let secret = |name: &str| -> Result<String, Error> {
        let value = var(name).ok_or_else(|| format!("{name} is not set"))?;
        natter::auth::validate_secret(name, &value)?;
        Ok(value)
    };
    Ok(AuthConfig {
        signing_secret: secret("SIGNING_SECRET")?.into_bytes(),
        secret_key: secret("SECRET_KEY")?,
    })
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .without_time()
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<AuthConfig, String> {
        auth_config_from(|name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
        .map_err(|e| e.to_string())
    }

    #[test]
    fn the_authorizer_refuses_secrets_that_could_never_match() {
        let good = [
            ("SIGNING_SECRET", "signing-0123456789"),
            ("SECRET_KEY", "key-0123456789"),
        ];
        let config = from(&good).unwrap();
        assert_eq!(config.secret_key, "key-0123456789");
        assert_eq!(config.signing_secret, b"signing-0123456789");
        for (name, value, want) in [
            (
                "SECRET_KEY",
                "key-0123456789\n",
                "SECRET_KEY starts or ends with whitespace",
            ),
            (
                "SECRET_KEY",
                " key-0123456789",
                "SECRET_KEY starts or ends with whitespace",
            ),
            ("SECRET_KEY", "", "SECRET_KEY is empty"),
            (
                "SIGNING_SECRET",
                "signing-0123456789 ",
                "SIGNING_SECRET starts or ends with whitespace",
            ),
            ("SIGNING_SECRET", "", "SIGNING_SECRET is empty"),
        ] {
            let mut env = good.to_vec();
            env.retain(|(k, _)| *k != name);
            env.push((name, value));
            let err = from(&env).map(|_| ()).unwrap_err();
            assert!(err.starts_with(want), "{name}={value:?}: {err}");
        }
        assert_eq!(
            from(&good[..1]).map(|_| ()).unwrap_err(),
            "SECRET_KEY is not set"
        );
    }
}
