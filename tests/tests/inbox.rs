//! User inbox messages end to end: real HTTP and WebSocket clients through `natter-local`, with
//! the embedded store and with DynamoDB on moto.

use std::time::Duration;

use natter_e2e::ws::WsClient;
use natter_e2e::{
    both_stores, enc, expect_error, expect_status, secret_key, user_token, Gateway, GatewayOptions,
    Store,
};
use serde_json::{json, Value};

both_stores!(
    sent_by_user_id_is_stored_listed_and_pushed_to_every_client: sent_by_user_id_is_stored_listed_and_pushed_to_every_client_memory, sent_by_user_id_is_stored_listed_and_pushed_to_every_client_dynamo;
    client_ids_resolve_to_their_user_once_per_user: client_ids_resolve_to_their_user_once_per_user_memory, client_ids_resolve_to_their_user_once_per_user_dynamo;
    hello_replays_the_inbox_oldest_first: hello_replays_the_inbox_oldest_first_memory, hello_replays_the_inbox_oldest_first_dynamo;
    delete_one_and_delete_all: delete_one_and_delete_all_memory, delete_one_and_delete_all_dynamo;
    bad_input_stores_nothing: bad_input_stores_nothing_memory, bad_input_stores_nothing_dynamo;
    messages_expire: messages_expire_memory, messages_expire_dynamo;
);

const PUSH_WAIT: Duration = Duration::from_secs(10);

/// The caller's inbox as `GET /v1/inbox` lists it.
async fn inbox(gw: &Gateway, token: &str) -> Vec<Value> {
    let list = expect_status(gw.get("/inbox", token).await, 200);
    list["data"].as_array().expect("data is a list").clone()
}

async fn send(gw: &Gateway, token: &str, message: Value, recipients: Value) -> Vec<String> {
    let body = json!({"message": message, "recipients": recipients});
    let answer = expect_status(gw.post("/inbox", token, body).await, 201);
    answer["messageIds"]
        .as_array()
        .expect("messageIds")
        .iter()
        .map(|id| id.as_str().expect("id").to_string())
        .collect()
}

/// The next frame of a given type, skipping none: inbox pushes are the only traffic here.
async fn expect_inbox_push(client: &mut WsClient, kind: &str) -> Value {
    let push = client
        .next_push(PUSH_WAIT)
        .await
        .unwrap_or_else(|| panic!("expected an {kind} push, got nothing"));
    assert_eq!(push["type"], kind, "unexpected push: {push}");
    push
}

async fn sent_by_user_id_is_stored_listed_and_pushed_to_every_client(store: Store) {
    let gw = Gateway::on(store);
    let (alice, bob, carol) = (user_token("alice"), user_token("bob"), user_token("carol"));
    let mut bob_phone = WsClient::connect_hello(&gw, &bob).await;
    let mut bob_laptop = WsClient::connect_hello(&gw, &bob).await;
    let mut carol_client = WsClient::connect_hello(&gw, &carol).await;

    for message in [
        json!("Hello, world!"),
        json!({"foo": ["quux", "bar"]}),
        json!(42),
        json!(null),
        json!([1, "two", {"three": 3}]),
    ] {
        let ids = send(&gw, &alice, message.clone(), json!("bob")).await;
        assert_eq!(ids.len(), 1);
        assert!(ids[0].starts_with("inb_"), "{ids:?}");
        for client in [&mut bob_phone, &mut bob_laptop] {
            let push = expect_inbox_push(client, "inbox.message").await;
            assert_eq!(push["messageId"], ids[0].as_str());
            assert_eq!(push["message"], message);
            assert_eq!(push["senderId"], "alice");
            assert!(push["createdAt"].as_i64().is_some());
        }
    }
    // Carol was sent nothing and hears nothing.
    carol_client
        .expect_silence(Duration::from_millis(500))
        .await;

    let listed = inbox(&gw, &bob).await;
    assert_eq!(listed.len(), 5);
    assert_eq!(listed[0]["message"], "Hello, world!");
    assert_eq!(listed[3]["message"], Value::Null);
    assert!(listed.iter().all(|m| m["senderId"] == "alice"));
    let ids: Vec<&str> = listed
        .iter()
        .map(|m| m["messageId"].as_str().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "oldest first");
    assert!(inbox(&gw, &carol).await.is_empty());
    assert!(
        inbox(&gw, &alice).await.is_empty(),
        "the sender keeps no copy"
    );
}

async fn client_ids_resolve_to_their_user_once_per_user(store: Store) {
    let gw = Gateway::on(store);
    let (alice, bob, carol) = (user_token("alice"), user_token("bob"), user_token("carol"));
    let mut bob_client = WsClient::connect_hello(&gw, &bob).await;
    let bob_client_id = bob_client
        .client_id
        .clone()
        .expect("hello gives a client id");
    let mut alice_client = WsClient::connect_hello(&gw, &alice).await;
    let alice_client_id = alice_client.client_id.clone().unwrap();

    // Bob named by his client id and his user id, Carol by user id: one copy each.
    let ids = send(
        &gw,
        &alice,
        json!({"ping": 1}),
        json!([bob_client_id, "bob", "carol"]),
    )
    .await;
    assert_eq!(ids.len(), 2);
    let push = expect_inbox_push(&mut bob_client, "inbox.message").await;
    assert_eq!(push["senderId"], "alice");
    bob_client.expect_silence(Duration::from_millis(300)).await;
    assert_eq!(inbox(&gw, &bob).await.len(), 1);
    assert_eq!(inbox(&gw, &carol).await.len(), 1);

    // A reply to the sender's client id reaches the sender; senderId is a user id, never a
    // client id.
    send(&gw, &bob, json!("pong"), json!(alice_client_id)).await;
    let push = expect_inbox_push(&mut alice_client, "inbox.message").await;
    assert_eq!(push["senderId"], "bob");
    assert_eq!(inbox(&gw, &alice).await[0]["senderId"], "bob");

    // A client id stays usable after its connection closed (recently used).
    bob_client.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    send(&gw, &alice, json!("later"), json!(bob_client_id)).await;
    let bobs = inbox(&gw, &bob).await;
    assert_eq!(bobs.len(), 2);
    assert_eq!(bobs[1]["message"], "later");
    // An unknown id is a user id: a user who has never connected still gets the message.
    send(&gw, &alice, json!("hi"), json!("dave")).await;
    assert_eq!(inbox(&gw, &user_token("dave")).await.len(), 1);
}

async fn hello_replays_the_inbox_oldest_first(store: Store) {
    let gw = Gateway::on(store);
    let (alice, bob) = (user_token("alice"), user_token("bob"));
    let first = send(&gw, &alice, json!("one"), json!(["bob"])).await;
    let second = send(&gw, &alice, json!({"n": 2}), json!("bob")).await;

    let mut client = WsClient::connect(&gw, &bob).await;
    let hello = client.hello().await;
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["userId"], "bob");
    let replayed = hello["messages"].as_array().expect("messages").clone();
    assert_eq!(replayed.len(), 2);
    assert_eq!(replayed[0]["messageId"], first[0].as_str());
    assert_eq!(replayed[0]["message"], "one");
    assert_eq!(replayed[1]["messageId"], second[0].as_str());
    assert_eq!(replayed[1]["senderId"], "alice");

    // Messages stay until deleted: a later hello replays them again.
    let mut again = WsClient::connect(&gw, &bob).await;
    let hello = again.hello().await;
    assert_eq!(hello["messages"].as_array().unwrap().len(), 2);
    // Alice's inbox is her own.
    let mut alice_client = WsClient::connect(&gw, &alice).await;
    assert_eq!(alice_client.hello().await["messages"], json!([]));
}

async fn delete_one_and_delete_all(store: Store) {
    let gw = Gateway::on(store);
    let (alice, bob) = (user_token("alice"), user_token("bob"));
    let mut bob_client = WsClient::connect_hello(&gw, &bob).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.extend(send(&gw, &alice, json!(i), json!("bob")).await);
        // Pushes arrive as the stream delivers them; take each before going on.
        expect_inbox_push(&mut bob_client, "inbox.message").await;
    }
    send(&gw, &bob, json!("for alice"), json!("alice")).await;

    // Another user's id deletes nothing.
    expect_status(
        gw.delete(&format!("/inbox/{}", enc(&ids[0])), &alice).await,
        204,
    );
    assert_eq!(inbox(&gw, &bob).await.len(), 4);

    // Deleting one: gone from the list, and every client of Bob's hears it.
    expect_status(
        gw.delete(&format!("/inbox/{}", enc(&ids[1])), &bob).await,
        204,
    );
    let push = expect_inbox_push(&mut bob_client, "inbox.deleted").await;
    assert_eq!(push["messageId"], ids[1].as_str());
    let left: Vec<Value> = inbox(&gw, &bob).await;
    assert_eq!(left.len(), 3);
    assert!(left.iter().all(|m| m["messageId"] != ids[1].as_str()));
    // Deleting it again, or a made-up id, is still 204.
    expect_status(
        gw.delete(&format!("/inbox/{}", enc(&ids[1])), &bob).await,
        204,
    );
    expect_status(gw.delete("/inbox/inb_nothing", &bob).await, 204);

    // Deleting all: each remaining message is announced, and the inbox is empty.
    expect_status(gw.delete("/inbox", &bob).await, 204);
    let mut announced = Vec::new();
    for _ in 0..3 {
        let push = expect_inbox_push(&mut bob_client, "inbox.deleted").await;
        announced.push(push["messageId"].as_str().unwrap().to_string());
    }
    announced.sort();
    let mut expected = vec![ids[0].clone(), ids[2].clone(), ids[3].clone()];
    expected.sort();
    assert_eq!(announced, expected);
    assert!(inbox(&gw, &bob).await.is_empty());
    // Alice's inbox was not touched.
    assert_eq!(inbox(&gw, &alice).await.len(), 1);
    // The secret key has no inbox.
    expect_error(&gw.get("/inbox", &secret_key()).await, 403, "forbidden");
}

async fn bad_input_stores_nothing(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    let bad = |body: Value| async { gw.post("/inbox", &alice, body).await };
    expect_error(&bad(json!({"message": "x"})).await, 400, "invalid_request");
    expect_error(
        &bad(json!({"recipients": "bob"})).await,
        400,
        "invalid_request",
    );
    expect_error(
        &bad(json!({"message": "x", "recipients": []})).await,
        400,
        "invalid_request",
    );
    expect_error(
        &bad(json!({"message": "x", "recipients": null})).await,
        400,
        "invalid_request",
    );
    expect_error(
        &bad(json!({"message": "x", "recipients": ["bob", 7]})).await,
        400,
        "invalid_request",
    );
    expect_error(
        &bad(json!({"message": "x", "recipients": {"id": "bob"}})).await,
        400,
        "invalid_request",
    );
    expect_error(
        &bad(json!({"message": "x", "recipients": [""]})).await,
        400,
        "invalid_request",
    );
    let many: Vec<String> = (0..101).map(|i| format!("user{i}")).collect();
    let message = expect_error(
        &bad(json!({"message": "x", "recipients": many})).await,
        400,
        "invalid_request",
    );
    assert!(message.contains("100"), "{message}");
    expect_error(
        &bad(json!({"message": "x", "recipients": "bob", "extra": 1})).await,
        400,
        "invalid_request",
    );
    let big = "x".repeat(64 * 1024);
    expect_error(
        &bad(json!({"message": big, "recipients": "bob"})).await,
        413,
        "too_large",
    );
    let auth = format!("Bearer {alice}");
    let (status, _) = gw
        .send_raw(
            "POST",
            "/inbox",
            &[("authorization", auth.as_str())],
            b"{not json".to_vec(),
        )
        .await;
    assert_eq!(status, 400);
    // The secret key cannot send (it has no user to send as).
    expect_error(
        &gw.post(
            "/inbox",
            &secret_key(),
            json!({"message": "x", "recipients": "bob"}),
        )
        .await,
        403,
        "forbidden",
    );
    // None of it stored anything.
    assert!(inbox(&gw, &user_token("bob")).await.is_empty());
    assert!(inbox(&gw, &user_token("user0")).await.is_empty());
    // The largest message that fits is accepted (64 KiB as JSON, quotes included).
    let fits = "y".repeat(64 * 1024 - 2);
    send(&gw, &alice, json!(fits), json!("bob")).await;
    assert_eq!(inbox(&gw, &user_token("bob")).await.len(), 1);
}

async fn messages_expire(store: Store) {
    let gw = Gateway::start(GatewayOptions::new(store).env("RETENTION_SECONDS", "2"));
    let (alice, bob) = (user_token("alice"), user_token("bob"));
    send(&gw, &alice, json!("soon gone"), json!("bob")).await;
    assert_eq!(inbox(&gw, &bob).await.len(), 1);
    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert!(
        inbox(&gw, &bob).await.is_empty(),
        "expired messages are not listed"
    );
    let mut client = WsClient::connect(&gw, &bob).await;
    assert_eq!(client.hello().await["messages"], json!([]), "nor replayed");
}
