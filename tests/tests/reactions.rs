//! Emoji reactions end to end: normalisation, validation, counts, order, the distinct-reaction
//! limit (also under concurrent adds) and who may react, on both stores.

use natter_e2e::{
    both_stores, enc, expect_error, expect_status, secret_key, tick, user_token,
    user_token_with_role, Gateway, GatewayOptions, Store,
};
use serde_json::{json, Value};

fn msg(cid: &str, mid: &str) -> String {
    format!("/conversations/{}/messages/{}", enc(cid), enc(mid))
}

fn reaction(cid: &str, mid: &str, emoji: &str) -> String {
    format!("{}/reactions/{}", msg(cid, mid), enc(emoji))
}

fn id_of(message: &Value) -> String {
    message["id"].as_str().expect("message id").to_string()
}

/// The `i`-th of 80 distinct single-code-point emoji (U+1F600 onwards: faces, then gestures).
fn nth_emoji(i: usize) -> String {
    assert!(i < 80);
    char::from_u32(0x1F600 + i as u32)
        .expect("emoji code point")
        .to_string()
}

/// `[(emoji, count, currentUserReacted)]` of a snapshot.
fn reactions_of(message: &Value) -> Vec<(String, u64, bool)> {
    message["reactions"]
        .as_array()
        .unwrap_or_else(|| panic!("no reactions in {message}"))
        .iter()
        .map(|r| {
            (
                r["emoji"].as_str().expect("emoji").to_string(),
                r["count"].as_u64().expect("count"),
                r["currentUserReacted"]
                    .as_bool()
                    .expect("currentUserReacted"),
            )
        })
        .collect()
}

fn r(emoji: &str, count: u64, mine: bool) -> (String, u64, bool) {
    (emoji.to_string(), count, mine)
}

async fn reactions_seen_by(
    gw: &Gateway,
    cid: &str,
    mid: &str,
    token: &str,
) -> Vec<(String, u64, bool)> {
    reactions_of(&expect_status(gw.get(&msg(cid, mid), token).await, 200))
}

both_stores! {
    add_and_remove: add_and_remove_memory, add_and_remove_dynamo;
    normalised_forms: normalised_forms_memory, normalised_forms_dynamo;
    invalid_reactions: invalid_reactions_memory, invalid_reactions_dynamo;
    counts_viewers_and_order: counts_viewers_and_order_memory, counts_viewers_and_order_dynamo;
    quick_reactions_keep_their_order: quick_reactions_keep_their_order_memory, quick_reactions_keep_their_order_dynamo;
    reactions_in_lists_and_references: reactions_in_lists_and_references_memory, reactions_in_lists_and_references_dynamo;
    distinct_limit: distinct_limit_memory, distinct_limit_dynamo;
    who_may_react: who_may_react_memory, who_may_react_dynamo;
    missing_and_deleted_messages: missing_and_deleted_messages_memory, missing_and_deleted_messages_dynamo;
    concurrent_distinct_limit: concurrent_distinct_limit_memory, concurrent_distinct_limit_dynamo;
}

async fn add_and_remove(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    gw.conversation("c", &["alice"]).await;
    let m = id_of(&gw.send("c", &alice, "react to me").await);
    let add = gw.put_empty(&reaction("c", &m, "👍"), &alice).await;
    assert_eq!(add, (204, Value::Null));
    assert_eq!(
        reactions_seen_by(&gw, "c", &m, &alice).await,
        vec![r("👍", 1, true)]
    );
    // Adding again changes nothing.
    assert_eq!(gw.put_empty(&reaction("c", &m, "👍"), &alice).await.0, 204);
    assert_eq!(
        reactions_seen_by(&gw, "c", &m, &alice).await,
        vec![r("👍", 1, true)]
    );
    let remove = gw.delete(&reaction("c", &m, "👍"), &alice).await;
    assert_eq!(remove, (204, Value::Null));
    assert_eq!(reactions_seen_by(&gw, "c", &m, &alice).await, vec![]);
    // Removing again, or removing one never added, is fine too.
    assert_eq!(gw.delete(&reaction("c", &m, "👍"), &alice).await.0, 204);
    assert_eq!(gw.delete(&reaction("c", &m, "🎉"), &alice).await.0, 204);
    assert_eq!(reactions_seen_by(&gw, "c", &m, &alice).await, vec![]);
    // The secret key is not a user and cannot react.
    expect_error(
        &gw.put_empty(&reaction("c", &m, "👍"), &secret_key()).await,
        403,
        "forbidden",
    );
    // And it can be added back.
    assert_eq!(gw.put_empty(&reaction("c", &m, "👍"), &alice).await.0, 204);
    assert_eq!(
        reactions_seen_by(&gw, "c", &m, &alice).await,
        vec![r("👍", 1, true)]
    );
    // The secret key sees counts, with currentUserReacted false.
    assert_eq!(
        reactions_seen_by(&gw, "c", &m, &secret_key()).await,
        vec![r("👍", 1, false)]
    );
}

async fn normalised_forms(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    gw.conversation("c", &["alice"]).await;

    // 👍 with and without U+FE0F are one reaction of one user.
    let m = id_of(&gw.send("c", &alice, "thumbs").await);
    assert_eq!(
        gw.put_empty(&reaction("c", &m, "👍\u{FE0F}"), &alice)
            .await
            .0,
        204
    );
    assert_eq!(gw.put_empty(&reaction("c", &m, "👍"), &alice).await.0, 204);
    assert_eq!(
        reactions_seen_by(&gw, "c", &m, &alice).await,
        vec![r("👍", 1, true)]
    );
    // Removing with the other form removes it.
    assert_eq!(
        gw.delete(&reaction("c", &m, "👍\u{FE0F}"), &alice).await.0,
        204
    );
    assert_eq!(reactions_seen_by(&gw, "c", &m, &alice).await, vec![]);

    // Each form is stored fully qualified.
    let cases = [
        ("❤", "❤\u{FE0F}"),
        ("❤\u{FE0F}", "❤\u{FE0F}"),
        ("1\u{20E3}", "1\u{FE0F}\u{20E3}"),
        ("#\u{FE0F}\u{20E3}", "#\u{FE0F}\u{20E3}"),
        ("🏳\u{200D}🌈", "🏳\u{FE0F}\u{200D}🌈"),
        ("🏳\u{FE0F}\u{200D}🌈", "🏳\u{FE0F}\u{200D}🌈"),
        ("👍🏽", "👍🏽"),
        ("🧑🏽\u{200D}🤝\u{200D}🧑🏻", "🧑🏽\u{200D}🤝\u{200D}🧑🏻"),
        ("🇳🇱", "🇳🇱"),
        (":cat_roomba:", ":cat_roomba:"),
        (":+1:", ":+1:"),
    ];
    for (input, stored) in cases {
        let m = id_of(&gw.send("c", &alice, "form").await);
        let response = gw.put_empty(&reaction("c", &m, input), &alice).await;
        assert_eq!(response.0, 204, "{}: {response:?}", input.escape_unicode());
        assert_eq!(
            reactions_seen_by(&gw, "c", &m, &alice).await,
            vec![r(stored, 1, true)],
            "{}",
            input.escape_unicode()
        );
    }
    // A heart with and without U+FE0F by two users: one reaction, count 2.
    let bob = user_token("bob");
    gw.participant("c", "bob", "ReadWrite").await;
    let m = id_of(&gw.send("c", &alice, "love").await);
    assert_eq!(gw.put_empty(&reaction("c", &m, "❤"), &alice).await.0, 204);
    assert_eq!(
        gw.put_empty(&reaction("c", &m, "❤\u{FE0F}"), &bob).await.0,
        204
    );
    assert_eq!(
        reactions_seen_by(&gw, "c", &m, &bob).await,
        vec![r("❤\u{FE0F}", 2, true)]
    );
    // The longest custom emoji: 50 characters with the colons.
    let longest = format!(":{}:", "a".repeat(48));
    assert_eq!(
        gw.put_empty(&reaction("c", &m, &longest), &alice).await.0,
        204
    );
    assert_eq!(reactions_seen_by(&gw, "c", &m, &bob).await.len(), 2);
}

async fn invalid_reactions(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    gw.conversation("c", &["alice"]).await;
    let m = id_of(&gw.send("c", &alice, "x").await);
    let too_long = format!(":{}:", "a".repeat(49));
    let long_text = "a".repeat(200);
    let invalid = [
        "ok",
        "a",
        "👍👍",
        "👍❤\u{FE0F}",
        "👍ok",
        " 👍",
        "👍 ",
        "::",
        too_long.as_str(),
        ":cat roomba:",
        ":é:",
        ":cat",
        "🏽",
        "🇳",
        "\u{FE0F}",
        "1\u{FE0F}",
        long_text.as_str(),
    ];
    for input in invalid {
        let response = gw.put_empty(&reaction("c", &m, input), &alice).await;
        let message = expect_error(&response, 400, "invalid_request");
        assert!(
            message.contains("reaction") || message.contains("emoji") || message.contains("flag"),
            "{}: {message}",
            input.escape_unicode()
        );
        let response = gw.delete(&reaction("c", &m, input), &alice).await;
        expect_error(&response, 400, "invalid_request");
    }
    assert_eq!(reactions_seen_by(&gw, "c", &m, &alice).await, vec![]);
}

async fn counts_viewers_and_order(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    let bob = user_token("bob");
    let carol = user_token("carol");
    gw.conversation("c", &["alice", "bob", "carol"]).await;
    let m = id_of(&gw.send("c", &alice, "vote").await);

    // First-added order, deliberately not the emoji's code point order.
    for (emoji, token) in [
        ("😀", &alice),
        ("👍", &bob),
        ("🎉", &carol),
        (":zz_top:", &alice),
        ("❤\u{FE0F}", &bob),
    ] {
        assert_eq!(gw.put_empty(&reaction("c", &m, emoji), token).await.0, 204);
        tick().await;
    }
    // More of the same do not reorder.
    assert_eq!(gw.put_empty(&reaction("c", &m, "🎉"), &alice).await.0, 204);
    assert_eq!(gw.put_empty(&reaction("c", &m, "🎉"), &bob).await.0, 204);
    assert_eq!(gw.put_empty(&reaction("c", &m, "👍"), &alice).await.0, 204);

    assert_eq!(
        reactions_seen_by(&gw, "c", &m, &alice).await,
        vec![
            r("😀", 1, true),
            r("👍", 2, true),
            r("🎉", 3, true),
            r(":zz_top:", 1, true),
            r("❤\u{FE0F}", 1, false),
        ]
    );
    assert_eq!(
        reactions_seen_by(&gw, "c", &m, &bob).await,
        vec![
            r("😀", 1, false),
            r("👍", 2, true),
            r("🎉", 3, true),
            r(":zz_top:", 1, false),
            r("❤\u{FE0F}", 1, true),
        ]
    );
    assert_eq!(
        reactions_seen_by(&gw, "c", &m, &carol).await,
        vec![
            r("😀", 1, false),
            r("👍", 2, false),
            r("🎉", 3, true),
            r(":zz_top:", 1, false),
            r("❤\u{FE0F}", 1, false),
        ]
    );

    // One user's removal lowers the count for everyone and only that user's flag.
    assert_eq!(gw.delete(&reaction("c", &m, "🎉"), &bob).await.0, 204);
    assert_eq!(gw.delete(&reaction("c", &m, "🎉"), &bob).await.0, 204);
    // Removing someone else's reaction is not possible: it removes only the caller's (none).
    assert_eq!(gw.delete(&reaction("c", &m, "😀"), &carol).await.0, 204);
    assert_eq!(
        reactions_seen_by(&gw, "c", &m, &bob).await,
        vec![
            r("😀", 1, false),
            r("👍", 2, true),
            r("🎉", 2, false),
            r(":zz_top:", 1, false),
            r("❤\u{FE0F}", 1, true),
        ]
    );
    // The last reaction of an emoji removes it from the list.
    assert_eq!(gw.delete(&reaction("c", &m, "😀"), &alice).await.0, 204);
    let seen: Vec<String> = reactions_seen_by(&gw, "c", &m, &carol)
        .await
        .into_iter()
        .map(|(e, _, _)| e)
        .collect();
    assert_eq!(seen, vec!["👍", "🎉", ":zz_top:", "❤\u{FE0F}"]);
}

/// Reactions added one after another are listed in that order even when several fall in the
/// same millisecond.
async fn quick_reactions_keep_their_order(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    gw.conversation("c", &["alice"]).await;
    let quick = id_of(&gw.send("c", &alice, "quick").await);
    // Reverse code point order, so that a tie broken by the emoji shows.
    let order: Vec<String> = (0..30).rev().map(nth_emoji).collect();
    for emoji in &order {
        assert_eq!(
            gw.put_empty(&reaction("c", &quick, emoji), &alice).await.0,
            204
        );
    }
    let seen: Vec<String> = reactions_seen_by(&gw, "c", &quick, &alice)
        .await
        .into_iter()
        .map(|(e, _, _)| e)
        .collect();
    assert_eq!(seen, order, "reactions must be listed in first-added order");
}

async fn reactions_in_lists_and_references(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    let bob = user_token("bob");
    gw.conversation("c", &["alice", "bob"]).await;
    let first = id_of(&gw.send("c", &alice, "first").await);
    assert_eq!(
        gw.put_empty(&reaction("c", &first, "👍"), &bob).await.0,
        204
    );
    tick().await;
    assert_eq!(
        gw.put_empty(&reaction("c", &first, "🎉"), &alice).await.0,
        204
    );
    tick().await;

    // A reply carries the referenced message's reactions, from the viewer's side.
    let reply = expect_status(
        gw.post(
            "/conversations/c/messages",
            &alice,
            json!({"text": "re", "referencedMessageId": first}),
        )
        .await,
        201,
    );
    assert_eq!(
        reactions_of(&reply["referencedMessage"]),
        vec![r("👍", 1, false), r("🎉", 1, true)]
    );
    let reply_id = id_of(&reply);
    assert_eq!(
        gw.put_empty(&reaction("c", &reply_id, "😀"), &bob).await.0,
        204
    );
    let got = expect_status(gw.get(&msg("c", &reply_id), &bob).await, 200);
    assert_eq!(reactions_of(&got), vec![r("😀", 1, true)]);
    assert_eq!(
        reactions_of(&got["referencedMessage"]),
        vec![r("👍", 1, true), r("🎉", 1, false)]
    );

    // List pages show them too, also when the referenced message is on another page.
    let page = expect_status(
        gw.get("/conversations/c/messages?limit=1", &alice).await,
        200,
    );
    assert_eq!(page["data"][0]["id"], reply_id.as_str());
    assert_eq!(reactions_of(&page["data"][0]), vec![r("😀", 1, false)]);
    assert_eq!(
        reactions_of(&page["data"][0]["referencedMessage"]),
        vec![r("👍", 1, false), r("🎉", 1, true)]
    );
    let page = expect_status(gw.get("/conversations/c/messages", &bob).await, 200);
    assert_eq!(reactions_of(&page["data"][0]), vec![r("😀", 1, true)]);
    assert_eq!(
        reactions_of(&page["data"][1]),
        vec![r("👍", 1, true), r("🎉", 1, false)]
    );
    assert_eq!(
        reactions_of(&page["data"][0]["referencedMessage"]),
        vec![r("👍", 1, true), r("🎉", 1, false)]
    );
    // An edit keeps the reactions.
    let edited = expect_status(
        gw.patch(&msg("c", &first), &alice, json!({"text": "first!"}))
            .await,
        200,
    );
    assert_eq!(
        reactions_of(&edited),
        vec![r("👍", 1, false), r("🎉", 1, true)]
    );
}

async fn distinct_limit(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    let bob = user_token("bob");
    gw.conversation("c", &["alice", "bob"]).await;
    let m = id_of(&gw.send("c", &alice, "popular").await);
    for i in 0..50 {
        let response = gw
            .put_empty(&reaction("c", &m, &nth_emoji(i)), &alice)
            .await;
        assert_eq!(response.0, 204, "reaction {i}: {response:?}");
    }
    // The 51st distinct one: 409 limit_exceeded, by anyone, custom or not.
    let message = expect_error(
        &gw.put_empty(&reaction("c", &m, &nth_emoji(50)), &alice)
            .await,
        409,
        "limit_exceeded",
    );
    assert!(message.contains("50"), "{message}");
    expect_error(
        &gw.put_empty(&reaction("c", &m, ":fifty_one:"), &bob).await,
        409,
        "limit_exceeded",
    );
    // An existing one still adds.
    assert_eq!(
        gw.put_empty(&reaction("c", &m, &nth_emoji(7)), &bob)
            .await
            .0,
        204
    );
    let seen = reactions_seen_by(&gw, "c", &m, &bob).await;
    assert_eq!(seen.len(), 50);
    assert_eq!(seen[7], (nth_emoji(7), 2, true));
    let expected: Vec<String> = (0..50).map(nth_emoji).collect();
    assert_eq!(
        seen.iter().map(|(e, _, _)| e.clone()).collect::<Vec<_>>(),
        expected
    );
    // An emoji nobody reacts with any more frees its slot.
    assert_eq!(
        gw.delete(&reaction("c", &m, &nth_emoji(3)), &alice).await.0,
        204
    );
    assert_eq!(
        gw.put_empty(&reaction("c", &m, &nth_emoji(60)), &bob)
            .await
            .0,
        204
    );
    let seen = reactions_seen_by(&gw, "c", &m, &bob).await;
    assert_eq!(seen.len(), 50);
    assert!(seen.iter().all(|(e, _, _)| *e != nth_emoji(3)));
    assert_eq!(seen.last().unwrap(), &(nth_emoji(60), 1, true));
    // And the limit holds again.
    expect_error(
        &gw.put_empty(&reaction("c", &m, &nth_emoji(61)), &alice)
            .await,
        409,
        "limit_exceeded",
    );
    // The limit is per message.
    let other = id_of(&gw.send("c", &alice, "other").await);
    assert_eq!(
        gw.put_empty(&reaction("c", &other, &nth_emoji(61)), &alice)
            .await
            .0,
        204
    );
}

async fn who_may_react(store: Store) {
    let gw = Gateway::start(
        GatewayOptions::new(store).env("NATTER_ROLES", r#"{"muted": {"react": false}}"#),
    );
    let alice = user_token("alice");
    let reader = user_token("reader");
    let eve = user_token("eve");
    let muted = user_token_with_role("mute", "muted");
    let mia = user_token("mia");
    gw.conversation("c", &["alice", "mute", "mia"]).await;
    gw.participant("c", "reader", "Read").await;
    let m = id_of(&gw.send("c", &alice, "hello").await);
    assert_eq!(gw.put_empty(&reaction("c", &m, "👍"), &alice).await.0, 204);

    // A Read participant: 403; a stranger: 404.
    expect_error(
        &gw.put_empty(&reaction("c", &m, "👍"), &reader).await,
        403,
        "forbidden",
    );
    expect_error(
        &gw.put_empty(&reaction("c", &m, "🎉"), &reader).await,
        403,
        "forbidden",
    );
    expect_error(
        &gw.put_empty(&reaction("c", &m, "👍"), &eve).await,
        404,
        "not_found",
    );
    expect_error(
        &gw.delete(&reaction("c", &m, "👍"), &eve).await,
        404,
        "not_found",
    );
    // A role without the react grant, from the token: 403.
    let message = expect_error(
        &gw.put_empty(&reaction("c", &m, "👍"), &muted).await,
        403,
        "forbidden",
    );
    assert!(message.contains("role"), "{message}");
    // ... or stored on the user by the secret key.
    expect_status(
        gw.put("/users/mia", &secret_key(), json!({"role": "muted"}))
            .await,
        200,
    );
    expect_error(
        &gw.put_empty(&reaction("c", &m, "👍"), &mia).await,
        403,
        "forbidden",
    );
    // A token role wins over the stored one.
    let mia_default = user_token_with_role("mia", "default");
    assert_eq!(
        gw.put_empty(&reaction("c", &m, "😀"), &mia_default).await.0,
        204
    );
    // Muted users may still send.
    gw.send("c", &muted, "I can talk").await;

    assert_eq!(
        reactions_seen_by(&gw, "c", &m, &alice).await,
        vec![r("👍", 1, true), r("😀", 1, false)]
    );
    // After leaving, a former participant is a stranger.
    expect_status(
        gw.delete("/conversations/c/participants/alice", &alice)
            .await,
        204,
    );
    expect_error(
        &gw.put_empty(&reaction("c", &m, "🎉"), &alice).await,
        404,
        "not_found",
    );
}

async fn missing_and_deleted_messages(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    gw.conversation("c", &["alice"]).await;
    gw.conversation("d", &["alice"]).await;
    for mid in ["msg_01ARZ3NDEKTSV4RRFFQ69G5FAV", "whatever"] {
        expect_error(
            &gw.put_empty(&reaction("c", mid, "👍"), &alice).await,
            404,
            "not_found",
        );
        expect_error(
            &gw.delete(&reaction("c", mid, "👍"), &alice).await,
            404,
            "not_found",
        );
    }
    let m = id_of(&gw.send("c", &alice, "soon gone").await);
    assert_eq!(gw.put_empty(&reaction("c", &m, "👍"), &alice).await.0, 204);
    // A message of another conversation is not found here.
    expect_error(
        &gw.put_empty(&reaction("d", &m, "👍"), &alice).await,
        404,
        "not_found",
    );
    expect_status(gw.delete(&msg("c", &m), &alice).await, 204);
    expect_error(
        &gw.put_empty(&reaction("c", &m, "👍"), &alice).await,
        404,
        "not_found",
    );
    expect_error(
        &gw.put_empty(&reaction("c", &m, "🎉"), &alice).await,
        404,
        "not_found",
    );
    expect_error(
        &gw.delete(&reaction("c", &m, "👍"), &alice).await,
        404,
        "not_found",
    );
    expect_error(&gw.get(&msg("c", &m), &alice).await, 404, "not_found");
}

async fn concurrent_distinct_limit(store: Store) {
    let gw = Gateway::on(store);
    let users: Vec<String> = (0..60).map(|i| format!("user{i:02}")).collect();
    let names: Vec<&str> = users.iter().map(String::as_str).collect();
    // At most 50 participants per request.
    gw.conversation("c", &names[..30]).await;
    gw.conversation("c", &names[30..]).await;
    let sent = expect_status(
        gw.post(
            "/conversations/c/messages",
            &secret_key(),
            json!({"text": "race", "sender": "user00"}),
        )
        .await,
        201,
    );
    let m = id_of(&sent);
    let requests = users.iter().enumerate().map(|(i, u)| {
        let token = user_token(u);
        let path = reaction("c", &m, &nth_emoji(i));
        let gw = &gw;
        async move { gw.put_empty(&path, &token).await }
    });
    let responses = futures::future::join_all(requests).await;
    let ok = responses.iter().filter(|(s, _)| *s == 204).count();
    let refused: Vec<&(u16, Value)> = responses.iter().filter(|(s, _)| *s != 204).collect();
    // Note for the DynamoDB variant: moto_server serves requests on several threads and its
    // TransactWriteItems is not atomic across them (it checks, writes, and on a cancellation
    // restores a snapshot of the table), so concurrent transactions can both pass a condition.
    // DynamoDB itself is atomic; run moto single-threaded to test this (see the report).
    let hint = match store {
        Store::Dynamo => {
            "; with moto, make sure it runs single-threaded (threaded moto_server does not \
             serialize transactions)"
        }
        Store::Memory => "",
    };
    assert_eq!(ok, 50, "204s{hint}; the others: {refused:?}");
    assert_eq!(refused.len(), 10);
    for response in refused {
        expect_error(response, 409, "limit_exceeded");
    }
    let seen = reactions_seen_by(&gw, "c", &m, &user_token("user00")).await;
    assert_eq!(seen.len(), 50);
    assert!(seen.iter().all(|(_, count, _)| *count == 1), "{seen:?}");
    // Each accepted emoji is one that got a 204.
    let accepted: Vec<String> = responses
        .iter()
        .enumerate()
        .filter(|(_, (s, _))| *s == 204)
        .map(|(i, _)| nth_emoji(i))
        .collect();
    let mut seen_emoji: Vec<String> = seen.into_iter().map(|(e, _, _)| e).collect();
    seen_emoji.sort();
    assert_eq!(seen_emoji, accepted);
}
