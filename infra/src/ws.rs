//! The WebSocket half of the gateway: `GET /ws?token=...` runs the `$connect` authorizer and the
//! `$connect` route before upgrading, then routes each text frame by its `action` to the same
//! handlers the Lambda functions run, fed the API Gateway WebSocket events they get on AWS (built
//! in `events.rs`). A route's response body is sent back on the socket, as API Gateway's route
//! responses do.
//!
//! A connection that ends with a close frame runs `$disconnect` at once. One whose peer simply
//! vanished (no close frame: a killed process, a dropped network) is, as on AWS, only noticed
//! later: posts to it answer 410 from then on, and `$disconnect` runs after
//! `NATTER_LOCAL_DEAD_PEER_SECS` (default 30 s). The open sockets are in the registry
//! (`sockets.rs`) that the `@connections` management API (`connections.rs`) also serves.
//!
//! API Gateway's limits hold here too, each close running `$disconnect` at once:
//! - a client message over 128 KiB closes the connection with 1009 (`Message too big`);
//! - a reply over 128 KiB is not sent, and is logged and counted as the bug it is;
//! - no client frame (of any kind) for `--ws-idle-timeout`, or `--ws-max-lifetime` since the
//!   connection was made, closes it with 1001 (`Going away`);
//! - a client whose frames queued and not yet written pass 1 MiB is closed with 1008 without
//!   waiting for it (the writer drops what is queued and gets a few seconds for the close
//!   frame).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use crate::errors::error_response;
use crate::events::{
    connection_id, header_str, parse_headers, parse_query, ws_authorizer_context,
    ws_authorizer_event, ws_connect_event, ws_disconnect_event, ws_message_event,
    ws_request_context, WsPeer,
};
use natter::config::aws::WS_MESSAGE_MAX_BYTES;
use natter::config::local::{
    CLOSE_WRITER_WAIT, DEAD_PEER_GRACE_MAX_SECS, DEAD_PEER_GRACE_SECS, PEER_CLOSE_WAIT,
    SLOW_READER_CLOSE_WAIT, WS_READ_MAX_BYTES,
};

use crate::sockets::{Outgoing, Queued, Socket};
use crate::state::AppState;
use crate::stats::bump;

fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    error_response(status, code, message)
}

/// `GET /ws`: authorize, run `$connect`, upgrade.
pub async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let now = state.now_ms();
    let connection_id = connection_id(now);
    let connected_at = now;
    let host = header_str(&headers, "host")
        .unwrap_or("127.0.0.1")
        .to_string();
    let user_agent = header_str(&headers, "user-agent").unwrap_or("").to_string();
    let source_ip = "127.0.0.1".to_string();
    let header_params = parse_headers(&headers);
    let query = parse_query(uri.query().unwrap_or(""));

    // The identity source is the token query parameter: without it API Gateway answers 401
    // without running the authorizer.
    if query.last("token").is_none_or(str::is_empty) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the token query parameter is required: connect to /ws?token=<user token>",
        );
    }
    let peer = WsPeer {
        host: &host,
        connection_id: &connection_id,
        connected_at,
        source_ip: &source_ip,
        user_agent: &user_agent,
    };
    let context = ws_request_context(&peer, "$connect", "CONNECT", state.now_ms());
    let auth_event = match ws_authorizer_event(&header_params, &query, &context) {
        Ok(event) => event,
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal", &e),
    };
    let verdict = match natter::ws::authorize(&state.auth, &auth_event, state.now_secs()) {
        Ok(verdict) => verdict,
        Err(e) => return refuse(StatusCode::UNAUTHORIZED, "unauthorized", &e.to_string()),
    };
    let allowed = verdict.policy_document.statement.iter().any(|s| {
        s.effect == aws_lambda_events::iam::IamPolicyEffect::Allow
            && s.action.iter().any(|a| a == "execute-api:Invoke")
    });
    if !allowed {
        return refuse(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the authorizer denied the connection",
        );
    }
    let authorizer = ws_authorizer_context(verdict.context, verdict.principal_id);

    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };

    let response = match ws_connect_event(&header_params, &query, context, &authorizer) {
        Ok(event) => match run_route(&state, "$connect", event).await {
            Ok(response) => response,
            Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal", &e),
        },
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal", &e),
    };
    if !(200..300).contains(&response.status_code) {
        let status = u16::try_from(response.status_code)
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = natter::ws::reply_body(&response).unwrap_or_default();
        return (status, body).into_response();
    }

    let (tx, rx) = mpsc::unbounded_channel();
    let socket = Arc::new(Socket::new(
        connection_id.clone(),
        tx,
        connected_at,
        source_ip,
        user_agent,
        authorizer,
    ));
    state.sockets.insert(socket.clone());
    let failed_state = state.clone();
    let failed_socket = socket.clone();
    upgrade
        // Messages over 128 KiB are refused in `run`, with a close handshake, up to this size;
        // larger ones make the stream fail as they are read (and are refused too).
        .max_message_size(WS_READ_MAX_BYTES)
        .on_failed_upgrade(move |e| {
            tracing::warn!(error = %e, "WebSocket upgrade failed");
            failed_socket.gone.store(true, Ordering::SeqCst);
            tokio::spawn(async move {
                disconnect(&failed_state, &failed_socket, 1006, "upgrade failed").await;
            });
        })
        .on_upgrade(move |ws| run(state, socket, ws, rx, host))
}

/// The close API Gateway sends at the idle timeout and at the end of a connection's lifetime.
const GOING_AWAY: (u16, &str) = (1001, "Going away");
/// The close for a client message over 128 KiB.
const TOO_BIG: (u16, &str) = (1009, "Message too big");

/// How a connection ended.
enum Ending {
    /// A close frame (from the peer, or ours answered or timed out): `$disconnect` now.
    Closed(u16, String),
    /// Closed by us without waiting for the peer, which reads too slowly (or, for a message
    /// over `WS_READ_MAX_BYTES`, whose stream failed): `$disconnect` now, and the writer gets a
    /// while longer to deliver the close frame.
    Abandoned(u16, String),
    /// The peer vanished without a close frame.
    Vanished,
}

/// The writer: replies and pushes, in the order they were queued, until a close frame. Once a
/// slow reader's close is pending, the frames still queued are dropped.
async fn write(
    mut sink: futures::stream::SplitSink<WebSocket, Message>,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    socket: Arc<Socket>,
) {
    while let Some(out) = rx.recv().await {
        match out {
            Outgoing::Text(text) => {
                let len = text.len();
                if socket.drop_queued.load(Ordering::SeqCst) {
                    socket.dequeued(len);
                    continue;
                }
                let result = sink.send(Message::Text(text.into())).await;
                socket.dequeued(len);
                if result.is_err() {
                    break;
                }
            }
            Outgoing::Close(code, reason) => {
                let _ = sink
                    .send(Message::Close(Some(CloseFrame {
                        code,
                        reason: reason.into(),
                    })))
                    .await;
                break;
            }
        }
    }
}

async fn run(
    state: AppState,
    socket: Arc<Socket>,
    ws: WebSocket,
    rx: mpsc::UnboundedReceiver<Outgoing>,
    host: String,
) {
    let (sink, mut stream) = ws.split();
    let writer = tokio::spawn(write(sink, rx, socket.clone()));
    let timeouts = state.ws_timeouts;
    let lifetime = tokio::time::sleep(timeouts.max_lifetime);
    tokio::pin!(lifetime);
    let idle = tokio::time::sleep(timeouts.idle);
    tokio::pin!(idle);
    let ending = loop {
        let next = tokio::select! {
            next = stream.next() => next,
            _ = &mut lifetime => {
                bump(&state.stats.lifetime_closes);
                break close_and_wait(&socket, &mut stream, GOING_AWAY).await;
            }
            _ = &mut idle => {
                bump(&state.stats.idle_closes);
                break close_and_wait(&socket, &mut stream, GOING_AWAY).await;
            }
            // Closed from our side (`DELETE @connections/{id}`, a slow reader).
            _ = socket.closing.notified() => {
                let (code, reason) = socket.close_frame();
                if socket.drop_queued.load(Ordering::SeqCst) {
                    break Ending::Abandoned(code, reason.to_string());
                }
                await_peer_close(&mut stream).await;
                break Ending::Closed(code, reason.to_string());
            }
        };
        // Any frame from the client is activity (API Gateway's idle timer counts client frames).
        if let Some(Ok(_)) = &next {
            idle.as_mut()
                .reset(tokio::time::Instant::now() + timeouts.idle);
        }
        match next {
            Some(Ok(Message::Text(text))) => {
                if text.len() > WS_MESSAGE_MAX_BYTES {
                    bump(&state.stats.too_big_closes);
                    break close_and_wait(&socket, &mut stream, TOO_BIG).await;
                }
                socket
                    .last_active_at
                    .store(state.now_ms(), Ordering::SeqCst);
                let reply = route_frame(&state, &socket, &host, text.as_str()).await;
                send_reply(&state, &socket, reply);
            }
            Some(Ok(Message::Binary(bytes))) => {
                if bytes.len() > WS_MESSAGE_MAX_BYTES {
                    bump(&state.stats.too_big_closes);
                    break close_and_wait(&socket, &mut stream, TOO_BIG).await;
                }
                socket
                    .last_active_at
                    .store(state.now_ms(), Ordering::SeqCst);
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let reply = route_frame(&state, &socket, &host, &text).await;
                send_reply(&state, &socket, reply);
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                socket
                    .last_active_at
                    .store(state.now_ms(), Ordering::SeqCst);
            }
            Some(Ok(Message::Close(frame))) => {
                let (code, reason) = frame
                    .map(|f| (f.code, f.reason.as_str().to_string()))
                    .unwrap_or((1005, String::new()));
                break Ending::Closed(code, reason);
            }
            // A message over `WS_READ_MAX_BYTES`: the stream has failed (it reads no more), so
            // the close frame goes out without waiting for the peer's.
            Some(Err(e)) if is_too_big(&e) => {
                bump(&state.stats.too_big_closes);
                let (code, reason) = TOO_BIG;
                socket.close(code, reason);
                break Ending::Abandoned(code, reason.to_string());
            }
            // A reset connection or the end of the stream without a close frame.
            Some(Err(_)) | None => {
                if socket.is_gone() {
                    // We closed it (DELETE @connections): that is a clean close.
                    let (code, reason) = socket.close_frame();
                    break Ending::Closed(code, reason.to_string());
                }
                break Ending::Vanished;
            }
        }
    };
    socket.gone.store(true, Ordering::SeqCst);
    match ending {
        Ending::Closed(code, reason) => {
            // Let the writer finish the close handshake (briefly), then stop it.
            let _ = socket.tx.send(Outgoing::Close(code, ""));
            let abort = writer.abort_handle();
            if tokio::time::timeout(CLOSE_WRITER_WAIT, writer)
                .await
                .is_err()
            {
                abort.abort();
            }
            disconnect(&state, &socket, code, &reason).await;
        }
        Ending::Abandoned(code, reason) => {
            disconnect(&state, &socket, code, &reason).await;
            let abort = writer.abort_handle();
            if tokio::time::timeout(SLOW_READER_CLOSE_WAIT, writer)
                .await
                .is_err()
            {
                abort.abort();
            }
            drop(stream);
        }
        Ending::Vanished => {
            writer.abort();
            let grace = dead_peer_grace();
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                disconnect(&state, &socket, 1006, "Going away").await;
            });
        }
    }
}

/// Starts closing with `close` and waits (briefly) for the peer's close frame.
async fn close_and_wait(
    socket: &Socket,
    stream: &mut futures::stream::SplitStream<WebSocket>,
    (code, reason): (u16, &'static str),
) -> Ending {
    socket.close(code, reason);
    await_peer_close(stream).await;
    Ending::Closed(code, reason.to_string())
}

/// Whether the stream failed on a message over `WS_READ_MAX_BYTES`. axum wraps the error of
/// its own tungstenite version, so it is recognised by its text (`Space limit exceeded:
/// Message too long: N > M`); `tests/websocket.rs` checks that it still is.
fn is_too_big(error: &axum::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = source {
        let text = e.to_string();
        if text.contains("Space limit exceeded") || text.contains("Message too long") {
            return true;
        }
        source = e.source();
    }
    false
}

/// Queues a route's reply. A reply over 128 KiB is not sent: API Gateway would refuse it, so it
/// is a bug in natter, logged and counted (`GET /@local/stats`).
fn send_reply(state: &AppState, socket: &Socket, reply: Option<(&'static str, String)>) {
    let Some((route_key, reply)) = reply else {
        return;
    };
    if reply.len() > WS_MESSAGE_MAX_BYTES {
        bump(&state.stats.oversized_replies);
        tracing::error!(
            connection_id = socket.connection_id,
            route_key,
            bytes = reply.len(),
            limit = WS_MESSAGE_MAX_BYTES,
            "bug: a reply frame is over API Gateway's WebSocket message limit; not sent"
        );
        return;
    }
    if socket.send_text(reply) == Queued::TooSlow {
        state.stats.slow_reader_closed(&socket.connection_id);
    }
}

/// After our close frame: reads (and drops) what the peer still sends until its close frame,
/// for at most two seconds.
async fn await_peer_close(stream: &mut futures::stream::SplitStream<WebSocket>) {
    let _ = tokio::time::timeout(PEER_CLOSE_WAIT, async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// How long a vanished peer stays listed (posts answering 410) before `$disconnect` runs.
fn dead_peer_grace() -> Duration {
    let secs = std::env::var("NATTER_LOCAL_DEAD_PEER_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(DEAD_PEER_GRACE_SECS);
    Duration::from_secs(secs.min(DEAD_PEER_GRACE_MAX_SECS))
}

/// Runs `$disconnect` once and forgets the socket.
async fn disconnect(state: &AppState, socket: &Arc<Socket>, code: u16, reason: &str) {
    socket.gone.store(true, Ordering::SeqCst);
    if socket.disconnected.swap(true, Ordering::SeqCst) {
        return;
    }
    state.sockets.remove(&socket.connection_id);
    let peer = peer(socket, "127.0.0.1");
    match ws_disconnect_event(&peer, &socket.authorizer, code, reason, state.now_ms()) {
        Ok(event) => match run_route(state, "$disconnect", event).await {
            Ok(response) if (200..300).contains(&response.status_code) => {}
            Ok(response) => tracing::warn!(
                connection_id = socket.connection_id,
                status = response.status_code,
                "$disconnect failed"
            ),
            Err(e) => tracing::error!(error = e, "could not run $disconnect"),
        },
        Err(e) => tracing::error!(error = e, "could not run $disconnect"),
    }
}

/// Runs one client frame through its route; returns the route and its reply frame, if any.
async fn route_frame(
    state: &AppState,
    socket: &Socket,
    host: &str,
    body: &str,
) -> Option<(&'static str, String)> {
    let action = natter::ws::frame_action(body);
    let route = natter::routes::ws_route_for_action(action.as_deref());
    let event = ws_message_event(
        &peer(socket, host),
        route.route_key,
        &socket.authorizer,
        body,
        state.now_ms(),
    )
    .ok()?;
    let response = run_route(state, route.route_key, event).await.ok()?;
    natter::ws::reply_body(&response).map(|reply| (route.route_key, reply))
}

/// The connection and peer of a socket, as its events name them.
fn peer<'a>(socket: &'a Socket, host: &'a str) -> WsPeer<'a> {
    WsPeer {
        host,
        connection_id: &socket.connection_id,
        connected_at: socket.connected_at,
        source_ip: &socket.source_ip,
        user_agent: &socket.user_agent,
    }
}

/// Runs the operation of a WebSocket route on one event.
async fn run_route(
    state: &AppState,
    route_key: &str,
    event: ApiGatewayWebsocketProxyRequest,
) -> Result<ApiGatewayProxyResponse, String> {
    let service = state
        .ws_route(route_key)
        .ok_or_else(|| format!("no operation serves the {route_key} route"))?;
    Ok(service.handle(event).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use natter::auth::{AuthConfig, SigningKey};
    use natter::clock::SystemClock;
    use natter::config::Config;
    use natter::services::Services;

    fn state() -> AppState {
        let (services, _changes) = Services::memory(Arc::new(SystemClock), Config::default());
        AppState::new(
            &services,
            AuthConfig::new(
                "test-secret-key-0123456789abcdef".into(),
                vec![SigningKey::new(
                    "k1",
                    "test-signing-secret-0123456789abcdef",
                )],
            )
            .unwrap(),
        )
    }

    #[tokio::test]
    async fn a_reply_over_128_kib_is_not_sent_and_is_counted() {
        let state = state();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let socket = Socket::new(
            "c1".into(),
            tx,
            0,
            "127.0.0.1".into(),
            String::new(),
            Default::default(),
        );
        send_reply(
            &state,
            &socket,
            Some(("subscribe", "x".repeat(WS_MESSAGE_MAX_BYTES + 1))),
        );
        assert!(rx.try_recv().is_err(), "an oversized reply was queued");
        assert_eq!(state.stats.oversized_replies.load(Ordering::Relaxed), 1);
        assert_eq!(state.stats.oversized_frames(), 1);

        send_reply(
            &state,
            &socket,
            Some(("subscribe", "x".repeat(WS_MESSAGE_MAX_BYTES))),
        );
        assert!(matches!(rx.try_recv(), Ok(Outgoing::Text(t)) if t.len() == WS_MESSAGE_MAX_BYTES));
        assert_eq!(state.stats.oversized_frames(), 1);
        assert!(!socket.is_gone());
    }

    #[test]
    fn other_stream_errors_are_not_taken_for_too_big_messages() {
        let reset = axum::Error::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "Connection reset without closing handshake",
        ));
        assert!(!is_too_big(&reset));
        let too_long = axum::Error::new(std::io::Error::other(
            "Space limit exceeded: Message too long: 2097152 > 1048576",
        ));
        assert!(is_too_big(&too_long));
    }
}
