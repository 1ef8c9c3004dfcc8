//! Starting the gateway: storage, domain, secrets, the router, and a clean stop on a signal.
//! The top layer: it wires the handlers (`http_api`, `ws`, `connections`) to their paths.

use std::sync::Arc;

use axum::Router;
use natter::auth::{AuthConfig, SigningKey};
use natter::clock::{Clock, SystemClock};
use natter::config::Config;
use natter::fanout::{FanOut, ManagementApiPusher};
use natter::services::Services;
use natter::store::dynamo::DynamoStore;

use crate::cli::ServeOptions;
pub use crate::state::AppState;

/// Dev-only secrets, used when the environment gives none; printed at start so that tools can
/// use them. They make a local gateway predictable, not secure: it listens on loopback only.
pub const DEV_SIGNING_SECRET: &str = "natter-local-dev-signing-secret-do-not-deploy";
pub const DEV_SECRET_KEY: &str = "natter-local-dev-secret-key-do-not-deploy";

/// The kid of `NATTER_SIGNING_SECRET` when `NATTER_SIGNING_KID` is unset.
pub const DEFAULT_SIGNING_KID: &str = "k1";

/// The secrets from the environment, or the dev values for those unset; the flag says whether
/// dev values were used.
///
/// - `NATTER_SIGNING_SECRET` signs and verifies user tokens under kid `NATTER_SIGNING_KID`
///   (default `k1`); `natter-local token` signs with it.
/// - `NATTER_SIGNING_SECRET_PREVIOUS`, when set, is a second key that still verifies, under
///   `NATTER_SIGNING_KID_PREVIOUS` (then required, and different), as during a rotation on AWS.
/// - `NATTER_SECRET_KEY` is the secret key.
///
/// # Errors
/// A secret that is set but empty or has surrounding whitespace (`auth::validate_secret`): it
/// could never authenticate anything, so the gateway refuses to start with it; and signing keys
/// that `AuthConfig::new` refuses.
pub fn auth_from_env() -> Result<(AuthConfig, bool), String> {
    auth_from_vars(|name| std::env::var(name).ok())
}

/// [`auth_from_env`] over any source of variables.
pub fn auth_from_vars(var: impl Fn(&str) -> Option<String>) -> Result<(AuthConfig, bool), String> {
    let secret = |name: &str| -> Result<Option<String>, String> {
        var(name)
            .map(|value| natter::auth::validate_secret(name, &value).map(|()| value))
            .transpose()
    };
    let setting = |name: &str| var(name).filter(|v| !v.is_empty());
    let signing = secret("NATTER_SIGNING_SECRET")?;
    let key = secret("NATTER_SECRET_KEY")?;
    let dev = signing.is_none() || key.is_none();
    let kid = setting("NATTER_SIGNING_KID").unwrap_or_else(|| DEFAULT_SIGNING_KID.to_string());
    let mut keys = vec![SigningKey::new(
        kid,
        signing.unwrap_or_else(|| DEV_SIGNING_SECRET.to_string()),
    )];
    if let Some(previous) = secret("NATTER_SIGNING_SECRET_PREVIOUS")? {
        let kid = setting("NATTER_SIGNING_KID_PREVIOUS").ok_or(
            "NATTER_SIGNING_SECRET_PREVIOUS is set, so NATTER_SIGNING_KID_PREVIOUS must name its kid",
        )?;
        keys.push(SigningKey::new(kid, previous));
    }
    let auth = AuthConfig::new(key.unwrap_or_else(|| DEV_SECRET_KEY.to_string()), keys)
        .map_err(|e| format!("signing keys: {e}"))?;
    Ok((auth, dev))
}

/// Everything the gateway stores, and what feeds its fan-out.
pub struct Storage {
    pub services: Services,
    pub changes: ChangeSource,
}

/// Where the fan-out's input comes from.
pub enum ChangeSource {
    /// The embedded store's change feed (lossless: a write waits while the fan-out is behind).
    Memory(natter::changes::ChangeReceiver),
    /// The DynamoDB table's stream, read from its end as of start-up.
    Stream(crate::streams::StreamReader),
}

/// The storage the options ask for, with its change source ready: on DynamoDB the stream is
/// positioned before this returns, so nothing written after start-up is missed. Typing expiry
/// checks run in this process (`natter::typing::InProcessTimer`), on either store.
pub async fn storage(options: &ServeOptions, config: Config) -> Result<Storage, String> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut storage = stores(options, config, clock.clone()).await?;
    let (timer, checks) = natter::typing::InProcessTimer::new(clock);
    storage.services = storage.services.with_typing_timer(Arc::new(timer));
    tokio::spawn(natter::typing::run_in_process_expiry(
        checks,
        storage.services.build(),
    ));
    Ok(storage)
}

async fn stores(
    options: &ServeOptions,
    config: Config,
    clock: Arc<dyn Clock>,
) -> Result<Storage, String> {
    match &options.dynamodb_endpoint {
        None => {
            let (services, changes) = Services::memory(clock, config);
            Ok(Storage {
                services,
                changes: ChangeSource::Memory(changes),
            })
        }
        Some(endpoint) => {
            let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            let dynamodb_config = aws_sdk_dynamodb::config::Builder::from(&sdk)
                .endpoint_url(endpoint)
                .build();
            let client = aws_sdk_dynamodb::Client::from_conf(dynamodb_config);
            DynamoStore::new(client.clone(), &options.table)
                .create_table_if_missing()
                .await
                .map_err(|e| format!("could not prepare table {}: {e}", options.table))?;
            let streams_config = aws_sdk_dynamodbstreams::config::Builder::from(&sdk)
                .endpoint_url(endpoint)
                .build();
            let region = sdk
                .region()
                .map(|r| r.to_string())
                .unwrap_or_else(|| "us-east-1".to_string());
            let reader = crate::streams::StreamReader::start(
                &client,
                aws_sdk_dynamodbstreams::Client::from_conf(streams_config),
                &options.table,
                &region,
            )
            .await
            .map_err(|e| format!("could not read the stream of table {}: {e}", options.table))?;
            Ok(Storage {
                services: Services::dynamodb(client, &options.table, clock, config),
                changes: ChangeSource::Stream(reader),
            })
        }
    }
}

/// The fan-out's pusher: the functions' own, pointed at this gateway's `@connections` endpoint
/// over plain HTTP, signing with dummy credentials (loopback checks no signatures).
pub fn local_pusher(addr: std::net::SocketAddr) -> ManagementApiPusher {
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new(
                    "natter-local",
                    "natter-local",
                    None,
                    None,
                    "natter-local",
                ),
            ),
        )
        .build();
    let connector = natter::fanout::plain_http_connector();
    ManagementApiPusher::new(&sdk, connector, &format!("http://{addr}"))
        .expect("a configuration with a region and credentials makes a pusher")
}

/// Starts the fan-out on its change source, posting through the gateway at `addr`.
pub fn spawn_fan_out(
    state: &AppState,
    changes: ChangeSource,
    addr: std::net::SocketAddr,
) -> Result<(), String> {
    let pusher = Arc::new(local_pusher(addr));
    let concurrency = natter::fanout::concurrency_from_env()?;
    let fan_out = Arc::new(FanOut::new(&state.services, pusher, concurrency));
    match changes {
        ChangeSource::Memory(feed) => {
            tokio::spawn(crate::streams::run_change_feed(feed, fan_out));
        }
        ChangeSource::Stream(reader) => {
            tokio::spawn(reader.run(fan_out));
        }
    }
    Ok(())
}

/// The gateway's state over its services: every HTTP and WebSocket operation, built once.
pub fn app_state(services: &Services, auth: AuthConfig) -> AppState {
    AppState::new(services, auth)
}

pub fn router(state: AppState) -> Router {
    let router = Router::new()
        .route("/v1", axum::routing::any(crate::http_api::serve))
        .route("/v1/{*rest}", axum::routing::any(crate::http_api::serve))
        .route("/ws", axum::routing::get(crate::ws::upgrade))
        .route(
            "/@connections/{connection_id}",
            axum::routing::post(crate::connections::post)
                .get(crate::connections::describe)
                .delete(crate::connections::delete),
        )
        .route(
            "/@local/connections/{connection_id}",
            axum::routing::get(crate::connections::introspect),
        )
        .route(
            "/@local/stats",
            axum::routing::get(crate::connections::stats),
        )
        .route("/@local/demo", axum::routing::get(crate::web::demo_config))
        .route("/@local/token", axum::routing::post(crate::web::dev_token));
    let router = crate::web::asset_paths().fold(router, |router, path| {
        router.route(path, axum::routing::get(crate::web::asset))
    });
    router.with_state(state)
}

pub async fn run(options: ServeOptions) -> Result<(), String> {
    let config = Config::from_env()?;
    let (auth, dev_secrets) = auth_from_env()?;
    let storage = storage(&options, config).await?;
    let mut state = app_state(&storage.services, auth);
    state.dev_tokens = dev_secrets;
    state.ws_timeouts = crate::state::WsTimeouts {
        idle: options.ws_idle_timeout,
        max_lifetime: options.ws_max_lifetime,
    };
    state.authorizer_cache = Arc::new(crate::state::AuthorizerCache::new(
        options.authorizer_cache_ttl,
    ));
    state.connections_latency = options.connections_latency;
    if dev_secrets {
        let sample = natter::auth::issue_user_token(
            "alice",
            None,
            natter::config::local::DEV_TOKEN_TTL_SECS,
            state.now_secs(),
            state.auth.signing_key(),
        )
        .map_err(|e| e.to_string())?;
        println!("NATTER_SIGNING_SECRET and NATTER_SECRET_KEY are unset; using dev values:");
        println!("  signing secret: {DEV_SIGNING_SECRET}");
        println!("  secret key:     {}", state.auth.secret_key);
        println!("  user token for alice (24 h): {sample}");
    }
    match &options.dynamodb_endpoint {
        None => println!("storage: in memory"),
        Some(endpoint) => println!("storage: DynamoDB at {endpoint}, table {}", options.table),
    }
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| format!("could not listen on {}: {e}", options.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    spawn_fan_out(&state, storage.changes, addr)?;
    println!("listening on http://{addr}");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| e.to_string())?;
    println!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn secrets_that_could_never_match_stop_the_gateway() {
        let good = [
            ("NATTER_SIGNING_SECRET", "signing-0123456789"),
            ("NATTER_SECRET_KEY", "key-0123456789"),
        ];
        let (auth, dev) = auth_from_vars(vars(&good)).unwrap();
        assert!(!dev);
        assert_eq!(auth.secret_key, "key-0123456789");
        assert!(auth_from_vars(vars(&[])).unwrap().1, "unset: dev values");
        for (name, value) in [
            ("NATTER_SECRET_KEY", "key-0123456789 "),
            ("NATTER_SECRET_KEY", ""),
            ("NATTER_SIGNING_SECRET", "\tsigning"),
            ("NATTER_SIGNING_SECRET", ""),
        ] {
            let mut env = good.to_vec();
            env.retain(|(k, _)| *k != name);
            env.push((name, value));
            let err = auth_from_vars(vars(&env)).map(|_| ()).unwrap_err();
            assert!(err.starts_with(name), "{name}={value:?}: {err}");
        }
    }
}
