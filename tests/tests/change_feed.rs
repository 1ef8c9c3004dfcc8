//! The embedded store's change feed loses nothing: a change the fan-out has not read yet makes
//! the next write wait (backpressure), so that even a `DELETE /v1/inbox` of thousands of messages,
//! many times the feed's capacity (`config::storage::CHANGE_FEED_CAPACITY`), pushes every
//! `inbox.deleted` to a connected client. Real HTTP and WebSocket clients through `natter-local`,
//! in-memory store (the DynamoDB store's pushes come from the table's stream instead).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use natter::config::storage::CHANGE_FEED_CAPACITY;
use natter_e2e::ws::WsClient;
use natter_e2e::{expect_status, user_token, Gateway, Store};
use serde_json::json;

/// Inbox messages cleared at once: three times the feed's capacity, so that the clear must wait
/// for the fan-out (5,000 passed as well; this keeps a debug build's run under a minute).
const MESSAGES: usize = 3 * CHANGE_FEED_CAPACITY;
/// `POST /v1/inbox` requests in flight while filling the inbox.
const SENDERS: usize = 16;
/// The whole test's bound once the inbox is full: the clear and every push.
const CLEAR_LIMIT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn clearing_a_big_inbox_pushes_every_deletion_exactly_once_memory() {
    let gw = Gateway::on(Store::Memory);
    let (bob, alice) = (user_token("bob"), user_token("alice"));

    // Fill alice's inbox (bob sends), some requests at a time.
    let mut ids: Vec<String> = futures::stream::iter(0..MESSAGES)
        .map(|i| {
            let (gw, bob) = (&gw, &bob);
            async move {
                let body = json!({"message": {"n": i}, "recipients": "alice"});
                let answer = expect_status(gw.post("/inbox", bob, body).await, 201);
                answer["messageIds"][0]
                    .as_str()
                    .expect("a message id")
                    .to_string()
            }
        })
        .buffer_unordered(SENDERS)
        .collect()
        .await;
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), MESSAGES);

    // A connected client of alice's, and the whole inbox deleted at once while it reads.
    let mut client = WsClient::connect(&gw, &alice).await;
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + CLEAR_LIMIT;
    let received = std::cell::Cell::new(0);
    let clear = async {
        // Its own client: the request waits for the fan-out, longer than the harness allows one.
        let answer = reqwest::Client::new()
            .delete(format!("{}/v1/inbox", gw.base_url))
            .bearer_auth(&alice)
            .timeout(CLEAR_LIMIT)
            .send()
            .await
            .expect("DELETE /v1/inbox did not answer in time");
        assert_eq!(answer.status().as_u16(), 204);
        (started.elapsed(), received.get())
    };
    let read = async {
        let mut deleted: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        while seen.len() < MESSAGES {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(push) = client.next_push(left).await else {
                panic!(
                    "{} of {MESSAGES} inbox.deleted pushes arrived in {CLEAR_LIMIT:?}\n{}",
                    seen.len(),
                    gw.output()
                );
            };
            // Pushes of the inbox's creation may still be on their way: only deletions count.
            if push["type"] != "inbox.deleted" {
                assert_eq!(push["type"], "inbox.message", "unexpected push: {push}");
                continue;
            }
            let id = push["messageId"].as_str().expect("messageId").to_string();
            assert!(seen.insert(id.clone()), "{id} was pushed twice");
            deleted.push(id);
            received.set(seen.len());
        }
        deleted
    };
    let ((cleared_in, received_by_then), mut deleted) = tokio::join!(clear, read);
    let all_in = started.elapsed();

    // Each message exactly once (the feed's order is the unit tests' concern: the fan-out may
    // push changes of one batch concurrently), and nothing more.
    deleted.sort();
    assert_eq!(deleted, ids, "the deletions are not the inbox's messages");
    client.expect_silence(Duration::from_millis(500)).await;
    let listed = expect_status(gw.get("/inbox", &alice).await, 200);
    assert_eq!(listed["data"], json!([]));
    assert!(
        !gw.output().contains("changes lost"),
        "the gateway lost changes:\n{}",
        gw.output()
    );
    println!(
        "{MESSAGES} inbox.deleted pushes (feed capacity {CHANGE_FEED_CAPACITY}): DELETE answered \
         in {cleared_in:?} with {received_by_then} received, all received in {all_in:?}"
    );
}
