//! The realtime store's behaviour, the same for the embedded store and the DynamoDB one (on the
//! DynamoDB at `NATTER_TEST_DYNAMODB_ENDPOINT`, e.g. moto; those tests never skip).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use natter::config::aws::WS_CONNECTION_MAX_SECS;
use natter::config::connections::{CLIENT_ID_GRACE_SECS, MAX_SUBSCRIPTIONS_PER_CONNECTION};
use natter::realtime::dynamo::DynamoRealtimeStore;
use natter::realtime::memory::MemoryRealtimeStore;
use natter::realtime::{ConnectionRecord, RealtimeStore, SubscribeOutcome, SubscriptionRecord};
use natter::store::dynamo::DynamoStore;

const ENDPOINT_VAR: &str = "NATTER_TEST_DYNAMODB_ENDPOINT";
const T0: i64 = 1_700_000_000_000;

fn memory() -> Arc<dyn RealtimeStore> {
    Arc::new(MemoryRealtimeStore::new())
}

async fn dynamodb(test: &str) -> Arc<dyn RealtimeStore> {
    let endpoint = std::env::var(ENDPOINT_VAR).unwrap_or_else(|_| {
        panic!(
            "{ENDPOINT_VAR} is not set: run scripts/test (it starts moto) or point it at a \
             DynamoDB endpoint; the DynamoDB realtime conformance tests never skip"
        )
    });
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let table = format!(
        "rt-{test}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let config = aws_sdk_dynamodb::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .endpoint_url(endpoint)
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    DynamoStore::new(client.clone(), &table)
        .create_table_if_missing()
        .await
        .expect("create the test table");
    Arc::new(DynamoRealtimeStore::new(client, table))
}

/// Runs each scenario against both stores.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod memory_store {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::memory()).await;
                }
            )*
        }
        mod dynamodb_store {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::dynamodb(stringify!($name)).await).await;
                }
            )*
        }
    };
}

conformance!(
    connections_open_and_close,
    subscriptions_follow_their_connection,
    a_subscription_id_can_move_to_another_conversation,
    windows_only_grow,
    expired_items_are_ignored,
    a_connection_holds_a_bounded_number_of_subscriptions,
);

fn sub(cid: &str, conn: &ConnectionRecord, sub_id: &str) -> SubscriptionRecord {
    SubscriptionRecord {
        conversation_id: cid.to_string(),
        connection_id: conn.connection_id.clone(),
        subscription_id: sub_id.to_string(),
        user_id: conn.user_id.clone(),
        window_start: None,
        expires_at: conn.subscription_expiry(),
    }
}

fn ids(subs: &[SubscriptionRecord]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = subs
        .iter()
        .map(|s| (s.connection_id.clone(), s.subscription_id.clone()))
        .collect();
    out.sort();
    out
}

async fn connections_open_and_close(store: Arc<dyn RealtimeStore>) {
    let a = ConnectionRecord::new("connA=", "alice", T0);
    let b = ConnectionRecord::new("connB=", "alice", T0 + 5);
    let c = ConnectionRecord::new("connC=", "bob", T0);
    for conn in [&a, &b, &c] {
        store.put_connection(conn).await.unwrap();
    }
    assert_eq!(
        a.expires_at,
        T0 / 1000 + WS_CONNECTION_MAX_SECS + CLIENT_ID_GRACE_SECS
    );
    assert_eq!(
        store.get_connection("connA=", T0).await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(store.get_connection("nope", T0).await.unwrap(), None);
    let alice: Vec<String> = store
        .user_connections("alice", T0)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.connection_id)
        .collect();
    assert_eq!(alice, vec!["connA=".to_string(), "connB=".to_string()]);

    let later = T0 + 60_000;
    store.disconnect("connA=", later).await.unwrap();
    let closed = store
        .get_connection("connA=", later)
        .await
        .unwrap()
        .unwrap();
    assert!(!closed.connected);
    assert_eq!(closed.user_id, "alice");
    assert_eq!(closed.expires_at, later / 1000 + CLIENT_ID_GRACE_SECS);
    let alice: Vec<String> = store
        .user_connections("alice", later)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.connection_id)
        .collect();
    assert_eq!(alice, vec!["connB=".to_string()]);
    // Closing again, or closing an unknown connection, is fine and changes nothing.
    store.disconnect("connA=", later + 1000).await.unwrap();
    store.disconnect("nope", later).await.unwrap();
    assert_eq!(
        store
            .get_connection("connA=", later)
            .await
            .unwrap()
            .unwrap()
            .expires_at,
        closed.expires_at
    );
}

async fn subscriptions_follow_their_connection(store: Arc<dyn RealtimeStore>) {
    let a = ConnectionRecord::new("connA=", "alice", T0);
    let b = ConnectionRecord::new("connB=", "bob", T0);
    store.put_connection(&a).await.unwrap();
    store.put_connection(&b).await.unwrap();
    for (conn, sub_id, cid) in [(&a, "s1", "c1"), (&a, "s2", "c2"), (&b, "s1", "c1")] {
        assert_eq!(
            store
                .put_subscription(&sub(cid, conn, sub_id), T0)
                .await
                .unwrap(),
            SubscribeOutcome::Subscribed
        );
    }
    // Subscribing again with the same id and conversation is idempotent.
    assert_eq!(
        store
            .put_subscription(&sub("c1", &a, "s1"), T0)
            .await
            .unwrap(),
        SubscribeOutcome::Subscribed
    );
    let c1 = store.subscribers("c1", T0).await.unwrap();
    assert_eq!(
        ids(&c1),
        vec![
            ("connA=".to_string(), "s1".to_string()),
            ("connB=".to_string(), "s1".to_string())
        ]
    );
    assert_eq!(c1[0].expires_at, T0 / 1000 + WS_CONNECTION_MAX_SECS);
    // The expiry always follows the connection's.
    let mut odd = sub("c3", &b, "s3");
    odd.expires_at = 0;
    store.put_subscription(&odd, T0).await.unwrap();
    let stored = store.get_subscription("connB=", "s3", T0).await.unwrap();
    assert_eq!(stored.map(|s| s.expires_at), Some(b.subscription_expiry()));
    let got = store
        .get_subscription("connA=", "s2", T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, sub("c2", &a, "s2"));
    assert_eq!(
        store.get_subscription("connA=", "zz", T0).await.unwrap(),
        None
    );
    let conn = store.get_connection("connA=", T0).await.unwrap().unwrap();
    assert_eq!(conn.subscriptions.len(), 2);
    assert_eq!(conn.subscriptions.get("s2").map(String::as_str), Some("c2"));

    // Unsubscribing.
    assert_eq!(
        store.delete_subscription("connA=", "s2").await.unwrap(),
        Some("c2".to_string())
    );
    assert_eq!(
        store.delete_subscription("connA=", "s2").await.unwrap(),
        None
    );
    assert!(store.subscribers("c2", T0).await.unwrap().is_empty());
    assert_eq!(
        store.get_subscription("connA=", "s2", T0).await.unwrap(),
        None
    );

    // Closing a connection removes all its subscriptions and refuses new ones.
    store.disconnect("connA=", T0 + 1000).await.unwrap();
    assert_eq!(
        ids(&store.subscribers("c1", T0 + 1000).await.unwrap()),
        vec![("connB=".to_string(), "s1".to_string())]
    );
    assert!(store
        .get_connection("connA=", T0 + 1000)
        .await
        .unwrap()
        .unwrap()
        .subscriptions
        .is_empty());
    assert_eq!(
        store
            .put_subscription(&sub("c1", &a, "s9"), T0 + 1000)
            .await
            .unwrap(),
        SubscribeOutcome::ConnectionGone
    );
    let ghost = ConnectionRecord::new("ghost=", "eve", T0);
    assert_eq!(
        store
            .put_subscription(&sub("c1", &ghost, "s1"), T0)
            .await
            .unwrap(),
        SubscribeOutcome::ConnectionGone
    );
}

async fn a_subscription_id_can_move_to_another_conversation(store: Arc<dyn RealtimeStore>) {
    let a = ConnectionRecord::new("connA=", "alice", T0);
    store.put_connection(&a).await.unwrap();
    store
        .put_subscription(&sub("c1", &a, "s"), T0)
        .await
        .unwrap();
    assert_eq!(
        store
            .put_subscription(&sub("c2", &a, "s"), T0)
            .await
            .unwrap(),
        SubscribeOutcome::Subscribed
    );
    assert!(store.subscribers("c1", T0).await.unwrap().is_empty());
    assert_eq!(store.subscribers("c2", T0).await.unwrap().len(), 1);
    assert_eq!(
        store
            .get_subscription("connA=", "s", T0)
            .await
            .unwrap()
            .map(|s| s.conversation_id),
        Some("c2".to_string())
    );
}

async fn windows_only_grow(store: Arc<dyn RealtimeStore>) {
    let a = ConnectionRecord::new("connA=", "alice", T0);
    store.put_connection(&a).await.unwrap();
    store
        .put_subscription(
            &SubscriptionRecord {
                window_start: Some("msg_5".into()),
                ..sub("c1", &a, "s")
            },
            T0,
        )
        .await
        .unwrap();
    let window = |store: Arc<dyn RealtimeStore>| async move {
        store
            .get_subscription("connA=", "s", T0)
            .await
            .unwrap()
            .unwrap()
            .window_start
    };
    assert_eq!(window(store.clone()).await.as_deref(), Some("msg_5"));
    // Extending goes back in time only.
    assert!(store
        .extend_window("c1", "connA=", "s", Some("msg_3"), T0)
        .await
        .unwrap());
    assert_eq!(window(store.clone()).await.as_deref(), Some("msg_3"));
    assert!(store
        .extend_window("c1", "connA=", "s", Some("msg_4"), T0)
        .await
        .unwrap());
    assert_eq!(window(store.clone()).await.as_deref(), Some("msg_3"));
    let got = store
        .get_subscription("connA=", "s", T0)
        .await
        .unwrap()
        .unwrap();
    assert!(got.window_includes("msg_3") && got.window_includes("msg_9"));
    assert!(!got.window_includes("msg_2"));
    // The whole conversation.
    assert!(store
        .extend_window("c1", "connA=", "s", None, T0)
        .await
        .unwrap());
    assert_eq!(window(store.clone()).await, None);
    assert!(store
        .extend_window("c1", "connA=", "s", Some("msg_1"), T0)
        .await
        .unwrap());
    assert_eq!(window(store.clone()).await, None);
    // A missing subscription.
    assert!(!store
        .extend_window("c1", "connA=", "nope", Some("msg_1"), T0)
        .await
        .unwrap());
}

async fn expired_items_are_ignored(store: Arc<dyn RealtimeStore>) {
    let a = ConnectionRecord::new("connA=", "alice", T0);
    store.put_connection(&a).await.unwrap();
    store
        .put_subscription(&sub("c1", &a, "s"), T0)
        .await
        .unwrap();
    let sub_end = a.subscription_expiry() * 1000;
    assert_eq!(store.subscribers("c1", sub_end - 1).await.unwrap().len(), 1);
    assert!(store.subscribers("c1", sub_end).await.unwrap().is_empty());
    assert_eq!(
        store
            .get_subscription("connA=", "s", sub_end)
            .await
            .unwrap(),
        None
    );
    assert!(!store
        .extend_window("c1", "connA=", "s", Some("msg_1"), sub_end)
        .await
        .unwrap());
    // The connection outlives its subscriptions by the client id grace period.
    assert!(store
        .get_connection("connA=", sub_end)
        .await
        .unwrap()
        .is_some());
    let conn_end = a.expires_at * 1000;
    assert_eq!(
        store.get_connection("connA=", conn_end).await.unwrap(),
        None
    );
    assert!(store
        .user_connections("alice", conn_end)
        .await
        .unwrap()
        .is_empty());
}

async fn a_connection_holds_a_bounded_number_of_subscriptions(store: Arc<dyn RealtimeStore>) {
    let a = ConnectionRecord::new("connA=", "alice", T0);
    store.put_connection(&a).await.unwrap();
    for i in 0..MAX_SUBSCRIPTIONS_PER_CONNECTION {
        assert_eq!(
            store
                .put_subscription(&sub("c1", &a, &format!("s{i}")), T0)
                .await
                .unwrap(),
            SubscribeOutcome::Subscribed
        );
    }
    assert_eq!(
        store
            .put_subscription(&sub("c1", &a, "one-more"), T0)
            .await
            .unwrap(),
        SubscribeOutcome::TooMany
    );
    // Replacing an existing one is still fine.
    assert_eq!(
        store
            .put_subscription(&sub("c2", &a, "s0"), T0)
            .await
            .unwrap(),
        SubscribeOutcome::Subscribed
    );
    assert_eq!(
        store.subscribers("c1", T0).await.unwrap().len(),
        MAX_SUBSCRIPTIONS_PER_CONNECTION - 1
    );
    // Disconnecting deletes them all (more than one batch of 25).
    store.disconnect("connA=", T0).await.unwrap();
    assert!(store.subscribers("c1", T0).await.unwrap().is_empty());
    assert!(store.subscribers("c2", T0).await.unwrap().is_empty());
}
