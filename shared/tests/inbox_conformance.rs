//! The inbox store's contract, run against the embedded store and DynamoDB (moto).

mod common;

use std::sync::Arc;

use natter::changes::ChangeSender;
use natter::store::dynamo::DynamoStore;
use natter::store::inbox::{InboxRecord, InboxStore};
use natter::store::memory_inbox::MemoryInbox;
use serde_json::json;

const NOW: i64 = 1_900_000_000_000;

fn record(user: &str, i: usize, expires_at: i64) -> InboxRecord {
    InboxRecord {
        user_id: user.to_string(),
        // Zero-padded so that id order is `i` order, like real time-sortable ids.
        message_id: format!("inb_{i:08}"),
        sender_id: "alice".to_string(),
        message: natter::json::RawJson::from_value(
            &json!({"n": i, "tags": ["a", "b"], "nothing": null}),
        ),
        created_at: NOW,
        expires_at,
    }
}

fn memory() -> Arc<dyn InboxStore> {
    Arc::new(MemoryInbox::new(ChangeSender::none()))
}

async fn dynamodb(test: &str) -> (Arc<dyn InboxStore>, common::Harness) {
    let harness = common::Harness::dynamodb(test).await;
    let d = harness.dynamo.as_ref().expect("a DynamoDB harness");
    let store = DynamoStore::new(d.client.clone(), d.table.clone());
    (Arc::new(store), harness)
}

/// Every unexpired message of `user`, in one page.
async fn list(store: &Arc<dyn InboxStore>, user: &str) -> Vec<InboxRecord> {
    let page = store.list_inbox(user, None, 100_000, NOW).await.unwrap();
    assert!(!page.has_more);
    page.messages
}

/// Pages of `limit` read one after the other, each after the last id of the one before, hold
/// every unexpired message once, oldest first, and only the last says no more remain.
async fn pages_oldest_first_after_an_id(store: Arc<dyn InboxStore>) {
    let live = NOW / 1000 + 60;
    // 250 messages, every third expired, and another user's in between.
    let records: Vec<InboxRecord> = (0..250)
        .map(|i| record("bob", i, if i % 3 == 1 { NOW / 1000 } else { live }))
        .collect();
    store.put_inbox_messages(&records).await.unwrap();
    store
        .put_inbox_messages(&[record("carol", 1000, live)])
        .await
        .unwrap();
    let expected: Vec<InboxRecord> = records
        .iter()
        .filter(|r| r.expires_at == live)
        .cloned()
        .collect();
    for limit in [1, 7, 100, expected.len(), expected.len() + 1] {
        let mut after: Option<String> = None;
        let mut seen = Vec::new();
        loop {
            let page = store
                .list_inbox("bob", after.as_deref(), limit, NOW)
                .await
                .unwrap();
            assert!(page.messages.len() <= limit);
            let last_page = !page.has_more;
            if !last_page {
                assert_eq!(
                    page.messages.len(),
                    limit,
                    "a page that is not the last is full"
                );
            }
            after = page.messages.last().map(|m| m.message_id.clone());
            seen.extend(page.messages);
            if last_page {
                break;
            }
        }
        assert_eq!(seen, expected, "limit {limit}");
    }
    // After the last id, or after an id past every message: nothing, and no more.
    let last = &expected.last().unwrap().message_id;
    for after in [last.as_str(), "inb_99999999"] {
        let page = store.list_inbox("bob", Some(after), 10, NOW).await.unwrap();
        assert!(page.messages.is_empty() && !page.has_more, "{after}");
    }
    // After an expired message's id: the next live one.
    let page = store
        .list_inbox("bob", Some("inb_00000001"), 1, NOW)
        .await
        .unwrap();
    assert_eq!(page.messages[0].message_id, "inb_00000002");
    assert!(page.has_more);
    // A user with no inbox.
    let page = store.list_inbox("nobody", None, 10, NOW).await.unwrap();
    assert!(page.messages.is_empty() && !page.has_more);
}

#[tokio::test]
async fn pages_oldest_first_after_an_id_memory() {
    pages_oldest_first_after_an_id(memory()).await;
}

#[tokio::test]
async fn pages_oldest_first_after_an_id_dynamodb() {
    let (store, harness) = dynamodb("inbox-pages").await;
    pages_oldest_first_after_an_id(store).await;
    harness.finish().await;
}

async fn lists_deletes_and_expires(store: Arc<dyn InboxStore>) {
    let live = NOW / 1000 + 60;
    let mut records: Vec<InboxRecord> = (0..5).map(|i| record("bob", i, live)).collect();
    records.push(record("bob", 5, NOW / 1000)); // expires exactly now
    records.push(record("carol", 6, live));
    store.put_inbox_messages(&records).await.unwrap();

    let bobs = list(&store, "bob").await;
    assert_eq!(
        bobs,
        records[..5].to_vec(),
        "oldest first, expired left out"
    );
    assert_eq!(list(&store, "carol").await.len(), 1);

    assert!(store
        .delete_inbox_message("bob", "inb_00000002")
        .await
        .unwrap());
    assert!(!store
        .delete_inbox_message("bob", "inb_00000002")
        .await
        .unwrap());
    // Carol's id under Bob's name deletes nothing.
    assert!(!store
        .delete_inbox_message("bob", "inb_00000006")
        .await
        .unwrap());
    assert_eq!(list(&store, "carol").await.len(), 1);
    assert_eq!(list(&store, "bob").await.len(), 4);
}

async fn clears_an_inbox_of_ten_thousand(store: Arc<dyn InboxStore>) {
    let live = NOW / 1000 + 60;
    let records: Vec<InboxRecord> = (0..10_000).map(|i| record("bob", i, live)).collect();
    store.put_inbox_messages(&records).await.unwrap();
    store
        .put_inbox_messages(&[record("carol", 0, live)])
        .await
        .unwrap();
    let listed = list(&store, "bob").await;
    assert_eq!(listed.len(), 10_000);
    assert!(listed.windows(2).all(|w| w[0].message_id < w[1].message_id));

    assert_eq!(store.clear_inbox("bob").await.unwrap(), 10_000);
    assert!(list(&store, "bob").await.is_empty());
    assert_eq!(store.clear_inbox("bob").await.unwrap(), 0);
    assert_eq!(list(&store, "carol").await.len(), 1);
}

#[tokio::test]
async fn lists_deletes_and_expires_memory() {
    lists_deletes_and_expires(memory()).await;
}

#[tokio::test]
async fn lists_deletes_and_expires_dynamodb() {
    let (store, harness) = dynamodb("inbox-basics").await;
    lists_deletes_and_expires(store).await;
    harness.finish().await;
}

#[tokio::test]
async fn clears_an_inbox_of_ten_thousand_memory() {
    clears_an_inbox_of_ten_thousand(memory()).await;
}

#[tokio::test]
async fn clears_an_inbox_of_ten_thousand_dynamodb() {
    let (store, harness) = dynamodb("inbox-clear").await;
    clears_an_inbox_of_ten_thousand(store).await;
    harness.finish().await;
}

/// A message comes back as the JSON text it was stored as: numbers beyond `f64` keep every
/// digit, `1.0` stays `1.0`.
async fn keeps_numbers_exactly(store: Arc<dyn InboxStore>) {
    let text = r#"{"n":[12345678901234567890123,-98765432109876543210,1.00000000000000000000001,1.0],"s":"x"}"#;
    let mut r = record("bob", 1, NOW / 1000 + 60);
    r.message = natter::json::RawJson::from_text(text).unwrap();
    store.put_inbox_messages(&[r]).await.unwrap();
    let listed = list(&store, "bob").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].message.get(), text);
}

#[tokio::test]
async fn keeps_numbers_exactly_memory() {
    keeps_numbers_exactly(memory()).await;
}

#[tokio::test]
async fn keeps_numbers_exactly_dynamodb() {
    let (store, harness) = dynamodb("inbox-numbers").await;
    keeps_numbers_exactly(store).await;
    harness.finish().await;
}
