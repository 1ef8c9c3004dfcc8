//! The management API, `/@connections/{connectionId}`, as API Gateway serves it and as the
//! fan-out's pusher and `aws-sdk-apigatewaymanagement` call it: `POST` sends the body to the
//! connection as one frame, `GET` describes it, `DELETE` closes it. A closed or unknown
//! connection answers 410 with the error type `GoneException`, which the pusher reads as a gone
//! connection. On loopback no request signature is checked.
//!
//! `GET /@local/connections/{connectionId}` is the gateway's own introspection (not an AWS API):
//! the realtime store's record of the connection and the socket's counters, for tests and
//! debugging.

use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use natter::config::aws::WS_MESSAGE_MAX_BYTES;

use crate::errors::error_response;
use crate::sockets::Queued;
use crate::state::AppState;
use crate::stats::bump;

fn aws_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (
                header::HeaderName::from_static("x-amzn-errortype"),
                error_type,
            ),
        ],
        json!({ "message": message }).to_string(),
    )
        .into_response()
}

fn gone() -> Response {
    aws_error(StatusCode::GONE, "GoneException", "Gone")
}

/// API Gateway's refusal of a post over its WebSocket message limit (`WS_MESSAGE_MAX_BYTES`).
pub(crate) fn payload_too_large() -> Response {
    aws_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PayloadTooLargeException",
        &format!("the payload is larger than {WS_MESSAGE_MAX_BYTES} bytes"),
    )
}

/// ISO 8601 with milliseconds, as the API's timestamps are.
fn iso8601(ms: i64) -> String {
    let t = crate::time::CivilTime::from_ms(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.millis
    )
}

/// `POST /@connections/{id}`: one frame to the connection.
pub async fn post(
    State(state): State<AppState>,
    Path(connection_id): Path<String>,
    body: Bytes,
) -> Response {
    // AWS's network round trip (`--connections-latency-ms`): the post is served after it.
    if !state.connections_latency.is_zero() {
        tokio::time::sleep(state.connections_latency).await;
    }
    let Some(socket) = state.sockets.get(&connection_id) else {
        return gone();
    };
    if body.len() > WS_MESSAGE_MAX_BYTES {
        // API Gateway refuses it too: whatever posted it has a bug.
        bump(&state.stats.oversized_posts);
        tracing::error!(
            connection_id,
            bytes = body.len(),
            limit = WS_MESSAGE_MAX_BYTES,
            "bug: a post to @connections is over API Gateway's WebSocket message limit; \
             answered 413"
        );
        return payload_too_large();
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    match socket.send_text(text) {
        Queued::Yes => {
            socket.posts_delivered.fetch_add(1, Ordering::Relaxed);
            StatusCode::OK.into_response()
        }
        // The post that finds the reader too slow closes it, and is not delivered.
        Queued::TooSlow => {
            state.stats.slow_reader_closed(&socket.connection_id);
            socket.posts_gone.fetch_add(1, Ordering::Relaxed);
            gone()
        }
        Queued::Gone => {
            socket.posts_gone.fetch_add(1, Ordering::Relaxed);
            gone()
        }
    }
}

/// `GET /@connections/{id}`: when it connected, from where, and when it was last active.
pub async fn describe(
    State(state): State<AppState>,
    Path(connection_id): Path<String>,
) -> Response {
    match state.sockets.get(&connection_id) {
        Some(socket) if !socket.is_gone() => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            json!({
                "ConnectedAt": iso8601(socket.connected_at),
                "Identity": {
                    "SourceIp": socket.source_ip,
                    "UserAgent": socket.user_agent,
                },
                "LastActiveAt": iso8601(socket.last_active_at.load(Ordering::SeqCst)),
            })
            .to_string(),
        )
            .into_response(),
        _ => gone(),
    }
}

/// `DELETE /@connections/{id}`: closes the connection (its `$disconnect` runs).
pub async fn delete(State(state): State<AppState>, Path(connection_id): Path<String>) -> Response {
    match state.sockets.get(&connection_id) {
        Some(socket) if socket.close(1000, "") => StatusCode::NO_CONTENT.into_response(),
        _ => gone(),
    }
}

/// `GET /@local/connections/{id}`: the gateway's view of a connection, for tests and debugging.
pub async fn introspect(
    State(state): State<AppState>,
    Path(connection_id): Path<String>,
) -> Response {
    let record = match state
        .connections
        .get_connection(&connection_id, state.now_ms())
        .await
    {
        Ok(record) => record,
        Err(e) => {
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                &e.to_string(),
            )
        }
    };
    let socket = state.sockets.get(&connection_id);
    let body = json!({
        "connectionId": connection_id,
        "record": record.map(|r| json!({
            "userId": r.user_id,
            "connected": r.connected,
            "connectedAt": r.connected_at,
            "subscriptions": r.subscriptions,
            "expiresAt": r.expires_at,
        })),
        "socket": socket.map(|s| json!({
            "open": !s.is_gone(),
            "postsDelivered": s.posts_delivered.load(Ordering::Relaxed),
            "postsGone": s.posts_gone.load(Ordering::Relaxed),
            "queuedBytes": s.queued_bytes(),
        })),
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `GET /@local/stats`: the gateway's counters (`stats.rs`): frames and responses refused for
/// their size, connections closed for breaking a limit, and the open connections.
pub async fn stats(State(state): State<AppState>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        state.stats.to_json(state.sockets.open_count()).to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_iso8601() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_795_754_160_123), "2026-11-27T04:36:00.123Z");
    }
}
