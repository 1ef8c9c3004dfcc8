//! The demo chat page natter-local serves at `/`: its embedded files, and the dev tokens it may
//! hand out only while the gateway runs with its dev secrets. (The page itself is driven in a
//! real browser by the client's tests, `clients/js`.)

use natter_e2e::{expect_error, expect_status, Gateway, GatewayOptions, Store};
use serde_json::{json, Value};

fn with_dev_secrets() -> Gateway {
    Gateway::start(
        GatewayOptions::new(Store::Memory)
            .without_env("NATTER_SIGNING_SECRET")
            .without_env("NATTER_SECRET_KEY"),
    )
}

/// GETs `path` (not under `/v1`): status, content type and body.
async fn fetch(gw: &Gateway, path: &str) -> (u16, String, String) {
    let response = reqwest::get(format!("{}{path}", gw.base_url))
        .await
        .expect("GET");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_string())
        .unwrap_or_default();
    (status, content_type, response.text().await.expect("body"))
}

async fn ask_token(gw: &Gateway, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/@local/token", gw.base_url))
        .json(&body)
        .send()
        .await
        .expect("POST");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_page_and_its_files_are_served() {
    let gw = Gateway::on(Store::Memory);
    let (status, content_type, page) = fetch(&gw, "/").await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "text/html; charset=utf-8")
    );
    assert!(
        page.contains(r#"<script type="module" src="/app.js">"#),
        "{page}"
    );
    for (path, kind, needle) in [
        ("/app.js", "text/javascript", "/natter-client.js"),
        ("/style.css", "text/css", "#message-list"),
        ("/natter-client.js", "text/javascript", "class Session"),
    ] {
        let (status, content_type, body) = fetch(&gw, path).await;
        assert_eq!(status, 200, "{path}");
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
        assert!(body.contains(needle), "{path} lacks {needle:?}");
    }
    let (status, _, _) = fetch(&gw, "/nothing-here.js").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn dev_secrets_hand_the_page_tokens_that_the_api_accepts() {
    let gw = with_dev_secrets();
    let (status, _, config) = fetch(&gw, "/@local/demo").await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&config).unwrap(),
        json!({"devTokens": true})
    );

    let (status, body) = ask_token(&gw, json!({"userId": "dana"})).await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().expect("a token");
    let user = expect_status(
        gw.put("/users/dana", token, json!({"name": "Dana"})).await,
        200,
    );
    assert_eq!(user["id"], "dana");

    for bad in [
        json!({}),
        json!({"userId": 7}),
        json!({"userId": "dana", "role": "admin"}),
    ] {
        let refused = ask_token(&gw, bad.clone()).await;
        expect_error(&refused, 400, "invalid_request");
    }
    let refused = ask_token(&gw, json!({"userId": ""})).await;
    expect_error(&refused, 400, "invalid_request");
}

#[tokio::test]
async fn real_secrets_hand_out_no_tokens() {
    let gw = Gateway::on(Store::Memory);
    let (status, _, config) = fetch(&gw, "/@local/demo").await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&config).unwrap(),
        json!({"devTokens": false})
    );
    let refused = ask_token(&gw, json!({"userId": "dana"})).await;
    expect_error(&refused, 404, "not_found");
}
