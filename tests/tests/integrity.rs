//! Integrity end to end (issue 11): limits that hold under concurrency, one creator per
//! conversation, keys that fit DynamoDB for the widest ids, bodies that are objects without
//! duplicated keys, inbox numbers that come back exactly, strict query parameters, and a
//! `loadMore` that notices a removed participant. On the in-memory store and on DynamoDB (moto).

use natter_e2e::ws::WsClient;
use natter_e2e::{
    both_stores, enc, expect_error, expect_status, now_ms, secret_key, user_token, Gateway, Store,
};
use serde_json::{json, Value};

fn conv(cid: &str) -> String {
    format!("/conversations/{}", enc(cid))
}

fn msgs(cid: &str) -> String {
    format!("/conversations/{}/messages", enc(cid))
}

fn msg(cid: &str, mid: &str) -> String {
    format!("/conversations/{}/messages/{}", enc(cid), enc(mid))
}

fn id_of(message: &Value) -> String {
    message["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {message}"))
        .to_string()
}

both_stores! {
    concurrent_custom_patches_keep_the_key_limit: concurrent_custom_patches_keep_the_key_limit_memory, concurrent_custom_patches_keep_the_key_limit_dynamo;
    concurrent_creates_have_one_creator: concurrent_creates_have_one_creator_memory, concurrent_creates_have_one_creator_dynamo;
    the_widest_ids_work_everywhere: the_widest_ids_work_everywhere_memory, the_widest_ids_work_everywhere_dynamo;
    bodies_must_be_objects: bodies_must_be_objects_memory, bodies_must_be_objects_dynamo;
    duplicate_keys_are_refused: duplicate_keys_are_refused_memory, duplicate_keys_are_refused_dynamo;
    inbox_numbers_come_back_exactly: inbox_numbers_come_back_exactly_memory, inbox_numbers_come_back_exactly_dynamo;
    query_parameters_are_plain_decimals_given_once: query_parameters_are_plain_decimals_given_once_memory, query_parameters_are_plain_decimals_given_once_dynamo;
    load_more_of_a_removed_participant_ends_the_subscription: load_more_of_a_removed_participant_ends_the_subscription_memory, load_more_of_a_removed_participant_ends_the_subscription_dynamo;
}

/// 50 PATCHes at once, each adding two new `custom` keys to one message: the 50-key limit
/// holds, the refused ones answer as a single oversized patch does (400 `invalid_request`).
async fn concurrent_custom_patches_keep_the_key_limit(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    gw.conversation("c", &["alice"]).await;
    let sent = gw.send("c", &alice, "hello").await;
    let mid = id_of(&sent);
    let path = msg("c", &mid);
    let patches = (0..50).map(|i| {
        let body = json!({"custom": {format!("a{i}"): "x", format!("b{i}"): "y"}});
        let (gw, alice, path) = (&gw, &alice, &path);
        async move { gw.patch(path, alice, body).await }
    });
    let answers = futures::future::join_all(patches).await;
    let ok = answers.iter().filter(|(status, _)| *status == 200).count();
    for answer in answers.iter().filter(|(status, _)| *status != 200) {
        expect_error(answer, 400, "invalid_request");
    }
    let stored = expect_status(gw.get(&path, &alice).await, 200);
    let keys = stored["custom"].as_object().expect("custom").len();
    assert!(keys <= 50, "{keys} custom keys stored: {stored}");
    assert_eq!(
        keys,
        2 * ok,
        "{ok} patches answered 200 but {keys} keys stored"
    );
    assert_eq!(ok, 25, "each patch adds two keys: 25 fit");
}

/// 20 users PUT one new conversation at once: exactly one creates it and becomes its
/// `ReadWrite` participant; the others find it exists and, not being participants, get 404.
async fn concurrent_creates_have_one_creator(store: Store) {
    let gw = Gateway::on(store);
    let tokens: Vec<String> = (0..20).map(|i| user_token(&format!("u{i}"))).collect();
    let puts = tokens.iter().map(|token| {
        let gw = &gw;
        async move {
            gw.put(&conv("new"), token, json!({"subject": "race"}))
                .await
        }
    });
    let answers = futures::future::join_all(puts).await;
    let ok = answers.iter().filter(|(status, _)| *status == 200).count();
    for answer in answers.iter().filter(|(status, _)| *status != 200) {
        expect_error(answer, 404, "not_found");
    }
    assert_eq!(ok, 1, "{answers:?}");
    let seen = expect_status(gw.get(&conv("new"), &secret_key()).await, 200);
    let participants = seen["participants"].as_object().expect("participants");
    assert_eq!(participants.len(), 1, "{seen}");
    let (creator, access) = participants.iter().next().expect("one participant");
    assert_eq!(access["access"], "ReadWrite");
    let winner = answers
        .iter()
        .find(|(status, _)| *status == 200)
        .map(|(_, body)| body.clone())
        .expect("one 200");
    assert_eq!(winner["participants"].as_object().map(|p| p.len()), Some(1));
    assert!(winner["participants"].get(creator).is_some(), "{winner}");
}

/// A four-byte character: 128 of them are the widest id (128 characters, 512 bytes).
const WIDE: &str = "😀";

/// The widest valid ids everywhere at once: every key that holds them fits DynamoDB's limits
/// (an oversized key would be a 500 on DynamoDB).
async fn the_widest_ids_work_everywhere(store: Store) {
    let gw = Gateway::on(store);
    let (uid, other, cid, key) = (
        WIDE.repeat(128),
        format!("{}{}", WIDE.repeat(127), "😃"),
        format!("{}{}", WIDE.repeat(127), "😎"),
        format!("{}{}", WIDE.repeat(127), "🙂"),
    );
    assert_eq!((uid.chars().count(), uid.len()), (128, 512));
    let token = user_token(&uid);
    let other_token = user_token(&other);
    expect_status(
        gw.put(
            &format!("/users/{}", enc(&uid)),
            &token,
            json!({"name": "wide", "custom": {"k": "v"}}),
        )
        .await,
        200,
    );
    let created = expect_status(
        gw.put(
            &conv(&cid),
            &token,
            json!({"subject": "wide", "participants": [other.clone()]}),
        )
        .await,
        200,
    );
    assert!(created["participants"].get(&uid).is_some(), "{created}");
    expect_status(
        gw.put(
            &format!("/conversations/{}/participants/{}", enc(&cid), enc(&other)),
            &token,
            json!({"access": "Read"}),
        )
        .await,
        204,
    );
    // A message with the widest idempotency key, sent twice: one message.
    let body = json!({"text": "hi", "idempotencyKey": key, "custom": {"k": "v"}});
    let first = expect_status(gw.post(&msgs(&cid), &token, body.clone()).await, 201);
    let again = gw.post(&msgs(&cid), &token, body).await;
    assert!(again.0 == 200 || again.0 == 201, "{again:?}");
    assert_eq!(again.1["id"], first["id"]);
    // The secret key sending as the widest sender with the widest key.
    let secret = expect_status(
        gw.post(
            &msgs(&cid),
            &secret_key(),
            json!({"text": "as", "sender": uid, "idempotencyKey": format!("{}{}", WIDE.repeat(127), "🙃")}),
        )
        .await,
        201,
    );
    let mid = id_of(&first);
    // The longest custom emoji, and a Unicode one.
    let emoji = format!(":{}:", "e".repeat(48));
    for emoji in [emoji.as_str(), "👍"] {
        let path = format!("{}/reactions/{}", msg(&cid, &mid), enc(emoji));
        expect_status(gw.put_empty(&path, &token).await, 204);
    }
    expect_status(
        gw.patch(
            &msg(&cid, &mid),
            &token,
            json!({"custom": {"k": null, "j": "w"}}),
        )
        .await,
        200,
    );
    let listed = expect_status(
        gw.get(
            &format!("{}?limit=10&before={}", msgs(&cid), enc(&id_of(&secret))),
            &token,
        )
        .await,
        200,
    );
    assert_eq!(
        listed["data"][0]["reactions"].as_array().map(Vec::len),
        Some(2)
    );

    // WebSocket: a subscription with the widest id; inbox messages to the widest user, by user
    // id and by client id.
    let mut client = WsClient::connect_hello(&gw, &token).await;
    let sub = format!("{}{}", WIDE.repeat(127), "🤖");
    client.subscribe_ok(&sub, &cid, Some(5)).await;
    let more = client.load_more(&sub, None).await;
    assert_eq!(more["state"], "active", "{more}");
    let client_id = client.client_id.clone().expect("client id");
    let sent = expect_status(
        gw.post(
            "/inbox",
            &other_token,
            json!({"message": "hi", "recipients": [uid, client_id]}),
        )
        .await,
        201,
    );
    assert_eq!(
        sent["messageIds"].as_array().map(Vec::len),
        Some(1),
        "{sent}"
    );
    let inbox = expect_status(gw.get("/inbox?limit=10", &token).await, 200);
    assert_eq!(inbox["data"].as_array().map(Vec::len), Some(1), "{inbox}");
    let inbox_id = inbox["data"][0]["messageId"]
        .as_str()
        .expect("id")
        .to_string();
    expect_status(
        gw.delete(&format!("/inbox/{}", enc(&inbox_id)), &token)
            .await,
        204,
    );
    expect_status(gw.delete(&msg(&cid, &mid), &token).await, 204);
    client.unsubscribe(&sub).await;
    client.close().await;
}

/// A body that arrives as a JSON array where the contract says object is 400 and writes nothing
/// (serde would read a struct from an array, field by field in order).
async fn bodies_must_be_objects(store: Store) {
    let gw = Gateway::on(store);
    let secret = secret_key();
    let alice = user_token("alice");
    // Users.
    let answer = gw
        .request(
            "PUT",
            "/users/u1",
            Some(&secret),
            Some(&json!(["Ann", null, null, {"k": "v"}])),
        )
        .await;
    expect_error(&answer, 400, "invalid_request");
    expect_error(&gw.get("/users/u1", &secret).await, 404, "not_found");
    // Conversations.
    let answer = gw
        .request(
            "PUT",
            &conv("x"),
            Some(&secret),
            Some(&json!(["subject", null, {"k": "v"}, ["bob"]])),
        )
        .await;
    expect_error(&answer, 400, "invalid_request");
    expect_error(&gw.get(&conv("x"), &secret).await, 404, "not_found");
    let answer = gw
        .request("PUT", &conv("y"), Some(&alice), Some(&json!(["subject"])))
        .await;
    expect_error(&answer, 400, "invalid_request");
    expect_error(&gw.get(&conv("y"), &secret).await, 404, "not_found");
    // Participants.
    gw.conversation("c", &["alice"]).await;
    let answer = gw
        .request(
            "PUT",
            "/conversations/c/participants/bob",
            Some(&secret),
            Some(&json!(["Read"])),
        )
        .await;
    expect_error(&answer, 400, "invalid_request");
    let seen = expect_status(gw.get(&conv("c"), &secret).await, 200);
    assert!(seen["participants"].get("bob").is_none(), "{seen}");
    // Messages: send, edit, import; and content blocks and nodes inside an object body.
    let answer = gw
        .request("POST", &msgs("c"), Some(&alice), Some(&json!(["hi"])))
        .await;
    expect_error(&answer, 400, "invalid_request");
    let answer = gw
        .request(
            "POST",
            &msgs("c"),
            Some(&alice),
            Some(&json!({"content": [["text", ["hi"]]]})),
        )
        .await;
    expect_error(&answer, 400, "invalid_request");
    let answer = gw
        .request(
            "POST",
            &msgs("c"),
            Some(&alice),
            Some(&json!({"content": [{"type": "text", "children": [["bold", ["hi"]]]}]})),
        )
        .await;
    expect_error(&answer, 400, "invalid_request");
    assert!(gw.message_ids("c", &alice).await.is_empty());
    let sent = gw.send("c", &alice, "original").await;
    let mid = id_of(&sent);
    let answer = gw
        .request(
            "PATCH",
            &msg("c", &mid),
            Some(&alice),
            Some(&json!(["edited"])),
        )
        .await;
    expect_error(&answer, 400, "invalid_request");
    let stored = expect_status(gw.get(&msg("c", &mid), &alice).await, 200);
    assert_eq!(stored["plaintext"], "original");
    let answer = gw
        .request(
            "POST",
            "/import/conversations/c/messages",
            Some(&secret),
            Some(&json!([["alice", "imported", null, now_ms() - 1000, null]])),
        )
        .await;
    expect_error(&answer, 400, "invalid_request");
    assert_eq!(gw.message_ids("c", &alice).await, vec![mid]);
    // The inbox.
    let answer = gw
        .request("POST", "/inbox", Some(&alice), Some(&json!(["hi", "bob"])))
        .await;
    expect_error(&answer, 400, "invalid_request");
    let bob_inbox = expect_status(gw.get("/inbox", &user_token("bob")).await, 200);
    assert_eq!(bob_inbox["data"], json!([]));
}

/// A JSON object with a key twice is 400 anywhere in a body, and over WebSocket an error frame;
/// nothing is written.
async fn duplicate_keys_are_refused(store: Store) {
    let gw = Gateway::on(store);
    let secret = secret_key();
    let alice = user_token("alice");
    let send = |method: &'static str, path: String, token: String, body: &'static str| {
        let gw = &gw;
        async move {
            let auth = format!("Bearer {token}");
            let headers = [
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ];
            gw.send_raw(method, &path, &headers, body.as_bytes().to_vec())
                .await
        }
    };
    let answer = send(
        "PUT",
        "/users/u1".into(),
        secret.clone(),
        r#"{"custom": {"a": "1", "a": "2"}}"#,
    )
    .await;
    expect_error(&answer, 400, "invalid_request");
    expect_error(&gw.get("/users/u1", &secret).await, 404, "not_found");
    let answer = send(
        "PUT",
        "/users/u1".into(),
        secret.clone(),
        r#"{"name": "a", "name": "b"}"#,
    )
    .await;
    expect_error(&answer, 400, "invalid_request");
    let answer = send(
        "PUT",
        conv("x"),
        secret.clone(),
        r#"{"custom": {"k": "1", "k": "1"}}"#,
    )
    .await;
    expect_error(&answer, 400, "invalid_request");
    expect_error(&gw.get(&conv("x"), &secret).await, 404, "not_found");
    gw.conversation("c", &["alice", "bob"]).await;
    let answer = send(
        "POST",
        msgs("c"),
        alice.clone(),
        r#"{"text": "hi", "custom": {"k": "1", "k": "2"}}"#,
    )
    .await;
    expect_error(&answer, 400, "invalid_request");
    let answer = send(
        "POST",
        msgs("c"),
        alice.clone(),
        r#"{"content": [{"type": "text", "children": ["a"], "children": ["b"]}]}"#,
    )
    .await;
    expect_error(&answer, 400, "invalid_request");
    assert!(gw.message_ids("c", &alice).await.is_empty());
    let mid = id_of(&gw.send("c", &alice, "hi").await);
    let answer = send(
        "PATCH",
        msg("c", &mid),
        alice.clone(),
        r#"{"custom": {"k": "1", "k": null}}"#,
    )
    .await;
    expect_error(&answer, 400, "invalid_request");
    assert_eq!(
        expect_status(gw.get(&msg("c", &mid), &alice).await, 200)["custom"],
        json!({})
    );
    // Inbox messages: the message itself, nested objects in it, and the envelope.
    for body in [
        r#"{"message": {"x": 1, "x": 2}, "recipients": "bob"}"#,
        r#"{"message": [{"deep": {"y": true, "y": false}}], "recipients": "bob"}"#,
        r#"{"message": 1, "recipients": "bob", "recipients": "carol"}"#,
    ] {
        let answer = send("POST", "/inbox".into(), alice.clone(), body).await;
        expect_error(&answer, 400, "invalid_request");
    }
    for who in ["bob", "carol"] {
        let inbox = expect_status(gw.get("/inbox", &user_token(who)).await, 200);
        assert_eq!(inbox["data"], json!([]), "{who}");
    }
    // A WebSocket frame.
    let mut client = WsClient::connect(&gw, &alice).await;
    let reply = client.request(json!({"action": "ping"})).await;
    assert_eq!(reply["type"], "pong");
    client
        .send_text(r#"{"action": "subscribe", "subscriptionId": "s", "conversationId": "c", "conversationId": "d"}"#)
        .await;
    let reply = client
        .next_push(std::time::Duration::from_secs(10))
        .await
        .expect("a reply");
    assert!(
        reply["type"] == "error" || (reply["type"] == "subscription" && reply["state"] == "error"),
        "{reply}"
    );
    assert_eq!(reply["error"]["code"], "invalid_request", "{reply}");
    client.close().await;
}

/// Numbers in inbox messages come back exactly as sent: over HTTP, in `hello`, `inboxMore` and
/// `inbox.message`.
async fn inbox_numbers_come_back_exactly(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    let bob = user_token("bob");
    let numbers = [
        "12345678901234567890123",
        "-98765432109876543210",
        "1.00000000000000000000001",
        "0.1",
        "1.0",
        "18446744073709551616",
    ];
    let message = format!(
        "{{\"n\":[{}],\"s\":\"12345678901234567890123\"}}",
        numbers.join(",")
    );
    let mut live = WsClient::connect_hello(&gw, &bob).await;
    live.record_raw = true;
    let auth = format!("Bearer {alice}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let body = format!("{{\"message\": {message}, \"recipients\": \"bob\"}}");
    let (status, answer) = gw
        .send_raw_text("POST", "/inbox", &headers, body.into_bytes())
        .await;
    assert_eq!(status, 201, "{answer}");
    let has_all = |text: &str| {
        numbers
            .iter()
            .all(|n| text.contains(&format!("{n},")) || text.contains(&format!("{n}]")))
    };
    // The push.
    let push = live
        .next_push(natter_e2e::ws::PUSH_TIMEOUT)
        .await
        .expect("inbox.message push");
    assert_eq!(push["type"], "inbox.message", "{push}");
    let raw = live.raw.last().cloned().unwrap_or_default();
    assert!(raw.contains(&message), "push: {raw}");
    // GET /inbox.
    let bob_auth = format!("Bearer {bob}");
    let (status, text) = gw
        .send_raw_text(
            "GET",
            "/inbox",
            &[("authorization", bob_auth.as_str())],
            Vec::new(),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains(&message), "GET /inbox: {text}");
    assert!(has_all(&text));
    // hello, and inboxMore after a first message.
    let first = expect_status(
        gw.post(
            "/inbox",
            &alice,
            json!({"message": "first", "recipients": "carol"}),
        )
        .await,
        201,
    );
    let _ = first;
    let (status, _) = gw
        .send_raw_text(
            "POST",
            "/inbox",
            &headers,
            format!("{{\"message\": {message}, \"recipients\": \"carol\"}}").into_bytes(),
        )
        .await;
    assert_eq!(status, 201);
    let carol = user_token("carol");
    let mut client = WsClient::connect(&gw, &carol).await;
    client.record_raw = true;
    let hello = client.hello().await;
    assert_eq!(
        hello["messages"].as_array().map(Vec::len),
        Some(2),
        "{hello}"
    );
    let raw = client.raw.last().cloned().unwrap_or_default();
    assert!(raw.contains(&message), "hello: {raw}");
    let after = hello["messages"][0]["messageId"]
        .as_str()
        .expect("id")
        .to_string();
    let more = client
        .request(json!({"action": "inboxMore", "after": after}))
        .await;
    assert_eq!(more["messages"].as_array().map(Vec::len), Some(1), "{more}");
    let raw = client.raw.last().cloned().unwrap_or_default();
    assert!(raw.contains(&message), "inboxMore: {raw}");
    client.close().await;
    live.close().await;
}

/// `limit` (and `before`, `after`) once each, `limit` in plain decimal digits: anything else is
/// 400, on the message list and on the inbox.
async fn query_parameters_are_plain_decimals_given_once(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    gw.conversation("c", &["alice"]).await;
    let mid = id_of(&gw.send("c", &alice, "hi").await);
    for query in [
        "limit=%2B5",
        "limit=+5",
        "limit=-5",
        "limit=1&limit=2",
        "limit=5&limit=5",
        "limit=",
        "limit=5%20",
        "limit=%205",
        "limit=0x5",
        "limit=5.0",
        "limit=%EF%BC%95",
        "limit=1,2",
        "before=a&before=b",
    ] {
        let answer = gw.get(&format!("{}?{query}", msgs("c")), &alice).await;
        expect_error(&answer, 400, "invalid_request");
        let query = query.replace("before", "after");
        let answer = gw.get(&format!("/inbox?{query}"), &alice).await;
        expect_error(&answer, 400, "invalid_request");
    }
    let page = expect_status(
        gw.get(&format!("{}?limit=05", msgs("c")), &alice).await,
        200,
    );
    assert_eq!(page["data"][0]["id"], json!(mid));
    let page = expect_status(
        gw.get(
            &format!("{}?limit=5&before={}", msgs("c"), enc(&mid)),
            &alice,
        )
        .await,
        200,
    );
    assert_eq!(page["data"], json!([]));
    expect_status(gw.get("/inbox?limit=100", &alice).await, 200);
    // An id with a comma is one value, not two.
    let answer = gw.get(&format!("{}?before=a%2Cb", msgs("c")), &alice).await;
    expect_status(answer, 200);
}

/// A participant removed while subscribed, whose window already holds the whole conversation,
/// asks for more: the subscription ends with `state: "error"` (`not_found`).
async fn load_more_of_a_removed_participant_ends_the_subscription(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    gw.conversation("c", &["alice"]).await;
    gw.send("c", &alice, "only").await;
    let mut client = WsClient::connect(&gw, &alice).await;
    let first = client.subscribe_ok("s", "c", Some(30)).await;
    assert_eq!(first["loadedAll"], true, "{first}");
    expect_status(
        gw.delete("/conversations/c/participants/alice", &secret_key())
            .await,
        204,
    );
    let reply = client.load_more("s", None).await;
    assert_eq!(
        (reply["type"].as_str(), reply["state"].as_str()),
        (Some("subscription"), Some("error")),
        "{reply}"
    );
    assert_eq!(reply["error"]["code"], "not_found", "{reply}");
    // The subscription is gone: another loadMore names an unknown subscription.
    let again = client.load_more("s", None).await;
    assert_eq!(again["type"], "error", "{again}");
    client.close().await;
}
