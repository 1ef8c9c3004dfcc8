//! What every function's `main` shares: one `SdkConfig` and one DynamoDB client per cold start,
//! the services over the table named by `TABLE_NAME`, and the Lambda runtime loop around the
//! operation the binary names by type. The authorizers instead build one Secrets Manager client
//! and read the secrets once, before the runtime loop starts.

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
use natter::ports::Port;
use natter::secrets;
use natter::services::{ports_of, Services};
use natter::store::dynamo::DynamoStore;
use natter::typing::{SqsTypingTimer, TypingExpiry};
use natter::ws::{WsOperation, WsService};

/// The AWS configuration every client of this process is built from, with one HTTPS client.
///
/// On Lambda the region and the credentials are in the environment (`AWS_REGION`,
/// `AWS_ACCESS_KEY_ID`, ...): taking them from there skips building the SDK's default chains
/// (profile files, IMDS, ECS), half a millisecond of every cold start. Anywhere else, the default
/// chains find them.
async fn sdk_config() -> aws_config::SdkConfig {
    let mut loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https_client());
    if let (Ok(region), Ok(_)) = (
        std::env::var("AWS_REGION"),
        std::env::var("AWS_ACCESS_KEY_ID"),
    ) {
        loader = loader
            .region(aws_config::Region::new(region))
            .credentials_provider(
                aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
            );
    }
    loader.load().await
}

/// The AWS configuration of an operation with these ports: `sdk_config`'s, or, for one that
/// holds no table action and so makes no AWS call (`ws-ping`, `$default`), a bare one whose
/// HTTP client connects nowhere (`NoAwsCalls`). Its DynamoDB client then costs the cold start
/// next to nothing: no configuration chains, no TLS set-up. The SDK's default HTTPS client in
/// its place would load the system's certificates, the slowest step of a cold init
/// (docs/benchmarks.md, *Cold init*).
async fn sdk_config_for(ports: &[Port]) -> aws_config::SdkConfig {
    if natter::ports::uses_table(ports) {
        sdk_config().await
    } else {
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .http_client(aws_smithy_runtime_api::client::http::http_client_fn(
                |_, _| aws_smithy_runtime_api::client::http::SharedHttpConnector::new(NoAwsCalls),
            ))
            .build()
    }
}

/// The HTTP connector of a function that makes no AWS call: any request fails at once, saying
/// so, instead of reaching an endpoint the function's role would refuse anyway.
#[derive(Debug)]
struct NoAwsCalls;

impl aws_smithy_runtime_api::client::http::HttpConnector for NoAwsCalls {
    fn call(
        &self,
        _request: aws_smithy_runtime_api::client::orchestrator::HttpRequest,
    ) -> aws_smithy_runtime_api::client::http::HttpConnectorFuture {
        let refusal = aws_smithy_runtime_api::client::result::ConnectorError::other(
            NO_AWS_CALLS.into(),
            None,
        );
        aws_smithy_runtime_api::client::http::HttpConnectorFuture::ready(Err(refusal))
    }
}

const NO_AWS_CALLS: &str = "this function's operation holds no AWS action, so it makes no AWS call";

/// The one HTTPS client every AWS client of this process shares: one TLS configuration and one
/// connection pool for DynamoDB, the management API, SQS and Secrets Manager.
///
/// It trusts the roots of Amazon Trust Services (`AMAZON_ROOTS`, compiled in), which issue the
/// certificates of every AWS endpoint the functions call, unless `NATTER_TLS_ROOTS=system` asks
/// for the system's certificates. Why not the SDK's default: it gives each service client its
/// own HTTPS client, and each one reads every file of the system's certificate directory and
/// decodes the whole bundle. That was most of a function's cold init (docs/benchmarks.md,
/// *Cold init*), and the fan-out paid it twice.
pub fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls;
    let hyper = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(tls_context())
        .build_https();
    aws_smithy_runtime_api::client::http::SharedHttpClient::new(ConnectorOnFirstRequest(hyper))
}

/// An HTTP client that builds its connector only for a request, never at a service client's
/// construction.
///
/// The SDK's hyper client, asked to validate a new service client's configuration, builds a
/// whole connector (the TLS configuration, the roots parsed) and throws it away, so that
/// native certificates load before the first request. These roots are compiled in, and the
/// first request, the init's warm-up, builds the connector anyway: the throwaway one was
/// about 0.2 ms of every cold start per service client, as `perf` (which inflates it) saw it.
#[derive(Debug)]
pub struct ConnectorOnFirstRequest<C>(pub C);

impl<C: aws_smithy_runtime_api::client::http::HttpClient>
    aws_smithy_runtime_api::client::http::HttpClient for ConnectorOnFirstRequest<C>
{
    fn http_connector(
        &self,
        settings: &aws_smithy_runtime_api::client::http::HttpConnectorSettings,
        components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
    ) -> aws_smithy_runtime_api::client::http::SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    fn connector_metadata(
        &self,
    ) -> Option<aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata> {
        self.0.connector_metadata()
    }
    // `validate_base_client_config` is the trait's default: nothing to check, nothing built.
}

/// The TLS configuration of every HTTPS connection of this process: `AMAZON_ROOTS`, or the
/// system's roots with `NATTER_TLS_ROOTS=system` (the default context reads them).
/// Built once per process: the fan-out's DynamoDB client and its pusher share it.
pub fn tls_context() -> aws_smithy_http_client::tls::TlsContext {
    static CONTEXT: std::sync::OnceLock<aws_smithy_http_client::tls::TlsContext> =
        std::sync::OnceLock::new();
    CONTEXT.get_or_init(build_tls_context).clone()
}

fn build_tls_context() -> aws_smithy_http_client::tls::TlsContext {
    use aws_smithy_http_client::tls::{TlsContext, TrustStore};
    if std::env::var(TLS_ROOTS_ENV).is_ok_and(|v| v == "system") {
        return TlsContext::default();
    }
    let trust_store = TrustStore::empty().with_pem_certificate(AMAZON_ROOTS_PEM.as_bytes());
    // Building the context fails only for a provider without trust-store support, which rustls
    // is not; the system's roots are the fallback all the same.
    TlsContext::builder()
        .with_trust_store(trust_store)
        .build()
        .unwrap_or_default()
}

/// `NATTER_TLS_ROOTS=system`: trust the system's root certificates instead of `AMAZON_ROOTS`
/// (for an endpoint behind another CA, e.g. a TLS-inspecting proxy).
pub const TLS_ROOTS_ENV: &str = "NATTER_TLS_ROOTS";

mod amazon_roots;
pub use amazon_roots::{amazon_roots, AMAZON_ROOTS};

/// `amazon_roots()` as one PEM bundle, picked when the crate is built (`build.rs`): a cold start
/// then only hands these bytes to the trust store, where picking them from Mozilla's roots and
/// encoding them took 0.1–0.2 ms of every init.
pub const AMAZON_ROOTS_PEM: &str = include_str!(concat!(env!("OUT_DIR"), "/amazon_roots.pem"));

/// The services over the table named by `TABLE_NAME`, with the deployment's settings; when
/// `TYPING_QUEUE_URL` is set (only `ws-typing`'s), typing expiry checks go to that queue. An
/// operation whose `ports` use the table opens its connection first.
async fn services(sdk: &aws_config::SdkConfig, ports: &[Port]) -> Result<Services, Error> {
    init_tracing();
    let table = std::env::var("TABLE_NAME").map_err(|_| "TABLE_NAME is not set")?;
    let client = aws_sdk_dynamodb::Client::new(sdk);
    if natter::ports::uses_table(ports) {
        warm_up(&client, &table).await;
    }
    let services = Services::dynamodb(client, &table, Arc::new(SystemClock), Config::from_env()?);
    Ok(match std::env::var("TYPING_QUEUE_URL") {
        Ok(url) if !url.is_empty() => {
            services.with_typing_timer(Arc::new(SqsTypingTimer::from_sdk(sdk, &url)))
        }
        _ => services,
    })
}

/// How long init waits for the warm-up; Lambda allows init 10 s in all.
const WARM_UP_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Opens the DynamoDB connection before the runtime asks for the first event
/// (`DynamoStore::warm_up`), so the first invocation does not pay for it. A failure is logged,
/// not fatal: the first invocation then opens the connection, as it would have anyway.
async fn warm_up(client: &aws_sdk_dynamodb::Client, table: &str) {
    let started = std::time::Instant::now();
    let store = DynamoStore::new(client.clone(), table);
    match tokio::time::timeout(WARM_UP_LIMIT, store.warm_up()).await {
        Ok(Ok(())) => {
            let elapsed_us = started.elapsed().as_micros() as u64;
            tracing::info!(elapsed_us, "{}", natter::store::dynamo::WARM_UP_LOG);
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "the DynamoDB warm-up failed"),
        Err(_) => tracing::warn!(limit = ?WARM_UP_LIMIT, "the DynamoDB warm-up timed out"),
    }
}

/// Runs HTTP API operation `O` (e.g. `serve_http::<SendMessage>()`).
pub async fn serve_http<O: HttpOperation>() -> Result<(), Error> {
    let ports = (O::ROUTE.ports)();
    let services = services(&sdk_config_for(&ports).await, &ports).await?;
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
    let ports = (O::ROUTE.ports)();
    let services = services(&sdk_config_for(&ports).await, &ports).await?;
    let service = &WsService::new::<O>(&services);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<_, Error>(service.handle(event.payload).await)
        },
    ))
    .await
}

/// Runs the HTTP API authorizer with the secrets it reads from Secrets Manager at init.
pub async fn serve_authorizer() -> Result<(), Error> {
    let sdk = sdk_config().await;
    let config = &auth_config_at_init(&aws_sdk_secretsmanager::Client::new(&sdk)).await?;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2CustomAuthorizerV2Request>| async move {
            let now = (SystemClock.now_ms() / 1000) as u64;
            Ok::<_, Error>(natter::authorizer::authorize(config, &event.payload, now))
        },
    ))
    .await
}

/// Runs the `$connect` REQUEST authorizer with the secrets it reads from Secrets Manager at
/// init. A refused token fails the invocation with `Unauthorized`, which API Gateway answers
/// with 401.
pub async fn serve_ws_authorizer() -> Result<(), Error> {
    let sdk = sdk_config().await;
    let config = &auth_config_at_init(&aws_sdk_secretsmanager::Client::new(&sdk)).await?;
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
/// `FANOUT_CONCURRENCY` posts in flight, and reports batch item failures. The DynamoDB client and
/// the pusher take their region and credentials from one `SdkConfig`, and trust the same roots.
pub async fn serve_fan_out() -> Result<(), Error> {
    let sdk = sdk_config().await;
    let services = services(&sdk, &FanOut::ports()).await?;
    let endpoint =
        std::env::var("WEBSOCKET_ENDPOINT").map_err(|_| "WEBSOCKET_ENDPOINT is not set")?;
    let connector = natter::fanout::rustls_connector(tls_context());
    let pusher = Arc::new(ManagementApiPusher::new(&sdk, connector, &endpoint)?);
    let fan_out = &FanOut::new(&services, pusher, natter::fanout::concurrency_from_env()?);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<aws_lambda_events::dynamodb::Event>| async move {
            Ok::<_, Error>(fan_out.handle_stream_event(event.payload).await)
        },
    ))
    .await
}

/// Runs the typing expiry checks of the typing queue (an SQS event source with batch item
/// failures reported).
pub async fn serve_typing_expiry() -> Result<(), Error> {
    let services = services(&sdk_config().await, &ports_of::<TypingExpiry>()).await?;
    let expiry = &services.build::<TypingExpiry>();
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<aws_lambda_events::sqs::SqsEvent>| async move {
            Ok::<_, Error>(expiry.handle_sqs_event(event.payload).await)
        },
    ))
    .await
}

/// The secrets only the authorizers hold, read once at init from the two Secrets Manager
/// secrets named by `SECRET_KEY_SECRET_ARN` and `SIGNING_KEYS_SECRET_ARN` (shapes:
/// `natter::secrets`). Any failure is an init error that says which secret and why, so the
/// function never serves without its keys.
pub async fn auth_config_at_init(
    client: &aws_sdk_secretsmanager::Client,
) -> Result<AuthConfig, Error> {
    init_tracing();
    let arn = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("{name} is not set"))
    };
    let started = std::time::Instant::now();
    let config = load_auth_config(
        client,
        &arn(secrets::SECRET_KEY_SECRET_ENV)?,
        &arn(secrets::SIGNING_KEYS_SECRET_ENV)?,
    )
    .await?;
    let kids: Vec<&str> = config
        .signing_keys()
        .iter()
        .map(|k| k.kid.as_str())
        .collect();
    let elapsed_us = started.elapsed().as_micros() as u64;
    tracing::info!(?kids, elapsed_us, "{}", secrets::LOADED_LOG);
    Ok(config)
}

/// Reads the secret key's and the signing keys' secrets (one `GetSecretValue` each, the only
/// Secrets Manager action the authorizers are granted) and checks them.
pub async fn load_auth_config(
    client: &aws_sdk_secretsmanager::Client,
    secret_key_id: &str,
    signing_keys_id: &str,
) -> Result<AuthConfig, String> {
    let (secret_key, signing_keys) = tokio::join!(
        secret_string(client, secret_key_id),
        secret_string(client, signing_keys_id),
    );
    let (secret_key, signing_keys) = (secret_key?, signing_keys?);
    secrets::auth_config(&secret_key, &signing_keys)
        .map_err(|e| format!("the secrets in Secrets Manager are not usable: {e}"))
}

async fn secret_string(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<String, String> {
    let output = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| {
            format!(
                "could not read secret {secret_id} from Secrets Manager: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
            )
        })?;
    output
        .secret_string
        .ok_or_else(|| format!("secret {secret_id} has no SecretString (a binary secret?)"))
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

    #[tokio::test]
    async fn a_function_without_aws_actions_gets_a_client_that_connects_nowhere() {
        let bare = sdk_config_for(&[]).await;
        assert!(bare.credentials_provider().is_none() && bare.region().is_none());
        // Even given a region and credentials, its requests go nowhere.
        let credentials = aws_sdk_dynamodb::config::Credentials::for_tests();
        let sdk = bare
            .to_builder()
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
                credentials,
            ))
            .build();
        let client = aws_sdk_dynamodb::Client::new(&sdk);
        let err = client
            .get_item()
            .table_name("t")
            .send()
            .await
            .expect_err("no call can succeed");
        let message = format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&err));
        assert!(message.contains(NO_AWS_CALLS), "{message}");
    }

    /// An HTTP client that counts what the SDK asks of it; its connector refuses every request.
    #[derive(Debug, Default, Clone)]
    struct CountingHttpClient {
        validations: Arc<std::sync::atomic::AtomicUsize>,
        connectors: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl aws_smithy_runtime_api::client::http::HttpClient for CountingHttpClient {
        fn http_connector(
            &self,
            _: &aws_smithy_runtime_api::client::http::HttpConnectorSettings,
            _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        ) -> aws_smithy_runtime_api::client::http::SharedHttpConnector {
            self.connectors
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            aws_smithy_runtime_api::client::http::SharedHttpConnector::new(NoAwsCalls)
        }

        fn validate_base_client_config(
            &self,
            _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponentsBuilder,
            _: &aws_smithy_types::config_bag::ConfigBag,
        ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
            self.validations
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }
    }

    fn sdk_config_over(
        http: impl aws_smithy_runtime_api::client::http::HttpClient + 'static,
    ) -> aws_config::SdkConfig {
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
                aws_sdk_dynamodb::config::Credentials::for_tests(),
            ))
            .http_client(aws_smithy_runtime_api::client::http::SharedHttpClient::new(
                http,
            ))
            .build()
    }

    #[tokio::test]
    async fn a_service_client_is_built_without_a_connector_the_first_request_builds_it() {
        use std::sync::atomic::Ordering::SeqCst;
        // The SDK asks the HTTP client to validate each new service client: the hyper client
        // builds (and drops) a whole connector when asked.
        let bare = CountingHttpClient::default();
        let _ = aws_sdk_dynamodb::Client::new(&sdk_config_over(bare.clone()));
        assert_eq!(
            bare.validations.load(SeqCst),
            1,
            "the SDK validates at construction"
        );

        let inner = CountingHttpClient::default();
        let client =
            aws_sdk_dynamodb::Client::new(&sdk_config_over(ConnectorOnFirstRequest(inner.clone())));
        assert_eq!(inner.validations.load(SeqCst), 0, "nothing is validated");
        assert_eq!(inner.connectors.load(SeqCst), 0, "no connector is built");
        let _ = client.get_item().table_name("t").send().await;
        assert!(
            inner.connectors.load(SeqCst) >= 1,
            "the request builds the connector"
        );
    }

    /// The authorizers' secrets as Secrets Manager holds them, checked as the init checks them.
    fn from(secret_key: &str, signing_key: &str) -> Result<(), String> {
        let secret_key = serde_json::json!({ "secretKey": secret_key }).to_string();
        let signing_keys = serde_json::json!({ "k1": signing_key }).to_string();
        natter::secrets::auth_config(&secret_key, &signing_keys).map(|_| ())
    }

    #[test]
    fn the_authorizer_refuses_secrets_that_could_never_match() {
        let (key, signing) = (
            "key-0123456789abcdef0123456789abcdef",
            "signing-0123456789abcdef0123456789abcdef",
        );
        assert_eq!(from(key, signing), Ok(()));
        for (secret_key, signing_key, want) in [
            (
                &*format!("{key}\n"),
                signing,
                "secretKey starts or ends with whitespace",
            ),
            (
                &*format!(" {key}"),
                signing,
                "secretKey starts or ends with whitespace",
            ),
            ("", signing, "secretKey is empty"),
            (
                key,
                &*format!("{signing} "),
                "signing key \"k1\" starts or ends with whitespace",
            ),
            (key, "", "signing key \"k1\" is empty"),
        ] {
            let err = from(secret_key, signing_key).unwrap_err();
            assert!(
                err.starts_with(want),
                "{secret_key:?} {signing_key:?}: {err}"
            );
        }
    }
}
