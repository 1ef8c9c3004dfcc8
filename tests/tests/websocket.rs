//! The WebSocket API end to end: real WebSocket clients through `natter-local`, with the
//! embedded store (its change feed drives the fan-out) and with DynamoDB on moto (the table's
//! stream drives it, as Lambda's event source mapping would).

use std::time::{Duration, Instant};

use natter_e2e::ws::{ids, introspect, management, wait_for_connection, WsClient};
use natter_e2e::{both_stores, enc, secret_key, user_token, Gateway, GatewayOptions, Store};
use serde_json::{json, Value};

both_stores!(
    connecting_needs_a_user_token: connecting_needs_a_user_token_memory, connecting_needs_a_user_token_dynamo;
    frames_are_answered_and_echo_request_ids: frames_are_answered_and_echo_request_ids_memory, frames_are_answered_and_echo_request_ids_dynamo;
    subscribe_answers_the_newest_window: subscribe_answers_the_newest_window_memory, subscribe_answers_the_newest_window_dynamo;
    load_more_extends_the_window_within_bounds: load_more_extends_the_window_within_bounds_memory, load_more_extends_the_window_within_bounds_dynamo;
    every_push_reaches_every_subscriber_and_nobody_else: every_push_reaches_every_subscriber_and_nobody_else_memory, every_push_reaches_every_subscriber_and_nobody_else_dynamo;
    changes_older_than_the_window_wait_for_load_more: changes_older_than_the_window_wait_for_load_more_memory, changes_older_than_the_window_wait_for_load_more_dynamo;
    unsubscribe_ends_pushes: unsubscribe_ends_pushes_memory, unsubscribe_ends_pushes_dynamo;
    disconnect_removes_the_connection_and_its_subscriptions: disconnect_removes_the_connection_and_its_subscriptions_memory, disconnect_removes_the_connection_and_its_subscriptions_dynamo;
    a_dead_connection_is_removed_after_its_410: a_dead_connection_is_removed_after_its_410_memory, a_dead_connection_is_removed_after_its_410_dynamo;
    the_management_api_posts_describes_and_closes: the_management_api_posts_describes_and_closes_memory, the_management_api_posts_describes_and_closes_dynamo;
    a_client_message_over_128_kib_closes_with_1009: a_client_message_over_128_kib_closes_with_1009_memory, a_client_message_over_128_kib_closes_with_1009_dynamo;
    posts_over_128_kib_are_refused_and_counted: posts_over_128_kib_are_refused_and_counted_memory, posts_over_128_kib_are_refused_and_counted_dynamo;
    idle_connections_are_closed_and_active_ones_stay: idle_connections_are_closed_and_active_ones_stay_memory, idle_connections_are_closed_and_active_ones_stay_dynamo;
    the_lifetime_closes_even_an_active_connection: the_lifetime_closes_even_an_active_connection_memory, the_lifetime_closes_even_an_active_connection_dynamo;
    a_client_that_does_not_read_is_closed_with_1008: a_client_that_does_not_read_is_closed_with_1008_memory, a_client_that_does_not_read_is_closed_with_1008_dynamo;
);

/// API Gateway's largest WebSocket message, either way.
const WS_MESSAGE_MAX: usize = natter::config::aws::WS_MESSAGE_MAX_BYTES;

/// Sends `n` messages `prefix 1`..`prefix n` to `cid` as `token`; returns their ids in the
/// conversation's order, oldest first (id order: two messages sent within one millisecond may
/// be ordered either way).
async fn send_many(gw: &Gateway, cid: &str, token: &str, prefix: &str, n: usize) -> Vec<String> {
    let mut sent = Vec::with_capacity(n);
    for i in 1..=n {
        let message = gw.send(cid, token, &format!("{prefix} {i}")).await;
        sent.push(message["id"].as_str().expect("message id").to_string());
    }
    sent.sort();
    sent
}

fn newest_first(mut ids: Vec<String>) -> Vec<String> {
    ids.reverse();
    ids
}

#[track_caller]
fn assert_error_frame(reply: &Value, code: &str) {
    assert_eq!(reply["type"], "error", "expected an error frame: {reply}");
    assert_eq!(reply["error"]["code"], code, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "error without a message: {reply}"
    );
}

#[track_caller]
fn assert_subscription_error(reply: &Value, subscription_id: &str, code: &str) {
    assert_eq!(
        (
            reply["type"].as_str(),
            reply["subscriptionId"].as_str(),
            reply["state"].as_str()
        ),
        (Some("subscription"), Some(subscription_id), Some("error")),
        "{reply}"
    );
    assert_eq!(reply["error"]["code"], code, "{reply}");
}

async fn connecting_needs_a_user_token(store: Store) {
    let gw = Gateway::on(store);
    for (token, why) in [
        (None, "no token"),
        (Some("not-a-jwt".to_string()), "a malformed token"),
        (Some(secret_key()), "the secret key"),
        (
            Some(
                natter::auth::issue_user_token(
                    "alice",
                    None,
                    3600,
                    natter_e2e::now_secs(),
                    &natter::auth::SigningKey::new(
                        natter_e2e::SIGNING_KID,
                        "some-other-signing-secret-0123456789",
                    ),
                )
                .expect("token"),
            ),
            "a token signed with another secret",
        ),
    ] {
        let refused = match WsClient::try_connect(&gw, token.as_deref()).await {
            Ok(_) => panic!("{why} was accepted"),
            Err(refused) => refused,
        };
        assert_eq!(refused.status, 401, "{why}: {refused:?}");
        assert_eq!(
            refused.body["error"]["code"], "unauthorized",
            "{why}: {refused:?}"
        );
    }
    let mut client = WsClient::connect(&gw, &user_token("alice")).await;
    let hello = client.hello().await;
    assert_eq!(hello["userId"], "alice");
    assert_eq!(hello["messages"], json!([]));
    let client_id = hello["clientId"].as_str().expect("clientId");
    assert!(!client_id.is_empty());
    // The connection is known to the management API and recorded as connected.
    let (status, body) = management(&gw, "GET", client_id, None).await;
    assert_eq!(status, 200, "{body}");
    let described: Value = serde_json::from_str(&body).expect("JSON");
    assert!(described["ConnectedAt"].as_str().is_some(), "{described}");
    assert_eq!(described["Identity"]["SourceIp"], "127.0.0.1");
    let view = introspect(&gw, client_id).await;
    assert_eq!(view["record"]["userId"], "alice");
    assert_eq!(view["record"]["connected"], true);
}

async fn frames_are_answered_and_echo_request_ids(store: Store) {
    let gw = Gateway::on(store);
    let mut client = WsClient::connect(&gw, &user_token("alice")).await;
    let reply = client.request(json!({"action": "dance"})).await;
    assert_error_frame(&reply, "invalid_request");
    let reply = client.request(json!({"noAction": true})).await;
    assert_error_frame(&reply, "invalid_request");
    let reply = client
        .request(json!({"action": "hello", "unexpected": 1}))
        .await;
    assert_error_frame(&reply, "invalid_request");
    // A requestId may be any JSON value, and comes back as it was.
    let reply = client.request(json!({"action": "hello"})).await;
    assert_eq!(reply["type"], "hello");
    client
        .send_text(&json!({"action": "hello", "requestId": {"n": [1, 2]}}).to_string())
        .await;
    let reply = client
        .next_push(Duration::from_secs(10))
        .await
        .expect("reply");
    assert_eq!(reply["requestId"], json!({"n": [1, 2]}));
    // Not JSON at all: an error frame (nothing to echo).
    client.send_text("this is not json").await;
    let reply = client
        .next_push(Duration::from_secs(10))
        .await
        .expect("reply");
    assert_error_frame(&reply, "invalid_request");
    assert!(reply.get("requestId").is_none());
    // Frames without a subscription id are errors, not subscriptions.
    let reply = client
        .request(json!({"action": "subscribe", "conversationId": "c1"}))
        .await;
    assert_error_frame(&reply, "invalid_request");
    let reply = client.request(json!({"action": "unsubscribe"})).await;
    assert_error_frame(&reply, "invalid_request");
}

async fn subscribe_answers_the_newest_window(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    gw.conversation("c1", &["alice"]).await;
    gw.conversation("empty", &["alice"]).await;
    gw.conversation("other", &["bob"]).await;
    let sent = send_many(&gw, "c1", &alice, "m", 35).await;
    let mut client = WsClient::connect(&gw, &alice).await;

    // Default: the 30 newest, newest first, and more remain.
    let reply = client.subscribe_ok("s1", "c1", None).await;
    assert_eq!(reply["subscriptionId"], "s1");
    assert_eq!(ids(&reply), newest_first(sent[5..].to_vec()));
    assert_eq!(reply["loadedAll"], false);
    assert_eq!(reply["messages"][0]["sender"]["id"], "alice");
    // A limit that covers everything.
    let reply = client.subscribe_ok("s2", "c1", Some(100)).await;
    assert_eq!(ids(&reply), newest_first(sent.clone()));
    assert_eq!(reply["loadedAll"], true);
    let reply = client.subscribe_ok("s3", "c1", Some(35)).await;
    assert_eq!(ids(&reply).len(), 35);
    assert_eq!(reply["loadedAll"], true);
    let reply = client.subscribe_ok("s4", "empty", None).await;
    assert_eq!(reply["messages"], json!([]));
    assert_eq!(reply["loadedAll"], true);

    // Bad limits, a non-participant, an unknown conversation: the subscription is in error.
    for limit in [json!(0), json!(101), json!(-1), json!(2.5), json!("10")] {
        let reply = client.subscribe("bad", "c1", Some(limit.clone())).await;
        assert_subscription_error(&reply, "bad", "invalid_request");
    }
    let reply = client.subscribe("s5", "other", None).await;
    assert_subscription_error(&reply, "s5", "not_found");
    let reply = client.subscribe("s6", "nowhere", None).await;
    assert_subscription_error(&reply, "s6", "not_found");
    let reply = client
        .request(json!({"action": "subscribe", "subscriptionId": "s7"}))
        .await;
    assert_subscription_error(&reply, "s7", "invalid_request");
    // A failed subscription is not held: loadMore does not know it.
    let reply = client.load_more("s5", None).await;
    assert_error_frame(&reply, "not_found");
}

async fn load_more_extends_the_window_within_bounds(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    gw.conversation("c1", &["alice"]).await;
    let sent = send_many(&gw, "c1", &alice, "m", 65).await;
    let mut client = WsClient::connect(&gw, &alice).await;
    let reply = client.subscribe_ok("s", "c1", Some(10)).await;
    assert_eq!(ids(&reply), newest_first(sent[55..].to_vec()));

    // Bad counts and unknown subscriptions are error frames; the window stays as it was.
    for count in [
        json!(0),
        json!(101),
        json!(-3),
        json!(1.5),
        json!("5"),
        json!(true),
    ] {
        let reply = client.load_more("s", Some(count.clone())).await;
        assert_error_frame(&reply, "invalid_request");
    }
    let reply = client.load_more("nope", None).await;
    assert_error_frame(&reply, "not_found");

    let reply = client.load_more("s", Some(json!(20))).await;
    assert_eq!(
        (reply["type"].as_str(), reply["state"].as_str()),
        (Some("subscription"), Some("active")),
        "{reply}"
    );
    assert_eq!(reply["subscriptionId"], "s");
    assert_eq!(ids(&reply), newest_first(sent[35..55].to_vec()));
    assert_eq!(reply["loadedAll"], false);
    // Default count: 30.
    let reply = client.load_more("s", None).await;
    assert_eq!(ids(&reply), newest_first(sent[5..35].to_vec()));
    assert_eq!(reply["loadedAll"], false);
    // The last five, and then nothing older remains.
    let reply = client.load_more("s", Some(json!(100))).await;
    assert_eq!(ids(&reply), newest_first(sent[..5].to_vec()));
    assert_eq!(reply["loadedAll"], true);
    let reply = client.load_more("s", Some(json!(1))).await;
    assert_eq!(reply["messages"], json!([]));
    assert_eq!(reply["loadedAll"], true);

    // Exactly at the end: loadedAll as soon as nothing older remains.
    let mut other = WsClient::connect(&gw, &alice).await;
    other.subscribe_ok("t", "c1", Some(60)).await;
    let reply = other.load_more("t", Some(json!(5))).await;
    assert_eq!(ids(&reply), newest_first(sent[..5].to_vec()));
    assert_eq!(reply["loadedAll"], true);
}

async fn every_push_reaches_every_subscriber_and_nobody_else(store: Store) {
    let gw = Gateway::on(store);
    let (alice, bob, carol, dave) = (
        user_token("alice"),
        user_token("bob"),
        user_token("carol"),
        user_token("dave"),
    );
    gw.conversation("c1", &["alice", "bob"]).await;
    gw.conversation("c2", &["carol", "alice"]).await;
    let older = gw.send("c1", &alice, "before anyone subscribed").await;
    let older_id = older["id"].as_str().expect("id").to_string();

    // alice: one connection holding two subscriptions (c1 and c2); bob: two connections on c1;
    // carol: c2 only; dave: connected, subscribed to nothing.
    let mut a = WsClient::connect(&gw, &alice).await;
    a.subscribe_ok("a1", "c1", None).await;
    a.subscribe_ok("a2", "c2", None).await;
    let mut b1 = WsClient::connect(&gw, &bob).await;
    b1.subscribe_ok("b1", "c1", None).await;
    let mut b2 = WsClient::connect(&gw, &bob).await;
    b2.subscribe_ok("b2", "c1", None).await;
    let mut c = WsClient::connect(&gw, &carol).await;
    c.subscribe_ok("c", "c2", None).await;
    let mut d = WsClient::connect(&gw, &dave).await;
    d.hello().await;
    let c1_subscribers: [(&str, usize); 3] = [("a1", 0), ("b1", 1), ("b2", 2)];

    // message.created, a reply to the older message.
    let (status, created) = gw
        .post(
            "/conversations/c1/messages",
            &bob,
            json!({"text": "hello *all*", "referencedMessageId": older_id}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let mid = created["id"].as_str().expect("id").to_string();
    let clients = [&mut a, &mut b1, &mut b2];
    for (sub, i) in c1_subscribers {
        let push = clients[i].expect_push("message.created", sub).await;
        assert_eq!(
            push["message"], created,
            "the pushed snapshot is the sent one"
        );
    }

    // reaction.added: alice reacts to bob's message.
    let path = format!("/conversations/c1/messages/{mid}/reactions/{}", enc("👍"));
    let (status, body) = gw.put_empty(&path, &alice).await;
    assert_eq!(status, 204, "{body}");
    for (sub, i) in c1_subscribers {
        let push = clients[i].expect_push("reaction.added", sub).await;
        assert_eq!(push["messageId"], mid);
        assert_eq!(push["emoji"], "👍");
        assert_eq!(push["userId"], "alice");
        assert_eq!(push["count"], 1);
    }

    // message.edited: the snapshot says, per viewer, whether they reacted.
    let (status, edited) = gw
        .patch(
            &format!("/conversations/c1/messages/{mid}"),
            &bob,
            json!({"text": "hello everyone"}),
        )
        .await;
    assert_eq!(status, 200, "{edited}");
    for (sub, i) in c1_subscribers {
        let push = clients[i].expect_push("message.edited", sub).await;
        let message = &push["message"];
        assert_eq!(message["id"], mid);
        assert_eq!(message["plaintext"], "hello everyone");
        assert!(message["editedAt"].is_number(), "{message}");
        assert_eq!(message["referencedMessage"]["id"], older_id);
        assert_eq!(message["reactions"][0]["emoji"], "👍");
        assert_eq!(message["reactions"][0]["count"], 1);
        assert_eq!(
            message["reactions"][0]["currentUserReacted"],
            json!(sub == "a1"),
            "{sub}: {message}"
        );
    }

    // reaction.removed
    let (status, body) = gw.delete(&path, &alice).await;
    assert_eq!(status, 204, "{body}");
    for (sub, i) in c1_subscribers {
        let push = clients[i].expect_push("reaction.removed", sub).await;
        assert_eq!(push["messageId"], mid);
        assert_eq!(push["emoji"], "👍");
        assert_eq!(push["userId"], "alice");
        assert_eq!(push["count"], 0);
    }

    // message.deleted
    let (status, body) = gw
        .delete(&format!("/conversations/c1/messages/{mid}"), &bob)
        .await;
    assert_eq!(status, 204, "{body}");
    for (sub, i) in c1_subscribers {
        let push = clients[i].expect_push("message.deleted", sub).await;
        assert_eq!(push["messageId"], mid);
        assert!(push.get("message").is_none(), "{push}");
    }

    // A message to c2 reaches c2's subscribers only: alice's second subscription and carol.
    // It comes after every c1 change, so anything meant for carol or dave from c1 would have
    // arrived before it.
    let sent = gw.send("c2", &carol, "over here").await;
    let push = a.expect_push("message.created", "a2").await;
    assert_eq!(push["message"]["id"], sent["id"]);
    let push = c.expect_push("message.created", "c").await;
    assert_eq!(push["message"]["id"], sent["id"]);
    for (client, who) in [(&mut b1, "bob 1"), (&mut b2, "bob 2"), (&mut d, "dave")] {
        if let Some(frame) = client.next_push(Duration::from_millis(500)).await {
            panic!("{who} got {frame}");
        }
    }
}

async fn changes_older_than_the_window_wait_for_load_more(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    gw.conversation("c1", &["alice"]).await;
    let sent = send_many(&gw, "c1", &alice, "m", 5).await;
    let mut client = WsClient::connect(&gw, &alice).await;
    // The window: the two newest (m5, m4).
    let reply = client.subscribe_ok("s", "c1", Some(2)).await;
    assert_eq!(ids(&reply), vec![sent[4].clone(), sent[3].clone()]);

    // Changes to m1 and m3 (older than the window) are not pushed; a change in the window is.
    // Changes are fanned out in order, so the in-window push arriving first proves that the
    // earlier ones were not pushed.
    let edit = |mid: &str, text: &str| {
        let path = format!("/conversations/c1/messages/{mid}");
        let body = json!({ "text": text });
        let gw = &gw;
        let alice = &alice;
        async move {
            let (status, body) = gw.patch(&path, alice, body).await;
            assert_eq!(status, 200, "{body}");
        }
    };
    edit(&sent[0], "m1 edited").await;
    let react = format!(
        "/conversations/c1/messages/{}/reactions/{}",
        sent[2],
        enc("🎉")
    );
    assert_eq!(gw.put_empty(&react, &alice).await.0, 204);
    edit(&sent[3], "m4 edited").await;
    let push = client.expect_push("message.edited", "s").await;
    assert_eq!(
        push["message"]["id"], sent[3],
        "only the in-window edit: {push}"
    );

    // A new message always enters the window.
    let new = gw.send("c1", &alice, "m6").await;
    let push = client.expect_push("message.created", "s").await;
    assert_eq!(push["message"]["id"], new["id"]);

    // loadMore reaches m2 and m3 (with m3's reaction): changes there are pushed from now on,
    // m1's still are not.
    let reply = client.load_more("s", Some(json!(2))).await;
    assert_eq!(ids(&reply), vec![sent[2].clone(), sent[1].clone()]);
    assert_eq!(reply["loadedAll"], false);
    assert_eq!(reply["messages"][0]["reactions"][0]["emoji"], "🎉");
    assert_eq!(
        reply["messages"][0]["reactions"][0]["currentUserReacted"],
        true
    );
    edit(&sent[0], "m1 edited again").await;
    assert_eq!(gw.delete(&react, &alice).await.0, 204);
    let push = client.expect_push("reaction.removed", "s").await;
    assert_eq!(push["messageId"], sent[2], "{push}");

    // The rest of the conversation: now m1 is in the window too.
    let reply = client.load_more("s", None).await;
    assert_eq!(ids(&reply), vec![sent[0].clone()]);
    assert_eq!(reply["loadedAll"], true);
    assert_eq!(reply["messages"][0]["plaintext"], "m1 edited again");
    edit(&sent[0], "m1 in the window").await;
    let push = client.expect_push("message.edited", "s").await;
    assert_eq!(push["message"]["id"], sent[0]);
    assert_eq!(push["message"]["plaintext"], "m1 in the window");
    let (status, _) = gw
        .delete(&format!("/conversations/c1/messages/{}", sent[0]), &alice)
        .await;
    assert_eq!(status, 204);
    let push = client.expect_push("message.deleted", "s").await;
    assert_eq!(push["messageId"], sent[0]);
}

async fn unsubscribe_ends_pushes(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    gw.conversation("c1", &["alice"]).await;
    let mut client = WsClient::connect_hello(&gw, &alice).await;
    client.subscribe_ok("s1", "c1", None).await;
    client.subscribe_ok("s2", "c1", None).await;
    let first = gw.send("c1", &alice, "to both").await;
    let mut got: Vec<String> = Vec::new();
    for _ in 0..2 {
        let push = client
            .next_push(natter_e2e::ws::PUSH_TIMEOUT)
            .await
            .expect("push");
        assert_eq!(push["type"], "message.created");
        assert_eq!(push["message"]["id"], first["id"]);
        got.push(
            push["subscriptionId"]
                .as_str()
                .expect("subscriptionId")
                .to_string(),
        );
    }
    got.sort();
    assert_eq!(got, vec!["s1".to_string(), "s2".to_string()]);

    let reply = client.unsubscribe("s1").await;
    assert_eq!(
        reply,
        json!({"type": "subscription", "subscriptionId": "s1", "state": "unsubscribed", "requestId": reply["requestId"]})
    );
    // Unsubscribing again (or something unknown) is a no-op.
    let reply = client.unsubscribe("s1").await;
    assert_eq!(reply["state"], "unsubscribed");
    let client_id = client.client_id.clone().expect("client id");
    let view = introspect(&gw, &client_id).await;
    assert_eq!(view["record"]["subscriptions"], json!({"s2": "c1"}));

    // Two more messages: only s2 hears of them (s1 would have come before the second's push).
    let second = gw.send("c1", &alice, "to s2").await;
    let push = client.expect_push("message.created", "s2").await;
    assert_eq!(push["message"]["id"], second["id"]);
    let third = gw.send("c1", &alice, "to s2 again").await;
    let push = client.expect_push("message.created", "s2").await;
    assert_eq!(push["message"]["id"], third["id"]);
    let reply = client.load_more("s1", None).await;
    assert_error_frame(&reply, "not_found");
}

async fn disconnect_removes_the_connection_and_its_subscriptions(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    gw.conversation("c1", &["alice"]).await;
    let mut leaving = WsClient::connect_hello(&gw, &alice).await;
    leaving.subscribe_ok("x", "c1", None).await;
    leaving.subscribe_ok("y", "c1", None).await;
    let id = leaving.client_id.clone().expect("client id");
    let mut staying = WsClient::connect(&gw, &alice).await;
    staying.subscribe_ok("z", "c1", None).await;
    assert_eq!(
        introspect(&gw, &id).await["record"]["subscriptions"],
        json!({"x": "c1", "y": "c1"})
    );

    leaving.close().await;
    let view = wait_for_connection(&gw, &id, "$disconnect", |v| {
        v["record"]["connected"] == false
    })
    .await;
    // Kept as a recently used client id (24 h), without subscriptions.
    assert_eq!(view["record"]["userId"], "alice");
    assert_eq!(view["record"]["subscriptions"], json!({}));
    let expires = view["record"]["expiresAt"].as_i64().expect("expiresAt");
    let day = natter_e2e::now_secs() as i64 + 24 * 3600;
    assert!(
        (day - 60..=day + 60).contains(&expires),
        "expiresAt {expires}"
    );
    assert_eq!(management(&gw, "GET", &id, None).await.0, 410);

    let sent = gw.send("c1", &alice, "after the disconnect").await;
    let push = staying.expect_push("message.created", "z").await;
    assert_eq!(push["message"]["id"], sent["id"]);
    let view = introspect(&gw, &id).await;
    assert!(view["socket"].is_null(), "no socket, no posts: {view}");
}

async fn a_dead_connection_is_removed_after_its_410(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    gw.conversation("c1", &["alice"]).await;
    let mut dying = WsClient::connect_hello(&gw, &alice).await;
    dying.subscribe_ok("d1", "c1", None).await;
    dying.subscribe_ok("d2", "c1", None).await;
    let id = dying.client_id.clone().expect("client id");
    let mut witness = WsClient::connect(&gw, &alice).await;
    witness.subscribe_ok("w", "c1", None).await;

    // The process dies: no close frame. The gateway has not run $disconnect for it, so the
    // connection and its subscriptions are still on record.
    dying.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let view = introspect(&gw, &id).await;
    assert_eq!(view["record"]["connected"], true, "{view}");
    assert_eq!(
        view["record"]["subscriptions"],
        json!({"d1": "c1", "d2": "c1"})
    );

    // The next push to it is answered 410; the fan-out removes the connection and both of its
    // subscriptions.
    let first = gw.send("c1", &alice, "anyone there?").await;
    let push = witness.expect_push("message.created", "w").await;
    assert_eq!(push["message"]["id"], first["id"]);
    let view = wait_for_connection(&gw, &id, "removal after the 410", |v| {
        v["record"]["connected"] == false
    })
    .await;
    assert_eq!(view["record"]["subscriptions"], json!({}), "{view}");
    let gone_posts = view["socket"]["postsGone"].as_u64().expect("postsGone");
    assert!((1..=2).contains(&gone_posts), "{view}");
    assert_eq!(view["socket"]["postsDelivered"], 0, "{view}");
    assert_eq!(management(&gw, "GET", &id, None).await.0, 410);
    assert_eq!(management(&gw, "POST", &id, Some("{}")).await.0, 410);

    // Nothing is posted to it any more.
    let second = gw.send("c1", &alice, "still there?").await;
    let push = witness.expect_push("message.created", "w").await;
    assert_eq!(push["message"]["id"], second["id"]);
    let view = introspect(&gw, &id).await;
    // One more from our own POST above, none from the fan-out.
    assert_eq!(
        view["socket"]["postsGone"].as_u64(),
        Some(gone_posts + 1),
        "{view}"
    );
}

async fn the_management_api_posts_describes_and_closes(store: Store) {
    let gw = Gateway::on(store);
    let mut client = WsClient::connect_hello(&gw, &user_token("alice")).await;
    let id = client.client_id.clone().expect("client id");
    let (status, body) = management(&gw, "POST", &id, Some(r#"{"type":"custom","n":1}"#)).await;
    assert_eq!(status, 200, "{body}");
    let frame = client
        .next_push(Duration::from_secs(10))
        .await
        .expect("frame");
    assert_eq!(frame, json!({"type": "custom", "n": 1}));
    assert_eq!(management(&gw, "GET", &id, None).await.0, 200);
    let (status, body) = management(&gw, "GET", "bm90LWEtY29ubmVjdGlvbg==", None).await;
    assert_eq!(status, 410);
    assert_eq!(
        serde_json::from_str::<Value>(&body).ok(),
        Some(json!({"message": "Gone"}))
    );
    // DELETE closes it (and $disconnect runs).
    assert_eq!(management(&gw, "DELETE", &id, None).await.0, 204);
    client.expect_closed().await;
    wait_for_connection(&gw, &id, "$disconnect", |v| {
        v["record"]["connected"] == false
    })
    .await;
    assert_eq!(management(&gw, "GET", &id, None).await.0, 410);
    assert_eq!(management(&gw, "DELETE", &id, None).await.0, 410);
}

// ---- API Gateway's limits, enforced by natter-local ----

/// A gateway on `store` whose vanished peers would stay listed for an hour: a connection that
/// is cleaned up within a test's timeouts was cleaned up at once, not after the grace.
fn gateway_without_grace(store: Store) -> GatewayOptions {
    GatewayOptions::new(store).env("NATTER_LOCAL_DEAD_PEER_SECS", "3600")
}

/// A JSON text frame (`{"type": "filler", "pad": "xxx…"}`) of exactly `bytes` bytes.
fn frame_of(bytes: usize) -> String {
    let empty = json!({"type": "filler", "pad": ""}).to_string();
    let frame = json!({"type": "filler", "pad": "x".repeat(bytes - empty.len())}).to_string();
    assert_eq!(frame.len(), bytes);
    frame
}

/// Asserts that the connection was cleaned up: `$disconnect` ran (its record says it is no
/// longer connected) and posts to it answer 410.
async fn assert_cleaned_up(gw: &Gateway, id: &str) {
    wait_for_connection(gw, id, "$disconnect", |v| v["record"]["connected"] == false).await;
    assert_eq!(management(gw, "POST", id, Some("{}")).await.0, 410);
    assert_eq!(management(gw, "GET", id, None).await.0, 410);
}

async fn a_client_message_over_128_kib_closes_with_1009(store: Store) {
    let gw = Gateway::start(gateway_without_grace(store));
    let alice = user_token("alice");

    // 128 KiB exactly is a message like any other (answered as an unknown action), and the
    // connection goes on.
    let mut client = WsClient::connect_hello(&gw, &alice).await;
    let id = client.client_id.clone().expect("client id");
    client.send_text(&frame_of(WS_MESSAGE_MAX)).await;
    client.hello().await;
    assert_eq!(introspect(&gw, &id).await["socket"]["open"], true);

    // One byte more closes it with 1009, and it is cleaned up at once.
    let started = Instant::now();
    client.send_text(&frame_of(WS_MESSAGE_MAX + 1)).await;
    assert_eq!(client.expect_closed().await, 1009);
    assert_cleaned_up(&gw, &id).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    // So does a message far larger than the gateway reads whole (2 MiB).
    let mut big = WsClient::connect_hello(&gw, &alice).await;
    let big_id = big.client_id.clone().expect("client id");
    big.send_text(&frame_of(2 * 1024 * 1024)).await;
    assert_eq!(big.expect_closed().await, 1009);
    assert_cleaned_up(&gw, &big_id).await;

    // As binary messages too.
    let mut binary = WsClient::connect_hello(&gw, &alice).await;
    let binary_id = binary.client_id.clone().expect("client id");
    binary.send_binary(vec![b' '; WS_MESSAGE_MAX + 1]).await;
    assert_eq!(binary.expect_closed().await, 1009);
    assert_cleaned_up(&gw, &binary_id).await;

    let stats = gw.stats().await;
    assert_eq!(stats["tooBigCloses"], 3, "{stats}");
    assert_eq!(stats["openConnections"], 0, "{stats}");
    // Refusing a client's message is no fault of natter's.
    assert_eq!(stats["oversizedFrames"], 0, "{stats}");
}

async fn posts_over_128_kib_are_refused_and_counted(store: Store) {
    let mut gw = Gateway::on(store);
    let mut client = WsClient::connect_hello(&gw, &user_token("alice")).await;
    let id = client.client_id.clone().expect("client id");

    // 128 KiB exactly is delivered.
    let fits = frame_of(WS_MESSAGE_MAX);
    let (status, body) = management(&gw, "POST", &id, Some(&fits)).await;
    assert_eq!(status, 200, "{body}");
    let frame = client
        .next_push(Duration::from_secs(10))
        .await
        .expect("the 128 KiB frame");
    assert_eq!(frame.to_string().len(), WS_MESSAGE_MAX);

    // One byte more is refused as API Gateway refuses it, counted, and not delivered.
    let url = format!("{}/@connections/{}", gw.base_url, enc(&id));
    let response = reqwest::Client::new()
        .post(&url)
        .body(frame_of(WS_MESSAGE_MAX + 1))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 413);
    assert_eq!(
        response.headers()["x-amzn-errortype"],
        "PayloadTooLargeException"
    );
    let body: Value = response.json().await.expect("JSON");
    assert!(body["message"].is_string(), "{body}");
    client.expect_silence(Duration::from_millis(300)).await;
    assert_eq!(introspect(&gw, &id).await["socket"]["open"], true);

    let stats = gw.stats().await;
    assert_eq!(stats["oversizedPosts"], 1, "{stats}");
    assert_eq!(stats["oversizedFrames"], 1, "{stats}");
    // The harness checks the count when the gateway stops: this one was on purpose.
    gw.expect_oversized_frames(1);
}

async fn idle_connections_are_closed_and_active_ones_stay(store: Store) {
    let idle_secs = 2;
    let gw = Gateway::start(gateway_without_grace(store).arg("--ws-idle-timeout", "2"));
    let alice = user_token("alice");
    let mut idle = WsClient::connect_hello(&gw, &alice).await;
    let idle_since = Instant::now();
    let idle_id = idle.client_id.clone().expect("client id");
    let mut active = WsClient::connect_hello(&gw, &alice).await;
    let active_id = active.client_id.clone().expect("client id");

    // The active client sends a frame every 300 ms for twice the idle timeout (what the frame
    // is does not matter: any client frame is activity); the idle one sends nothing.
    for _ in 0..14 {
        assert!(active.try_send_text(r#"{"action":"ping"}"#).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(idle.expect_closed().await, 1001);
    assert!(
        idle_since.elapsed() >= Duration::from_millis(idle_secs * 1000 - 500),
        "closed after {:?}",
        idle_since.elapsed()
    );
    assert_cleaned_up(&gw, &idle_id).await;
    let view = introspect(&gw, &active_id).await;
    assert_eq!(view["socket"]["open"], true, "{view}");
    assert_eq!(view["record"]["connected"], true, "{view}");

    // Once it stops, it is closed in turn.
    let quiet_since = Instant::now();
    assert_eq!(active.expect_closed().await, 1001);
    let quiet = quiet_since.elapsed();
    assert!(
        quiet >= Duration::from_millis(idle_secs * 1000 - 500) && quiet < Duration::from_secs(10),
        "closed after {quiet:?}"
    );
    assert_cleaned_up(&gw, &active_id).await;
    let stats = gw.stats().await;
    assert_eq!(stats["idleCloses"], 2, "{stats}");
    assert_eq!(stats["lifetimeCloses"], 0, "{stats}");
}

async fn the_lifetime_closes_even_an_active_connection(store: Store) {
    let gw = Gateway::start(
        gateway_without_grace(store)
            .arg("--ws-idle-timeout", "2")
            .arg("--ws-max-lifetime", "4"),
    );
    let mut client = WsClient::connect_hello(&gw, &user_token("alice")).await;
    let connected = Instant::now();
    let id = client.client_id.clone().expect("client id");

    // Active all along (a frame every 300 ms, well within the idle timeout), for at most 12 s.
    while client.closed.is_none() && connected.elapsed() < Duration::from_secs(12) {
        if !client.try_send_text(r#"{"action":"ping"}"#).await {
            break;
        }
        // Reads what arrives meanwhile (replies, and the close frame).
        let _ = client.next_push(Duration::from_millis(300)).await;
    }
    let lived = connected.elapsed();
    assert_eq!(client.expect_closed().await, 1001);
    assert!(
        lived >= Duration::from_millis(3500) && lived < Duration::from_secs(8),
        "closed after {lived:?}"
    );
    assert_cleaned_up(&gw, &id).await;
    let stats = gw.stats().await;
    assert_eq!(stats["lifetimeCloses"], 1, "{stats}");
    assert_eq!(stats["idleCloses"], 0, "{stats}");
}

async fn a_client_that_does_not_read_is_closed_with_1008(store: Store) {
    let gw = Gateway::start(gateway_without_grace(store));
    let mut client = WsClient::connect_hello(&gw, &user_token("alice")).await;
    let id = client.client_id.clone().expect("client id");

    // The client reads nothing from now on, while 100 KB frames are posted to it: once the
    // socket's buffers are full, they queue in the gateway, up to 1 MiB. At most 400 posts.
    let frame = frame_of(100 * 1000);
    let mut delivered = 0;
    let mut refused = None;
    for n in 0..400 {
        let (status, body) = management(&gw, "POST", &id, Some(&frame)).await;
        match status {
            200 => delivered += 1,
            410 => {
                refused = Some(n);
                break;
            }
            other => panic!("post {n}: {other} {body}"),
        }
        if n % 10 == 0 {
            let view = introspect(&gw, &id).await;
            let queued = view["socket"]["queuedBytes"].as_u64().expect("queuedBytes");
            assert!(queued <= 1024 * 1024, "{view}");
        }
    }
    assert!(
        refused.is_some(),
        "400 posts of 100 KB all queued for a client that never reads"
    );
    // It is cleaned up at once: posts answer 410 and `$disconnect` has run.
    assert_cleaned_up(&gw, &id).await;
    let stats = gw.stats().await;
    assert_eq!(stats["slowReaderCloses"], 1, "{stats}");

    // When it reads at last, it finds frames that had reached its socket, then the close frame
    // with 1008 (the frames still queued in the gateway were dropped).
    assert_eq!(client.expect_closed().await, 1008);
    let received = client.queued_count();
    eprintln!(
        "slow reader: {delivered} posts delivered, post {} refused, {received} frames received",
        refused.unwrap_or_default()
    );
    assert!(
        received > 0 && received <= delivered,
        "{received} frames received, {delivered} posts delivered"
    );
}
