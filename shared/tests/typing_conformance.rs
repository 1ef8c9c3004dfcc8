//! The typing ports (`store::typing`) and the typer item read through `ItemReader`, one suite
//! run against `MemoryStore` and against `DynamoStore` on moto (`NATTER_TEST_DYNAMODB_ENDPOINT`;
//! without it the DynamoDB variants panic, they never skip). Also: the request each method
//! sends, and the changes the embedded store's feed carries for typer items.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use natter::changes::Change;
use natter::model::Access;
use natter::store::memory::MemoryStore;
use natter::store::typing::{TyperRecord, TypingStore};
use natter::store::{ItemKey, ItemReader, Store};

/// A store with every port this suite uses.
trait Typing: TypingStore + ItemReader + Store {}
impl<T: TypingStore + ItemReader + Store + ?Sized> Typing for T {}

struct Subject {
    store: Arc<dyn Typing>,
    harness: Harness,
}

impl Subject {
    fn memory() -> Self {
        let store = Arc::new(MemoryStore::new());
        Subject {
            store: store.clone(),
            harness: Harness {
                store,
                dynamo: None,
            },
        }
    }

    async fn dynamodb(test: &str) -> Self {
        let harness = Harness::dynamodb(test).await;
        let d = harness.dynamo.as_ref().expect("dynamo");
        let store = Arc::new(natter::store::dynamo::DynamoStore::new(
            d.client.clone(),
            d.table.clone(),
        ));
        Subject { store, harness }
    }
}

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Subject::memory()).await;
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Subject::dynamodb(stringify!($test)).await).await;
                }
            )*
        }
    };
}

conformance!(
    typers_are_listed_oldest_first_and_only_while_live,
    the_typer_item_is_read_beside_the_participant,
    a_delete_needs_the_until_it_names,
);

fn typer(cid: &str, user: &str, since: i64, until: i64) -> TyperRecord {
    TyperRecord {
        conversation_id: cid.into(),
        user_id: user.into(),
        since,
        until,
        expires_at: until / 1000 + 61,
    }
}

fn users(typers: &[TyperRecord]) -> Vec<&str> {
    typers.iter().map(|t| t.user_id.as_str()).collect()
}

async fn typers_are_listed_oldest_first_and_only_while_live(s: Subject) {
    let store = &*s.store;
    for t in [
        typer("c", "carol", T0 + 2, T0 + 10_000),
        typer("c", "bob", T0 + 1, T0 + 20_000),
        typer("c", "alice", T0 + 2, T0 + 15_000),
        typer("other", "dave", T0, T0 + 10_000),
    ] {
        store.put_typer(&t).await.unwrap();
    }
    assert_eq!(
        users(&store.typers("c", T0 + 100).await.unwrap()),
        ["bob", "alice", "carol"]
    );
    // `until` reached: no longer typing, though the item is still there.
    assert_eq!(
        users(&store.typers("c", T0 + 10_000).await.unwrap()),
        ["bob", "alice"]
    );
    assert!(store.typers("c", T0 + 20_000).await.unwrap().is_empty());
    assert!(store.typers("nobody", T0).await.unwrap().is_empty());
    // A rewrite replaces the item.
    store
        .put_typer(&typer("c", "carol", T0 + 11_000, T0 + 21_000))
        .await
        .unwrap();
    let now = store.typers("c", T0 + 11_000).await.unwrap();
    assert_eq!(users(&now), ["bob", "alice", "carol"]);
    assert_eq!(now[2], typer("c", "carol", T0 + 11_000, T0 + 21_000));
    s.harness.finish().await;
}

async fn the_typer_item_is_read_beside_the_participant(s: Subject) {
    let store = &*s.store;
    conversation(store, "c", &[("alice", Access::ReadWrite)], exp_in(HOUR)).await;
    let keys = |user: &str| {
        [
            ItemKey::Participant {
                conversation_id: "c".into(),
                user_id: user.into(),
            },
            ItemKey::Typer {
                conversation_id: "c".into(),
                user_id: user.into(),
            },
        ]
    };
    let items = store.get_items(&keys("alice"), T0).await.unwrap();
    assert!(items.participant("c", "alice").is_some());
    assert!(items.typer("c", "alice").is_none());
    let alice = typer("c", "alice", T0, T0 + 10_000);
    store.put_typer(&alice).await.unwrap();
    let items = store.get_items(&keys("alice"), T0 + 9_999).await.unwrap();
    assert_eq!(items.typer("c", "alice"), Some(&alice));
    assert!(items.participant("c", "alice").is_some());
    // Past `until`, the item reads as missing.
    let items = store.get_items(&keys("alice"), T0 + 10_000).await.unwrap();
    assert!(items.typer("c", "alice").is_none());
    assert!(items.participant("c", "alice").is_some());
    s.harness.finish().await;
}

async fn a_delete_needs_the_until_it_names(s: Subject) {
    let store = &*s.store;
    assert!(!store.delete_typer("c", "alice", T0).await.unwrap());
    store
        .put_typer(&typer("c", "alice", T0, T0 + 10_000))
        .await
        .unwrap();
    // Extended meanwhile: a check of the old `until` keeps it.
    store
        .put_typer(&typer("c", "alice", T0, T0 + 15_000))
        .await
        .unwrap();
    assert!(!store.delete_typer("c", "alice", T0 + 10_000).await.unwrap());
    assert_eq!(users(&store.typers("c", T0).await.unwrap()), ["alice"]);
    assert!(store.delete_typer("c", "alice", T0 + 15_000).await.unwrap());
    assert!(store.typers("c", T0).await.unwrap().is_empty());
    assert!(!store.delete_typer("c", "alice", T0 + 15_000).await.unwrap());
    s.harness.finish().await;
}

#[tokio::test]
async fn each_typing_method_is_one_request() {
    let s = Subject::dynamodb("typing_request_counts").await;
    let store = &*s.store;
    let counter = &s.harness.dynamo.as_ref().unwrap().counter;
    let check = |what: &str, expected: &[&str]| {
        assert_eq!(counter.take(), expected, "{what}");
    };
    store
        .put_typer(&typer("c", "alice", T0, T0 + 10_000))
        .await
        .unwrap();
    check("put_typer", &["PutItem"]);
    store.typers("c", T0).await.unwrap();
    check("typers", &["Query"]);
    let keys = [
        ItemKey::Participant {
            conversation_id: "c".into(),
            user_id: "alice".into(),
        },
        ItemKey::Typer {
            conversation_id: "c".into(),
            user_id: "alice".into(),
        },
    ];
    store.get_items(&keys, T0).await.unwrap();
    check("participant and typer", &["BatchGetItem"]);
    store.delete_typer("c", "alice", T0).await.unwrap();
    check("delete_typer (kept)", &["DeleteItem"]);
    store.delete_typer("c", "alice", T0 + 10_000).await.unwrap();
    check("delete_typer", &["DeleteItem"]);
    s.harness.finish().await;
}

/// What the embedded store's feed carries, as the stream would: a new typer, a new spell and a
/// delete are changes; extending `until` is none.
#[tokio::test]
async fn the_memory_feed_hears_of_spells_not_of_extensions() {
    let (sender, mut feed) = natter::changes::feed(16);
    let store = MemoryStore::with_changes(sender);
    let changed = |user: &str| Change::TypingChanged {
        conversation_id: "c".into(),
        user_id: user.into(),
    };
    use natter::store::typing::{TypingRemover, TypingWriter};
    store
        .put_typer(&typer("c", "alice", T0, T0 + 10_000))
        .await
        .unwrap();
    store
        .put_typer(&typer("c", "alice", T0, T0 + 15_000))
        .await
        .unwrap();
    store
        .put_typer(&typer("c", "alice", T0 + 20_000, T0 + 30_000))
        .await
        .unwrap();
    store.delete_typer("c", "alice", T0 + 30_000).await.unwrap();
    store.delete_typer("c", "alice", T0 + 30_000).await.unwrap();
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while got.len() < 3 && tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(100), feed.recv()).await {
            Ok(Some(change)) => got.push(change),
            _ => continue,
        }
    }
    assert_eq!(got, [changed("alice"), changed("alice"), changed("alice")]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(feed.try_recv().is_err(), "one change too many");
}
