//! The HTTP API end to end: every route of `natter-local`, its denials (401/403/404) and each
//! class of bad input, on the in-memory store and on DynamoDB (moto).

use std::time::Duration;

use base64::Engine;
use natter_e2e::{
    both_stores, enc, expect_error, expect_status, now_ms, now_secs, secret_key, tick, user_token,
    user_token_with_role, Gateway, GatewayOptions, Store, SIGNING_KID, SIGNING_SECRET,
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

fn participant(cid: &str, uid: &str) -> String {
    format!("/conversations/{}/participants/{}", enc(cid), enc(uid))
}

fn user(uid: &str) -> String {
    format!("/users/{}", enc(uid))
}

fn reaction(cid: &str, mid: &str, emoji: &str) -> String {
    format!("{}/reactions/{}", msg(cid, mid), enc(emoji))
}

fn id_of(message: &Value) -> String {
    message["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {message}"))
        .to_string()
}

both_stores! {
    object_bodies_refuse_arrays: object_bodies_refuse_arrays_memory, object_bodies_refuse_arrays_dynamo;
    users_self_secret_and_denials: users_self_secret_and_denials_memory, users_self_secret_and_denials_dynamo;
    user_patch_semantics: user_patch_semantics_memory, user_patch_semantics_dynamo;
    conversation_creator_and_participants: conversation_creator_and_participants_memory, conversation_creator_and_participants_dynamo;
    conversation_denials: conversation_denials_memory, conversation_denials_dynamo;
    participant_routes: participant_routes_memory, participant_routes_dynamo;
    send_text_and_content: send_text_and_content_memory, send_text_and_content_dynamo;
    replies: replies_memory, replies_dynamo;
    idempotency_key: idempotency_key_memory, idempotency_key_dynamo;
    secret_key_senders: secret_key_senders_memory, secret_key_senders_dynamo;
    list_pages: list_pages_memory, list_pages_dynamo;
    quick_sends_keep_their_order: quick_sends_keep_their_order_memory, quick_sends_keep_their_order_dynamo;
    edit_messages: edit_messages_memory, edit_messages_dynamo;
    edit_and_delete_permissions: edit_and_delete_permissions_memory, edit_and_delete_permissions_dynamo;
    read_participants_and_strangers: read_participants_and_strangers_memory, read_participants_and_strangers_dynamo;
    link_nodes_and_role_grants: link_nodes_and_role_grants_memory, link_nodes_and_role_grants_dynamo;
    import_messages: import_messages_memory, import_messages_dynamo;
    auth_failures: auth_failures_memory, auth_failures_dynamo;
    bad_bodies_write_nothing: bad_bodies_write_nothing_memory, bad_bodies_write_nothing_dynamo;
    bad_ids_limits_and_missing_things: bad_ids_limits_and_missing_things_memory, bad_ids_limits_and_missing_things_dynamo;
    unknown_routes_and_methods: unknown_routes_and_methods_memory, unknown_routes_and_methods_dynamo;
    expiry: expiry_memory, expiry_dynamo;
}

// ---- users ---------------------------------------------------------------------------------

async fn users_self_secret_and_denials(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice:github");
    let bob = user_token("bob");

    // Not created yet: 404 for the user and for the secret key.
    expect_error(
        &gw.get(&user("alice:github"), &alice).await,
        404,
        "not_found",
    );
    expect_error(
        &gw.get(&user("nobody"), &secret_key()).await,
        404,
        "not_found",
    );

    let body =
        json!({"name": "Alice", "photoUrl": "https://x.test/a.png", "custom": {"team": "red"}});
    let created = expect_status(gw.put(&user("alice:github"), &alice, body).await, 200);
    assert_eq!(
        created,
        json!({"id": "alice:github", "name": "Alice", "photoUrl": "https://x.test/a.png",
               "role": "default", "custom": {"team": "red"}})
    );
    assert_eq!(
        expect_status(gw.get(&user("alice:github"), &alice).await, 200),
        created
    );
    // The secret key reads and writes any user, and only it sets roles.
    assert_eq!(
        expect_status(gw.get(&user("alice:github"), &secret_key()).await, 200),
        created
    );
    let promoted = expect_status(
        gw.put(
            &user("alice:github"),
            &secret_key(),
            json!({"role": "moderator"}),
        )
        .await,
        200,
    );
    assert_eq!(promoted["role"], "moderator");
    assert_eq!(promoted["name"], "Alice");

    // A user may not set a role, not even their own, and nothing changes.
    expect_error(
        &gw.put(
            &user("bob"),
            &bob,
            json!({"name": "Bob", "role": "moderator"}),
        )
        .await,
        403,
        "forbidden",
    );
    expect_error(&gw.get(&user("bob"), &bob).await, 404, "not_found");
    expect_error(
        &gw.put(&user("alice:github"), &alice, json!({"role": "default"}))
            .await,
        403,
        "forbidden",
    );
    // Another user's record: 403 for reads and writes.
    expect_error(&gw.get(&user("alice:github"), &bob).await, 403, "forbidden");
    expect_error(
        &gw.put(&user("alice:github"), &bob, json!({"name": "Mallory"}))
            .await,
        403,
        "forbidden",
    );
    let after = expect_status(gw.get(&user("alice:github"), &secret_key()).await, 200);
    assert_eq!(after["name"], "Alice");
    assert_eq!(after["role"], "moderator");
}

async fn user_patch_semantics(store: Store) {
    let gw = Gateway::on(store);
    let t = user_token("pat");
    let path = user("pat");
    expect_status(
        gw.put(
            &path,
            &t,
            json!({"name": "Pat", "photoUrl": "https://x.test/p.png", "custom": {"a": "1", "b": "2"}}),
        )
        .await,
        200,
    );
    // Absent fields stay.
    let v = expect_status(gw.put(&path, &t, json!({"name": "Patricia"})).await, 200);
    assert_eq!(v["name"], "Patricia");
    assert_eq!(v["photoUrl"], "https://x.test/p.png");
    assert_eq!(v["custom"], json!({"a": "1", "b": "2"}));
    // An empty body changes nothing.
    let v = expect_status(gw.put(&path, &t, json!({})).await, 200);
    assert_eq!(v["name"], "Patricia");
    // null clears.
    let v = expect_status(gw.put(&path, &t, json!({"photoUrl": null})).await, 200);
    assert_eq!(v["photoUrl"], Value::Null);
    assert_eq!(v["name"], "Patricia");
    // custom is replaced as a whole; null clears it.
    let v = expect_status(gw.put(&path, &t, json!({"custom": {"c": "3"}})).await, 200);
    assert_eq!(v["custom"], json!({"c": "3"}));
    let v = expect_status(
        gw.put(&path, &t, json!({"custom": null, "name": null}))
            .await,
        200,
    );
    assert_eq!(v["custom"], json!({}));
    assert_eq!(v["name"], Value::Null);
    let got = expect_status(gw.get(&path, &t).await, 200);
    assert_eq!(
        got,
        json!({"id": "pat", "name": null, "photoUrl": null, "role": "default", "custom": {}})
    );
    // The secret key can clear a role again.
    expect_status(
        gw.put(&path, &secret_key(), json!({"role": "moderator"}))
            .await,
        200,
    );
    let v = expect_status(
        gw.put(&path, &secret_key(), json!({"role": null})).await,
        200,
    );
    assert_eq!(v["role"], "default");
}

// ---- conversations and participants -----------------------------------------------------------

async fn conversation_creator_and_participants(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    let bob = user_token("bob");
    let created = expect_status(
        gw.put(
            &conv("c1"),
            &alice,
            json!({"subject": "Lunch", "custom": {"k": "v"}, "participants": ["bob"]}),
        )
        .await,
        200,
    );
    assert_eq!(created["id"], "c1");
    assert_eq!(created["subject"], "Lunch");
    assert_eq!(created["photoUrl"], Value::Null);
    assert_eq!(created["custom"], json!({"k": "v"}));
    assert_eq!(
        created["participants"],
        json!({"alice": {"access": "ReadWrite"}, "bob": {"access": "ReadWrite"}})
    );
    let created_at = created["createdAt"].as_i64().expect("createdAt");
    assert!(
        (now_ms() - created_at).abs() < 60_000,
        "createdAt {created_at}"
    );

    // Both participants read it, each with their own read state; the secret key has none.
    let viewer_fields = [
        "access",
        "joinedAt",
        "unreadMessageCount",
        "readUntil",
        "isUnread",
    ];
    let shared = |mut snapshot: Value| {
        for field in viewer_fields {
            snapshot[field] = Value::Null;
        }
        snapshot
    };
    assert_eq!(created["access"], "ReadWrite");
    assert_eq!(created["unreadMessageCount"], 0);
    let by_bob = expect_status(gw.get(&conv("c1"), &bob).await, 200);
    assert_eq!(shared(by_bob.clone()), shared(created.clone()));
    assert_eq!(by_bob["access"], "ReadWrite");
    assert_eq!(
        expect_status(gw.get(&conv("c1"), &alice).await, 200),
        created
    );
    assert_eq!(
        expect_status(gw.get(&conv("c1"), &secret_key()).await, 200),
        shared(created.clone())
    );

    // A ReadWrite participant updates it; createdAt stays, null clears, absent keeps, and
    // `participants` adds without removing anyone.
    let updated = expect_status(
        gw.put(
            &conv("c1"),
            &bob,
            json!({"subject": null, "photoUrl": "https://x.test/c.png", "participants": ["carol"]}),
        )
        .await,
        200,
    );
    assert_eq!(updated["createdAt"], created["createdAt"]);
    assert_eq!(updated["subject"], Value::Null);
    assert_eq!(updated["photoUrl"], "https://x.test/c.png");
    assert_eq!(updated["custom"], json!({"k": "v"}));
    assert_eq!(
        updated["participants"],
        json!({"alice": {"access": "ReadWrite"}, "bob": {"access": "ReadWrite"},
               "carol": {"access": "ReadWrite"}})
    );
    let carol = user_token("carol");
    expect_status(gw.get(&conv("c1"), &carol).await, 200);

    // The secret key creates conversations without becoming a participant.
    let by_secret = expect_status(
        gw.put(&conv("c2"), &secret_key(), json!({"subject": "Ops"}))
            .await,
        200,
    );
    assert_eq!(by_secret["participants"], json!({}));
    expect_error(&gw.get(&conv("c2"), &alice).await, 404, "not_found");
    expect_status(gw.get(&conv("c2"), &secret_key()).await, 200);
}

async fn conversation_denials(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    let eve = user_token("eve");
    let reader = user_token("reader");
    gw.conversation("c", &["alice"]).await;
    gw.participant("c", "reader", "Read").await;

    // A non-participant neither sees nor changes an existing conversation: 404 both ways.
    let m = expect_error(&gw.get(&conv("c"), &eve).await, 404, "not_found");
    assert!(m.contains("not found"), "{m}");
    expect_error(
        &gw.put(
            &conv("c"),
            &eve,
            json!({"subject": "pwned", "participants": ["eve"]}),
        )
        .await,
        404,
        "not_found",
    );
    // A Read participant may read but not change it.
    let seen = expect_status(gw.get(&conv("c"), &reader).await, 200);
    assert_eq!(seen["participants"]["reader"]["access"], "Read");
    expect_error(
        &gw.put(&conv("c"), &reader, json!({"subject": "mine now"}))
            .await,
        403,
        "forbidden",
    );
    expect_error(
        &gw.put(&conv("c"), &reader, json!({"participants": ["eve"]}))
            .await,
        403,
        "forbidden",
    );
    let after = expect_status(gw.get(&conv("c"), &alice).await, 200);
    assert_eq!(after["subject"], Value::Null);
    assert_eq!(
        after["participants"],
        json!({"alice": {"access": "ReadWrite"}, "reader": {"access": "Read"}})
    );
}

async fn participant_routes(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    let bob = user_token("bob");
    let erin = user_token("erin");
    let frank = user_token("frank");
    let eve = user_token("eve");
    expect_status(
        gw.put(&conv("c"), &alice, json!({"participants": ["bob"]}))
            .await,
        200,
    );
    let participants = |v: Value| v["participants"].clone();

    // A ReadWrite participant adds someone with Read access, then changes it.
    expect_status(
        gw.put(&participant("c", "erin"), &alice, json!({"access": "Read"}))
            .await,
        204,
    );
    assert_eq!(
        participants(expect_status(gw.get(&conv("c"), &erin).await, 200))["erin"],
        json!({"access": "Read"})
    );
    expect_status(
        gw.put(
            &participant("c", "erin"),
            &bob,
            json!({"access": "ReadWrite"}),
        )
        .await,
        204,
    );
    assert_eq!(
        participants(expect_status(gw.get(&conv("c"), &erin).await, 200))["erin"],
        json!({"access": "ReadWrite"})
    );
    // No body: ReadWrite.
    expect_status(
        gw.request("PUT", &participant("c", "frank"), Some(&alice), None)
            .await,
        204,
    );
    assert_eq!(
        participants(expect_status(gw.get(&conv("c"), &frank).await, 200))["frank"],
        json!({"access": "ReadWrite"})
    );
    // A bad access value is 400 and changes nothing.
    expect_error(
        &gw.put(
            &participant("c", "frank"),
            &alice,
            json!({"access": "Owner"}),
        )
        .await,
        400,
        "invalid_request",
    );
    expect_error(
        &gw.put(
            &participant("c", "frank"),
            &alice,
            json!({"access": "Read", "x": 1}),
        )
        .await,
        400,
        "invalid_request",
    );
    assert_eq!(
        participants(expect_status(gw.get(&conv("c"), &frank).await, 200))["frank"],
        json!({"access": "ReadWrite"})
    );

    // A Read participant may not add, change or remove others.
    gw.participant("c", "erin", "Read").await;
    expect_error(
        &gw.put(&participant("c", "erin2"), &erin, json!({"access": "Read"}))
            .await,
        403,
        "forbidden",
    );
    expect_error(
        &gw.put(
            &participant("c", "erin"),
            &erin,
            json!({"access": "ReadWrite"}),
        )
        .await,
        403,
        "forbidden",
    );
    expect_error(
        &gw.delete(&participant("c", "bob"), &erin).await,
        403,
        "forbidden",
    );
    // A stranger gets 404 for every participant route.
    expect_error(
        &gw.put(
            &participant("c", "eve"),
            &eve,
            json!({"access": "ReadWrite"}),
        )
        .await,
        404,
        "not_found",
    );
    expect_error(
        &gw.delete(&participant("c", "bob"), &eve).await,
        404,
        "not_found",
    );
    let now = participants(expect_status(gw.get(&conv("c"), &alice).await, 200));
    assert_eq!(
        now,
        json!({"alice": {"access": "ReadWrite"}, "bob": {"access": "ReadWrite"},
               "erin": {"access": "Read"}, "frank": {"access": "ReadWrite"}})
    );

    // Anyone may leave, Read participants included.
    expect_status(gw.delete(&participant("c", "erin"), &erin).await, 204);
    expect_error(&gw.get(&conv("c"), &erin).await, 404, "not_found");
    // A ReadWrite participant removes someone else.
    expect_status(gw.delete(&participant("c", "frank"), &bob).await, 204);
    expect_error(&gw.get(&conv("c"), &frank).await, 404, "not_found");
    // The secret key removes anyone; bob leaves himself.
    expect_status(gw.delete(&participant("c", "bob"), &bob).await, 204);
    expect_error(&gw.get(&conv("c"), &bob).await, 404, "not_found");
    let now = participants(expect_status(gw.get(&conv("c"), &secret_key()).await, 200));
    assert_eq!(now, json!({"alice": {"access": "ReadWrite"}}));
    expect_status(
        gw.delete(&participant("c", "alice"), &secret_key()).await,
        204,
    );
    expect_error(&gw.get(&conv("c"), &alice).await, 404, "not_found");

    // Participants of a conversation that does not exist: 404.
    expect_error(
        &gw.put(
            &participant("nope", "bob"),
            &secret_key(),
            json!({"access": "Read"}),
        )
        .await,
        404,
        "not_found",
    );
    expect_error(
        &gw.put(
            &participant("nope", "bob"),
            &alice,
            json!({"access": "Read"}),
        )
        .await,
        404,
        "not_found",
    );
    expect_error(
        &gw.delete(&participant("nope", "bob"), &alice).await,
        404,
        "not_found",
    );
    expect_error(
        &gw.get(&conv("nope"), &secret_key()).await,
        404,
        "not_found",
    );
}

// ---- messages --------------------------------------------------------------------------------

async fn send_text_and_content(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    expect_status(
        gw.put(
            &user("alice"),
            &alice,
            json!({"name": "Alice", "custom": {"x": "y"}}),
        )
        .await,
        200,
    );
    gw.conversation("c", &["alice"]).await;
    let before = now_ms();
    let sent = expect_status(
        gw.post(
            &msgs("c"),
            &alice,
            json!({"text": "hello *world* :cat:", "custom": {"k": "v"}}),
        )
        .await,
        201,
    );
    let id = id_of(&sent);
    assert!(id.starts_with("msg_"), "{id}");
    assert_eq!(sent["conversationId"], "c");
    assert_eq!(sent["type"], "UserMessage");
    assert_eq!(
        sent["sender"],
        json!({"id": "alice", "name": "Alice", "photoUrl": null, "role": "default",
               "custom": {"x": "y"}})
    );
    assert_eq!(
        sent["content"],
        json!([{"type": "text", "children": [
            "hello ",
            {"type": "bold", "children": ["world"]},
            " ",
            {"type": "customEmoji", "text": ":cat:"}
        ]}])
    );
    assert_eq!(sent["plaintext"], "hello world :cat:");
    assert_eq!(sent["custom"], json!({"k": "v"}));
    assert_eq!(sent["origin"], "web");
    assert_eq!(sent["editedAt"], Value::Null);
    assert_eq!(sent["referencedMessage"], Value::Null);
    assert_eq!(sent["reactions"], json!([]));
    let created_at = sent["createdAt"].as_i64().expect("createdAt");
    assert!(created_at >= before - 1000 && created_at <= now_ms() + 1000);

    // The stored message reads back the same.
    assert_eq!(
        expect_status(gw.get(&msg("c", &id), &alice).await, 200),
        sent
    );
    // `sender` is the sender's current profile.
    expect_status(
        gw.put(
            &user("alice"),
            &alice,
            json!({"name": "Alice B.", "photoUrl": "https://x.test/b.png"}),
        )
        .await,
        200,
    );
    let now = expect_status(gw.get(&msg("c", &id), &alice).await, 200);
    assert_eq!(now["sender"]["name"], "Alice B.");
    assert_eq!(now["sender"]["photoUrl"], "https://x.test/b.png");
    let page = expect_status(gw.get(&msgs("c"), &alice).await, 200);
    assert_eq!(page["data"][0]["sender"], now["sender"]);

    // Content as given: blocks and nodes kept, plaintext derived.
    let content = json!([
        {"type": "text", "children": [
            {"type": "italic", "children": ["look "]},
            {"type": "codeSpan", "text": "x = 1"},
            {"type": "mention", "id": "bob", "text": "@Bob"}
        ]},
        {"type": "location", "latitude": 52.5, "longitude": 13.25}
    ]);
    tick().await;
    let sent2 = expect_status(
        gw.post(&msgs("c"), &alice, json!({"content": content}))
            .await,
        201,
    );
    assert_eq!(sent2["content"], content);
    assert_eq!(sent2["plaintext"], "look x = 1@Bob\n52.5,13.25");
    assert_eq!(sent2["custom"], json!({}));

    // Lines, bullets and links from text.
    tick().await;
    let sent3 = gw
        .send("c", &alice, "see https://example.com/a\n- one\n- _two_")
        .await;
    assert_eq!(
        sent3["content"],
        json!([{"type": "text", "children": [
            "see ",
            {"type": "autoLink", "url": "https://example.com/a", "text": "https://example.com/a"},
            {"type": "bulletList", "children": [
                {"type": "bulletPoint", "children": ["one"]},
                {"type": "bulletPoint", "children": [{"type": "italic", "children": ["two"]}]}
            ]}
        ]}])
    );
    assert_eq!(
        sent3["plaintext"],
        "see https://example.com/a\n- one\n- two"
    );
    assert_eq!(
        gw.message_ids("c", &alice).await,
        vec![id_of(&sent3), id_of(&sent2), id]
    );
}

async fn replies(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    let bob = user_token("bob");
    gw.conversation("c", &["alice", "bob"]).await;
    gw.conversation("other", &["alice"]).await;
    let m1 = gw.send("c", &alice, "first").await;
    let m1_id = id_of(&m1);
    tick().await;
    let reply = expect_status(
        gw.post(
            &msgs("c"),
            &bob,
            json!({"text": "answer", "referencedMessageId": m1_id}),
        )
        .await,
        201,
    );
    let r = &reply["referencedMessage"];
    assert_eq!(r["id"], m1_id.as_str());
    assert_eq!(r["plaintext"], "first");
    assert_eq!(r["sender"]["id"], "alice");
    assert_eq!(r["type"], "UserMessage");
    assert_eq!(r["origin"], "web");
    let keys = r.as_object().expect("referencedMessage object");
    assert!(keys.contains_key("referencedMessageId"), "{r}");
    assert_eq!(r["referencedMessageId"], Value::Null);
    assert!(!keys.contains_key("referencedMessage"), "nested: {r}");

    // A reply to a reply names its own reference by id only.
    let reply_id = id_of(&reply);
    tick().await;
    let second = expect_status(
        gw.post(
            &msgs("c"),
            &alice,
            json!({"text": "and?", "referencedMessageId": reply_id}),
        )
        .await,
        201,
    );
    let r2 = &second["referencedMessage"];
    assert_eq!(r2["id"], reply_id.as_str());
    assert_eq!(r2["referencedMessageId"], m1_id.as_str());
    assert!(r2.get("referencedMessage").is_none(), "nested: {r2}");
    // GET and the list show the same reference.
    let got = expect_status(gw.get(&msg("c", &id_of(&second)), &bob).await, 200);
    assert_eq!(got["referencedMessage"], second["referencedMessage"]);
    let (_, page) = gw.get(&msgs("c"), &bob).await;
    assert_eq!(
        page["data"][0]["referencedMessage"]["id"],
        reply_id.as_str()
    );
    assert_eq!(page["data"][1]["referencedMessage"]["id"], m1_id.as_str());
    assert_eq!(page["data"][2]["referencedMessage"], Value::Null);

    // A system message cannot be replied to.
    let system = expect_status(
        gw.post(
            &msgs("c"),
            &secret_key(),
            json!({"text": "joined", "type": "SystemMessage"}),
        )
        .await,
        201,
    );
    expect_error(
        &gw.post(
            &msgs("c"),
            &alice,
            json!({"text": "x", "referencedMessageId": id_of(&system)}),
        )
        .await,
        400,
        "invalid_request",
    );
    expect_status(
        gw.delete(&msg("c", &id_of(&system)), &secret_key()).await,
        204,
    );

    // A missing message, one of another conversation, or a deleted one: 400, nothing written.
    let other = gw.send("other", &alice, "elsewhere").await;
    for rid in [
        "msg_01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "nope",
        other["id"].as_str().unwrap(),
    ] {
        let m = expect_error(
            &gw.post(
                &msgs("c"),
                &alice,
                json!({"text": "x", "referencedMessageId": rid}),
            )
            .await,
            400,
            "invalid_request",
        );
        assert!(m.contains("referencedMessageId"), "{m}");
    }
    expect_status(gw.delete(&msg("c", &m1_id), &alice).await, 204);
    expect_error(
        &gw.post(
            &msgs("c"),
            &bob,
            json!({"text": "x", "referencedMessageId": m1_id}),
        )
        .await,
        400,
        "invalid_request",
    );
    assert_eq!(gw.message_ids("c", &alice).await.len(), 2);
    // The reply whose reference was deleted still reads, without the reference.
    let orphan = expect_status(gw.get(&msg("c", &reply_id), &bob).await, 200);
    assert_eq!(orphan["referencedMessage"], Value::Null);
}

async fn idempotency_key(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    let bob = user_token("bob");
    gw.conversation("c", &["alice", "bob"]).await;
    let body = json!({"text": "once", "idempotencyKey": "k-1"});
    let first = expect_status(gw.post(&msgs("c"), &alice, body.clone()).await, 201);
    let again = gw.post(&msgs("c"), &alice, body.clone()).await;
    assert!(again.0 == 201 || again.0 == 200, "retry: {again:?}");
    assert_eq!(again.1["id"], first["id"]);
    assert_eq!(again.1["plaintext"], "once");
    assert_eq!(gw.message_ids("c", &alice).await, vec![id_of(&first)]);

    // The key belongs to its sender: bob's same key is another message.
    let bobs = expect_status(gw.post(&msgs("c"), &bob, body).await, 201);
    assert_ne!(bobs["id"], first["id"]);
    // Another key is another message.
    expect_status(
        gw.post(
            &msgs("c"),
            &alice,
            json!({"text": "once", "idempotencyKey": "k-2"}),
        )
        .await,
        201,
    );
    assert_eq!(gw.message_ids("c", &alice).await.len(), 3);

    // The key guards only while its message lives. Once that is deleted, a send with the same
    // key is either a new message or a 409 conflict, never a 404 for the deleted message
    // (which would tell a participant the conversation is not found).
    expect_status(gw.delete(&msg("c", &id_of(&first)), &alice).await, 204);
    let resent = gw
        .post(
            &msgs("c"),
            &alice,
            json!({"text": "once more", "idempotencyKey": "k-1"}),
        )
        .await;
    match resent.0 {
        201 => {
            assert_ne!(resent.1["id"], first["id"]);
            assert_eq!(resent.1["plaintext"], "once more");
            assert!(gw
                .message_ids("c", &alice)
                .await
                .contains(&id_of(&resent.1)));
        }
        _ => {
            expect_error(&resent, 409, "conflict");
            assert_eq!(gw.message_ids("c", &alice).await.len(), 2);
        }
    }
}

async fn secret_key_senders(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    gw.conversation("c", &["alice", "bob"]).await;
    expect_status(
        gw.put(&user("bob"), &secret_key(), json!({"name": "Bob"}))
            .await,
        200,
    );
    let as_bob = expect_status(
        gw.post(
            &msgs("c"),
            &secret_key(),
            json!({"text": "from the app", "sender": "bob"}),
        )
        .await,
        201,
    );
    assert_eq!(as_bob["origin"], "rest");
    assert_eq!(as_bob["type"], "UserMessage");
    assert_eq!(as_bob["sender"]["id"], "bob");
    assert_eq!(as_bob["sender"]["name"], "Bob");

    let system = expect_status(
        gw.post(
            &msgs("c"),
            &secret_key(),
            json!({"text": "Bob joined", "type": "SystemMessage"}),
        )
        .await,
        201,
    );
    assert_eq!(system["type"], "SystemMessage");
    assert_eq!(system["sender"], Value::Null);
    assert_eq!(system["origin"], "rest");
    let seen = expect_status(gw.get(&msg("c", &id_of(&system)), &alice).await, 200);
    assert_eq!(seen["sender"], Value::Null);
    assert_eq!(seen["type"], "SystemMessage");
    // Users cannot edit system messages.
    expect_error(
        &gw.patch(&msg("c", &id_of(&system)), &alice, json!({"text": "x"}))
            .await,
        403,
        "forbidden",
    );

    // Users may set neither sender nor type.
    expect_error(
        &gw.post(&msgs("c"), &alice, json!({"text": "x", "sender": "bob"}))
            .await,
        403,
        "forbidden",
    );
    expect_error(
        &gw.post(&msgs("c"), &alice, json!({"text": "x", "sender": "alice"}))
            .await,
        403,
        "forbidden",
    );
    expect_error(
        &gw.post(
            &msgs("c"),
            &alice,
            json!({"text": "x", "type": "SystemMessage"}),
        )
        .await,
        403,
        "forbidden",
    );
    // The secret key must say who sends; a sender must be a participant; a system message
    // has no sender.
    expect_error(
        &gw.post(&msgs("c"), &secret_key(), json!({"text": "x"}))
            .await,
        400,
        "invalid_request",
    );
    expect_error(
        &gw.post(
            &msgs("c"),
            &secret_key(),
            json!({"text": "x", "sender": "stranger"}),
        )
        .await,
        403,
        "forbidden",
    );
    expect_error(
        &gw.post(
            &msgs("c"),
            &secret_key(),
            json!({"text": "x", "sender": "bob", "type": "SystemMessage"}),
        )
        .await,
        400,
        "invalid_request",
    );
    expect_error(
        &gw.post(
            &msgs("c"),
            &secret_key(),
            json!({"text": "x", "type": "Bogus"}),
        )
        .await,
        400,
        "invalid_request",
    );
    expect_error(
        &gw.post(
            &msgs("none"),
            &secret_key(),
            json!({"text": "x", "type": "SystemMessage"}),
        )
        .await,
        404,
        "not_found",
    );
    assert_eq!(gw.message_ids("c", &alice).await.len(), 2);

    // A user's own message has origin web.
    assert_eq!(gw.send("c", &alice, "mine").await["origin"], "web");
}

async fn list_pages(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    gw.conversation("c", &["alice"]).await;
    gw.conversation("empty", &["alice"]).await;
    let page = expect_status(gw.get(&msgs("empty"), &alice).await, 200);
    assert_eq!(page, json!({"data": [], "loadedAll": true}));

    let mut sent = Vec::new();
    for i in 0..5 {
        sent.push(id_of(&gw.send("c", &alice, &format!("m{i}")).await));
        tick().await;
    }
    let ids = |page: &Value| -> Vec<String> {
        page["data"].as_array().unwrap().iter().map(id_of).collect()
    };
    let mut newest_first = sent.clone();
    newest_first.reverse();
    let mut sorted = newest_first.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(sorted, newest_first, "ids are time-sortable");

    let all = expect_status(gw.get(&msgs("c"), &alice).await, 200);
    assert_eq!(ids(&all), newest_first);
    assert_eq!(all["loadedAll"], true);
    assert_eq!(all["data"][0]["plaintext"], "m4");

    let p1 = expect_status(gw.get(&format!("{}?limit=2", msgs("c")), &alice).await, 200);
    assert_eq!(ids(&p1), newest_first[0..2]);
    assert_eq!(p1["loadedAll"], false);
    let p2 = expect_status(
        gw.get(&format!("{}?limit=2&before={}", msgs("c"), sent[3]), &alice)
            .await,
        200,
    );
    assert_eq!(ids(&p2), newest_first[2..4]);
    assert_eq!(p2["loadedAll"], false);
    let p3 = expect_status(
        gw.get(&format!("{}?limit=2&before={}", msgs("c"), sent[1]), &alice)
            .await,
        200,
    );
    assert_eq!(ids(&p3), newest_first[4..]);
    assert_eq!(p3["loadedAll"], true);
    // Exactly as many as are left: loadedAll is true.
    let p4 = expect_status(
        gw.get(&format!("{}?limit=1&before={}", msgs("c"), sent[1]), &alice)
            .await,
        200,
    );
    assert_eq!(ids(&p4), vec![sent[0].clone()]);
    assert_eq!(p4["loadedAll"], true);
    let p5 = expect_status(gw.get(&format!("{}?limit=5", msgs("c")), &alice).await, 200);
    assert_eq!(p5["loadedAll"], true);
    assert_eq!(ids(&p5), newest_first);
    let p6 = expect_status(gw.get(&format!("{}?limit=4", msgs("c")), &alice).await, 200);
    assert_eq!(p6["loadedAll"], false);
    // Before the oldest: nothing, all loaded.
    let p7 = expect_status(
        gw.get(&format!("{}?before={}", msgs("c"), sent[0]), &alice)
            .await,
        200,
    );
    assert_eq!(p7, json!({"data": [], "loadedAll": true}));

    // Get one.
    let one = expect_status(gw.get(&msg("c", &sent[2]), &alice).await, 200);
    assert_eq!(one["plaintext"], "m2");
    assert_eq!(one, all["data"][2]);
}

/// Messages sent one after another are listed in that order, even when several fall in the
/// same millisecond ("message ids are time-sortable, so newest-first order is id order").
async fn quick_sends_keep_their_order(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    gw.conversation("c", &["alice"]).await;
    let mut sent = Vec::new();
    for i in 0..40 {
        let m = gw.send("c", &alice, &format!("n{i}")).await;
        sent.push((m["createdAt"].as_i64().unwrap(), id_of(&m)));
    }
    let same_ms = sent.windows(2).filter(|w| w[0].0 == w[1].0).count();
    let mut newest_first: Vec<String> = sent.into_iter().map(|(_, id)| id).collect();
    newest_first.reverse();
    assert_eq!(
        gw.message_ids("c", &alice).await,
        newest_first,
        "list order differs from send order ({same_ms} sends shared a millisecond with the \
         one before)"
    );
}

async fn edit_messages(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    gw.conversation("c", &["alice"]).await;
    let sent = expect_status(
        gw.post(
            &msgs("c"),
            &alice,
            json!({"text": "old", "custom": {"a": "1", "b": "2"}}),
        )
        .await,
        201,
    );
    let id = id_of(&sent);
    let path = msg("c", &id);

    let edited = expect_status(
        gw.patch(&path, &alice, json!({"text": "new _text_"})).await,
        200,
    );
    assert_eq!(edited["id"], id.as_str());
    assert_eq!(
        edited["content"],
        json!([{"type": "text", "children": ["new ", {"type": "italic", "children": ["text"]}]}])
    );
    assert_eq!(edited["plaintext"], "new text");
    assert_eq!(edited["custom"], json!({"a": "1", "b": "2"}));
    assert_eq!(edited["createdAt"], sent["createdAt"]);
    assert_eq!(edited["origin"], "web");
    assert_eq!(edited["sender"]["id"], "alice");
    let edited_at = edited["editedAt"].as_i64().expect("editedAt set");
    assert!(edited_at >= sent["createdAt"].as_i64().unwrap());
    assert_eq!(expect_status(gw.get(&path, &alice).await, 200), edited);

    // custom is a patch: null removes a key, others are set, the rest stay.
    let edited = expect_status(
        gw.patch(&path, &alice, json!({"custom": {"a": null, "c": "3"}}))
            .await,
        200,
    );
    assert_eq!(edited["custom"], json!({"b": "2", "c": "3"}));
    assert_eq!(edited["plaintext"], "new text");
    // Content replaces content.
    let content = json!([{"type": "text", "children": ["plain ", {"type": "strikethrough", "children": ["gone"]}]}]);
    let edited = expect_status(
        gw.patch(&path, &alice, json!({"content": content})).await,
        200,
    );
    assert_eq!(edited["content"], content);
    assert_eq!(edited["plaintext"], "plain gone");
    assert_eq!(edited["custom"], json!({"b": "2", "c": "3"}));
    // custom: null clears.
    let edited = expect_status(gw.patch(&path, &alice, json!({"custom": null})).await, 200);
    assert_eq!(edited["custom"], json!({}));
    let got = expect_status(gw.get(&path, &alice).await, 200);
    assert_eq!(got["custom"], json!({}));
    assert_eq!(got["content"], content);
    assert!(got["editedAt"].as_i64().unwrap() >= edited_at);

    // Nothing to edit, both text and content, unknown fields, bad content: 400, unchanged.
    for body in [
        json!({}),
        json!({"text": "a", "content": content}),
        json!({"text": "a", "sender": "bob"}),
        json!({"text": ""}),
        json!({"content": []}),
        json!({"custom": {"k": 5}}),
    ] {
        expect_error(&gw.patch(&path, &alice, body).await, 400, "invalid_request");
    }
    assert_eq!(expect_status(gw.get(&path, &alice).await, 200), got);
    // A missing message: 404.
    expect_error(
        &gw.patch(&msg("c", "msg_missing"), &alice, json!({"text": "x"}))
            .await,
        404,
        "not_found",
    );
}

async fn edit_and_delete_permissions(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    let bob = user_token("bob");
    let bob_mod = user_token_with_role("bob", "moderator");
    let carol = user_token("carol");
    gw.conversation("c", &["alice", "bob", "carol"]).await;
    let m = id_of(&gw.send("c", &alice, "alice's").await);

    // Someone else's message: 403 by default, and nothing changes.
    expect_error(
        &gw.patch(&msg("c", &m), &bob, json!({"text": "bob was here"}))
            .await,
        403,
        "forbidden",
    );
    expect_error(&gw.delete(&msg("c", &m), &bob).await, 403, "forbidden");
    let got = expect_status(gw.get(&msg("c", &m), &alice).await, 200);
    assert_eq!(got["plaintext"], "alice's");
    assert_eq!(got["editedAt"], Value::Null);

    // A moderator (token role) edits it.
    let edited = expect_status(
        gw.patch(&msg("c", &m), &bob_mod, json!({"text": "moderated"}))
            .await,
        200,
    );
    assert_eq!(edited["plaintext"], "moderated");
    assert_eq!(edited["sender"]["id"], "alice");
    // A moderator by stored role (set with the secret key) edits it too.
    expect_status(
        gw.put(&user("carol"), &secret_key(), json!({"role": "moderator"}))
            .await,
        200,
    );
    expect_status(
        gw.patch(&msg("c", &m), &carol, json!({"custom": {"flag": "1"}}))
            .await,
        200,
    );
    // The secret key edits anything.
    let edited = expect_status(
        gw.patch(&msg("c", &m), &secret_key(), json!({"text": "by the app"}))
            .await,
        200,
    );
    assert_eq!(edited["plaintext"], "by the app");
    assert_eq!(edited["custom"], json!({"flag": "1"}));

    // Own message: edit and delete; then it is gone.
    let own = id_of(&gw.send("c", &bob, "bob's").await);
    expect_status(
        gw.patch(&msg("c", &own), &bob, json!({"text": "bob's!"}))
            .await,
        200,
    );
    expect_status(gw.delete(&msg("c", &own), &bob).await, 204);
    expect_error(&gw.get(&msg("c", &own), &bob).await, 404, "not_found");
    expect_error(
        &gw.patch(&msg("c", &own), &bob, json!({"text": "again"}))
            .await,
        404,
        "not_found",
    );
    // Deleting a missing (or already deleted) message is success.
    expect_status(gw.delete(&msg("c", &own), &bob).await, 204);
    expect_status(gw.delete(&msg("c", "msg_never_there"), &bob).await, 204);
    // A moderator deletes someone else's message; the secret key too.
    expect_status(gw.delete(&msg("c", &m), &bob_mod).await, 204);
    expect_error(&gw.get(&msg("c", &m), &alice).await, 404, "not_found");
    let third = id_of(&gw.send("c", &alice, "third").await);
    expect_status(gw.delete(&msg("c", &third), &secret_key()).await, 204);
    assert!(gw.message_ids("c", &alice).await.is_empty());
}

async fn read_participants_and_strangers(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    let reader = user_token("reader");
    let eve = user_token("eve");
    gw.conversation("c", &["alice"]).await;
    gw.participant("c", "reader", "Read").await;
    let m = id_of(&gw.send("c", &alice, "hi").await);

    // A Read participant reads...
    expect_status(gw.get(&msgs("c"), &reader).await, 200);
    expect_status(gw.get(&msg("c", &m), &reader).await, 200);
    // ...but may not send, edit, delete or react.
    for response in [
        gw.post(&msgs("c"), &reader, json!({"text": "let me in"}))
            .await,
        gw.patch(&msg("c", &m), &reader, json!({"text": "x"})).await,
        gw.delete(&msg("c", &m), &reader).await,
        gw.delete(&msg("c", "msg_missing"), &reader).await,
        gw.put_empty(&reaction("c", &m, "👍"), &reader).await,
    ] {
        expect_error(&response, 403, "forbidden");
    }
    // Not even through the secret key as sender.
    expect_error(
        &gw.post(
            &msgs("c"),
            &secret_key(),
            json!({"text": "x", "sender": "reader"}),
        )
        .await,
        403,
        "forbidden",
    );

    // A stranger gets 404 for everything, as for a conversation that does not exist.
    for cid in ["c", "missing"] {
        for response in [
            gw.post(&msgs(cid), &eve, json!({"text": "hello?"})).await,
            gw.get(&msgs(cid), &eve).await,
            gw.get(&msg(cid, &m), &eve).await,
            gw.patch(&msg(cid, &m), &eve, json!({"text": "x"})).await,
            gw.delete(&msg(cid, &m), &eve).await,
            gw.delete(&msg(cid, "msg_missing"), &eve).await,
            gw.put_empty(&reaction(cid, &m, "👍"), &eve).await,
            gw.delete(&reaction(cid, &m, "👍"), &eve).await,
            gw.get(&conv(cid), &eve).await,
        ] {
            expect_error(&response, 404, "not_found");
        }
    }
    let got = expect_status(gw.get(&msg("c", &m), &alice).await, 200);
    assert_eq!(got["plaintext"], "hi");
    assert_eq!(got["reactions"], json!([]));
    assert_eq!(gw.message_ids("c", &alice).await, vec![m]);
}

async fn link_nodes_and_role_grants(store: Store) {
    let gw = Gateway::start(
        GatewayOptions::new(store).env(
            "NATTER_ROLES",
            r#"{"bot": {"sendLinks": true}, "quiet": {"reply": false, "editOwn": false, "deleteOwn": false}}"#,
        ),
    );
    let alice = user_token("alice");
    let alice_bot = user_token_with_role("alice", "bot");
    let alice_mod = user_token_with_role("alice", "moderator");
    gw.conversation("c", &["alice"]).await;
    let link = json!([{"type": "text", "children": [
        {"type": "bold", "children": [
            {"type": "link", "url": "https://example.com", "children": ["click"]}
        ]}
    ]}]);
    let button = json!([{"type": "text", "children": [
        {"type": "actionButton", "action": "buy", "params": {"sku": "1"}, "children": ["Buy"]}
    ]}]);
    let action_link = json!([{"type": "text", "children": [
        {"type": "actionLink", "action": "open", "children": ["Open"]}
    ]}]);
    for content in [&link, &button, &action_link] {
        expect_error(
            &gw.post(&msgs("c"), &alice, json!({"content": content}))
                .await,
            403,
            "forbidden",
        );
        // Moderators may edit anyone's messages but not send links.
        expect_error(
            &gw.post(&msgs("c"), &alice_mod, json!({"content": content}))
                .await,
            403,
            "forbidden",
        );
    }
    assert!(gw.message_ids("c", &alice).await.is_empty());
    // A bare URL in text is an autoLink, which anyone may send.
    let auto = gw.send("c", &alice, "https://example.com").await;
    assert_eq!(auto["content"][0]["children"][0]["type"], "autoLink");
    // Editing a link in is refused the same way.
    expect_error(
        &gw.patch(&msg("c", &id_of(&auto)), &alice, json!({"content": link}))
            .await,
        403,
        "forbidden",
    );
    // The secret key may send links as a user; so may a role with the grant.
    let by_app = expect_status(
        gw.post(
            &msgs("c"),
            &secret_key(),
            json!({"content": link, "sender": "alice"}),
        )
        .await,
        201,
    );
    assert_eq!(by_app["content"], link);
    assert_eq!(by_app["plaintext"], "click");
    expect_status(
        gw.post(&msgs("c"), &alice_bot, json!({"content": button}))
            .await,
        201,
    );
    // A link with a bad scheme is invalid for everyone.
    let js = json!([{"type": "text", "children": [
        {"type": "link", "url": "javascript:alert(1)", "children": ["x"]}
    ]}]);
    expect_error(
        &gw.post(
            &msgs("c"),
            &secret_key(),
            json!({"content": js, "sender": "alice"}),
        )
        .await,
        400,
        "invalid_request",
    );
    assert_eq!(gw.message_ids("c", &alice).await.len(), 3);

    // A role without the reply, editOwn and deleteOwn grants (token claim or stored role).
    let quiet = user_token_with_role("alice", "quiet");
    let first = gw.message_ids("c", &alice).await[0].clone();
    expect_error(
        &gw.post(
            &msgs("c"),
            &quiet,
            json!({"text": "re", "referencedMessageId": first}),
        )
        .await,
        403,
        "forbidden",
    );
    let own = id_of(&gw.send("c", &quiet, "plain sends are fine").await);
    expect_error(
        &gw.patch(&msg("c", &own), &quiet, json!({"text": "edited"}))
            .await,
        403,
        "forbidden",
    );
    expect_error(&gw.delete(&msg("c", &own), &quiet).await, 403, "forbidden");
    expect_status(
        gw.put(&user("alice"), &secret_key(), json!({"role": "quiet"}))
            .await,
        200,
    );
    expect_error(&gw.delete(&msg("c", &own), &alice).await, 403, "forbidden");
    // The token's role wins over the stored one.
    let alice_default = user_token_with_role("alice", "default");
    expect_status(gw.delete(&msg("c", &own), &alice_default).await, 204);
    assert_eq!(gw.message_ids("c", &alice).await.len(), 3);
}

async fn import_messages(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    gw.conversation("c", &["alice"]).await;
    let path = format!("/import/conversations/{}/messages", enc("c"));
    let now = now_ms();
    let batch = json!([
        {"sender": "alice", "text": "one", "createdAt": now - 3_600_000},
        {"sender": "bob", "content": [{"type": "text", "children": ["two"]}], "createdAt": now - 7_200_000, "custom": {"src": "old"}},
        {"sender": "alice", "text": "three", "createdAt": now - 60_000}
    ]);

    // Users may not import.
    expect_error(
        &gw.post(&path, &alice, batch.clone()).await,
        403,
        "forbidden",
    );
    assert!(gw.message_ids("c", &alice).await.is_empty());

    let body = expect_status(gw.post(&path, &secret_key(), batch).await, 201);
    let ids: Vec<String> = body["messageIds"]
        .as_array()
        .expect("messageIds")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3);
    for (i, (id, text)) in ids.iter().zip(["one", "two", "three"]).enumerate() {
        let m = expect_status(gw.get(&msg("c", id), &alice).await, 200);
        assert_eq!(m["plaintext"], text, "message {i}");
        assert_eq!(m["origin"], "import");
        assert_eq!(m["type"], "UserMessage");
    }
    let two = expect_status(gw.get(&msg("c", &ids[1]), &alice).await, 200);
    assert_eq!(two["sender"]["id"], "bob");
    assert_eq!(two["custom"], json!({"src": "old"}));
    assert_eq!(two["createdAt"], now - 7_200_000);
    // The list is in createdAt order.
    assert_eq!(
        gw.message_ids("c", &alice).await,
        vec![ids[2].clone(), ids[0].clone(), ids[1].clone()]
    );

    // Bad batches: 400 and nothing written.
    let day = 86_400_000;
    for bad in [
        json!([{"sender": "alice", "text": "future", "createdAt": now + 600_000}]),
        json!([
            {"sender": "alice", "text": "fine", "createdAt": now - 1000},
            {"sender": "alice", "text": "ancient", "createdAt": now - 31 * day}
        ]),
        json!([]),
        json!([{"sender": "alice", "createdAt": now - 1000}]),
        json!([{"sender": "alice", "text": "x", "createdAt": now - 1000, "origin": "web"}]),
        json!([{"text": "no sender", "createdAt": now - 1000}]),
        json!({"sender": "alice", "text": "not an array", "createdAt": now - 1000}),
        Value::Array(
            (0..101)
                .map(|i| json!({"sender": "alice", "text": format!("n{i}"), "createdAt": now - 1000 - i}))
                .collect(),
        ),
    ] {
        expect_error(&gw.post(&path, &secret_key(), bad).await, 400, "invalid_request");
    }
    assert_eq!(gw.message_ids("c", &alice).await.len(), 3);
    // Exactly 100 is fine.
    let hundred = Value::Array(
        (0..100)
            .map(|i| json!({"sender": "alice", "text": format!("n{i}"), "createdAt": now - 100_000 + i}))
            .collect(),
    );
    let body = expect_status(gw.post(&path, &secret_key(), hundred).await, 201);
    assert_eq!(body["messageIds"].as_array().unwrap().len(), 100);
    let page = expect_status(gw.get(&format!("{}?limit=1", msgs("c")), &alice).await, 200);
    assert_eq!(page["data"][0]["plaintext"], "three");
    // A conversation that does not exist: 404.
    expect_error(
        &gw.post(
            "/import/conversations/nope/messages",
            &secret_key(),
            json!([{"sender": "alice", "text": "x", "createdAt": now - 1000}]),
        )
        .await,
        404,
        "not_found",
    );
}

/// Where the contract says a body is an object, an array is 400 and writes nothing (serde alone
/// would read `[null, null]` into a struct field by field; schemathesis found it).
async fn object_bodies_refuse_arrays(store: Store) {
    let gw = Gateway::on(store);
    gw.conversation("c", &["alice"]).await;
    let m = gw.send("c", &user_token("alice"), "hi").await;
    let mid = m["id"].as_str().unwrap().to_string();
    let alice = user_token("alice");
    let key = secret_key();
    let cases: Vec<(&str, String, &str)> = vec![
        ("PUT", "/users/alice".to_string(), alice.as_str()),
        ("PUT", "/conversations/new-one".to_string(), alice.as_str()),
        (
            "PUT",
            "/conversations/c/participants/bob".to_string(),
            key.as_str(),
        ),
        (
            "POST",
            "/conversations/c/messages".to_string(),
            alice.as_str(),
        ),
        (
            "PATCH",
            format!("/conversations/c/messages/{mid}"),
            alice.as_str(),
        ),
    ];
    for (method, path, token) in cases {
        let auth = format!("Bearer {token}");
        let headers = [
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ];
        let response = gw
            .send_raw(method, &path, &headers, b" [null, null]".to_vec())
            .await;
        let message = expect_error(&response, 400, "invalid_request");
        assert_eq!(
            message, "request body must be a JSON object",
            "{method} {path}"
        );
    }
    expect_error(
        &gw.get("/conversations/new-one", &alice).await,
        404,
        "not_found",
    );
    let participants = expect_status(gw.get("/conversations/c", &key).await, 200);
    assert!(
        participants["participants"].get("bob").is_none(),
        "{participants}"
    );
    // No body at all still adds a participant with ReadWrite access.
    expect_status(
        gw.put_empty("/conversations/c/participants/bob", &key)
            .await,
        204,
    );
}

// ---- authentication --------------------------------------------------------------------------

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

async fn auth_failures(store: Store) {
    let gw = Gateway::on(store);
    gw.conversation("c", &["alice"]).await;
    let path = msgs("c");
    let body = br#"{"text": "should not be written"}"#.to_vec();
    let exp = now_secs() + 3600;
    let claims = json!({"sub": "alice", "exp": exp});

    let header = |alg, kid: Option<&str>| jsonwebtoken::Header {
        kid: kid.map(str::to_string),
        ..jsonwebtoken::Header::new(alg)
    };
    let hs256 = || header(jsonwebtoken::Algorithm::HS256, Some(SIGNING_KID));
    let hs384 = jsonwebtoken::encode(
        &header(jsonwebtoken::Algorithm::HS384, Some(SIGNING_KID)),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SIGNING_SECRET.as_bytes()),
    )
    .unwrap();
    let wrong_key = jsonwebtoken::encode(
        &hs256(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"some-other-secret-0123456789abcdef"),
    )
    .unwrap();
    let no_exp = jsonwebtoken::encode(
        &hs256(),
        &json!({"sub": "alice"}),
        &jsonwebtoken::EncodingKey::from_secret(SIGNING_SECRET.as_bytes()),
    )
    .unwrap();
    // Signed with the right secret, but naming no key, or a key the gateway does not hold.
    let no_kid = jsonwebtoken::encode(
        &header(jsonwebtoken::Algorithm::HS256, None),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SIGNING_SECRET.as_bytes()),
    )
    .unwrap();
    let unknown_kid = jsonwebtoken::encode(
        &header(jsonwebtoken::Algorithm::HS256, Some("e2e-0")),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SIGNING_SECRET.as_bytes()),
    )
    .unwrap();
    let alg_none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    );
    let expired = natter::auth::issue_user_token(
        "alice",
        None,
        60,
        now_secs() - 3600,
        &natter_e2e::signing_key(),
    )
    .unwrap();
    // A valid token with its payload swapped for another user's.
    let valid = user_token("alice");
    let parts: Vec<&str> = valid.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(json!({"sub": "bob", "exp": exp}).to_string().as_bytes()),
        parts[2]
    );
    let near_secret = format!("{}x", secret_key());

    // Without the Authorization header (the authorizer's identity source), or with it empty,
    // API Gateway answers 401 itself, in its own format, and never calls the authorizer.
    let before = gw.stats().await;
    for headers in [vec![], vec![("authorization", "")]] {
        for method in ["POST", "GET"] {
            let mut headers = headers.clone();
            headers.push(("content-type", "application/json"));
            let response = gw.send_raw(method, &path, &headers, body.clone()).await;
            assert_eq!(
                response,
                (401, json!({"message": "Unauthorized"})),
                "{method} with {headers:?}"
            );
        }
    }
    let after = gw.stats().await;
    assert_eq!(after["authorizerCalls"], before["authorizerCalls"]);
    assert_eq!(
        after["missingIdentity"].as_u64(),
        before["missingIdentity"].as_u64().map(|n| n + 4)
    );

    let cases: Vec<(Option<String>, &str)> = vec![
        (Some("Basic x".into()), "Bearer"),
        (Some("Bearer".into()), "Bearer"),
        (Some(valid.clone()), "Bearer"), // no scheme at all
        (Some("Bearer not-a-jwt".into()), "malformed"),
        (Some("Bearer a.b.c".into()), "malformed"),
        (Some(format!("Bearer {near_secret}")), "malformed"),
        (Some(format!("Bearer {wrong_key}")), "signature"),
        (Some(format!("Bearer {tampered}")), "signature"),
        (Some(format!("Bearer {alg_none}")), "none"),
        (Some(format!("Bearer {hs384}")), "HS384"),
        (Some(format!("Bearer {expired}")), "expired"),
        (Some(format!("Bearer {no_exp}")), "exp"),
        (Some(format!("Bearer {no_kid}")), "no kid"),
        (Some(format!("Bearer {unknown_kid}")), "kid \"e2e-0\""),
    ];
    for (header, want) in cases {
        let mut headers = vec![("content-type", "application/json")];
        if let Some(h) = &header {
            headers.push(("authorization", h.as_str()));
        }
        // The second request of each has the cached denial: the same answer.
        let response = gw.send_raw("POST", &path, &headers, body.clone()).await;
        let message = expect_error(&response, 401, "unauthorized");
        assert!(
            message.to_lowercase().contains(&want.to_lowercase()),
            "{header:?}: message {message:?} should mention {want:?}"
        );
        // Reads are refused the same way.
        let response = gw.send_raw("GET", &path, &headers, Vec::new()).await;
        expect_error(&response, 401, "unauthorized");
    }
    // The scheme is case-insensitive; the secret key and a good token pass.
    let lower = format!("bearer {valid}");
    expect_status(
        gw.send_raw(
            "GET",
            &path,
            &[("authorization", lower.as_str())],
            Vec::new(),
        )
        .await,
        200,
    );
    assert!(gw.message_ids("c", &secret_key()).await.is_empty());
}

// ---- bad input ---------------------------------------------------------------------------------

async fn bad_bodies_write_nothing(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    let auth = format!("Bearer {alice}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    gw.conversation("c", &["alice"]).await;
    let path = msgs("c");

    let raw = |s: &str| s.as_bytes().to_vec();
    let too_many_keys: serde_json::Map<String, Value> =
        (0..51).map(|i| (format!("k{i}"), json!("v"))).collect();
    let big_text = "a".repeat(64 * 1024 + 1);
    let huge_body = serde_json::to_vec(&json!({"text": "b".repeat(1024 * 1024)})).unwrap();
    let cases: Vec<(Vec<u8>, u16, &str, &str)> = vec![
        (raw(r#"{"text": "hi""#), 400, "invalid_request", "JSON"),
        (raw("not json"), 400, "invalid_request", "JSON"),
        (raw(""), 400, "invalid_request", "body"),
        (
            raw(r#"{"text": "hi", "bogus": 1}"#),
            400,
            "invalid_request",
            "bogus",
        ),
        (raw(r#"{"text": 5}"#), 400, "invalid_request", "JSON"),
        (
            raw(r#"{"text": "hi", "custom": {"a": 1}}"#),
            400,
            "invalid_request",
            "JSON",
        ),
        (
            raw(r#"{"text": "hi", "custom": ["a"]}"#),
            400,
            "invalid_request",
            "JSON",
        ),
        (raw(r#"["hi"]"#), 400, "invalid_request", "JSON"),
        (raw(r#"{"text": "  "}"#), 400, "invalid_request", "empty"),
        (raw(r#"{}"#), 400, "invalid_request", "text"),
        (
            raw(r#"{"text": "a", "content": [{"type": "text", "children": ["a"]}]}"#),
            400,
            "invalid_request",
            "text",
        ),
        (
            raw(
                r#"{"content": [{"type": "text", "children": [{"type": "blink", "children": []}]}]}"#,
            ),
            400,
            "invalid_request",
            "blink",
        ),
        (
            raw(r#"{"content": [{"type": "location", "latitude": 91, "longitude": 0}]}"#),
            400,
            "invalid_request",
            "latitude",
        ),
        (huge_body, 413, "too_large", "bytes"),
        (
            serde_json::to_vec(&json!({"text": big_text})).unwrap(),
            413,
            "too_large",
            "text",
        ),
        (
            serde_json::to_vec(&json!({"text": "hi", "custom": too_many_keys})).unwrap(),
            400,
            "invalid_request",
            "custom",
        ),
        (
            serde_json::to_vec(&json!({"text": "hi", "custom": {"k".repeat(65): "v"}})).unwrap(),
            400,
            "invalid_request",
            "custom",
        ),
        (
            serde_json::to_vec(&json!({"text": "hi", "custom": {"k": "v".repeat(4097)}})).unwrap(),
            413,
            "too_large",
            "custom",
        ),
        (
            serde_json::to_vec(&json!({"text": "hi", "idempotencyKey": "k".repeat(129)})).unwrap(),
            400,
            "invalid_request",
            "idempotencyKey",
        ),
        (
            raw(r#"{"text": "hi", "referencedMessageId": "msg_\u0007"}"#),
            400,
            "invalid_request",
            "control",
        ),
        (
            raw(&format!(
                "{{\"text\": \"hi\", \"custom\": {{\"k\": \"{}\"}}}}",
                "x"
            )),
            201,
            "",
            "",
        ),
    ];
    let mut written = 0;
    for (body, status, code, mention) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
        let response = gw.send_raw("POST", &path, &headers, body).await;
        if status == 201 {
            // The control case: a good body is written.
            expect_status(response, 201);
            written += 1;
            continue;
        }
        let message = expect_error(&response, status, code);
        assert!(
            message.to_lowercase().contains(&mention.to_lowercase()),
            "{shown}: message {message:?} should mention {mention:?}"
        );
    }
    assert_eq!(gw.message_ids("c", &alice).await.len(), written);

    // Exactly at the limits is fine: 64 KiB of text, 50 custom keys, a 128-character key.
    let at_limit: serde_json::Map<String, Value> =
        (0..50).map(|i| (format!("k{i}"), json!("v"))).collect();
    expect_status(
        gw.post(
            &path,
            &alice,
            json!({"text": "a".repeat(64 * 1024 - 64), "custom": at_limit, "idempotencyKey": "k".repeat(128)}),
        )
        .await,
        201,
    );

    // Users and conversations: bad bodies write nothing either.
    let user_path = user("alice");
    for (body, status) in [
        (raw(r#"{"name": "A""#), 400),
        (raw(r#"{"name": "A", "admin": true}"#), 400),
        (raw(r#"{"name": 5}"#), 400),
        (
            serde_json::to_vec(&json!({"name": "n".repeat(1025)})).unwrap(),
            400,
        ),
    ] {
        let response = gw.send_raw("PUT", &user_path, &headers, body).await;
        assert_eq!(response.0, status, "{response:?}");
    }
    expect_error(&gw.get(&user_path, &alice).await, 404, "not_found");
    for body in [
        raw(r#"{"subject": "S""#),
        raw(r#"{"subject": "S", "owner": "alice"}"#),
        raw(r#"{"participants": "bob"}"#),
        serde_json::to_vec(
            &json!({"participants": (0..51).map(|i| format!("u{i}")).collect::<Vec<_>>()}),
        )
        .unwrap(),
    ] {
        let response = gw.send_raw("PUT", &conv("fresh"), &headers, body).await;
        expect_error(&response, 400, "invalid_request");
    }
    expect_error(
        &gw.get(&conv("fresh"), &secret_key()).await,
        404,
        "not_found",
    );
}

async fn bad_ids_limits_and_missing_things(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    gw.conversation("c", &["alice"]).await;
    let m = id_of(&gw.send("c", &alice, "one").await);

    // Ids: 1..128 characters, no control characters, no '#' or '/'.
    let long = "a".repeat(129);
    let message = expect_error(
        &gw.put(&conv(&long), &secret_key(), json!({})).await,
        400,
        "invalid_request",
    );
    assert!(message.contains("128"), "{message}");
    expect_error(
        &gw.get(&conv(&long), &secret_key()).await,
        400,
        "invalid_request",
    );
    let ok = "a".repeat(128);
    expect_status(gw.put(&conv(&ok), &secret_key(), json!({})).await, 200);
    expect_status(gw.get(&conv(&ok), &secret_key()).await, 200);
    let message = expect_error(
        &gw.put("/conversations/bad%07id", &secret_key(), json!({}))
            .await,
        400,
        "invalid_request",
    );
    assert!(message.contains("control"), "{message}");
    expect_error(
        &gw.put("/conversations/a%23b", &secret_key(), json!({}))
            .await,
        400,
        "invalid_request",
    );
    expect_error(
        &gw.put("/conversations/a%2Fb", &secret_key(), json!({}))
            .await,
        400,
        "invalid_request",
    );
    expect_error(
        &gw.get("/conversations/%FF%FE", &secret_key()).await,
        400,
        "invalid_request",
    );
    expect_error(
        &gw.put(&user(&long), &secret_key(), json!({"name": "x"}))
            .await,
        400,
        "invalid_request",
    );
    expect_error(
        &gw.put("/users/u%0A", &secret_key(), json!({"name": "x"}))
            .await,
        400,
        "invalid_request",
    );
    expect_error(
        &gw.put(
            &conv("c"),
            &secret_key(),
            json!({"participants": ["ok", "bad\u{1}"]}),
        )
        .await,
        400,
        "invalid_request",
    );
    expect_error(
        &gw.get(
            &format!("/conversations/c/messages/{}", "m".repeat(129)),
            &alice,
        )
        .await,
        400,
        "invalid_request",
    );
    expect_error(
        &gw.post(
            &msgs("c"),
            &secret_key(),
            json!({"text": "x", "sender": long}),
        )
        .await,
        400,
        "invalid_request",
    );
    let now = expect_status(gw.get(&conv("c"), &secret_key()).await, 200);
    assert_eq!(
        now["participants"],
        json!({"alice": {"access": "ReadWrite"}})
    );

    // limit: 1..100 whole numbers.
    for bad in ["0", "101", "abc", "-1", "1.5", ""] {
        let message = expect_error(
            &gw.get(&format!("{}?limit={bad}", msgs("c")), &alice).await,
            400,
            "invalid_request",
        );
        assert!(message.contains("limit"), "limit={bad}: {message}");
    }
    for good in ["1", "100"] {
        let page = expect_status(
            gw.get(&format!("{}?limit={good}", msgs("c")), &alice).await,
            200,
        );
        assert_eq!(page["data"].as_array().unwrap().len(), 1);
    }
    expect_error(
        &gw.get(&format!("{}?before=%07", msgs("c")), &alice).await,
        400,
        "invalid_request",
    );

    // Unknown things: 404.
    expect_error(
        &gw.get(&msg("c", "msg_nope"), &alice).await,
        404,
        "not_found",
    );
    expect_error(
        &gw.get(&msg("nope", &m), &secret_key()).await,
        404,
        "not_found",
    );
    expect_error(
        &gw.get(&msgs("nope"), &secret_key()).await,
        404,
        "not_found",
    );
    expect_error(
        &gw.put_empty(&reaction("c", "msg_nope", "👍"), &alice).await,
        404,
        "not_found",
    );
    expect_error(
        &gw.put(&participant("nope", "alice"), &secret_key(), json!({}))
            .await,
        404,
        "not_found",
    );
    // A user who is not a participant is a missing participant: 404 for their access.
    expect_error(
        &gw.get(&msgs("c"), &user_token("ghost")).await,
        404,
        "not_found",
    );
}

async fn unknown_routes_and_methods(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    for path in [
        "/nope",
        "/users",
        "/users/",
        "/users/a/b",
        "/conversations/c/messages/m/x",
        "/inboxes",
    ] {
        expect_error(&gw.get(path, &alice).await, 404, "not_found");
    }
    let response = gw.send_raw("GET", "/nope", &[], Vec::new()).await;
    expect_error(&response, 404, "not_found");
    // Outside /v1.
    let client_url = format!("{}/v2/users/a", gw.base_url);
    let status = reqwest::Client::new()
        .get(client_url)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 404);

    for (method, path) in [
        ("POST", "/users/a"),
        ("DELETE", "/users/a"),
        ("PATCH", "/conversations/c"),
        ("DELETE", "/conversations/c"),
        ("PUT", "/conversations/c/messages"),
        ("POST", "/conversations/c/messages/m"),
        ("GET", "/conversations/c/participants/u"),
        ("GET", "/conversations/c/messages/m/reactions/x"),
        ("GET", "/import/conversations/c/messages"),
    ] {
        let response = gw.request(method, path, Some(&alice), None).await;
        assert_eq!(response.0, 405, "{method} {path}: {response:?}");
        assert!(response.1["error"]["message"].is_string(), "{response:?}");
    }
}

// ---- the authorizer's cache --------------------------------------------------------------------

/// API Gateway caches the authorizer's verdict per Authorization value (60 s, `template.yaml`):
/// natter-local does too, so that nothing passes locally that a cached verdict would refuse on
/// AWS, or the other way round.
#[tokio::test]
async fn authorizer_verdicts_are_cached_per_authorization_value() {
    let gw = Gateway::on(Store::Memory);
    let alice = user_token("alice");
    gw.conversation("c", &["alice"]).await;
    let calls = |stats: &Value| stats["authorizerCalls"].as_u64().unwrap();
    let start = calls(&gw.stats().await);
    for _ in 0..5 {
        expect_status(gw.get(&msgs("c"), &alice).await, 200);
    }
    // One verdict for one token's five requests, over any route.
    expect_status(gw.get("/users/alice", &alice).await, 404);
    assert_eq!(calls(&gw.stats().await), start + 1, "one authorizer call");
    // Another value is another verdict, even for the same token.
    let lower = format!("bearer {alice}");
    let headers = [("authorization", lower.as_str())];
    expect_status(
        gw.send_raw("GET", &msgs("c"), &headers, Vec::new()).await,
        200,
    );
    assert_eq!(calls(&gw.stats().await), start + 2);
    // A denial is cached as well, and answered in natter's format every time.
    for _ in 0..3 {
        expect_error(&gw.get(&msgs("c"), "not-a-jwt").await, 401, "unauthorized");
    }
    assert_eq!(calls(&gw.stats().await), start + 3);
}

/// A cached verdict does not outlive its token: the verdict carries `exp`, and the function
/// refuses it from that second with the authorizer's own 401.
#[tokio::test]
async fn a_cached_verdict_is_refused_once_its_token_expires() {
    let gw = Gateway::on(Store::Memory);
    gw.conversation("c", &["alice"]).await;
    let now = now_secs();
    let short =
        natter::auth::issue_user_token("alice", None, 2, now, &natter_e2e::signing_key()).unwrap();
    let calls = |stats: &Value| stats["authorizerCalls"].as_u64().unwrap();
    let start = calls(&gw.stats().await);
    expect_status(gw.get(&msgs("c"), &short).await, 200);
    // Past exp (now + 2), well within the cache's 60 s.
    tokio::time::sleep(Duration::from_millis(
        ((now + 2) * 1000).saturating_sub(now_ms() as u64) + 200,
    ))
    .await;
    let message = expect_error(&gw.get(&msgs("c"), &short).await, 401, "unauthorized");
    assert!(message.contains("expired"), "{message}");
    assert_eq!(
        calls(&gw.stats().await),
        start + 1,
        "the verdict was cached"
    );
}

/// `--authorizer-cache-ttl` shortens the cache (0: none): a verdict is asked for again once it
/// is older than the TTL.
#[tokio::test]
async fn the_authorizer_cache_forgets_a_verdict_after_its_ttl() {
    let gw = Gateway::start(GatewayOptions::new(Store::Memory).arg("--authorizer-cache-ttl", "1"));
    let alice = user_token("alice");
    gw.conversation("c", &["alice"]).await;
    let calls = |stats: &Value| stats["authorizerCalls"].as_u64().unwrap();
    let start = calls(&gw.stats().await);
    expect_status(gw.get(&msgs("c"), &alice).await, 200);
    expect_status(gw.get(&msgs("c"), &alice).await, 200);
    assert_eq!(calls(&gw.stats().await), start + 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    expect_status(gw.get(&msgs("c"), &alice).await, 200);
    assert_eq!(calls(&gw.stats().await), start + 2);

    let gw = Gateway::start(GatewayOptions::new(Store::Memory).arg("--authorizer-cache-ttl", "0"));
    gw.conversation("c", &["alice"]).await;
    let start = calls(&gw.stats().await);
    for _ in 0..3 {
        expect_status(gw.get(&msgs("c"), &alice).await, 200);
    }
    assert_eq!(calls(&gw.stats().await), start + 3);
}

// ---- expiry ------------------------------------------------------------------------------------

async fn expiry(store: Store) {
    let gw = Gateway::start(GatewayOptions::new(store).env("RETENTION_SECONDS", "2"));
    let alice = user_token("alice");
    let bob = user_token("bob");
    gw.conversation("c", &["alice", "bob"]).await;
    let sent = gw.send("c", &alice, "short-lived").await;
    let id = id_of(&sent);
    expect_status(gw.put_empty(&reaction("c", &id, "👍"), &bob).await, 204);
    let page = expect_status(gw.get(&msgs("c"), &bob).await, 200);
    assert_eq!(page["data"][0]["id"], id.as_str());
    assert_eq!(
        page["data"][0]["reactions"],
        json!([{"emoji": "👍", "count": 1, "currentUserReacted": true}])
    );

    // Retention is 2 s from creation; wait until that is safely past.
    let created = sent["createdAt"].as_i64().unwrap();
    let wait = (created + 3_000 - now_ms()).clamp(0, 3_500);
    tokio::time::sleep(Duration::from_millis(wait as u64)).await;

    let page = expect_status(gw.get(&msgs("c"), &bob).await, 200);
    assert_eq!(page, json!({"data": [], "loadedAll": true}));
    expect_error(&gw.get(&msg("c", &id), &bob).await, 404, "not_found");
    expect_error(
        &gw.put_empty(&reaction("c", &id, "👍"), &bob).await,
        404,
        "not_found",
    );
    expect_error(
        &gw.put_empty(&reaction("c", &id, "🎉"), &alice).await,
        404,
        "not_found",
    );
    expect_error(
        &gw.delete(&reaction("c", &id, "👍"), &bob).await,
        404,
        "not_found",
    );
    expect_error(
        &gw.patch(&msg("c", &id), &alice, json!({"text": "revived?"}))
            .await,
        404,
        "not_found",
    );
    expect_error(
        &gw.post(
            &msgs("c"),
            &bob,
            json!({"text": "re", "referencedMessageId": id}),
        )
        .await,
        400,
        "invalid_request",
    );
    expect_status(gw.delete(&msg("c", &id), &alice).await, 204);
    // The conversation itself is not a message: it stays.
    expect_status(gw.get(&conv("c"), &alice).await, 200);
    // New messages live again, and only they are listed.
    let fresh = gw.send("c", &alice, "fresh").await;
    assert_eq!(gw.message_ids("c", &bob).await, vec![id_of(&fresh)]);
    let got = expect_status(gw.get(&msg("c", &id_of(&fresh)), &bob).await, 200);
    assert_eq!(got["reactions"], json!([]));
    // Import refuses what would already be expired.
    expect_error(
        &gw.post(
            "/import/conversations/c/messages",
            &secret_key(),
            json!([{"sender": "alice", "text": "old", "createdAt": now_ms() - 5_000}]),
        )
        .await,
        400,
        "invalid_request",
    );
}
