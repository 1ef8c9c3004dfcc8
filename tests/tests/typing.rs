//! Typing indicators end to end: real WebSocket clients through `natter-local`, on the embedded
//! store and on DynamoDB (moto). The expiry checks run in the gateway's process on a real clock,
//! so the test of a spell's end waits for it (about 10 s).

use std::time::{Duration, Instant};

use natter_e2e::ws::WsClient;
use natter_e2e::{both_stores, user_token, Gateway, Store};
use serde_json::{json, Value};

both_stores!(
    typing_is_pushed_to_everyone_else_and_ends: typing_is_pushed_to_everyone_else_and_ends_memory, typing_is_pushed_to_everyone_else_and_ends_dynamo;
    only_read_write_participants_may_type: only_read_write_participants_may_type_memory, only_read_write_participants_may_type_dynamo;
    rapid_typing_frames_push_once: rapid_typing_frames_push_once_memory, rapid_typing_frames_push_once_dynamo;
);

fn typing(cid: &str) -> String {
    json!({"action": "typing", "conversationId": cid}).to_string()
}

/// The users of the next `typing` push to `sub`, skipping other pushes (message pushes); fails
/// when a push names the receiver `me`.
async fn next_typing(client: &mut WsClient, sub: &str, me: &str, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(push) = client.next_push(left).await else {
            panic!("no typing push to {sub} within {within:?}");
        };
        if push["type"] != "typing" {
            continue;
        }
        assert_eq!(push["subscriptionId"], sub, "{push}");
        let users: Vec<String> = push["users"]
            .as_array()
            .unwrap_or_else(|| panic!("no users in {push}"))
            .iter()
            .map(|u| u.as_str().expect("user ids").to_string())
            .collect();
        assert!(
            !users.iter().any(|u| u == me),
            "{me} was told {me} types: {push}"
        );
        return users;
    }
}

async fn typing_is_pushed_to_everyone_else_and_ends(store: Store) {
    let gw = Gateway::on(store);
    gw.conversation("t1", &["alice", "bob", "carol"]).await;
    let mut a = WsClient::connect_hello(&gw, &user_token("alice")).await;
    a.subscribe_ok("sa", "t1", None).await;
    let mut b = WsClient::connect_hello(&gw, &user_token("bob")).await;
    b.subscribe_ok("sb", "t1", None).await;
    let mut c = WsClient::connect_hello(&gw, &user_token("carol")).await;
    let wait = Duration::from_secs(15);

    // alice types: bob hears of it; alice's own list (nobody else) did not change.
    a.send_text(&typing("t1")).await;
    let push = b.next_push(wait).await.expect("a typing push");
    assert_eq!(
        push,
        json!({"type": "typing", "subscriptionId": "sb", "conversationId": "t1",
            "users": ["alice"]})
    );

    // carol types: oldest typer first, to bob; alice hears of carol only.
    c.send_text(&typing("t1")).await;
    let carol_typed = Instant::now();
    assert_eq!(
        next_typing(&mut b, "sb", "bob", wait).await,
        ["alice", "carol"]
    );
    assert_eq!(next_typing(&mut a, "sa", "alice", wait).await, ["carol"]);

    // alice sends a message: she stops typing at once (long before her 10 s are up).
    let sent_at = Instant::now();
    gw.send("t1", &user_token("alice"), "done typing").await;
    assert_eq!(next_typing(&mut b, "sb", "bob", wait).await, ["carol"]);
    assert!(
        sent_at.elapsed() < Duration::from_secs(8),
        "the message did not end alice's typing"
    );

    // carol's spell ends about 10 s after her only frame.
    assert!(
        next_typing(&mut b, "sb", "bob", Duration::from_secs(25))
            .await
            .is_empty(),
        "carol still types"
    );
    let after = carol_typed.elapsed();
    assert!(
        after >= Duration::from_millis(9_500),
        "carol stopped typing {after:?} after her frame"
    );
    assert!(next_typing(&mut a, "sa", "alice", wait).await.is_empty());
    // Nothing more: alice's own expiry check found her item gone and pushed nothing.
    a.expect_silence(Duration::from_secs(1)).await;
    b.expect_silence(Duration::from_secs(1)).await;
    for client in [a, b, c] {
        client.close().await;
    }
}

async fn only_read_write_participants_may_type(store: Store) {
    let gw = Gateway::on(store);
    gw.conversation("t2", &["alice"]).await;
    gw.participant("t2", "rita", "Read").await;
    let mut a = WsClient::connect_hello(&gw, &user_token("alice")).await;
    a.subscribe_ok("sa", "t2", None).await;
    let error_code = |reply: &Value| reply["error"]["code"].as_str().map(str::to_string);

    let mut rita = WsClient::connect_hello(&gw, &user_token("rita")).await;
    let reply = rita
        .request(json!({"action": "typing", "conversationId": "t2"}))
        .await;
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(error_code(&reply).as_deref(), Some("forbidden"), "{reply}");

    let mut eve = WsClient::connect_hello(&gw, &user_token("eve")).await;
    for cid in ["t2", "no-such-conversation"] {
        let reply = eve
            .request(json!({"action": "typing", "conversationId": cid}))
            .await;
        assert_eq!(error_code(&reply).as_deref(), Some("not_found"), "{reply}");
    }
    for frame in [
        json!({"action": "typing"}),
        json!({"action": "typing", "conversationId": "a#b"}),
        json!({"action": "typing", "conversationId": 5}),
        json!({"action": "typing", "conversationId": "t2", "extra": 1}),
    ] {
        let reply = rita.request(frame.clone()).await;
        assert_eq!(
            error_code(&reply).as_deref(),
            Some("invalid_request"),
            "{frame}: {reply}"
        );
    }
    // Nobody typed: alice heard nothing.
    a.expect_silence(Duration::from_secs(1)).await;
    for client in [a, rita, eve] {
        client.close().await;
    }
}

async fn rapid_typing_frames_push_once(store: Store) {
    let gw = Gateway::on(store);
    gw.conversation("t3", &["alice", "bob", "carol"]).await;
    let mut a = WsClient::connect_hello(&gw, &user_token("alice")).await;
    let mut b = WsClient::connect_hello(&gw, &user_token("bob")).await;
    b.subscribe_ok("sb", "t3", None).await;
    let mut c = WsClient::connect_hello(&gw, &user_token("carol")).await;
    c.subscribe_ok("sc", "t3", None).await;
    for _ in 0..20 {
        a.send_text(&typing("t3")).await;
    }
    // A ping after them: its pong means every typing frame was handled, and none was answered.
    let pong = a.request(json!({"action": "ping"})).await;
    assert_eq!(pong["type"], "pong", "{pong}");
    assert_eq!(a.queued_count(), 0, "a typing frame was answered");
    for (client, sub, me) in [(&mut b, "sb", "bob"), (&mut c, "sc", "carol")] {
        assert_eq!(
            next_typing(client, sub, me, Duration::from_secs(15)).await,
            ["alice"]
        );
        // One write, so one push: nothing more while the spell lasts.
        client.expect_silence(Duration::from_secs(3)).await;
    }
    for client in [a, b, c] {
        client.close().await;
    }
}
