//! What typing costs, on both stores: the first `typing` frame of a spell, throttled repeats,
//! and the two ways a spell stops (its expiry check, a message), in typer writes, scheduled
//! checks (SQS `SendMessage`s on AWS) and pushes; on DynamoDB (moto) also every request, counted
//! by `RequestCounter`. These are the numbers of the README's cost table.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use natter::changes::{Change, ChangeSender};
use natter::clock::{Clock, ManualClock, SystemClock};
use natter::config::Config;
use natter::fanout::{FanOut, PushOutcome, Pusher};
use natter::model::Access;
use natter::ports::*;
use natter::realtime::dynamo::DynamoRealtimeStore;
use natter::realtime::memory::MemoryRealtimeStore;
use natter::realtime::{ConnectionRecord, SubscriptionRecord};
use natter::services::Services;
use natter::store::dynamo::{DynamoStore, RequestCounter};
use natter::store::memory::MemoryStore;
use natter::store::memory_inbox::MemoryInbox;
use natter::store::typing::TyperRecord;
use natter::store::{ItemKey, StoreResult};
use natter::typing::{Expiry, TypingExpiry, WsTyping};

/// Counts the typer writes and deletes of the store it wraps.
struct CountingTypers<S: ?Sized> {
    inner: Arc<S>,
    puts: AtomicUsize,
    deletes: AtomicUsize,
}

#[async_trait]
impl<S: TypingStore + ?Sized> TypingWriter for CountingTypers<S> {
    async fn put_typer(&self, typer: &TyperRecord) -> StoreResult<()> {
        self.puts.fetch_add(1, Ordering::SeqCst);
        self.inner.put_typer(typer).await
    }
}

#[async_trait]
impl<S: TypingStore + ?Sized> TypingLister for CountingTypers<S> {
    async fn typers(&self, cid: &str, now_ms: i64) -> StoreResult<Vec<TyperRecord>> {
        self.inner.typers(cid, now_ms).await
    }
}

#[async_trait]
impl<S: TypingStore + ?Sized> TypingRemover for CountingTypers<S> {
    async fn delete_typer(&self, cid: &str, user: &str, until: i64) -> StoreResult<bool> {
        self.deletes.fetch_add(1, Ordering::SeqCst);
        self.inner.delete_typer(cid, user, until).await
    }
}

/// Keeps the checks it is asked to schedule.
#[derive(Default)]
struct Checks(Mutex<Vec<Expiry>>);

#[async_trait]
impl TypingTimer for Checks {
    async fn schedule(&self, expiry: &Expiry, _now_ms: i64) -> natter::error::Result<()> {
        self.0.lock().unwrap().push(expiry.clone());
        Ok(())
    }
}

/// Counts the posts; every one is delivered.
#[derive(Default)]
struct Posts(Mutex<Vec<(String, String)>>);

#[async_trait]
impl Pusher for Posts {
    async fn push(&self, connection_id: &str, frame: &str) -> PushOutcome {
        self.0
            .lock()
            .unwrap()
            .push((connection_id.to_string(), frame.to_string()));
        PushOutcome::Delivered
    }
}

struct Bench<S: ?Sized> {
    services: Services,
    typers: Arc<CountingTypers<S>>,
    checks: Arc<Checks>,
    posts: Arc<Posts>,
    clock: ManualClock,
    requests: Option<RequestCounter>,
}

impl<S: ?Sized> Bench<S> {
    /// (typer writes, typer deletes, checks scheduled, pushes, DynamoDB requests) since the
    /// last take.
    fn take(&self) -> (usize, usize, usize, usize, Option<Vec<String>>) {
        (
            self.typers.puts.swap(0, Ordering::SeqCst),
            self.typers.deletes.swap(0, Ordering::SeqCst),
            std::mem::take(&mut *self.checks.0.lock().unwrap()).len(),
            std::mem::take(&mut *self.posts.0.lock().unwrap()).len(),
            self.requests.as_ref().map(|r| r.take()),
        )
    }
}

fn bench<S: TypingStore + ?Sized + 'static>(
    store: Arc<dyn Store>,
    inbox: Arc<dyn InboxStore>,
    realtime: Arc<dyn RealtimeStore>,
    typing: Arc<S>,
    requests: Option<RequestCounter>,
) -> Bench<S> {
    let clock = ManualClock::new(SystemClock.now_ms());
    let typers = Arc::new(CountingTypers {
        inner: typing,
        puts: AtomicUsize::new(0),
        deletes: AtomicUsize::new(0),
    });
    let checks = Arc::new(Checks::default());
    let services = Services::new(
        store,
        inbox,
        realtime,
        typers.clone(),
        Arc::new(clock.clone()),
        Config::default(),
    )
    .with_typing_timer(checks.clone());
    Bench {
        services,
        typers,
        checks,
        posts: Arc::new(Posts::default()),
        clock,
        requests,
    }
}

fn strings(names: &[&str]) -> Option<Vec<String>> {
    Some(names.iter().map(|s| s.to_string()).collect())
}

async fn costs<S: TypingStore + ?Sized + 'static>(b: Bench<S>) {
    let now = b.clock.now_ms();
    let exp = now / 1000 + 3600;
    let conversations: Arc<dyn ConversationWriter> = b.services.build();
    let participants: Vec<(String, Access)> = ["alice", "bob", "carol"]
        .iter()
        .map(|u| (u.to_string(), Access::ReadWrite))
        .collect();
    conversations
        .upsert_conversation("c", &Default::default(), &participants, false, now, exp)
        .await
        .unwrap();
    let connections: Arc<dyn ConnectionWriter> = b.services.build();
    let subscriptions: Arc<dyn SubscriptionWriter> = b.services.build();
    for user in ["bob", "carol"] {
        connections
            .put_connection(&ConnectionRecord::new(user, user, now))
            .await
            .unwrap();
        let sub = SubscriptionRecord {
            conversation_id: "c".into(),
            connection_id: user.into(),
            subscription_id: "s".into(),
            user_id: user.into(),
            window_start: None,
            expires_at: 0,
        };
        subscriptions.put_subscription(&sub, now).await.unwrap();
    }
    let typing: WsTyping = b.services.build();
    let expiry: TypingExpiry = b.services.build();
    let fan_out = FanOut::new(&b.services, b.posts.clone(), 4);
    let changed = Change::TypingChanged {
        conversation_id: "c".into(),
        user_id: "alice".into(),
    };
    b.take();

    // The first frame of a spell: one read, one write, one check; its change, one push each.
    typing.typing("c", "alice").await.unwrap();
    assert_eq!(
        b.take(),
        (
            1,
            0,
            1,
            0,
            b.requests
                .as_ref()
                .and(strings(&["BatchGetItem", "PutItem"]))
        )
    );
    fan_out.apply(&changed).await.unwrap();
    assert_eq!(
        b.take(),
        (
            0,
            0,
            0,
            2,
            b.requests
                .as_ref()
                .and(strings(&["Query", "Query", "BatchGetItem"]))
        )
    );

    // 19 more frames within the throttle: a read each, nothing written or scheduled.
    for _ in 0..19 {
        b.clock.advance_ms(100);
        typing.typing("c", "alice").await.unwrap();
    }
    let (puts, deletes, checks, pushes, requests) = b.take();
    assert_eq!((puts, deletes, checks, pushes), (0, 0, 0, 0), "throttled");
    if let Some(requests) = requests {
        assert_eq!(requests, vec!["BatchGetItem"; 19]);
    }

    // The spell ends by its check: a read and a delete; its change, one push each.
    b.clock.advance_ms(10_000);
    let check = Expiry {
        conversation_id: "c".into(),
        user_id: "alice".into(),
        at: now + 10_000,
    };
    assert!(expiry.run(&check).await.unwrap());
    assert_eq!(
        b.take(),
        (
            0,
            1,
            0,
            0,
            b.requests
                .as_ref()
                .and(strings(&["BatchGetItem", "DeleteItem"]))
        )
    );
    fan_out.apply(&changed).await.unwrap();
    assert_eq!(
        b.take(),
        (
            0,
            0,
            0,
            2,
            b.requests
                .as_ref()
                .and(strings(&["Query", "Query", "BatchGetItem"]))
        )
    );

    // A new spell ends by a message: the message's fan-out adds a read and a delete (a sender
    // who is not typing costs the read only), and the spell's own check later finds nothing.
    typing.typing("c", "alice").await.unwrap();
    let spell_check = b.checks.0.lock().unwrap()[0].clone();
    b.take();
    b.clock.advance_ms(1_000);
    let message = common::message("c", &common::mid(1), Some("alice"), exp);
    let message = natter::model::MessageRecord {
        created_at: b.clock.now_ms(),
        ..message
    };
    fan_out
        .apply(&Change::MessageCreated(message.clone()))
        .await
        .unwrap();
    let (puts, deletes, _, _, requests) = b.take();
    assert_eq!((puts, deletes), (0, 1));
    if let Some(requests) = requests {
        assert_eq!(
            &requests[..2],
            ["BatchGetItem", "DeleteItem"],
            "{requests:?}"
        );
    }
    fan_out.apply(&changed).await.unwrap();
    assert_eq!(b.take().3, 2, "the end of the spell is pushed");
    fan_out
        .apply(&Change::MessageCreated(message))
        .await
        .unwrap();
    let (_, deletes, _, _, requests) = b.take();
    assert_eq!(deletes, 0, "a sender not typing costs no write");
    if let Some(requests) = requests {
        assert_eq!(requests[0], "BatchGetItem", "{requests:?}");
        assert!(!requests.iter().any(|r| r == "DeleteItem"), "{requests:?}");
    }
    b.clock.advance_ms(10_000);
    assert!(!expiry.run(&spell_check).await.unwrap());
    assert_eq!(
        b.take(),
        (
            0,
            1,
            0,
            0,
            b.requests
                .as_ref()
                .and(strings(&["BatchGetItem", "DeleteItem"]))
        )
    );
    // Nobody is typing, and the item is gone.
    assert!(typer_of_alice(&b.services, &b.clock).await.is_none());
}

async fn typer_of_alice(services: &Services, clock: &ManualClock) -> Option<TyperRecord> {
    let reader: Arc<dyn ItemReader> = services.build();
    let key = ItemKey::Typer {
        conversation_id: "c".into(),
        user_id: "alice".into(),
    };
    reader
        .get_items(&[key], clock.now_ms())
        .await
        .unwrap()
        .typer("c", "alice")
        .cloned()
}

#[tokio::test]
async fn typing_costs_on_the_embedded_store() {
    let store = Arc::new(MemoryStore::with_changes(ChangeSender::none()));
    costs(bench(
        store.clone(),
        Arc::new(MemoryInbox::new(ChangeSender::none())),
        Arc::new(MemoryRealtimeStore::new()),
        store,
        None,
    ))
    .await;
}

#[tokio::test]
async fn typing_costs_on_dynamodb() {
    let harness = common::Harness::dynamodb("typing-costs").await;
    let d = harness.dynamo.as_ref().unwrap();
    let store = Arc::new(DynamoStore::new(d.client.clone(), d.table.clone()));
    costs(bench(
        store.clone(),
        store.clone(),
        Arc::new(DynamoRealtimeStore::new(d.client.clone(), d.table.clone())),
        store,
        Some(d.counter.clone()),
    ))
    .await;
    harness.finish().await;
}
