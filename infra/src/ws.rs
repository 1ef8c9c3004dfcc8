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

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
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
use natter::config::aws::{WS_CONNECTION_MAX_SECS, WS_MESSAGE_MAX_BYTES};
use natter::config::local::{
    CLOSE_WRITER_WAIT, DEAD_PEER_GRACE_MAX_SECS, DEAD_PEER_GRACE_SECS, PEER_CLOSE_WAIT,
};

use crate::sockets::{Outgoing, Socket};
use crate::state::AppState;

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
    let socket = Arc::new(Socket {
        connection_id: connection_id.clone(),
        tx,
        connected_at,
        last_active_at: AtomicI64::new(connected_at),
        source_ip,
        user_agent,
        authorizer,
        gone: AtomicBool::new(false),
        disconnected: AtomicBool::new(false),
        closing: tokio::sync::Notify::new(),
        posts_delivered: AtomicU64::new(0),
        posts_gone: AtomicU64::new(0),
    });
    state.sockets.insert(socket.clone());
    let failed_state = state.clone();
    let failed_socket = socket.clone();
    upgrade
        .max_message_size(WS_MESSAGE_MAX_BYTES)
        .on_failed_upgrade(move |e| {
            tracing::warn!(error = %e, "WebSocket upgrade failed");
            failed_socket.gone.store(true, Ordering::SeqCst);
            tokio::spawn(async move {
                disconnect(&failed_state, &failed_socket, 1006, "upgrade failed").await;
            });
        })
        .on_upgrade(move |ws| run(state, socket, ws, rx, host))
}

/// How a connection ended.
enum Ending {
    /// A close frame (from the peer, or ours answered): `$disconnect` now.
    Closed(u16, String),
    /// The peer vanished without a close frame.
    Vanished,
}

async fn run(
    state: AppState,
    socket: Arc<Socket>,
    ws: WebSocket,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    host: String,
) {
    let (mut sink, mut stream) = ws.split();
    // The writer: replies and pushes, in the order they were queued.
    let writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            let result = match out {
                Outgoing::Text(text) => sink.send(Message::Text(text.into())).await,
                Outgoing::Close(code, reason) => {
                    let _ = sink
                        .send(Message::Close(Some(CloseFrame {
                            code,
                            reason: reason.into(),
                        })))
                        .await;
                    break;
                }
            };
            if result.is_err() {
                break;
            }
        }
    });
    let lifetime = tokio::time::sleep(Duration::from_secs(WS_CONNECTION_MAX_SECS as u64));
    tokio::pin!(lifetime);
    let ending = loop {
        let next = tokio::select! {
            next = stream.next() => next,
            _ = &mut lifetime => {
                socket.close(1001, "Going away");
                await_peer_close(&mut stream).await;
                break Ending::Closed(1001, "Going away".into());
            }
            // Closed from our side (`DELETE @connections/{id}`).
            _ = socket.closing.notified() => {
                await_peer_close(&mut stream).await;
                break Ending::Closed(1000, String::new());
            }
        };
        match next {
            Some(Ok(Message::Text(text))) => {
                socket
                    .last_active_at
                    .store(state.now_ms(), Ordering::SeqCst);
                let reply = route_frame(&state, &socket, &host, text.as_str()).await;
                if let Some(reply) = reply {
                    let _ = socket.tx.send(Outgoing::Text(reply));
                }
            }
            Some(Ok(Message::Binary(bytes))) => {
                socket
                    .last_active_at
                    .store(state.now_ms(), Ordering::SeqCst);
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let reply = route_frame(&state, &socket, &host, &text).await;
                if let Some(reply) = reply {
                    let _ = socket.tx.send(Outgoing::Text(reply));
                }
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
            // A reset connection or the end of the stream without a close frame.
            Some(Err(_)) | None => {
                if socket.is_gone() {
                    // We closed it (DELETE @connections): that is a clean close.
                    break Ending::Closed(1000, String::new());
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

/// Runs one client frame through its route; returns the reply frame, if any.
async fn route_frame(state: &AppState, socket: &Socket, host: &str, body: &str) -> Option<String> {
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
    natter::ws::reply_body(&response)
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
