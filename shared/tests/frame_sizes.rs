//! The worst case the limits allow, measured: every reply frame stays within API Gateway's
//! 128 KiB and every page response within Lambda's 6 MB, on the embedded stores, through the
//! routes' own handlers (`WsService`, `HttpService`), measured as sent.
//!
//! The worst message: content of 64 KiB serialized, `custom` of 50 keys of 64 characters with
//! 4 KiB values, a sender whose profile `custom` is as large, replying to a message just as big
//! from another such sender, with 50 distinct reactions. Every string is made of U+0001, which
//! JSON writes as six bytes (`\u0001`) and an HTTP body, escaped once more, as seven.

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use natter::auth::Identity;
use natter::clock::{Clock, ManualClock};
use natter::config::aws::{LAMBDA_PAYLOAD_MAX_BYTES, WS_MESSAGE_MAX_BYTES};
use natter::config::sizes::{
    FRAME_MESSAGE_MAX_BYTES, HTTP_RESPONSE_MAX_BYTES, REQUEST_ID_MAX_BYTES,
};
use natter::config::Config;
use natter::domain::{AddReaction, PutConversation, PutUser, SendInboxMessage, SendMessage};
use natter::http::HttpService;
use natter::services::Services;
use natter::ws::{reply_body, WsService};
use serde_json::{json, Map, Value};

const T0: i64 = 1_700_000_000_000;
const CTRL: char = '\u{1}';

struct Setup {
    services: Services,
    ws: Vec<WsService>,
    http: Vec<HttpService>,
    clock: ManualClock,
}

fn user(id: &str) -> Identity {
    Identity::User {
        user_id: id.to_string(),
        role: None,
    }
}

/// The biggest `custom` the limits allow, in the costliest characters.
fn worst_custom() -> Value {
    let limits = Config::default().limits;
    let mut custom = Map::new();
    for i in 0..limits.max_custom_keys {
        let key = format!("{i:02}") + &CTRL.to_string().repeat(limits.max_custom_key_chars - 2);
        custom.insert(
            key,
            json!(CTRL.to_string().repeat(limits.max_custom_value_bytes)),
        );
    }
    Value::Object(custom)
}

/// The biggest content the limits allow (64 KiB as JSON), in the costliest characters.
fn worst_content() -> Value {
    let max = Config::default().limits.max_content_bytes;
    let wrap = |n: usize| json!([{"type": "text", "children": [CTRL.to_string().repeat(n)]}]);
    let overhead = wrap(0).to_string().len();
    wrap((max - overhead) / 6)
}

fn ws_event(connection: &str, user_id: &str, body: &Value) -> ApiGatewayWebsocketProxyRequest {
    serde_json::from_value(json!({
        "requestContext": {
            "routeKey": "$default", "eventType": "MESSAGE", "stage": "local",
            "connectionId": connection, "connectedAt": 0, "requestTimeEpoch": 0,
            "apiId": "local", "authorizer": {"userId": user_id, "principalId": user_id},
        },
        "body": body.to_string(),
        "isBase64Encoded": false,
    }))
    .unwrap()
}

fn http_event(user_id: &str, path: &[(&str, &str)], query: &str) -> ApiGatewayV2httpRequest {
    let params: Map<String, Value> = path
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    serde_json::from_value(json!({
        "version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": query,
        "queryStringParameters": query.split('&').filter(|p| !p.is_empty()).map(|p| {
            let (k, v) = p.split_once('=').unwrap();
            (k.to_string(), json!(v))
        }).collect::<Map<String, Value>>(),
        "pathParameters": params,
        "requestContext": {
            "accountId": "local", "apiId": "local", "domainName": "local", "domainPrefix": "local",
            "http": {"method": "GET", "path": "/", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
            "requestId": "r", "routeKey": "$default", "stage": "$default", "time": "", "timeEpoch": 0,
            "authorizer": {"lambda": {"kind": "user", "userId": user_id}},
        },
        "isBase64Encoded": false,
    }))
    .unwrap()
}

impl Setup {
    async fn new() -> Setup {
        let clock = ManualClock::new(T0);
        let clock_dyn: Arc<dyn Clock> = Arc::new(clock.clone());
        let (services, _changes) = Services::memory(clock_dyn, Config::default());
        let ws = natter::ws::all_services(&services);
        let http = natter::http::all_services(&services);
        let s = Setup {
            services,
            ws,
            http,
            clock,
        };
        for (connection, user_id) in [("A", "alice")] {
            let response = s
                .ws("ws-connect", ws_event(connection, user_id, &json!({})))
                .await;
            assert_eq!(response.status_code, 200);
        }
        s
    }

    async fn ws(
        &self,
        function: &str,
        event: ApiGatewayWebsocketProxyRequest,
    ) -> aws_lambda_events::apigw::ApiGatewayProxyResponse {
        let route = self.ws.iter().find(|r| r.route().function == function);
        route.expect("a route").handle(event).await
    }

    /// The reply frame's text to `frame` from alice on connection A.
    async fn frame(&self, function: &str, frame: Value) -> String {
        let response = self.ws(function, ws_event("A", "alice", &frame)).await;
        reply_body(&response).expect("a reply")
    }

    /// The body of a GET and the size of the Lambda response that carries it.
    async fn get(&self, function: &str, path: &[(&str, &str)], query: &str) -> (Value, usize) {
        let route = self.http.iter().find(|r| r.route().function == function);
        let response = route
            .expect("a route")
            .handle(http_event("alice", path, query))
            .await;
        assert_eq!(response.status_code, 200, "{:?}", response.body);
        let sent = serde_json::to_string(&response).unwrap().len();
        let Some(Body::Text(text)) = &response.body else {
            panic!("no body")
        };
        (serde_json::from_str(text).unwrap(), sent)
    }

    async fn send(&self, sender: &str, body: Value) -> String {
        self.clock.advance_ms(1);
        let body = serde_json::from_value(body).unwrap();
        let sent = self
            .services
            .build::<SendMessage>()
            .run(&Identity::Secret, "c1", body)
            .await
            .unwrap_or_else(|e| panic!("send as {sender}: {e}"));
        sent.id
    }
}

/// A worst-case conversation `c1`: `m1` from `big1`, and `m2` from `big2` replying to it, both
/// as big as the limits allow.
async fn worst_messages(s: &Setup) -> (String, String) {
    for id in ["big1", "big2"] {
        let body = serde_json::from_value(json!({
            "name": CTRL.to_string().repeat(1024),
            "custom": worst_custom(),
        }))
        .unwrap();
        s.services
            .build::<PutUser>()
            .run(&Identity::Secret, id, body)
            .await
            .unwrap();
    }
    let body = serde_json::from_value(json!({"participants": ["alice", "big1", "big2"]})).unwrap();
    s.services
        .build::<PutConversation>()
        .run(&Identity::Secret, "c1", body)
        .await
        .unwrap();
    let m1 = s
        .send(
            "big1",
            json!({"sender": "big1", "content": worst_content(), "custom": worst_custom()}),
        )
        .await;
    let m2 = s
        .send(
            "big2",
            json!({"sender": "big2", "content": worst_content(), "custom": worst_custom(),
                "referencedMessageId": m1}),
        )
        .await;
    for i in 0..Config::default().limits.max_distinct_reactions {
        let emoji = format!(":{i:02}{}:", "e".repeat(46));
        s.services
            .build::<AddReaction>()
            .run(&user("alice"), "c1", &m2, &emoji)
            .await
            .unwrap();
    }
    (m1, m2)
}

/// The largest `requestId` accepted: a string of exactly `REQUEST_ID_MAX_BYTES` as JSON.
fn biggest_request_id() -> Value {
    let id = json!("\"".repeat((REQUEST_ID_MAX_BYTES - 2) / 2));
    assert_eq!(id.to_string().len(), REQUEST_ID_MAX_BYTES);
    id
}

#[tokio::test]
async fn the_worst_message_is_short_in_frames_and_whole_over_http() {
    let s = Setup::new().await;
    let (m1, m2) = worst_messages(&s).await;

    // Whole over HTTP: GET of the message, and the list.
    let (whole, sent) = s
        .get(
            "get-message",
            &[("conversationId", "c1"), ("messageId", &m2)],
            "",
        )
        .await;
    let snapshot_bytes = whole.to_string().len();
    println!("worst snapshot: {snapshot_bytes} bytes as JSON, {sent} bytes as a Lambda response (limit {LAMBDA_PAYLOAD_MAX_BYTES})");
    assert_eq!(whole["id"], m2.as_str());
    assert_eq!(whole["referencedMessage"]["id"], m1.as_str());
    assert!(snapshot_bytes > FRAME_MESSAGE_MAX_BYTES);
    assert!(sent <= LAMBDA_PAYLOAD_MAX_BYTES, "{sent}");

    let (page, sent) = s
        .get("list-messages", &[("conversationId", "c1")], "limit=100")
        .await;
    println!(
        "worst list page: {sent} bytes as a Lambda response (limit {HTTP_RESPONSE_MAX_BYTES})"
    );
    assert!(sent <= HTTP_RESPONSE_MAX_BYTES, "{sent}");
    let listed: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(!listed.is_empty());
    assert_eq!(listed[0], m2.as_str());

    // Short in frames, with the biggest requestId echoed.
    let request_id = biggest_request_id();
    let text = s
        .frame(
            "ws-subscribe",
            json!({"action": "subscribe", "subscriptionId": "s".repeat(128), "conversationId": "c1",
                "limit": 100, "requestId": request_id}),
        )
        .await;
    println!(
        "worst subscribe reply: {} bytes (limit {WS_MESSAGE_MAX_BYTES})",
        text.len()
    );
    assert!(text.len() <= WS_MESSAGE_MAX_BYTES);
    let reply: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(reply["requestId"], request_id);
    assert_eq!(
        reply["messages"],
        json!([
            {"id": m2, "conversationId": "c1", "truncated": true},
            {"id": m1, "conversationId": "c1", "truncated": true},
        ])
    );
    assert_eq!(reply["loadedAll"], true);
}

#[tokio::test]
async fn a_big_window_pages_with_load_more_losing_and_repeating_nothing() {
    let s = Setup::new().await;
    let body = serde_json::from_value(json!({"participants": ["alice"]})).unwrap();
    s.services
        .build::<PutConversation>()
        .run(&Identity::Secret, "c1", body)
        .await
        .unwrap();
    // 60 messages of 30 to 120 KB as frames: a few fit in one reply.
    let mut sent = Vec::new();
    for i in 0..60 {
        let custom: Map<String, Value> = (0..(i % 4 + 1) * 7)
            .map(|k| (format!("k{k}"), json!("\"".repeat(2000))))
            .collect();
        let id = s
            .send(
                "alice",
                json!({"sender": "alice", "text": format!("m{i}"), "custom": custom}),
            )
            .await;
        sent.push(id);
    }
    sent.reverse(); // newest first, as windows hold them
    let request_id = biggest_request_id();
    let mut seen: Vec<String> = Vec::new();
    let mut frames = 0;
    let mut loaded_all = false;
    let mut frame = json!({"action": "subscribe", "subscriptionId": "s1", "conversationId": "c1",
        "limit": 100, "requestId": request_id});
    let mut function = "ws-subscribe";
    while !loaded_all {
        let text = s.frame(function, frame.clone()).await;
        assert!(text.len() <= WS_MESSAGE_MAX_BYTES, "{}", text.len());
        let reply: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(reply["state"], "active", "{reply}");
        let ids: Vec<String> = reply["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect();
        assert!(!ids.is_empty());
        seen.extend(ids);
        loaded_all = reply["loadedAll"].as_bool().unwrap();
        frames += 1;
        frame = json!({"action": "loadMore", "subscriptionId": "s1", "count": 100,
            "requestId": request_id});
        function = "ws-load-more";
    }
    assert!(frames > 10, "the window took {frames} frames");
    assert_eq!(seen, sent, "every message once, newest first");
}

#[tokio::test]
async fn a_big_inbox_pages_over_hello_inbox_more_and_get() {
    let s = Setup::new().await;
    let max = Config::default().limits.max_inbox_message_bytes;
    // 150 inbox messages of 64 KiB as JSON (the largest), in the costliest characters.
    let big = json!(CTRL.to_string().repeat((max - 2) / 6));
    assert!(big.to_string().len() <= max);
    for _ in 0..150 {
        s.clock.advance_ms(1);
        s.services
            .build::<SendInboxMessage>()
            .run(
                &user("bob"),
                natter::json::from_str::<natter::domain::SendInboxBody>(
                    &json!({"message": big, "recipients": "alice"}).to_string(),
                )
                .unwrap(),
            )
            .await
            .unwrap();
    }
    let all: Vec<String> = {
        let page = s
            .services
            .build::<natter::domain::ListInbox>()
            .of_user("alice", None, 1000)
            .await
            .unwrap();
        page.messages.into_iter().map(|m| m.message_id).collect()
    };
    assert_eq!(all.len(), 150);

    // Over WebSocket, with the biggest requestId.
    let request_id = biggest_request_id();
    let mut seen = Vec::new();
    let mut frame = json!({"action": "hello", "requestId": request_id});
    let mut function = "ws-hello";
    let mut largest = 0;
    loop {
        let text = s.frame(function, frame).await;
        largest = largest.max(text.len());
        assert!(text.len() <= WS_MESSAGE_MAX_BYTES, "{}", text.len());
        let reply: Value = serde_json::from_str(&text).unwrap();
        let ids: Vec<String> = reply["messages"]
            .as_array()
            .unwrap_or_else(|| panic!("{reply}"))
            .iter()
            .map(|m| m["messageId"].as_str().unwrap().to_string())
            .collect();
        assert!(!ids.is_empty());
        seen.extend(ids);
        if !reply["hasMore"].as_bool().unwrap() {
            break;
        }
        frame =
            json!({"action": "inboxMore", "after": seen.last().unwrap(), "requestId": request_id});
        function = "ws-inbox-more";
    }
    println!("largest hello/inbox frame: {largest} bytes (limit {WS_MESSAGE_MAX_BYTES})");
    assert_eq!(seen, all);

    // Over HTTP: 100 of them would pass 6 MB, so a page stops early by size.
    let mut seen = Vec::new();
    let mut query = "limit=100".to_string();
    let mut largest = 0;
    loop {
        let (page, sent) = s.get("list-inbox", &[], &query).await;
        largest = largest.max(sent);
        assert!(sent <= HTTP_RESPONSE_MAX_BYTES, "{sent}");
        let ids: Vec<String> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["messageId"].as_str().unwrap().to_string())
            .collect();
        assert!(!ids.is_empty());
        assert!(ids.len() < 100, "a page of 100 would not fit");
        seen.extend(ids);
        if !page["hasMore"].as_bool().unwrap() {
            break;
        }
        query = format!("limit=100&after={}", seen.last().unwrap());
    }
    println!("largest GET /inbox response: {largest} bytes (limit {HTTP_RESPONSE_MAX_BYTES})");
    assert_eq!(seen, all);
}

#[tokio::test]
async fn a_request_id_too_big_to_echo_is_refused_and_ping_pongs() {
    let s = Setup::new().await;
    let ok = biggest_request_id();
    let text = s
        .frame("ws-ping", json!({"action": "ping", "requestId": ok}))
        .await;
    assert_eq!(text, json!({"type": "pong", "requestId": ok}).to_string());
    let too_big = json!("x".repeat(REQUEST_ID_MAX_BYTES));
    let text = s
        .frame("ws-ping", json!({"action": "ping", "requestId": too_big}))
        .await;
    assert_eq!(
        text,
        json!({"type": "error", "error": {"code": "invalid_request",
            "message": format!("requestId is {} bytes as JSON; the most is {REQUEST_ID_MAX_BYTES}",
                REQUEST_ID_MAX_BYTES + 2)}})
        .to_string()
    );
    let text = s
        .frame(
            "ws-inbox-more",
            json!({"action": "inboxMore", "requestId": 1}),
        )
        .await;
    assert!(text.contains("after is required"), "{text}");
}
