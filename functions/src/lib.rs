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

/// The table every function works on, its one DynamoDB client, and the deployment's settings:
/// read once per cold start.
struct Table {
    client: aws_sdk_dynamodb::Client,
    name: String,
    config: Config,
}

impl Table {
    fn from_env(sdk: &aws_config::SdkConfig) -> Result<Self, Error> {
        init_tracing();
        Ok(Table {
            client: aws_sdk_dynamodb::Client::new(sdk),
            name: std::env::var("TABLE_NAME").map_err(|_| "TABLE_NAME is not set")?,
            config: Config::from_env()?,
        })
    }

    fn domain(&self) -> Domain {
        let store = DynamoStore::new(self.client.clone(), &self.name);
        Domain::new(Arc::new(store), Arc::new(SystemClock), self.config.clone())
    }

    fn realtime(&self) -> Arc<dyn natter::realtime::RealtimeStore> {
        Arc::new(natter::realtime::dynamo::DynamoRealtimeStore::new(
            self.client.clone(),
            &self.name,
        ))
    }

    /// The inbox; client ids resolve through the same table's connection records.
    fn inbox(&self, domain: &Domain) -> natter::domain::Inbox {
        natter::domain::Inbox {
            store: Arc::new(DynamoStore::new(self.client.clone(), &self.name)),
            clients: Arc::new(natter::store::inbox::ConnectionDirectory(self.realtime())),
            clock: domain.clock.clone(),
            config: domain.config.clone(),
        }
    }

    fn ws_context(&self) -> natter::ws::WsContext {
        let domain = self.domain();
        natter::ws::WsContext {
            inbox: self.inbox(&domain),
            realtime: self.realtime(),
            domain,
        }
    }
}

/// The domain over the DynamoDB table named by `TABLE_NAME`.
pub fn domain(sdk: &aws_config::SdkConfig) -> Result<Domain, Error> {
    Ok(Table::from_env(sdk)?.domain())
}

/// The inbox over the DynamoDB table named by `TABLE_NAME`.
pub fn inbox(sdk: &aws_config::SdkConfig) -> Result<natter::domain::Inbox, Error> {
    let table = Table::from_env(sdk)?;
    Ok(table.inbox(&table.domain()))
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

/// Runs the HTTP API handler of an inbox function (`natter::routes::INBOX_FUNCTIONS`).
pub async fn serve_inbox_http(
    inbox: natter::domain::Inbox,
    function: &'static str,
) -> Result<(), Error> {
    let inbox = &inbox;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2httpRequest>| async move {
            Ok::<_, Error>(natter::http::handle_inbox(inbox, function, event.payload).await)
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

/// The secrets only the authorizers hold: `SIGNING_SECRET` and `SECRET_KEY`.
fn auth_config_from_env() -> Result<AuthConfig, Error> {
    init_tracing();
    let secret = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
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

// ---- WebSocket API and fan-out ----

/// The WebSocket routes' context: the domain, the inbox and the realtime store, all on
/// `TABLE_NAME`.
pub fn ws_context(sdk: &aws_config::SdkConfig) -> Result<natter::ws::WsContext, Error> {
    Ok(Table::from_env(sdk)?.ws_context())
}

/// Runs the WebSocket route handler of `function` (a name from `natter::routes::WS_ROUTES`).
pub async fn serve_ws(ctx: natter::ws::WsContext, function: &'static str) -> Result<(), Error> {
    let ctx = &ctx;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<_, Error>(natter::ws::handle(ctx, function, event.payload).await)
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
        move |event: LambdaEvent<
            aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest,
        >| async move {
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
/// `FANOUT_CONCURRENCY` posts in flight, and reports batch item failures.
pub async fn serve_fan_out(sdk: &aws_config::SdkConfig) -> Result<(), Error> {
    let ctx = ws_context(sdk)?;
    let endpoint =
        std::env::var("WEBSOCKET_ENDPOINT").map_err(|_| "WEBSOCKET_ENDPOINT is not set")?;
    let fan_out = natter::fanout::FanOut {
        domain: ctx.domain,
        realtime: ctx.realtime,
        pusher: Arc::new(natter::fanout::ManagementApiPusher::for_endpoint(
            sdk, &endpoint,
        )),
        concurrency: natter::fanout::concurrency_from_env()?,
    };
    let fan_out = &fan_out;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<aws_lambda_events::dynamodb::Event>| async move {
            Ok::<_, Error>(fan_out.handle_stream_event(event.payload).await)
        },
    ))
    .await
}
