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
        message: json!({"n": i, "tags": ["a", "b"], "nothing": null}),
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

async fn lists_deletes_and_expires(store: Arc<dyn InboxStore>) {
    let live = NOW / 1000 + 60;
    let mut records: Vec<InboxRecord> = (0..5).map(|i| record("bob", i, live)).collect();
    records.push(record("bob", 5, NOW / 1000)); // expires exactly now
    records.push(record("carol", 6, live));
    store.put_inbox_messages(&records).await.unwrap();

    let bobs = store.list_inbox("bob", NOW).await.unwrap();
    assert_eq!(
        bobs,
        records[..5].to_vec(),
        "oldest first, expired left out"
    );
    assert_eq!(store.list_inbox("carol", NOW).await.unwrap().len(), 1);

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
    assert_eq!(store.list_inbox("carol", NOW).await.unwrap().len(), 1);
    assert_eq!(store.list_inbox("bob", NOW).await.unwrap().len(), 4);
}

async fn clears_an_inbox_of_ten_thousand(store: Arc<dyn InboxStore>) {
    let live = NOW / 1000 + 60;
    let records: Vec<InboxRecord> = (0..10_000).map(|i| record("bob", i, live)).collect();
    store.put_inbox_messages(&records).await.unwrap();
    store
        .put_inbox_messages(&[record("carol", 0, live)])
        .await
        .unwrap();
    let listed = store.list_inbox("bob", NOW).await.unwrap();
    assert_eq!(listed.len(), 10_000);
    assert!(listed.windows(2).all(|w| w[0].message_id < w[1].message_id));

    assert_eq!(store.clear_inbox("bob").await.unwrap(), 10_000);
    assert!(store.list_inbox("bob", NOW).await.unwrap().is_empty());
    assert_eq!(store.clear_inbox("bob").await.unwrap(), 0);
    assert_eq!(store.list_inbox("carol", NOW).await.unwrap().len(), 1);
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
