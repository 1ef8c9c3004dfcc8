//! Starting the gateway: storage, domain, secrets, the router, and a clean stop on a signal.

use std::sync::Arc;

use axum::Router;
use natter::auth::AuthConfig;
use natter::clock::{Clock, SystemClock};
use natter::config::Config;
use natter::domain::Domain;
use natter::store::dynamo::DynamoStore;
use natter::store::memory::MemoryStore;
use natter::store::Store;

use crate::cli::ServeOptions;

/// Dev-only secrets, used when the environment gives none; printed at start so that tools can
/// use them. They make a local gateway predictable, not secure: it listens on loopback only.
pub const DEV_SIGNING_SECRET: &str = "natter-local-dev-signing-secret-do-not-deploy";
pub const DEV_SECRET_KEY: &str = "natter-local-dev-secret-key-do-not-deploy";

#[derive(Clone)]
pub struct AppState {
    pub domain: Domain,
    pub auth: Arc<AuthConfig>,
}

impl AppState {
    pub fn now_secs(&self) -> u64 {
        (self.domain.clock.now_ms() / 1000).max(0) as u64
    }
}

/// The secrets from `NATTER_SIGNING_SECRET` and `NATTER_SECRET_KEY`, or the dev values;
/// the flag says whether dev values were used.
pub fn auth_from_env() -> (AuthConfig, bool) {
    let get = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let signing = get("NATTER_SIGNING_SECRET");
    let key = get("NATTER_SECRET_KEY");
    let dev = signing.is_none() || key.is_none();
    (
        AuthConfig {
            signing_secret: signing
                .unwrap_or_else(|| DEV_SIGNING_SECRET.to_string())
                .into_bytes(),
            secret_key: key.unwrap_or_else(|| DEV_SECRET_KEY.to_string()),
        },
        dev,
    )
}

/// The storage the options ask for: DynamoDB at an endpoint (table created when missing), or
/// the embedded in-memory store.
pub async fn store(options: &ServeOptions) -> Result<Arc<dyn Store>, String> {
    match &options.dynamodb_endpoint {
        None => Ok(Arc::new(MemoryStore::new())),
        Some(endpoint) => {
            let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            let config = aws_sdk_dynamodb::config::Builder::from(&sdk)
                .endpoint_url(endpoint)
                .build();
            let store = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), &options.table);
            store
                .create_table_if_missing()
                .await
                .map_err(|e| format!("could not prepare table {}: {e}", options.table))?;
            Ok(Arc::new(store))
        }
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1", axum::routing::any(crate::http_api::serve))
        .route("/v1/{*rest}", axum::routing::any(crate::http_api::serve))
        .with_state(state)
}

pub async fn run(options: ServeOptions) -> Result<(), String> {
    let config = Config::from_env()?;
    let (auth, dev_secrets) = auth_from_env();
    let store = store(&options).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let domain = Domain::new(store, clock, config);
    let state = AppState {
        domain,
        auth: Arc::new(auth),
    };
    if dev_secrets {
        let sample = natter::auth::issue_user_token(
            "alice",
            None,
            86_400,
            state.now_secs(),
            &state.auth.signing_secret,
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
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
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
