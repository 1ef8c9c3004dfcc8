//! Conversation lists, read state and `conversation.updated`, end to end: real HTTP and
//! WebSocket clients through `natter-local`, on the embedded store and on DynamoDB (moto).
//!
//! A list's order follows new messages once the fan-out has seen them (the stream lags its
//! writes), so order checks wait for it, within a bound; the snapshot fields are current at
//! once.

use std::time::{Duration, Instant};

use natter_e2e::ws::WsClient;
use natter_e2e::{
    both_stores, enc, expect_error, expect_status, secret_key, user_token, Gateway, GatewayOptions,
    Store,
};
use serde_json::{json, Value};

both_stores!(
    read_state_is_exact_per_viewer: read_state_is_exact_per_viewer_memory, read_state_is_exact_per_viewer_dynamo;
    the_list_is_latest_activity_first_and_pages: the_list_is_latest_activity_first_and_pages_memory, the_list_is_latest_activity_first_and_pages_dynamo;
    expired_messages_leave_the_counts_and_the_order: expired_messages_leave_the_counts_and_the_order_memory, expired_messages_leave_the_counts_and_the_order_dynamo;
    list_subscriptions_hear_every_change: list_subscriptions_hear_every_change_memory, list_subscriptions_hear_every_change_dynamo;
    list_subscriptions_page_and_end: list_subscriptions_page_and_end_memory, list_subscriptions_page_and_end_dynamo;
);

/// How long the fan-out may take to move a conversation in a list.
const SETTLE: Duration = Duration::from_secs(10);

async fn conversation_of(gw: &Gateway, cid: &str, token: &str) -> Value {
    expect_status(
        gw.get(&format!("/conversations/{}", enc(cid)), token).await,
        200,
    )
}

async fn list(gw: &Gateway, user: &str, query: &str) -> Value {
    expect_status(
        gw.get(
            &format!("/users/{}/conversations{query}", enc(user)),
            &user_token(user),
        )
        .await,
        200,
    )
}

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_string())
        .collect()
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Waits until the user's first page lists exactly `expected`, in that order.
async fn until_listed(gw: &Gateway, user: &str, expected: &[&str]) -> Value {
    let deadline = Instant::now() + SETTLE;
    loop {
        let page = list(gw, user, "").await;
        if ids(&page) == names(expected) {
            return page;
        }
        assert!(
            Instant::now() < deadline,
            "{user}'s list is {:?}, expected {expected:?}",
            ids(&page)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn post(gw: &Gateway, path: &str, token: &str) -> (u16, Value) {
    gw.post(path, token, json!({})).await
}

async fn read_state_is_exact_per_viewer(store: Store) {
    let gw = Gateway::on(store);
    let (alice, bob) = (user_token("alice"), user_token("bob"));
    gw.conversation("c", &["alice", "bob"]).await;
    let fresh = conversation_of(&gw, "c", &alice).await;
    assert_eq!(fresh["access"], "ReadWrite");
    assert!(fresh["joinedAt"].as_i64().is_some(), "{fresh}");
    assert_eq!(fresh["lastMessage"], Value::Null);
    assert_eq!(
        (
            &fresh["unreadMessageCount"],
            &fresh["readUntil"],
            &fresh["everyoneReadUntil"],
            &fresh["isUnread"]
        ),
        (&json!(0), &Value::Null, &Value::Null, &json!(false))
    );

    // Bob's three messages are unread for Alice, not for Bob; Alice's own never are.
    for text in ["one", "two", "three"] {
        gw.send("c", &bob, text).await;
    }
    gw.send("c", &alice, "mine").await;
    let seen = conversation_of(&gw, "c", &alice).await;
    assert_eq!(
        (&seen["unreadMessageCount"], &seen["isUnread"]),
        (&json!(3), &json!(true))
    );
    assert_eq!(
        seen["lastMessage"]["content"][0]["children"][0], "mine",
        "{seen}"
    );
    let bobs = conversation_of(&gw, "c", &bob).await;
    assert_eq!(bobs["unreadMessageCount"], 1, "Alice's message: {bobs}");

    // Reading: Alice's count is 0; everyone has read only when Bob has too.
    expect_status(post(&gw, "/conversations/c/read", &alice).await, 204);
    let read = conversation_of(&gw, "c", &alice).await;
    assert_eq!(
        (&read["unreadMessageCount"], &read["isUnread"]),
        (&json!(0), &json!(false))
    );
    let alice_read = read["readUntil"].as_i64().expect("readUntil");
    assert_eq!(read["everyoneReadUntil"], Value::Null);
    tokio::time::sleep(Duration::from_millis(5)).await;
    expect_status(post(&gw, "/conversations/c/read", &bob).await, 204);
    let both = conversation_of(&gw, "c", &bob).await;
    assert_eq!(
        both["everyoneReadUntil"], alice_read,
        "the earlier of the two: {both}"
    );
    assert!(both["readUntil"].as_i64().expect("readUntil") > alice_read);

    // Marked unread: isUnread with nothing to count, until the next read.
    expect_status(post(&gw, "/conversations/c/unread", &alice).await, 204);
    let marked = conversation_of(&gw, "c", &alice).await;
    assert_eq!(
        (&marked["unreadMessageCount"], &marked["isUnread"]),
        (&json!(0), &json!(true))
    );
    gw.send("c", &bob, "four").await;
    let more = conversation_of(&gw, "c", &alice).await;
    assert_eq!(
        (&more["unreadMessageCount"], &more["isUnread"]),
        (&json!(1), &json!(true))
    );
    expect_status(post(&gw, "/conversations/c/read", &alice).await, 204);
    let again = conversation_of(&gw, "c", &alice).await;
    assert_eq!(
        (&again["unreadMessageCount"], &again["isUnread"]),
        (&json!(0), &json!(false))
    );

    // The secret key sees no viewer fields; strangers have nothing to mark.
    let secret = conversation_of(&gw, "c", &secret_key()).await;
    for field in [
        "access",
        "joinedAt",
        "unreadMessageCount",
        "readUntil",
        "isUnread",
    ] {
        assert_eq!(secret[field], Value::Null, "{field}: {secret}");
    }
    let earliest = again["readUntil"].as_i64().min(both["readUntil"].as_i64());
    assert_eq!(secret["everyoneReadUntil"].as_i64(), earliest, "{secret}");
    assert_eq!(secret["lastMessage"]["content"][0]["children"][0], "four");
    expect_error(
        &post(&gw, "/conversations/c/read", &user_token("eve")).await,
        404,
        "not_found",
    );
    expect_error(
        &post(&gw, "/conversations/c/unread", &user_token("eve")).await,
        404,
        "not_found",
    );
    expect_error(
        &post(&gw, "/conversations/nope/read", &alice).await,
        404,
        "not_found",
    );
    expect_error(
        &post(&gw, "/conversations/c/read", &secret_key()).await,
        403,
        "forbidden",
    );
}

async fn the_list_is_latest_activity_first_and_pages(store: Store) {
    let gw = Gateway::on(store);
    let (alice, bob) = (user_token("alice"), user_token("bob"));
    for cid in ["c1", "c2", "c3"] {
        gw.conversation(cid, &["alice", "bob"]).await;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    gw.conversation("bobs-own", &["bob"]).await;
    until_listed(&gw, "alice", &["c3", "c2", "c1"]).await;

    // A message moves its conversation to the front, for every participant.
    gw.send("c1", &bob, "hello").await;
    let page = until_listed(&gw, "alice", &["c1", "c3", "c2"]).await;
    assert_eq!(page["loadedAll"], true);
    assert_eq!(page["data"][0]["unreadMessageCount"], 1);
    assert_eq!(
        page["data"][0]["lastMessage"]["content"][0]["children"][0],
        "hello"
    );
    until_listed(&gw, "bob", &["c1", "bobs-own", "c3", "c2"]).await;

    // Pages of one, each after the last conversation of the one before.
    let first = list(&gw, "alice", "?limit=1").await;
    assert_eq!(
        (ids(&first), &first["loadedAll"]),
        (names(&["c1"]), &json!(false))
    );
    let second = list(&gw, "alice", "?limit=1&before=c1").await;
    assert_eq!(
        (ids(&second), &second["loadedAll"]),
        (names(&["c3"]), &json!(false))
    );
    let last = list(&gw, "alice", "?limit=5&before=c3").await;
    assert_eq!(
        (ids(&last), &last["loadedAll"]),
        (names(&["c2"]), &json!(true))
    );

    // Joining puts a conversation at the front; leaving takes it out.
    gw.conversation("c4", &["bob"]).await;
    gw.participant("c4", "alice", "Read").await;
    until_listed(&gw, "alice", &["c4", "c1", "c3", "c2"]).await;
    expect_status(
        gw.delete("/conversations/c3/participants/alice", &alice)
            .await,
        204,
    );
    until_listed(&gw, "alice", &["c4", "c1", "c2"]).await;

    // Who may list: that user, or the secret key (as that user sees it).
    let by_secret = expect_status(
        gw.get("/users/alice/conversations", &secret_key()).await,
        200,
    );
    assert_eq!(ids(&by_secret), names(&["c4", "c1", "c2"]));
    assert_eq!(by_secret["data"][0]["access"], "Read");
    expect_error(
        &gw.get("/users/alice/conversations", &bob).await,
        403,
        "forbidden",
    );
    expect_error(
        &gw.get("/users/alice/conversations?limit=0", &alice).await,
        400,
        "invalid_request",
    );
    expect_error(
        &gw.get("/users/alice/conversations?limit=101", &alice).await,
        400,
        "invalid_request",
    );
    expect_error(
        &gw.get("/users/alice/conversations?before=bobs-own", &alice)
            .await,
        404,
        "not_found",
    );
    let nobody = list(&gw, "nobody", "").await;
    assert_eq!(
        (ids(&nobody), &nobody["loadedAll"]),
        (Vec::<String>::new(), &json!(true))
    );
}

async fn expired_messages_leave_the_counts_and_the_order(store: Store) {
    let gw = Gateway::start(GatewayOptions::new(store).env("RETENTION_SECONDS", "3"));
    let bob = user_token("bob");
    gw.conversation("older", &["alice", "bob"]).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    gw.conversation("newer", &["alice", "bob"]).await;
    gw.send("older", &bob, "soon gone").await;
    let page = until_listed(&gw, "alice", &["older", "newer"]).await;
    assert_eq!(page["data"][0]["unreadMessageCount"], 1);
    // Once the message expires, nothing of it counts and the conversation goes back to where
    // Alice's joining puts it.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let page = until_listed(&gw, "alice", &["newer", "older"]).await;
    let older = &page["data"][1];
    assert_eq!(
        (
            &older["lastMessage"],
            &older["unreadMessageCount"],
            &older["isUnread"]
        ),
        (&Value::Null, &json!(0), &json!(false)),
        "{older}"
    );
}

/// The next push of `kind` for `subscription_id`, skipping others of the same subscription
/// (a change can give more than one `conversation.updated`).
async fn next_of(
    ws: &mut WsClient,
    kind: &str,
    subscription_id: &str,
    what: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + SETTLE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(push) = ws.next_push(left).await else {
            panic!("no {kind} push for {subscription_id} that matches within {SETTLE:?}");
        };
        if push["type"] == kind && push["subscriptionId"] == subscription_id && what(&push) {
            return push;
        }
    }
}

async fn list_subscriptions_hear_every_change(store: Store) {
    let gw = Gateway::on(store);
    let (alice, bob) = (user_token("alice"), user_token("bob"));
    gw.conversation("c1", &["alice", "bob"]).await;
    gw.conversation("c2", &["alice", "bob"]).await;
    until_listed(&gw, "alice", &["c2", "c1"]).await;
    let mut ws = WsClient::connect(&gw, &alice).await;
    let reply = ws
        .request(json!({"action": "subscribeConversations", "subscriptionId": "l"}))
        .await;
    assert_eq!(
        (&reply["type"], &reply["state"]),
        (&json!("conversations"), &json!("active")),
        "{reply}"
    );
    let listed: Vec<&str> = reply["conversations"]
        .as_array()
        .expect("conversations")
        .iter()
        .map(|c| c["id"].as_str().expect("id"))
        .collect();
    assert_eq!(listed, ["c2", "c1"]);
    assert_eq!(reply["loadedAll"], true);

    // A message in the older conversation: pushed with Alice's view of it.
    let sent = gw.send("c1", &bob, "news").await;
    let push = next_of(&mut ws, "conversation.updated", "l", |p| {
        p["conversation"]["id"] == "c1"
    })
    .await;
    let c1 = &push["conversation"];
    assert_eq!(c1["lastMessage"]["id"], sent["id"], "{push}");
    assert_eq!(
        (&c1["unreadMessageCount"], &c1["isUnread"]),
        (&json!(1), &json!(true))
    );
    // Reading it: pushed to the reader, count 0.
    expect_status(post(&gw, "/conversations/c1/read", &alice).await, 204);
    let push = next_of(&mut ws, "conversation.updated", "l", |p| {
        p["conversation"]["id"] == "c1" && p["conversation"]["unreadMessageCount"] == 0
    })
    .await;
    assert!(
        push["conversation"]["readUntil"].as_i64().is_some(),
        "{push}"
    );
    // Marked unread.
    expect_status(post(&gw, "/conversations/c1/unread", &alice).await, 204);
    next_of(&mut ws, "conversation.updated", "l", |p| {
        p["conversation"]["isUnread"] == true
    })
    .await;
    // A subject changed by someone else.
    expect_status(
        gw.put("/conversations/c2", &bob, json!({"subject": "Lunch"}))
            .await,
        200,
    );
    next_of(&mut ws, "conversation.updated", "l", |p| {
        p["conversation"]["subject"] == "Lunch"
    })
    .await;
    // A conversation Alice is added to enters the list.
    gw.conversation("c3", &["bob"]).await;
    gw.participant("c3", "alice", "ReadWrite").await;
    next_of(&mut ws, "conversation.updated", "l", |p| {
        p["conversation"]["id"] == "c3" && p["conversation"]["access"] == "ReadWrite"
    })
    .await;
    // Bob reading changes what Alice sees (everyoneReadUntil) once both have read.
    expect_status(post(&gw, "/conversations/c1/read", &bob).await, 204);
    next_of(&mut ws, "conversation.updated", "l", |p| {
        p["conversation"]["id"] == "c1" && p["conversation"]["everyoneReadUntil"].is_i64()
    })
    .await;
    // Leaving: the conversation is no longer Alice's.
    expect_status(
        gw.delete("/conversations/c2/participants/alice", &alice)
            .await,
        204,
    );
    next_of(&mut ws, "conversation.removed", "l", |p| {
        p["conversationId"] == "c2"
    })
    .await;
    // Bob's subscription never hears of Alice's reads when nothing Bob sees changed.
    let mut bob_ws = WsClient::connect(&gw, &bob).await;
    let reply = bob_ws
        .request(json!({"action": "subscribeConversations", "subscriptionId": "b", "limit": 10}))
        .await;
    assert_eq!(reply["state"], "active", "{reply}");
    expect_status(post(&gw, "/conversations/c3/read", &alice).await, 204);
    gw.send("c3", &alice, "for bob").await;
    let push = next_of(&mut bob_ws, "conversation.updated", "b", |_| true).await;
    assert_eq!(
        (
            &push["conversation"]["id"],
            &push["conversation"]["lastMessage"]["content"][0]["children"][0]
        ),
        (&json!("c3"), &json!("for bob")),
        "Alice's read of c3 (Bob has never read it) was not news to Bob: {push}"
    );
}

async fn list_subscriptions_page_and_end(store: Store) {
    let gw = Gateway::on(store);
    let (alice, bob) = (user_token("alice"), user_token("bob"));
    for i in 0..5 {
        gw.conversation(&format!("c{i}"), &["alice", "bob"]).await;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    until_listed(&gw, "alice", &["c4", "c3", "c2", "c1", "c0"]).await;
    let mut ws = WsClient::connect(&gw, &alice).await;
    let first = ws
        .request(json!({"action": "subscribeConversations", "subscriptionId": "l", "limit": 2}))
        .await;
    let listed = |reply: &Value| -> Vec<String> {
        reply["conversations"]
            .as_array()
            .expect("conversations")
            .iter()
            .map(|c| c["id"].as_str().expect("id").to_string())
            .collect()
    };
    assert_eq!(
        (listed(&first), &first["loadedAll"]),
        (names(&["c4", "c3"]), &json!(false))
    );

    let more = ws
        .request(json!({"action": "loadMore", "subscriptionId": "l", "count": 2}))
        .await;
    assert_eq!(more["type"], "conversations", "{more}");
    assert_eq!(
        (listed(&more), &more["loadedAll"]),
        (names(&["c2", "c1"]), &json!(false))
    );
    let rest = ws
        .request(json!({"action": "loadMore", "subscriptionId": "l"}))
        .await;
    assert_eq!(
        (listed(&rest), &rest["loadedAll"]),
        (names(&["c0"]), &json!(true))
    );
    // A message to the oldest conversation is pushed (the window is the whole list now).
    gw.send("c0", &bob, "up").await;
    next_of(&mut ws, "conversation.updated", "l", |p| {
        p["conversation"]["id"] == "c0" && p["conversation"]["unreadMessageCount"] == 1
    })
    .await;

    // Bad counts are errors; the subscription stays.
    let bad = ws
        .request(json!({"action": "loadMore", "subscriptionId": "l", "count": 0}))
        .await;
    assert_eq!(bad["type"], "error", "{bad}");
    // Unsubscribed: no more pushes.
    let gone = ws.unsubscribe("l").await;
    assert_eq!(
        (&gone["type"], &gone["state"]),
        (&json!("conversations"), &json!("unsubscribed")),
        "{gone}"
    );
    gw.send("c1", &bob, "unheard").await;
    let quiet = ws.next_push(Duration::from_millis(1500)).await;
    assert!(quiet.is_none(), "pushed after unsubscribe: {quiet:?}");
    // A bad limit is a subscription error.
    let bad = ws
        .request(json!({"action": "subscribeConversations", "subscriptionId": "m", "limit": 101}))
        .await;
    assert_eq!(
        (&bad["type"], &bad["state"]),
        (&json!("conversations"), &json!("error")),
        "{bad}"
    );
}
