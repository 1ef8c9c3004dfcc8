//! Everything fits AWS's limits, end to end: real HTTP and WebSocket clients through
//! `natter-local`, on the embedded store and on DynamoDB (moto). Replies stop early by size and
//! page on with nothing lost or repeated; a message too big for a frame comes in its short form
//! and whole over HTTP, in replies and in pushes alike, and holds back no one else's pushes;
//! `ping` answers `pong`.

use std::time::{Duration, Instant};

use natter_e2e::ws::WsClient;
use natter_e2e::{both_stores, enc, expect_error, expect_status, user_token, Gateway, Store};
use serde_json::{json, Map, Value};

/// API Gateway's largest WebSocket message, and Lambda's largest response.
const FRAME_MAX: usize = 128 * 1024;
const RESPONSE_MAX: usize = 6 * 1024 * 1024;

both_stores!(
    a_big_window_pages_with_load_more_exactly_once: a_big_window_pages_with_load_more_exactly_once_memory, a_big_window_pages_with_load_more_exactly_once_dynamo;
    an_oversized_message_is_short_in_frames_and_whole_over_http: an_oversized_message_is_short_in_frames_and_whole_over_http_memory, an_oversized_message_is_short_in_frames_and_whole_over_http_dynamo;
    a_big_inbox_pages_over_websocket_and_http_exactly_once: a_big_inbox_pages_over_websocket_and_http_exactly_once_memory, a_big_inbox_pages_over_websocket_and_http_exactly_once_dynamo;
    ping_answers_pong: ping_answers_pong_memory, ping_answers_pong_dynamo;
    an_oversized_message_is_pushed_short_and_a_bystander_is_not_held_back: an_oversized_message_is_pushed_short_and_a_bystander_is_not_held_back_memory, an_oversized_message_is_pushed_short_and_a_bystander_is_not_held_back_dynamo;
);

/// A `custom` of `keys` values of `bytes` characters each.
fn custom(keys: usize, bytes: usize) -> Value {
    let map: Map<String, Value> = (0..keys)
        .map(|k| (format!("k{k}"), json!("x".repeat(bytes))))
        .collect();
    Value::Object(map)
}

async fn send_with_custom(
    gw: &Gateway,
    cid: &str,
    token: &str,
    text: &str,
    custom: Value,
) -> String {
    let body = json!({"text": text, "custom": custom});
    let path = format!("/conversations/{}/messages", enc(cid));
    let sent = expect_status(gw.post(&path, token, body).await, 201);
    sent["id"].as_str().expect("an id").to_string()
}

#[track_caller]
fn assert_fits(reply: &Value) {
    let bytes = reply.to_string().len();
    assert!(bytes <= FRAME_MAX, "a frame of {bytes} bytes");
}

fn message_ids(messages: &Value) -> Vec<String> {
    messages
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_string())
        .collect()
}

async fn a_big_window_pages_with_load_more_exactly_once(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    gw.conversation("big", &["alice"]).await;
    // 40 messages of about 28 KB: four fit in one frame.
    let mut sent = Vec::new();
    for i in 0..40 {
        sent.push(send_with_custom(&gw, "big", &alice, &format!("m{i}"), custom(7, 4000)).await);
    }
    sent.sort();
    sent.reverse();

    let mut client = WsClient::connect_hello(&gw, &alice).await;
    let mut reply = client.subscribe_ok("s1", "big", Some(100)).await;
    let mut seen = Vec::new();
    let mut frames = 0;
    loop {
        assert_fits(&reply);
        let ids = message_ids(&reply["messages"]);
        assert!(!ids.is_empty(), "{reply}");
        assert!(ids.len() < 40);
        seen.extend(ids);
        frames += 1;
        if reply["loadedAll"] == json!(true) {
            break;
        }
        reply = client.load_more("s1", Some(json!(100))).await;
        assert_eq!(reply["state"], "active", "{reply}");
    }
    assert!(frames >= 8, "{frames} frames");
    assert_eq!(seen, sent, "every message exactly once, newest first");
    // The window now holds everything.
    let reply = client.load_more("s1", None).await;
    assert_eq!(
        (reply["messages"].clone(), reply["loadedAll"].clone()),
        (json!([]), json!(true))
    );
    // A new message is pushed to the widened window.
    let id = gw.send("big", &alice, "after").await["id"].clone();
    let push = client.expect_push("message.created", "s1").await;
    assert_eq!(push["message"]["id"], id);
    client.close().await;
}

async fn an_oversized_message_is_short_in_frames_and_whole_over_http(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    gw.conversation("huge", &["alice"]).await;
    let small = gw.send("huge", &alice, "small").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    // custom of 50 × 4 KiB: its snapshot alone is over 200 KB.
    let huge = send_with_custom(&gw, "huge", &alice, "huge", custom(50, 4096)).await;

    let mut client = WsClient::connect_hello(&gw, &alice).await;
    let reply = client.subscribe_ok("s1", "huge", None).await;
    assert_fits(&reply);
    assert_eq!(
        reply["messages"][0],
        json!({"id": huge, "conversationId": "huge", "truncated": true})
    );
    assert_eq!(reply["messages"][1]["id"], small.as_str());
    assert_eq!(reply["messages"][1]["plaintext"], "small");
    assert_eq!(reply["loadedAll"], true);

    let whole = expect_status(
        gw.get(
            &format!("/conversations/huge/messages/{}", enc(&huge)),
            &alice,
        )
        .await,
        200,
    );
    assert_eq!(whole["custom"], custom(50, 4096));
    assert_eq!(whole["plaintext"], "huge");
    let page = expect_status(gw.get("/conversations/huge/messages", &alice).await, 200);
    assert_eq!(page["data"][0], whole);
    assert_eq!(page["loadedAll"], true);
    client.close().await;
}

/// A push that was refused or retried used to take the fan-out about 6 s before it gave up on
/// it; a push that is not held back arrives well within this.
const NOT_HELD_BACK: Duration = Duration::from_secs(4);

async fn an_oversized_message_is_pushed_short_and_a_bystander_is_not_held_back(store: Store) {
    let gw = Gateway::on(store);
    let (alice, bob, carol) = (user_token("alice"), user_token("bob"), user_token("carol"));
    gw.conversation("huge", &["alice"]).await;
    gw.conversation("other", &["bob", "carol"]).await;
    let mut watcher = WsClient::connect_hello(&gw, &alice).await;
    watcher.subscribe_ok("s1", "huge", None).await;
    let mut bystander = WsClient::connect_hello(&gw, &bob).await;
    bystander.subscribe_ok("s2", "other", None).await;

    // A message whose snapshot alone is over a frame, then at once a message in another
    // conversation.
    let huge = send_with_custom(&gw, "huge", &alice, "huge", custom(50, 4096)).await;
    let sent = Instant::now();
    let other = gw.send("other", &carol, "meanwhile").await["id"].clone();
    let push = bystander.expect_push("message.created", "s2").await;
    let waited = sent.elapsed();
    assert_eq!(push["message"]["id"], other);
    assert!(waited < NOT_HELD_BACK, "the bystander waited {waited:?}");

    let short = json!({"id": huge, "conversationId": "huge", "truncated": true});
    let push = watcher.expect_push("message.created", "s1").await;
    assert_fits(&push);
    assert_eq!(push["message"], short);
    // An edit of it is pushed short too; the message itself is whole over HTTP.
    let path = format!("/conversations/huge/messages/{}", enc(&huge));
    expect_status(
        gw.patch(&path, &alice, json!({"text": "huge, edited"}))
            .await,
        200,
    );
    let push = watcher.expect_push("message.edited", "s1").await;
    assert_fits(&push);
    assert_eq!(push["message"], short);
    let whole = expect_status(gw.get(&path, &alice).await, 200);
    assert_eq!(whole["plaintext"], "huge, edited");
    assert_eq!(whole["custom"], custom(50, 4096));

    // Nothing was refused for size on the way.
    let stats = gw.stats().await;
    assert_eq!(stats["oversizedFrames"], 0, "{stats}");
    watcher.close().await;
    bystander.close().await;
}

async fn a_big_inbox_pages_over_websocket_and_http_exactly_once(store: Store) {
    let gw = Gateway::on(store);
    let (alice, bob) = (user_token("alice"), user_token("bob"));
    // 60 inbox messages of 64 KB as JSON, each twice that escaped in an HTTP body: one per
    // frame, under 50 per HTTP page.
    let big = json!("\"".repeat(32_000));
    let mut sent = Vec::new();
    for _ in 0..60 {
        let body = json!({"message": big, "recipients": "alice"});
        let answer = expect_status(gw.post("/inbox", &bob, body).await, 201);
        sent.push(answer["messageIds"][0].as_str().unwrap().to_string());
    }
    sent.sort();
    let inbox_ids = |reply: &Value, field: &str| -> Vec<String> {
        reply[field]
            .as_array()
            .unwrap_or_else(|| panic!("{field} in {reply}"))
            .iter()
            .map(|m| m["messageId"].as_str().unwrap().to_string())
            .collect()
    };

    // hello, then inboxMore after the last one received.
    let mut client = WsClient::connect(&gw, &alice).await;
    let mut reply = client.hello().await;
    let mut seen = Vec::new();
    loop {
        assert_fits(&reply);
        let ids = inbox_ids(&reply, "messages");
        assert!(!ids.is_empty(), "{reply}");
        seen.extend(ids);
        if reply["hasMore"] == json!(false) {
            break;
        }
        reply = client
            .request(json!({"action": "inboxMore", "after": seen.last().unwrap()}))
            .await;
        assert_eq!(reply["type"], "inbox", "{reply}");
    }
    assert_eq!(seen, sent, "every inbox message once, oldest first");
    client.close().await;

    // GET /inbox: pages stop early by size; a small limit pages by count.
    for limit in [100, 7] {
        let mut seen = Vec::new();
        let mut path = format!("/inbox?limit={limit}");
        let mut pages = 0;
        loop {
            let (status, page) = gw.get(&path, &alice).await;
            assert_eq!(status, 200, "{page}");
            let bytes = serde_json::to_string(&page.to_string()).unwrap().len();
            assert!(bytes <= RESPONSE_MAX, "a body of {bytes} bytes escaped");
            let ids = inbox_ids(&page, "data");
            assert!(!ids.is_empty() && ids.len() <= limit);
            seen.extend(ids);
            pages += 1;
            if page["hasMore"] == json!(false) {
                break;
            }
            path = format!("/inbox?limit={limit}&after={}", enc(seen.last().unwrap()));
        }
        assert_eq!(seen, sent, "limit {limit}");
        assert!(pages >= 2, "limit {limit}: {pages} pages");
    }
    let all = expect_status(gw.get("/inbox", &alice).await, 200);
    assert_eq!(
        all["hasMore"], true,
        "the default page of 100 does not fit 60 of these"
    );
    for bad in [
        "limit=0",
        "limit=101",
        "limit=abc",
        "limit=-1",
        "after=a%23b",
    ] {
        expect_error(
            &gw.get(&format!("/inbox?{bad}"), &alice).await,
            400,
            "invalid_request",
        );
    }
}

async fn ping_answers_pong(store: Store) {
    let gw = Gateway::on(store);
    let mut client = WsClient::connect(&gw, &user_token("alice")).await;
    // `request` checks that the reply echoes the requestId.
    let reply = client.request(json!({"action": "ping"})).await;
    assert_eq!(reply["type"], "pong", "{reply}");
    assert_eq!(reply.as_object().unwrap().len(), 2, "{reply}");
    // Too big a requestId is refused without being echoed.
    let huge = "x".repeat(2000);
    client
        .send_text(&json!({"action": "ping", "requestId": huge}).to_string())
        .await;
    let refusal = client
        .next_push(std::time::Duration::from_secs(10))
        .await
        .expect("a reply");
    assert_eq!(refusal["type"], "error", "{refusal}");
    assert_eq!(refusal["error"]["code"], "invalid_request");
    assert!(refusal.get("requestId").is_none());
    client.close().await;
}
