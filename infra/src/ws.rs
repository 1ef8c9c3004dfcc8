//! The WebSocket half of the gateway: `GET /ws?token=...` runs the `$connect` authorizer and the
//! `$connect` route before upgrading, then routes each text frame by its `action` to the same
//! handlers the Lambda functions run, fed the API Gateway WebSocket events they get on AWS. A
//! route's response body is sent back on the socket, as API Gateway's route responses do.
//!
//! A connection that ends with a close frame runs `$disconnect` at once. One whose peer simply
//! vanished (no close frame: a killed process, a dropped network) is, as on AWS, only noticed
//! later: posts to it answer 410 from then on, and `$disconnect` runs after
//! `NATTER_LOCAL_DEAD_PEER_SECS` (default 30 s). The open sockets are in the registry
//! (`sockets.rs`) that the `@connections` management API (`connections.rs`) also serves.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayProxyResponse,
    ApiGatewayWebsocketProxyRequest,
};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use crate::errors::error_response;
use crate::sockets::{Outgoing, Socket, MAX_MESSAGE_BYTES};
use crate::state::AppState;
use crate::time::now_ms;

/// API Gateway closes every connection after two hours.
const MAX_CONNECTION_LIFE: Duration = Duration::from_secs(2 * 3600);
/// The stage name the events carry.
pub const STAGE: &str = "local";

/// A new connection id shaped like API Gateway's (11 random bytes, base64).
fn new_connection_id() -> String {
    use std::sync::atomic::AtomicU32;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_i64(now_ms());
    hasher.write_u32(NEXT.fetch_add(1, Ordering::Relaxed));
    let random = hasher.finish().to_be_bytes();
    let count = NEXT.load(Ordering::Relaxed).to_be_bytes();
    let mut bytes = [0u8; 11];
    bytes[..8].copy_from_slice(&random);
    bytes[8..].copy_from_slice(&count[1..]);
    base64::engine::general_purpose::URL_SAFE.encode(bytes)
}

fn request_id() -> String {
    let id = new_connection_id();
    id.trim_end_matches('=').to_string()
}

/// `22/Nov/2026:04:36:00 +0000`, API Gateway's `requestTime`.
fn request_time(ms: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = crate::time::CivilTime::from_ms(ms);
    let name = MONTHS[((t.month - 1).clamp(0, 11)) as usize];
    format!(
        "{:02}/{name}/{}:{:02}:{:02}:{:02} +0000",
        t.day, t.year, t.hour, t.minute, t.second
    )
}

/// The `requestContext` of a WebSocket event.
fn request_context(
    host: &str,
    connection_id: &str,
    connected_at: i64,
    route_key: &str,
    event_type: &str,
    source_ip: &str,
    user_agent: &str,
) -> Value {
    let now = now_ms();
    json!({
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": request_id(),
        "requestTime": request_time(now),
        "messageDirection": "IN",
        "stage": STAGE,
        "connectedAt": connected_at,
        "requestTimeEpoch": now,
        "identity": {"sourceIp": source_ip, "userAgent": user_agent},
        "requestId": request_id(),
        "domainName": host,
        "connectionId": connection_id,
        "apiId": "local",
    })
}

/// Headers as API Gateway passes them: single values (comma-joined) and all values.
fn header_maps(headers: &HeaderMap) -> (Map<String, Value>, Map<String, Value>) {
    let mut single = Map::new();
    let mut multi = Map::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        let key = name.as_str().to_string();
        if let Some(Value::Array(values)) = multi.get_mut(&key) {
            values.push(Value::String(value.clone()));
        } else {
            multi.insert(key.clone(), json!([value.clone()]));
        }
        single.insert(key, Value::String(value));
    }
    (single, multi)
}

/// The decoded query parameters, single and multi-valued.
fn query_maps(uri: &Uri) -> (Map<String, Value>, Map<String, Value>) {
    let mut single = Map::new();
    let mut multi = Map::new();
    for pair in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        let (k, v) = (decode(k), decode(v));
        if let Some(Value::Array(values)) = multi.get_mut(&k) {
            values.push(Value::String(v.clone()));
        } else {
            multi.insert(k.clone(), json!([v.clone()]));
        }
        single.insert(k, Value::String(v));
    }
    (single, multi)
}

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
    let connection_id = new_connection_id();
    let connected_at = now_ms();
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    let user_agent = headers
        .get("user-agent")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let source_ip = "127.0.0.1".to_string();
    let (header_single, header_multi) = header_maps(&headers);
    let (query_single, query_multi) = query_maps(&uri);

    // The identity source is the token query parameter: without it API Gateway answers 401
    // without running the authorizer.
    if query_single
        .get("token")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the token query parameter is required: connect to /ws?token=<user token>",
        );
    }
    let context = request_context(
        &host,
        &connection_id,
        connected_at,
        "$connect",
        "CONNECT",
        &source_ip,
        &user_agent,
    );
    let auth_event = json!({
        "type": "REQUEST",
        "methodArn": format!("arn:aws:execute-api:local:000000000000:local/{STAGE}/$connect"),
        "headers": header_single,
        "multiValueHeaders": header_multi,
        "queryStringParameters": query_single,
        "multiValueQueryStringParameters": query_multi,
        "stageVariables": {},
        "requestContext": context,
    });
    let auth_event: ApiGatewayCustomAuthorizerRequestTypeRequest =
        match serde_json::from_value(auth_event) {
            Ok(event) => event,
            Err(e) => {
                return refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    &format!("could not build the authorizer event: {e}"),
                )
            }
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
    // What API Gateway passes on: the context's keys plus the principal id.
    let mut authorizer = match verdict.context {
        Value::Object(fields) => fields,
        _ => Map::new(),
    };
    if let Some(principal) = verdict.principal_id {
        authorizer.insert("principalId".into(), Value::String(principal));
    }
    authorizer.insert("integrationLatency".into(), json!(0));

    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };

    let mut connect_event = json!({
        "headers": header_single,
        "multiValueHeaders": header_multi,
        "queryStringParameters": query_single,
        "multiValueQueryStringParameters": query_multi,
        "requestContext": context,
        "isBase64Encoded": false,
    });
    connect_event["requestContext"]["authorizer"] = Value::Object(authorizer.clone());
    let response = match parse_event(connect_event) {
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
        .max_message_size(MAX_MESSAGE_BYTES)
        .on_failed_upgrade(move |e| {
            tracing::warn!(error = %e, "WebSocket upgrade failed");
            failed_socket.gone.store(true, Ordering::SeqCst);
            tokio::spawn(async move {
                disconnect(&failed_state, &failed_socket, 1006, "upgrade failed").await;
            });
        })
        .on_upgrade(move |ws| run(state, socket, ws, rx, host))
}

fn parse_event(event: Value) -> Result<ApiGatewayWebsocketProxyRequest, String> {
    serde_json::from_value(event).map_err(|e| format!("could not build the WebSocket event: {e}"))
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
    let lifetime = tokio::time::sleep(MAX_CONNECTION_LIFE);
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
                socket.last_active_at.store(now_ms(), Ordering::SeqCst);
                let reply = route_frame(&state, &socket, &host, text.as_str()).await;
                if let Some(reply) = reply {
                    let _ = socket.tx.send(Outgoing::Text(reply));
                }
            }
            Some(Ok(Message::Binary(bytes))) => {
                socket.last_active_at.store(now_ms(), Ordering::SeqCst);
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let reply = route_frame(&state, &socket, &host, &text).await;
                if let Some(reply) = reply {
                    let _ = socket.tx.send(Outgoing::Text(reply));
                }
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                socket.last_active_at.store(now_ms(), Ordering::SeqCst);
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
            if tokio::time::timeout(Duration::from_secs(1), writer)
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
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
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
        .unwrap_or(30);
    Duration::from_secs(secs.min(3600))
}

/// Runs `$disconnect` once and forgets the socket.
async fn disconnect(state: &AppState, socket: &Arc<Socket>, code: u16, reason: &str) {
    socket.gone.store(true, Ordering::SeqCst);
    if socket.disconnected.swap(true, Ordering::SeqCst) {
        return;
    }
    state.sockets.remove(&socket.connection_id);
    let mut context = request_context(
        "127.0.0.1",
        &socket.connection_id,
        socket.connected_at,
        "$disconnect",
        "DISCONNECT",
        &socket.source_ip,
        &socket.user_agent,
    );
    context["authorizer"] = Value::Object(socket.authorizer.clone());
    context["disconnectStatusCode"] = json!(code);
    context["disconnectReason"] = json!(reason);
    let event = json!({
        "headers": {"Host": "127.0.0.1", "x-api-key": "", "x-restapi": ""},
        "multiValueHeaders": {},
        "requestContext": context,
        "isBase64Encoded": false,
    });
    match parse_event(event) {
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
    let mut context = request_context(
        host,
        &socket.connection_id,
        socket.connected_at,
        route.route_key,
        "MESSAGE",
        &socket.source_ip,
        &socket.user_agent,
    );
    context["messageId"] = json!(request_id());
    context["authorizer"] = Value::Object(socket.authorizer.clone());
    let event = json!({
        "requestContext": context,
        "body": body,
        "isBase64Encoded": false,
    });
    let event = parse_event(event).ok()?;
    let response = run_route(state, route.route_key, event).await.ok()?;
    natter::ws::reply_body(&response)
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

    #[test]
    fn request_times_look_like_api_gateway_ones() {
        assert_eq!(request_time(0), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(
            request_time(1_795_754_160_000),
            "27/Nov/2026:04:36:00 +0000"
        );
        assert_eq!(request_time(951_782_400_000), "29/Feb/2000:00:00:00 +0000");
    }

    #[test]
    fn connection_ids_are_unique_and_url_safe() {
        let ids: std::collections::HashSet<String> =
            (0..1000).map(|_| new_connection_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids
            .iter()
            .all(|id| id.len() == 16 && !id.contains('/') && !id.contains('+')));
    }
}
