//! What every handler of the gateway shares: the services, each operation built once from them,
//! the secrets, the open sockets, their timeouts, and the gateway's counters.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use natter::auth::AuthConfig;
use natter::http::HttpService;
use natter::ports::ConnectionReader;
use natter::services::Services;
use natter::ws::WsService;
use serde_json::Value;

use crate::sockets::Registry;
use crate::stats::Stats;

/// When the gateway closes a WebSocket connection on its own (with 1001, as API Gateway does):
/// after `idle` without a client frame, and `max_lifetime` after it connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsTimeouts {
    pub idle: Duration,
    pub max_lifetime: Duration,
}

impl Default for WsTimeouts {
    /// API Gateway's: 10 minutes idle, 2 hours in all.
    fn default() -> Self {
        use natter::config::aws::{WS_CONNECTION_MAX_SECS, WS_IDLE_TIMEOUT_SECS};
        WsTimeouts {
            idle: Duration::from_secs(WS_IDLE_TIMEOUT_SECS as u64),
            max_lifetime: Duration::from_secs(WS_CONNECTION_MAX_SECS as u64),
        }
    }
}

/// API Gateway's cache of the HTTP authorizer's verdicts: one verdict (the authorizer's context)
/// per `Authorization` value, reused for `ttl_ms` after the authorizer gave it
/// (`config::authorizer::CACHE_TTL_SECS` unless `--authorizer-cache-ttl` shortens it; 0 caches
/// nothing). Bounded by `config::local::AUTHORIZER_CACHE_MAX_ENTRIES`.
#[derive(Debug)]
pub struct AuthorizerCache {
    ttl_ms: i64,
    verdicts: Mutex<HashMap<String, (i64, Value)>>,
}

impl AuthorizerCache {
    pub fn new(ttl: Duration) -> Self {
        AuthorizerCache {
            ttl_ms: ttl.as_millis().min(i64::MAX as u128) as i64,
            verdicts: Mutex::default(),
        }
    }

    /// The verdict cached for `identity` at `now_ms`, if one is still fresh.
    pub fn get(&self, identity: &str, now_ms: i64) -> Option<Value> {
        let verdicts = self.verdicts.lock().unwrap_or_else(|e| e.into_inner());
        verdicts
            .get(identity)
            .filter(|(at, _)| now_ms < at.saturating_add(self.ttl_ms))
            .map(|(_, verdict)| verdict.clone())
    }

    /// Keeps the authorizer's verdict for `identity`, given at `now_ms`.
    pub fn put(&self, identity: &str, verdict: Value, now_ms: i64) {
        if self.ttl_ms <= 0 {
            return;
        }
        let mut verdicts = self.verdicts.lock().unwrap_or_else(|e| e.into_inner());
        if verdicts.len() >= natter::config::local::AUTHORIZER_CACHE_MAX_ENTRIES {
            let ttl = self.ttl_ms;
            verdicts.retain(|_, (at, _)| now_ms < at.saturating_add(ttl));
            if verdicts.len() >= natter::config::local::AUTHORIZER_CACHE_MAX_ENTRIES {
                verdicts.clear();
            }
        }
        verdicts.insert(identity.to_string(), (now_ms, verdict));
    }
}

impl Default for AuthorizerCache {
    /// API Gateway's, as `template.yaml` configures it.
    fn default() -> Self {
        AuthorizerCache::new(Duration::from_secs(
            natter::config::authorizer::CACHE_TTL_SECS,
        ))
    }
}

/// What every handler of the gateway shares: each operation built once from one set of services.
#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    /// The HTTP operations by function name (the route table's `function`).
    pub http: Arc<HashMap<&'static str, HttpService>>,
    /// The WebSocket routes' operations by route key.
    pub ws: Arc<HashMap<&'static str, WsService>>,
    /// The gateway's own introspection (`/@local/connections/{id}`) reads connection records.
    pub connections: Arc<dyn ConnectionReader>,
    pub auth: Arc<AuthConfig>,
    /// The open WebSocket connections.
    pub sockets: Arc<Registry>,
    /// When connections are closed for idleness and age (`--ws-idle-timeout`,
    /// `--ws-max-lifetime`; API Gateway's by default).
    pub ws_timeouts: WsTimeouts,
    /// What the gateway refused or closed for breaking AWS's limits (`GET /@local/stats`).
    pub stats: Arc<Stats>,
    /// Whether the demo page may have tokens for any user (`POST /@local/token`): only when the
    /// gateway runs with its dev secrets.
    pub dev_tokens: bool,
    /// The HTTP authorizer's verdicts, cached as API Gateway caches them.
    pub authorizer_cache: Arc<AuthorizerCache>,
    /// How long each `@connections` post waits before it is served (`--connections-latency-ms`;
    /// none by default): the network round trip a post takes on AWS.
    pub connections_latency: Duration,
}

impl AppState {
    /// The gateway's state over its services: every HTTP and WebSocket operation, built once.
    pub fn new(services: &Services, auth: AuthConfig) -> AppState {
        let http = natter::http::all_services(services)
            .into_iter()
            .map(|service| (service.route().function, service))
            .collect();
        let ws = natter::ws::all_services(services)
            .into_iter()
            .map(|service| (service.route().route_key, service))
            .collect();
        AppState {
            services: services.clone(),
            http: Arc::new(http),
            ws: Arc::new(ws),
            connections: services.build(),
            auth: Arc::new(auth),
            sockets: Arc::default(),
            ws_timeouts: WsTimeouts::default(),
            stats: Arc::default(),
            dev_tokens: false,
            authorizer_cache: Arc::default(),
            connections_latency: Duration::ZERO,
        }
    }

    /// Milliseconds since the epoch, from the services' clock: the one clock the whole gateway
    /// (its events, sockets and timestamps) and the domain read.
    pub fn now_ms(&self) -> i64 {
        self.services.clock().now_ms()
    }

    /// Seconds since the epoch, from the same clock.
    pub fn now_secs(&self) -> u64 {
        (self.now_ms() / 1000).max(0) as u64
    }

    /// The operation of a WebSocket route; every key of `WS_ROUTES` has one.
    pub fn ws_route(&self, route_key: &str) -> Option<&WsService> {
        self.ws.get(route_key)
    }
}
