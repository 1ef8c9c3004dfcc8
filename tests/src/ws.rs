//! A WebSocket client for the end-to-end tests: a real connection to a gateway's `/ws`, with
//! request/reply matching by `requestId` and a queue of the pushes that arrive meanwhile.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use crate::{enc, Gateway};

/// How long a reply or an expected push may take (the DynamoDB variant reads the table's stream
/// every 100 ms).
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a connection was refused: the HTTP status and the body as JSON (or a JSON string).
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub body: Value,
}

pub struct WsClient {
    stream: WebSocketStream<TcpStream>,
    /// Frames that arrived while waiting for something else, oldest first.
    queued: VecDeque<Value>,
    /// The connection id (`clientId` of `hello`), once asked.
    pub client_id: Option<String>,
    /// The closing frame's code, once the server closed.
    pub closed: Option<u16>,
    /// (subscription id, message id) of every message a subscription reply delivered.
    known: HashSet<(String, String)>,
    /// When set, the exact text of every frame read from now on is kept in `raw` (for checks
    /// that JSON parsing would blur, like big numbers).
    pub record_raw: bool,
    pub raw: Vec<String>,
}

fn next_request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("req-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// `ws://127.0.0.1:PORT/ws` for a gateway.
pub fn ws_url(gateway: &Gateway) -> String {
    format!("{}/ws", gateway.base_url.replacen("http://", "ws://", 1))
}

impl WsClient {
    /// Connects with `token` (none: no query parameter), or says why the gateway refused.
    pub async fn try_connect(gateway: &Gateway, token: Option<&str>) -> Result<WsClient, Refused> {
        let url = match token {
            Some(token) => format!("{}?token={}", ws_url(gateway), enc(token)),
            None => ws_url(gateway),
        };
        let addr = gateway.base_url.trim_start_matches("http://").to_string();
        let tcp = TcpStream::connect(&addr)
            .await
            .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
        tcp.set_nodelay(true).ok();
        match tokio_tungstenite::client_async(url.as_str(), tcp).await {
            Ok((stream, _)) => Ok(WsClient {
                stream,
                queued: VecDeque::new(),
                client_id: None,
                closed: None,
                known: HashSet::new(),
                record_raw: false,
                raw: Vec::new(),
            }),
            Err(tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                let body = response
                    .body()
                    .as_deref()
                    .map(|b| {
                        serde_json::from_slice(b).unwrap_or_else(|_| {
                            Value::String(String::from_utf8_lossy(b).into_owned())
                        })
                    })
                    .unwrap_or(Value::Null);
                Err(Refused { status, body })
            }
            Err(e) => panic!("WebSocket handshake with {url} failed: {e}"),
        }
    }

    /// Connects with a user token; panics when refused.
    pub async fn connect(gateway: &Gateway, token: &str) -> WsClient {
        match Self::try_connect(gateway, Some(token)).await {
            Ok(client) => client,
            Err(refused) => panic!("connection refused: {refused:?}\n{}", gateway.output()),
        }
    }

    /// Connects and says hello, so that `client_id` is known.
    pub async fn connect_hello(gateway: &Gateway, token: &str) -> WsClient {
        let mut client = Self::connect(gateway, token).await;
        client.hello().await;
        client
    }

    /// Sends a raw text frame.
    pub async fn send_text(&mut self, text: &str) {
        self.stream
            .send(Message::Text(text.to_string().into()))
            .await
            .unwrap_or_else(|e| panic!("sending a frame: {e}"));
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.stream
            .send(Message::Binary(bytes.into()))
            .await
            .unwrap_or_else(|e| panic!("sending a frame: {e}"));
    }

    /// How many frames arrived that no request or push has taken yet.
    pub fn queued_count(&self) -> usize {
        self.queued.len()
    }

    /// Sends a raw text frame; `false` when the connection is no longer writable (the server
    /// closed it), instead of panicking.
    pub async fn try_send_text(&mut self, text: &str) -> bool {
        self.stream
            .send(Message::Text(text.to_string().into()))
            .await
            .is_ok()
    }

    /// Reads the next JSON frame from the socket, up to `timeout`; `None` on timeout or close.
    async fn read_frame(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()?;
            match next {
                Some(Ok(Message::Text(text))) => {
                    if self.record_raw {
                        self.raw.push(text.as_str().to_string());
                    }
                    return Some(serde_json::from_str(text.as_str()).unwrap_or_else(|e| {
                        panic!("the server sent a frame that is not JSON ({e}): {text}")
                    }));
                }
                Some(Ok(Message::Close(frame))) => {
                    self.closed = Some(frame.map(|f| u16::from(f.code)).unwrap_or(1005));
                    return None;
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => {
                    self.closed.get_or_insert(1006);
                    return None;
                }
            }
        }
    }

    /// Sends `frame` with a fresh `requestId` and returns the reply that echoes it; frames that
    /// arrive before it are queued as pushes.
    pub async fn request(&mut self, mut frame: Value) -> Value {
        let id = next_request_id();
        frame["requestId"] = json!(id);
        self.send_text(&frame.to_string()).await;
        let deadline = Instant::now() + PUSH_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(reply) = self.read_frame(left).await else {
                panic!(
                    "no reply to {frame} within {PUSH_TIMEOUT:?} (closed: {:?})",
                    self.closed
                );
            };
            if reply["requestId"] == json!(id) {
                if reply["type"] == "subscription" && reply["state"] == "active" {
                    let sub = reply["subscriptionId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    for message in reply["messages"].as_array().into_iter().flatten() {
                        if let Some(mid) = message["id"].as_str() {
                            self.known.insert((sub.clone(), mid.to_string()));
                        }
                    }
                }
                return reply;
            }
            self.queued.push_back(reply);
        }
    }

    pub async fn hello(&mut self) -> Value {
        let reply = self.request(json!({"action": "hello"})).await;
        assert_eq!(reply["type"], "hello", "hello reply: {reply}");
        self.client_id = reply["clientId"].as_str().map(str::to_string);
        reply
    }

    pub async fn subscribe(
        &mut self,
        subscription_id: &str,
        cid: &str,
        limit: Option<Value>,
    ) -> Value {
        let mut frame = json!({
            "action": "subscribe",
            "subscriptionId": subscription_id,
            "conversationId": cid,
        });
        if let Some(limit) = limit {
            frame["limit"] = limit;
        }
        self.request(frame).await
    }

    /// Subscribes and asserts the subscription is active; returns the reply.
    pub async fn subscribe_ok(
        &mut self,
        subscription_id: &str,
        cid: &str,
        limit: Option<u64>,
    ) -> Value {
        let reply = self
            .subscribe(subscription_id, cid, limit.map(|l| json!(l)))
            .await;
        assert_eq!(
            (reply["type"].as_str(), reply["state"].as_str()),
            (Some("subscription"), Some("active")),
            "subscribing {subscription_id} to {cid}: {reply}"
        );
        reply
    }

    pub async fn load_more(&mut self, subscription_id: &str, count: Option<Value>) -> Value {
        let mut frame = json!({"action": "loadMore", "subscriptionId": subscription_id});
        if let Some(count) = count {
            frame["count"] = count;
        }
        self.request(frame).await
    }

    pub async fn unsubscribe(&mut self, subscription_id: &str) -> Value {
        self.request(json!({"action": "unsubscribe", "subscriptionId": subscription_id}))
            .await
    }

    /// The next push (queued first), waiting up to `timeout`.
    ///
    /// Like a real client, it drops a `message.created` for a message its subscription already
    /// holds: a message written just before subscribing is in the first window and may still
    /// be on its way through the stream (DynamoDB's stream lags its writes).
    pub async fn next_push(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let frame = match self.queued.pop_front() {
                Some(frame) => frame,
                None => {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    self.read_frame(left).await?
                }
            };
            let duplicate = frame["type"] == "message.created"
                && match (
                    frame["subscriptionId"].as_str(),
                    frame["message"]["id"].as_str(),
                ) {
                    (Some(sub), Some(mid)) => {
                        self.known.contains(&(sub.to_string(), mid.to_string()))
                    }
                    _ => false,
                };
            if !duplicate {
                return Some(frame);
            }
        }
    }

    /// Waits for the next push and asserts its `type` and `subscriptionId`.
    pub async fn expect_push(&mut self, kind: &str, subscription_id: &str) -> Value {
        let Some(push) = self.next_push(PUSH_TIMEOUT).await else {
            panic!(
                "expected a {kind} push for {subscription_id}, got nothing within \
                 {PUSH_TIMEOUT:?} (closed: {:?})",
                self.closed
            );
        };
        assert_eq!(
            (push["type"].as_str(), push["subscriptionId"].as_str()),
            (Some(kind), Some(subscription_id)),
            "unexpected push: {push}"
        );
        push
    }

    /// Asserts that nothing arrives for `wait` (use `expect_push` on a later change as the
    /// sharper check where the order of changes allows it).
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Some(frame) = self.next_push(wait).await {
            panic!("expected no frame, got {frame}");
        }
    }

    /// Closes cleanly (a close frame, then waits for the server's).
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while let Ok(Some(Ok(_))) = tokio::time::timeout_at(deadline, self.stream.next()).await {}
    }

    /// Drops the TCP connection at once with a reset and no close frame, like a killed process
    /// or a lost network: the gateway only learns of it when it next writes to it.
    pub fn kill(self) {
        let _ = self.stream.get_ref().set_zero_linger();
        drop(self.stream);
    }

    /// Waits until the server closes the connection; returns the close code.
    pub async fn expect_closed(&mut self) -> u16 {
        let deadline = Instant::now() + PUSH_TIMEOUT;
        while self.closed.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "the server did not close the connection");
            if let Some(frame) = self.read_frame(left).await {
                self.queued.push_back(frame);
            }
        }
        // Keep reading until the stream ends, so that our answering close frame goes out.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while let Ok(Some(Ok(_))) = tokio::time::timeout_at(deadline, self.stream.next()).await {}
        self.closed.unwrap_or(1006)
    }
}

/// `GET /@local/connections/{id}`: the gateway's view of a connection (its record in the
/// realtime store and the socket's post counters).
pub async fn introspect(gateway: &Gateway, connection_id: &str) -> Value {
    let url = format!(
        "{}/@local/connections/{}",
        gateway.base_url,
        enc(connection_id)
    );
    let response = reqwest::get(&url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(response.status().as_u16(), 200, "GET {url}");
    response.json().await.expect("introspection JSON")
}

/// Calls the management API: `method` on `/@connections/{id}`; returns the status and body.
pub async fn management(
    gateway: &Gateway,
    method: &str,
    connection_id: &str,
    body: Option<&str>,
) -> (u16, String) {
    let url = format!("{}/@connections/{}", gateway.base_url, enc(connection_id));
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = reqwest::Client::new().request(method, &url);
    if let Some(body) = body {
        request = request.body(body.to_string());
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// Polls `check` on the connection's introspection until it holds, at most `PUSH_TIMEOUT`.
pub async fn wait_for_connection(
    gateway: &Gateway,
    connection_id: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + PUSH_TIMEOUT;
    loop {
        let view = introspect(gateway, connection_id).await;
        if check(&view) {
            return view;
        }
        assert!(
            Instant::now() < deadline,
            "connection {connection_id}: {what} did not happen; last view {view}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The ids of a reply's `messages`, in order.
pub fn ids(reply: &Value) -> Vec<String> {
    reply["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no messages in {reply}"))
        .iter()
        .map(|m| m["id"].as_str().expect("message id").to_string())
        .collect()
}
