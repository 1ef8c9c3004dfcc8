//! The local gateway: natter's APIs on localhost, driving the very handlers the Lambda functions
//! run with the events API Gateway would send them. `sam local` cannot run WebSocket APIs; this
//! can.

pub mod cli;
pub mod connections;
pub mod http_api;
pub mod server;
pub mod streams;
pub mod time;
pub mod ws;
