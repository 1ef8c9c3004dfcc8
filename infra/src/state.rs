//! What every handler of the gateway shares: the services, each operation built once from them,
//! the secrets, the open sockets, their timeouts, and the gateway's counters.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use natter::auth::AuthConfig;
use natter::http::HttpService;
use natter::ports::ConnectionReader;
use natter::services::Services;
use natter::ws::WsService;

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
