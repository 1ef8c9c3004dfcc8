//! Content safety and identity end to end (issue 11), through `natter-local` on both stores: every URL natter stores follows
//! the link rule, disguised autoLinks need the `sendLinks` grant, mentions and custom emoji are
//! checked, idempotency scopes never meet, tokens that are not valid yet or name no valid user
//! are refused, and secrets that could never match stop the gateway.

use std::time::Duration;

use natter_e2e::ws::WsClient;
use natter_e2e::{
    both_stores, command, enc, expect_error, expect_status, now_secs, secret_key, user_token,
    user_token_with_role, Gateway, GatewayOptions, Store, SIGNING_SECRET,
};
use serde_json::{json, Value};

both_stores! {
    stored_urls_follow_the_link_rule: stored_urls_follow_the_link_rule_memory, stored_urls_follow_the_link_rule_dynamo;
    disguised_auto_links_need_the_grant: disguised_auto_links_need_the_grant_memory, disguised_auto_links_need_the_grant_dynamo;
    mentions_and_custom_emoji_are_checked: mentions_and_custom_emoji_are_checked_memory, mentions_and_custom_emoji_are_checked_dynamo;
    idempotency_scopes_never_meet: idempotency_scopes_never_meet_memory, idempotency_scopes_never_meet_dynamo;
}

fn msgs(cid: &str) -> String {
    format!("/conversations/{}/messages", enc(cid))
}

fn text_of(nodes: Value) -> Value {
    json!([{"type": "text", "children": nodes}])
}

fn file(url: &str) -> Value {
    json!([{"type": "file", "url": url, "filename": "f.png", "size": 1}])
}

/// URLs a browser would run, read locally or hide, each as a file, a link and an autoLink.
const BAD_URLS: [&str; 7] = [
    "javascript:alert(document.cookie)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "file:///etc/passwd",
    " javascript:alert(1)",
    "java\tscript:alert(1)",
    "JAVASCRIPT:alert(1)",
    "https://x.io\u{202E}",
];

async fn stored_urls_follow_the_link_rule(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    gw.conversation("c", &["alice"]).await;
    let as_alice = |content: Value| json!({"content": content, "sender": "alice"});
    for url in BAD_URLS {
        let cases = [
            (file(url), "content[0]: file url"),
            (
                text_of(json!([{"type": "link", "url": url, "children": ["x"]}])),
                "content[0].children[0]: link url",
            ),
            (
                text_of(json!([{"type": "autoLink", "url": url, "text": url}])),
                "content[0].children[0]: autoLink url",
            ),
        ];
        for (content, field) in cases {
            // The secret key may send links, so only the URL rule can refuse these.
            let message = expect_error(
                &gw.post(&msgs("c"), &secret_key(), as_alice(content.clone()))
                    .await,
                400,
                "invalid_request",
            );
            assert!(message.starts_with(field), "{url:?}: {message}");
            if field.contains("file") {
                let message = expect_error(
                    &gw.post(&msgs("c"), &alice, json!({"content": content}))
                        .await,
                    400,
                    "invalid_request",
                );
                assert!(message.starts_with(field), "{url:?}: {message}");
            }
        }
    }
    assert!(
        gw.message_ids("c", &alice).await.is_empty(),
        "nothing stored"
    );

    // Allowed schemes, in any case, are stored as given.
    for url in [
        "https://f.io/a.png",
        "HTTP://f.io/a.png",
        "mailto:a@b.io",
        "tel:+3161",
    ] {
        let sent = expect_status(
            gw.post(&msgs("c"), &alice, json!({"content": file(url)}))
                .await,
            201,
        );
        assert_eq!(sent["content"][0]["url"], url);
    }
    // An edit is held to the same rule, and leaves the message as it was.
    let sent = gw.send("c", &alice, "hello").await;
    let path = format!("{}/{}", msgs("c"), enc(sent["id"].as_str().unwrap()));
    expect_error(
        &gw.patch(
            &path,
            &alice,
            json!({"content": file("javascript:alert(1)")}),
        )
        .await,
        400,
        "invalid_request",
    );
    assert_eq!(
        expect_status(gw.get(&path, &alice).await, 200)["content"],
        sent["content"]
    );

    // photoUrl of users and conversations, on create and on update.
    for url in BAD_URLS {
        let message = expect_error(
            &gw.put(
                "/users/bob",
                &secret_key(),
                json!({"name": "Bob", "photoUrl": url}),
            )
            .await,
            400,
            "invalid_request",
        );
        assert!(message.starts_with("photoUrl "), "{url:?}: {message}");
        let message = expect_error(
            &gw.put(
                "/conversations/d",
                &secret_key(),
                json!({"subject": "D", "photoUrl": url}),
            )
            .await,
            400,
            "invalid_request",
        );
        assert!(message.starts_with("photoUrl "), "{url:?}: {message}");
    }
    expect_error(&gw.get("/users/bob", &secret_key()).await, 404, "not_found");
    expect_error(
        &gw.get("/conversations/d", &secret_key()).await,
        404,
        "not_found",
    );
    let good = "https://x.test/a.png";
    expect_status(
        gw.put("/users/alice", &alice, json!({"photoUrl": good}))
            .await,
        200,
    );
    expect_status(
        gw.put("/conversations/c", &secret_key(), json!({"photoUrl": good}))
            .await,
        200,
    );
    for url in BAD_URLS {
        expect_error(
            &gw.put(
                "/users/alice",
                &alice,
                json!({"name": "A", "photoUrl": url}),
            )
            .await,
            400,
            "invalid_request",
        );
        expect_error(
            &gw.put(
                "/conversations/c",
                &alice,
                json!({"subject": "S", "photoUrl": url}),
            )
            .await,
            400,
            "invalid_request",
        );
    }
    let user = expect_status(gw.get("/users/alice", &alice).await, 200);
    assert_eq!(
        (&user["photoUrl"], &user["name"]),
        (&json!(good), &Value::Null)
    );
    let conv = expect_status(gw.get("/conversations/c", &alice).await, 200);
    assert_eq!(
        (&conv["photoUrl"], &conv["subject"]),
        (&json!(good), &Value::Null)
    );
}

async fn disguised_auto_links_need_the_grant(store: Store) {
    let gw = Gateway::start(
        GatewayOptions::new(store).env("NATTER_ROLES", r#"{"bot": {"sendLinks": true}}"#),
    );
    let alice = user_token("alice");
    let alice_bot = user_token_with_role("alice", "bot");
    gw.conversation("c", &["alice"]).await;
    let auto = |url: &str, text: &str| json!({"content": text_of(json!([{"type": "autoLink", "url": url, "text": text}]))});
    let disguised = auto("https://evil.example/login", "https://bank.example");
    let message = expect_error(
        &gw.post(&msgs("c"), &alice, disguised.clone()).await,
        403,
        "forbidden",
    );
    assert!(message.contains("autoLink"), "{message}");
    expect_error(
        &gw.post(
            &msgs("c"),
            &alice,
            auto("mailto:a@evil.example", "a@bank.example"),
        )
        .await,
        403,
        "forbidden",
    );
    assert!(
        gw.message_ids("c", &alice).await.is_empty(),
        "nothing stored"
    );

    // Text that shows its own URL is anyone's to send, as the text parser makes it.
    for (url, text) in [
        ("https://bank.example/login", "https://bank.example/login"),
        ("https://bank.example/login", "bank.example/login"),
        ("mailto:a@bank.example", "a@bank.example"),
        ("tel:+31612345678", "+31 6 1234 5678"),
    ] {
        let sent = expect_status(gw.post(&msgs("c"), &alice, auto(url, text)).await, 201);
        assert_eq!(sent["plaintext"], text);
    }
    let parsed = gw
        .send(
            "c",
            &alice,
            "see www.example.com, a@b.io or +31 6 1234 5678",
        )
        .await;
    let links: Vec<&Value> = parsed["content"][0]["children"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"] == "autoLink")
        .collect();
    assert_eq!(links.len(), 3, "{parsed}");

    // Editing a disguise in is refused too; a role with the grant may send one.
    let path = format!("{}/{}", msgs("c"), enc(parsed["id"].as_str().unwrap()));
    expect_error(
        &gw.patch(&path, &alice, disguised.clone()).await,
        403,
        "forbidden",
    );
    let sent = expect_status(
        gw.post(&msgs("c"), &alice_bot, disguised.clone()).await,
        201,
    );
    assert_eq!(sent["content"], disguised["content"]);
    expect_status(gw.patch(&path, &alice_bot, disguised).await, 200);
}

async fn mentions_and_custom_emoji_are_checked(store: Store) {
    let gw = Gateway::on(store);
    let alice = user_token("alice");
    gw.conversation("c", &["alice"]).await;
    let node = |node: Value| json!({"content": text_of(json!([node]))});
    let cases = [
        (
            json!({"type": "mention", "id": "", "text": "@x"}),
            "mention id must not be empty",
        ),
        (
            json!({"type": "mention", "id": "bob", "text": ""}),
            "mention text must not be empty",
        ),
        (
            json!({"type": "mention", "id": "a#b", "text": "@x"}),
            "mention id must not contain",
        ),
        (
            json!({"type": "mention", "id": "a/b", "text": "@x"}),
            "mention id must not contain",
        ),
        (
            json!({"type": "customEmoji", "text": "<img src=x onerror=alert(1)>"}),
            "not a custom emoji",
        ),
        (
            json!({"type": "customEmoji", "text": "wave"}),
            "not a custom emoji",
        ),
        (
            json!({"type": "customEmoji", "text": ":a<b:"}),
            "custom emoji names may only contain",
        ),
    ];
    for (bad, reason) in cases {
        let message = expect_error(
            &gw.post(&msgs("c"), &alice, node(bad.clone())).await,
            400,
            "invalid_request",
        );
        assert!(
            message.starts_with("content[0].children[0]: ") && message.contains(reason),
            "{bad}: {message}"
        );
    }
    assert!(
        gw.message_ids("c", &alice).await.is_empty(),
        "nothing stored"
    );
    for good in [
        json!({"type": "mention", "id": "kbadk:github", "text": "@kbadk"}),
        json!({"type": "customEmoji", "text": ":cat_roomba:"}),
    ] {
        expect_status(gw.post(&msgs("c"), &alice, node(good)).await, 201);
    }
    let parsed = gw.send("c", &alice, "hi :wave:").await;
    assert_eq!(parsed["content"][0]["children"][1]["type"], "customEmoji");
}

async fn idempotency_scopes_never_meet(store: Store) {
    let gw = Gateway::on(store);
    let system_user = user_token("system");
    gw.conversation("c", &["system", "bob"]).await;
    let by_user = expect_status(
        gw.post(
            &msgs("c"),
            &system_user,
            json!({"text": "from a user", "idempotencyKey": "k"}),
        )
        .await,
        201,
    );
    let notice = json!({"text": "a system notice", "type": "SystemMessage", "idempotencyKey": "k"});
    let by_system = expect_status(
        gw.post(&msgs("c"), &secret_key(), notice.clone()).await,
        201,
    );
    assert_ne!(by_system["id"], by_user["id"]);
    assert_eq!(by_system["type"], "SystemMessage");
    assert_eq!(by_system["sender"], Value::Null);
    assert_eq!(by_system["plaintext"], "a system notice");
    // Both are stored, and each scope still knows its key.
    let ids = gw.message_ids("c", &system_user).await;
    let id = |m: &Value| m["id"].as_str().unwrap().to_string();
    assert_eq!(ids, vec![id(&by_system), id(&by_user)]);
    let again = expect_status(gw.post(&msgs("c"), &secret_key(), notice).await, 201);
    assert_eq!(again["id"], by_system["id"]);
    let again = expect_status(
        gw.post(
            &msgs("c"),
            &system_user,
            json!({"text": "from a user", "idempotencyKey": "k"}),
        )
        .await,
        201,
    );
    assert_eq!(again["id"], by_user["id"]);
    // Another user's key k is theirs.
    let bob = expect_status(
        gw.post(
            &msgs("c"),
            &user_token("bob"),
            json!({"text": "bob", "idempotencyKey": "k"}),
        )
        .await,
        201,
    );
    assert_ne!(bob["id"], by_user["id"]);
    assert_eq!(gw.message_ids("c", &system_user).await.len(), 3);
}

/// A token of these claims, signed with the test gateway's key and naming it (`kid`), so that
/// only the claims can be what is refused.
fn signed(claims: Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(natter_e2e::SIGNING_KID.to_string());
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SIGNING_SECRET.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn tokens_not_valid_yet_or_for_no_user_are_refused() {
    let gw = Gateway::on(Store::Memory);
    gw.conversation("c", &["alice"]).await;
    let now = now_secs();
    let exp = now + 3 * 86_400;
    let cases = [
        (
            signed(json!({"sub": "alice", "exp": exp, "nbf": now + 86_400})),
            "not valid yet",
        ),
        (
            signed(json!({"sub": "alice#x", "exp": exp})),
            "must not contain '#'",
        ),
        (
            signed(json!({"sub": "USER#alice", "exp": exp})),
            "must not contain '#'",
        ),
        (
            signed(json!({"sub": "a/b", "exp": exp})),
            "must not contain '/'",
        ),
        (signed(json!({"sub": "", "exp": exp})), "must not be empty"),
    ];
    for (token, reason) in &cases {
        for response in [
            gw.get(&msgs("c"), token).await,
            gw.post(&msgs("c"), token, json!({"text": "not written"}))
                .await,
        ] {
            let message = expect_error(&response, 401, "unauthorized");
            assert!(message.contains(reason), "{reason}: {message}");
        }
        let refused = match WsClient::try_connect(&gw, Some(token)).await {
            Ok(_) => panic!("{reason}: the WebSocket connection was accepted"),
            Err(refused) => refused,
        };
        assert_eq!(refused.status, 401, "{reason}: {refused:?}");
        assert_eq!(refused.body["error"]["code"], "unauthorized", "{refused:?}");
    }
    assert!(gw.message_ids("c", &user_token("alice")).await.is_empty());
    // nbf in the past, or a few seconds ahead (an issuer whose clock runs a little fast), is
    // fine, over HTTP and WebSocket.
    for nbf in [now - 60, now + 5] {
        let token = signed(json!({"sub": "alice", "exp": exp, "nbf": nbf}));
        expect_status(gw.get(&msgs("c"), &token).await, 200);
        WsClient::connect(&gw, &token).await.close().await;
    }
}

/// Runs `natter-local` with these secrets and returns its exit status and stderr; it must exit
/// by itself.
fn run_with_secrets(signing: &str, key: &str, args: &[&str]) -> (Option<i32>, String) {
    let mut child = command()
        .env("NATTER_SIGNING_SECRET", signing)
        .env("NATTER_SECRET_KEY", key)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            return (status.code(), stderr);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("natter-local started with bad secrets ({signing:?}, {key:?}) and kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn secrets_that_could_never_match_stop_the_gateway() {
    let signing = "natter-e2e-signing-secret-0123456789abcdef";
    let key = "natter-e2e-secret-key-0123456789abcdef";
    let cases = [
        (
            signing.to_string(),
            format!("{key} "),
            "NATTER_SECRET_KEY starts or ends with whitespace",
        ),
        (
            signing.to_string(),
            format!("\t{key}"),
            "NATTER_SECRET_KEY starts or ends with whitespace",
        ),
        (
            signing.to_string(),
            format!("{key}\n"),
            "NATTER_SECRET_KEY starts or ends with whitespace",
        ),
        (
            signing.to_string(),
            String::new(),
            "NATTER_SECRET_KEY is empty",
        ),
        (
            format!(" {signing}"),
            key.to_string(),
            "NATTER_SIGNING_SECRET starts or ends with whitespace",
        ),
        (
            String::new(),
            key.to_string(),
            "NATTER_SIGNING_SECRET is empty",
        ),
    ];
    for (signing, key, want) in &cases {
        for args in [
            &["--listen", "127.0.0.1:0"][..],
            &["token", "--user", "alice"],
        ] {
            let (code, stderr) = run_with_secrets(signing, key, args);
            assert_eq!(code, Some(1), "{args:?} {want}: {stderr}");
            assert!(stderr.contains(want), "{args:?}: {stderr}");
            assert!(
                !stderr.contains(key.trim()) || key.trim().is_empty(),
                "the secret leaked: {stderr}"
            );
            assert!(
                !stderr.contains(signing.trim()) || signing.trim().is_empty(),
                "the secret leaked: {stderr}"
            );
        }
    }
}
