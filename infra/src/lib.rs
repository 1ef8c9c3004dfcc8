//! The local gateway: natter's APIs on localhost, driving the very handlers the Lambda functions
//! run with the events API Gateway would send them. `sam local` cannot run WebSocket APIs; this
//! can.
//!
//! The modules are layered: each imports only modules of the layers below it, so that the
//! module imports have no cycle (`tests/module_graph.rs` checks it).
//!
//! 1. Leaves, importing no other module of the crate: `cli` (the command line), `time` (UTC
//!    calendar fields), `errors` (the gateway's JSON error responses), `sockets` (the open
//!    WebSocket connections and their registry, each queue bounded by bytes), `streams` (the
//!    change feed and DynamoDB stream readers that drive the fan-out), `stats` (the counters of
//!    what the gateway refused or closed for breaking AWS's limits).
//! 2. `events`: the API Gateway events the handlers are fed, for both APIs, with the one header
//!    parser, query parser, request id and request time they share (over `time`); and `state`:
//!    `AppState`, what every handler shares (over `sockets` and `stats`).
//! 3. The handlers, none importing another: `http_api` (the HTTP API), `ws` (the WebSocket API)
//!    and `connections` (the `@connections` management API and the gateway's introspection), and
//!    `web` (the demo chat page at `/`, embedded, and its dev tokens).
//! 4. `server`: storage, secrets, the fan-out, the router over the handlers, and `run`.
//!
//! One clock drives the gateway: the handlers take the time for events, sockets and timestamps
//! from the services' clock (`AppState::now_ms`), the one the domain reads too.

pub mod cli;
pub mod connections;
pub mod errors;
pub mod events;
pub mod http_api;
pub mod lambda_runtime_api;
pub mod server;
pub mod sockets;
pub mod state;
pub mod stats;
pub mod streams;
pub mod time;
pub mod web;
pub mod ws;
