//! natter's library: everything the Lambda functions and the local gateway share.
//!
//! Layers, top-down: `http` and `authorizer` translate API Gateway events into calls of `domain`,
//! which applies the product's rules and talks to storage only through the `store::Store` trait.

pub mod auth;
pub mod authorizer;
pub mod changes;
pub mod clock;
pub mod config;
pub mod content;
pub mod domain;
pub mod emoji;
pub mod error;
pub mod fanout;
pub mod format;
pub mod http;
pub mod ids;
pub mod json;
pub mod model;
pub mod ports;
pub mod protocol;
pub mod realtime;
pub mod retry;
pub mod routes;
#[cfg(test)]
mod scripted_http;
pub mod secrets;
pub mod services;
pub mod sizes;
pub mod store;
pub mod typing;
pub mod ws;
