//! The reply frames of the WebSocket routes as exact text, through `ws::handle` on the embedded
//! stores: field names, field order, error messages and the `requestId` echo are the wire format
//! clients depend on.

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use natter::auth::Identity;
use natter::clock::{Clock, ManualClock};
use natter::config::Config;
use natter::domain::{
    DeleteParticipant, ListInbox, ListMessages, PutConversation, SendInboxMessage, SendMessage,
};
use natter::services::Services;
use natter::ws::{reply_body, WsService};
use serde_json::{json, Value};

const T0: i64 = 1_700_000_000_000;

struct Setup {
    services: Services,
    /// Every WebSocket route's operation, by function name.
    routes: Vec<WsService>,
    clock: ManualClock,
}

/// Conversation `c1` (alice and bob) with three messages, `c2` (bob only), an inbox message for
/// alice, and connections `A` (alice) and `E` (eve), from `start` (ms) on.
///
/// Message ids only grow within a process, across tests: a test that needs its ids to follow
/// its clock starts later than the others.
async fn setup_at(start: i64) -> Setup {
    let clock = ManualClock::new(start);
    let clock_dyn: Arc<dyn Clock> = Arc::new(clock.clone());
    // Nothing reads the change feed: dropped, so that writes never wait for a reader.
    let (services, _) = Services::memory(clock_dyn, Config::default());
    for (cid, participants) in [("c1", json!(["alice", "bob"])), ("c2", json!(["bob"]))] {
        let body = serde_json::from_value(json!({ "participants": participants })).unwrap();
        services
            .build::<PutConversation>()
            .run(&Identity::Secret, cid, body)
            .await
            .unwrap();
    }
    for text in ["one", "two", "three"] {
        clock.advance_ms(10);
        let body = serde_json::from_value(json!({ "text": text })).unwrap();
        services
            .build::<SendMessage>()
            .run(&user("alice"), "c1", body)
            .await
            .unwrap();
    }
    services
        .build::<SendInboxMessage>()
        .run(
            &user("bob"),
            natter::json::from_str::<natter::domain::SendInboxBody>(
                &json!({"message": {"hi": [1, null]}, "recipients": "alice"}).to_string(),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let routes = natter::ws::all_services(&services);
    let setup = Setup {
        services,
        routes,
        clock,
    };
    for (connection, user_id) in [("A", "alice"), ("E", "eve")] {
        let response = setup
            .handle("ws-connect", event(connection, user_id, None))
            .await;
        assert_eq!(response.status_code, 200);
    }
    setup
}

async fn setup() -> Setup {
    setup_at(T0).await
}

fn user(id: &str) -> Identity {
    Identity::User {
        user_id: id.to_string(),
        role: None,
    }
}

fn event(connection: &str, user_id: &str, body: Option<&str>) -> ApiGatewayWebsocketProxyRequest {
    serde_json::from_value(json!({
        "requestContext": {
            "routeKey": "$default",
            "eventType": "MESSAGE",
            "stage": "local",
            "connectionId": connection,
            "connectedAt": 0,
            "requestTimeEpoch": 0,
            "apiId": "local",
            "authorizer": {"userId": user_id, "principalId": user_id},
        },
        "body": body,
        "isBase64Encoded": false,
    }))
    .unwrap()
}

impl Setup {
    /// Runs the operation of the route served by `function`.
    async fn handle(
        &self,
        function: &str,
        event: ApiGatewayWebsocketProxyRequest,
    ) -> aws_lambda_events::apigw::ApiGatewayProxyResponse {
        let route = self
            .routes
            .iter()
            .find(|r| r.route().function == function)
            .expect("a route served by that function");
        route.handle(event).await
    }

    /// The reply text to `body`, sent on connection `connection` and routed to `function`.
    async fn reply(&self, function: &str, connection: &str, body: Option<&str>) -> String {
        let user_id = if connection == "A" { "alice" } else { "eve" };
        let response = self
            .handle(function, event(connection, user_id, body))
            .await;
        assert_eq!(response.status_code, 200);
        reply_body(&response).expect("a reply")
    }

    /// c1's messages as `subscribe` and `loadMore` return them, as JSON text.
    async fn page(&self, limit: usize, before: Option<&str>) -> (String, Vec<String>) {
        let page = self
            .services
            .build::<ListMessages>()
            .run(&user("alice"), "c1", Some(limit), before)
            .await
            .unwrap();
        let ids = page.data.iter().map(|m| m.id.clone()).collect();
        (serde_json::to_string(&page.data).unwrap(), ids)
    }
}

#[track_caller]
fn assert_text(actual: &str, expected: &str) {
    assert_eq!(actual, expected);
    // The text is the frame's only form: it must also be the JSON it reads as.
    let _: Value = serde_json::from_str(actual).unwrap();
}

#[tokio::test]
async fn frames_that_are_not_client_frames_get_error_frames() {
    let s = setup().await;
    let cases: &[(&str, Option<&str>, &str)] = &[
        (
            "ws-default",
            Some("this is not json"),
            r#"{"type":"error","error":{"code":"invalid_request","message":"a frame must be a JSON object: expected ident at line 1 column 2"}}"#,
        ),
        (
            "ws-default",
            None,
            r#"{"type":"error","error":{"code":"invalid_request","message":"a frame must be a JSON object: EOF while parsing a value at line 1 column 0"}}"#,
        ),
        (
            "ws-default",
            Some(r#"[1, {"requestId": 2}]"#),
            r#"{"type":"error","error":{"code":"invalid_request","message":"a frame must be a JSON object"}}"#,
        ),
        (
            "ws-default",
            Some(r#"{"action": "dance", "requestId": 7}"#),
            r#"{"type":"error","error":{"code":"invalid_request","message":"unknown action \"dance\"; expected hello, inboxMore, ping, subscribe, loadMore, unsubscribe, subscribeConversations or typing"},"requestId":7}"#,
        ),
        (
            "ws-default",
            Some(r#"{"noAction": true, "requestId": "r"}"#),
            r#"{"type":"error","error":{"code":"invalid_request","message":"a frame needs an action: hello, inboxMore, ping, subscribe, loadMore, unsubscribe, subscribeConversations or typing"},"requestId":"r"}"#,
        ),
        (
            "ws-default",
            Some(r#"{"action": 5}"#),
            r#"{"type":"error","error":{"code":"invalid_request","message":"a frame needs an action: hello, inboxMore, ping, subscribe, loadMore, unsubscribe, subscribeConversations or typing"}}"#,
        ),
        (
            "ws-hello",
            Some(r#"{"action": "hello", "unexpected": 1, "requestId": [1]}"#),
            r#"{"type":"error","error":{"code":"invalid_request","message":"invalid hello frame: unknown field `unexpected`, there are no fields"},"requestId":[1]}"#,
        ),
        (
            "ws-subscribe",
            Some(r#"{"action": "subscribe", "conversationId": "c1", "extra": 1}"#),
            r#"{"type":"error","error":{"code":"invalid_request","message":"invalid subscribe frame: unknown field `extra`, expected one of `subscriptionId`, `conversationId`, `limit`"}}"#,
        ),
        (
            "ws-subscribe",
            Some(r#"{"action": "subscribe", "subscriptionId": 5}"#),
            r#"{"type":"error","error":{"code":"invalid_request","message":"invalid subscribe frame: invalid type: integer `5`, expected a string"}}"#,
        ),
        (
            "ws-subscribe",
            Some(r#"{"action": "subscribe", "conversationId": "c1"}"#),
            r#"{"type":"error","error":{"code":"invalid_request","message":"subscriptionId is required"}}"#,
        ),
        (
            "ws-subscribe",
            Some(r#"{"action": "subscribe", "subscriptionId": "a#b", "conversationId": "c1"}"#),
            r##"{"type":"error","error":{"code":"invalid_request","message":"subscriptionId must not contain '#'"}}"##,
        ),
        (
            "ws-load-more",
            Some(r#"{"action": "loadMore", "subscriptionId": "s1", "limit": 3}"#),
            r#"{"type":"error","error":{"code":"invalid_request","message":"invalid loadMore frame: unknown field `limit`, expected `subscriptionId` or `count`"}}"#,
        ),
        (
            "ws-load-more",
            Some(r#"{"action": "loadMore", "subscriptionId": "nope"}"#),
            r#"{"type":"error","error":{"code":"not_found","message":"no subscription \"nope\" on this connection"}}"#,
        ),
        (
            "ws-load-more",
            Some(r#"{"action": "loadMore", "subscriptionId": "nope", "count": 0}"#),
            r#"{"type":"error","error":{"code":"invalid_request","message":"count must be a whole number between 1 and 100, got 0"}}"#,
        ),
        (
            "ws-unsubscribe",
            Some(r#"{"action": "unsubscribe", "requestId": null}"#),
            r#"{"type":"error","error":{"code":"invalid_request","message":"subscriptionId is required"},"requestId":null}"#,
        ),
        (
            "ws-unsubscribe",
            Some(r#"{"action": "unsubscribe", "subscriptionId": "s1", "count": 1}"#),
            r#"{"type":"error","error":{"code":"invalid_request","message":"invalid unsubscribe frame: unknown field `count`, expected `subscriptionId`"}}"#,
        ),
    ];
    for (function, body, expected) in cases {
        let reply = s.reply(function, "A", *body).await;
        assert_text(&reply, expected);
    }
}

#[tokio::test]
async fn hello_replays_the_inbox_and_echoes_any_request_id() {
    let s = setup().await;
    let inbox = (s.services.build::<ListInbox>())
        .of_user("alice", None, 100)
        .await
        .unwrap()
        .messages;
    let id = &inbox[0].message_id;
    let expected_messages = format!(
        r#"[{{"messageId":"{id}","message":{{"hi":[1,null]}},"senderId":"bob","createdAt":{}}}]"#,
        T0 + 30
    );
    let reply = s
        .reply("ws-hello", "A", Some(r#"{"action": "hello"}"#))
        .await;
    assert_text(
        &reply,
        &format!(
            r#"{{"type":"hello","clientId":"A","userId":"alice","messages":{expected_messages},"hasMore":false}}"#
        ),
    );
    for request_id in [r#"null"#, r#"{"n":[1,2]}"#, r#""r-1""#, "0.5", "false"] {
        let body = format!(r#"{{"requestId": {request_id}, "action": "hello"}}"#);
        let reply = s.reply("ws-hello", "A", Some(&body)).await;
        assert_text(
            &reply,
            &format!(
                r#"{{"type":"hello","clientId":"A","userId":"alice","messages":{expected_messages},"hasMore":false,"requestId":{request_id}}}"#
            ),
        );
    }
    let reply = s
        .reply("ws-hello", "E", Some(r#"{"action": "hello"}"#))
        .await;
    assert_text(
        &reply,
        r#"{"type":"hello","clientId":"E","userId":"eve","messages":[],"hasMore":false}"#,
    );
}

#[tokio::test]
async fn subscription_replies() {
    let s = setup_at(T0 + 3_600_000).await;
    // Not a participant, a missing conversation, a bad limit: state "error".
    let cases: &[(&str, &str)] = &[
        (
            r#"{"action": "subscribe", "subscriptionId": "s1", "conversationId": "c2"}"#,
            r#"{"type":"subscription","subscriptionId":"s1","state":"error","error":{"code":"not_found","message":"conversation \"c2\" not found"}}"#,
        ),
        (
            r#"{"action": "subscribe", "subscriptionId": "s1", "requestId": 3}"#,
            r#"{"type":"subscription","subscriptionId":"s1","state":"error","error":{"code":"invalid_request","message":"conversationId is required"},"requestId":3}"#,
        ),
        (
            r#"{"action": "subscribe", "subscriptionId": "s1", "conversationId": "c1", "limit": "2"}"#,
            r#"{"type":"subscription","subscriptionId":"s1","state":"error","error":{"code":"invalid_request","message":"limit must be a whole number between 1 and 100, got \"2\""}}"#,
        ),
        (
            r#"{"action": "subscribe", "subscriptionId": "s1", "conversationId": "c1", "limit": 1.5}"#,
            r#"{"type":"subscription","subscriptionId":"s1","state":"error","error":{"code":"invalid_request","message":"limit must be a whole number between 1 and 100, got 1.5"}}"#,
        ),
    ];
    for (body, expected) in cases {
        let reply = s.reply("ws-subscribe", "A", Some(body)).await;
        assert_text(&reply, expected);
    }

    // The newest two, then one more, then the rest (nothing).
    s.clock.advance_ms(1000);
    let (first, ids) = s.page(2, None).await;
    let reply = s
        .reply(
            "ws-subscribe",
            "A",
            Some(r#"{"action": "subscribe", "subscriptionId": "s1", "conversationId": "c1", "limit": 2, "requestId": "x"}"#),
        )
        .await;
    assert_text(
        &reply,
        &format!(
            r#"{{"type":"subscription","subscriptionId":"s1","state":"active","messages":{first},"loadedAll":false,"requestId":"x"}}"#
        ),
    );
    let (older, _) = s.page(5, Some(&ids[1])).await;
    let reply = s
        .reply(
            "ws-load-more",
            "A",
            Some(r#"{"action": "loadMore", "subscriptionId": "s1", "count": 5}"#),
        )
        .await;
    assert_text(
        &reply,
        &format!(
            r#"{{"type":"subscription","subscriptionId":"s1","state":"active","messages":{older},"loadedAll":true}}"#
        ),
    );
    let reply = s
        .reply(
            "ws-load-more",
            "A",
            Some(r#"{"action": "loadMore", "subscriptionId": "s1", "requestId": 1}"#),
        )
        .await;
    assert_text(
        &reply,
        r#"{"type":"subscription","subscriptionId":"s1","state":"active","messages":[],"loadedAll":true,"requestId":1}"#,
    );
    let reply = s
        .reply(
            "ws-unsubscribe",
            "A",
            Some(r#"{"action": "unsubscribe", "subscriptionId": "s1", "requestId": {}}"#),
        )
        .await;
    assert_text(
        &reply,
        r#"{"type":"subscription","subscriptionId":"s1","state":"unsubscribed","requestId":{}}"#,
    );

    // A subscriber who leaves the conversation: the next loadMore ends the subscription.
    s.reply(
        "ws-subscribe",
        "A",
        Some(r#"{"action": "subscribe", "subscriptionId": "s2", "conversationId": "c1", "limit": 1}"#),
    )
    .await;
    s.clock.advance_ms(1);
    s.services
        .build::<DeleteParticipant>()
        .run(&Identity::Secret, "c1", "alice")
        .await
        .unwrap();
    let reply = s
        .reply(
            "ws-load-more",
            "A",
            Some(r#"{"action": "loadMore", "subscriptionId": "s2"}"#),
        )
        .await;
    let actual: Value = serde_json::from_str(&reply).unwrap();
    let message = actual["error"]["message"].as_str().unwrap();
    assert_text(
        &reply,
        &format!(
            r#"{{"type":"subscription","subscriptionId":"s2","state":"error","error":{{"code":"not_found","message":{}}}}}"#,
            json!(message)
        ),
    );
}
