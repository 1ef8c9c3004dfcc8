//! What each domain operation costs in storage round trips, and that expiry follows the clock.
//!
//! `Counting` wraps a store and records every call. A call that starts while no other call is
//! in flight opens a new round trip; calls the domain runs side by side (with `join!`) share
//! one. Each call yields once before it completes, so side-by-side calls really do overlap.
//! The hot paths run on both stores; on DynamoDB (moto) an SDK interceptor also counts the
//! requests each operation sends.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use natter::auth::Identity;
use natter::changes::ChangeSender;
use natter::clock::{Clock, ManualClock};
use natter::config::Config;
use natter::domain::{
    AddReaction, DeleteMessage, EditMessage, EditMessageBody, GetMessage, ListConversations,
    ListMessages, MarkRead, MessagePageSnapshot, PutConversation, PutConversationBody,
    RemoveReaction, SendMessage, SendMessageBody,
};
use natter::error::Error;
use natter::model::*;
use natter::ports::*;
use natter::realtime::memory::MemoryRealtimeStore;
use natter::services::Services;
use natter::store::memory::MemoryStore;
use natter::store::memory_inbox::MemoryInbox;
use natter::store::*;

struct Counting<S: ?Sized> {
    inner: Arc<S>,
    in_flight: AtomicUsize,
    rounds: AtomicUsize,
    calls: Mutex<Vec<&'static str>>,
}

impl<S: ?Sized> Counting<S> {
    fn new(inner: Arc<S>) -> Self {
        Counting {
            inner,
            in_flight: AtomicUsize::new(0),
            rounds: AtomicUsize::new(0),
            calls: Mutex::default(),
        }
    }

    async fn call<T>(&self, name: &'static str, f: impl std::future::Future<Output = T>) -> T {
        if self.in_flight.fetch_add(1, Ordering::SeqCst) == 0 {
            self.rounds.fetch_add(1, Ordering::SeqCst);
        }
        self.calls.lock().unwrap().push(name);
        tokio::task::yield_now().await;
        let out = f.await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        out
    }

    /// (round trips, calls) since the last take.
    fn take(&self) -> (usize, Vec<&'static str>) {
        let rounds = self.rounds.swap(0, Ordering::SeqCst);
        let calls = std::mem::take(&mut *self.calls.lock().unwrap());
        (rounds, calls)
    }
}

#[async_trait]
impl<S: Store + ?Sized> ItemReader for Counting<S> {
    async fn get_items(&self, keys: &[ItemKey], now_ms: i64) -> StoreResult<Items> {
        self.call("get_items", self.inner.get_items(keys, now_ms))
            .await
    }
}

#[async_trait]
impl<S: Store + ?Sized> UserWriter for Counting<S> {
    async fn upsert_user(
        &self,
        user_id: &str,
        patch: &UserPatch,
        now_ms: i64,
        expires_at: i64,
    ) -> StoreResult<UserRecord> {
        self.call(
            "upsert_user",
            self.inner.upsert_user(user_id, patch, now_ms, expires_at),
        )
        .await
    }
}

#[async_trait]
impl<S: Store + ?Sized> ConversationWriter for Counting<S> {
    async fn upsert_conversation(
        &self,
        cid: &str,
        patch: &ConversationPatch,
        participants: &[(String, Access)],
        only_if_new: bool,
        now_ms: i64,
        expires_at: i64,
    ) -> StoreResult<()> {
        self.call(
            "upsert_conversation",
            self.inner.upsert_conversation(
                cid,
                patch,
                participants,
                only_if_new,
                now_ms,
                expires_at,
            ),
        )
        .await
    }
}

#[async_trait]
impl<S: Store + ?Sized> ConversationReader for Counting<S> {
    async fn get_conversation(
        &self,
        cid: &str,
        now_ms: i64,
    ) -> StoreResult<Option<(ConversationRecord, Vec<ParticipantRecord>)>> {
        self.call("get_conversation", self.inner.get_conversation(cid, now_ms))
            .await
    }
}

#[async_trait]
impl<S: Store + ?Sized> ParticipantWriter for Counting<S> {
    async fn put_participant(&self, p: &ParticipantRecord, now_ms: i64) -> StoreResult<()> {
        self.call("put_participant", self.inner.put_participant(p, now_ms))
            .await
    }
}

#[async_trait]
impl<S: Store + ?Sized> ConversationLister for Counting<S> {
    async fn list_conversations(
        &self,
        uid: &str,
        before: Option<&str>,
        limit: usize,
        now_ms: i64,
    ) -> StoreResult<ConversationListPage> {
        self.call(
            "list_conversations",
            self.inner.list_conversations(uid, before, limit, now_ms),
        )
        .await
    }

    async fn conversation_position(
        &self,
        uid: &str,
        cid: &str,
        now_ms: i64,
    ) -> StoreResult<Option<String>> {
        self.call(
            "conversation_position",
            self.inner.conversation_position(uid, cid, now_ms),
        )
        .await
    }
}

#[async_trait]
impl<S: Store + ?Sized> ReadMarker for Counting<S> {
    async fn mark_read(&self, cid: &str, uid: &str, at_ms: i64, now_ms: i64) -> StoreResult<bool> {
        self.call("mark_read", self.inner.mark_read(cid, uid, at_ms, now_ms))
            .await
    }

    async fn mark_unread(&self, cid: &str, uid: &str, now_ms: i64) -> StoreResult<bool> {
        self.call("mark_unread", self.inner.mark_unread(cid, uid, now_ms))
            .await
    }
}

#[async_trait]
impl<S: Store + ?Sized> UnreadCounter for Counting<S> {
    async fn count_unread(
        &self,
        cid: &str,
        uid: &str,
        after_ms: Option<i64>,
        cap: usize,
        now_ms: i64,
    ) -> StoreResult<u64> {
        self.call(
            "count_unread",
            self.inner.count_unread(cid, uid, after_ms, cap, now_ms),
        )
        .await
    }
}

#[async_trait]
impl<S: Store + ?Sized> ActivityWriter for Counting<S> {
    async fn record_activity(
        &self,
        cid: &str,
        uids: &[String],
        activity: &Activity,
    ) -> StoreResult<()> {
        self.call(
            "record_activity",
            self.inner.record_activity(cid, uids, activity),
        )
        .await
    }

    async fn retract_activity(
        &self,
        cid: &str,
        uids: &[String],
        removed_id: &str,
        replacement: Option<&Activity>,
    ) -> StoreResult<()> {
        self.call(
            "retract_activity",
            self.inner
                .retract_activity(cid, uids, removed_id, replacement),
        )
        .await
    }
}

#[async_trait]
impl<S: Store + ?Sized> ParticipantRemover for Counting<S> {
    async fn delete_participant(&self, cid: &str, uid: &str) -> StoreResult<()> {
        self.call(
            "delete_participant",
            self.inner.delete_participant(cid, uid),
        )
        .await
    }
}

#[async_trait]
impl<S: Store + ?Sized> MessageCreator for Counting<S> {
    async fn create_message(
        &self,
        m: &MessageRecord,
        c: &CreateConditions,
        now_ms: i64,
    ) -> StoreResult<CreateOutcome> {
        self.call("create_message", self.inner.create_message(m, c, now_ms))
            .await
    }
}

#[async_trait]
impl<S: Store + ?Sized> MessageImporter for Counting<S> {
    async fn import_messages(&self, m: &[MessageRecord], now_ms: i64) -> StoreResult<()> {
        self.call("import_messages", self.inner.import_messages(m, now_ms))
            .await
    }
}

#[async_trait]
impl<S: Store + ?Sized> MessageLister for Counting<S> {
    async fn list_messages(
        &self,
        cid: &str,
        before: Option<&str>,
        limit: usize,
        now_ms: i64,
    ) -> StoreResult<MessagePage> {
        self.call(
            "list_messages",
            self.inner.list_messages(cid, before, limit, now_ms),
        )
        .await
    }
}

#[async_trait]
impl<S: Store + ?Sized> MessageEditor for Counting<S> {
    async fn edit_message(
        &self,
        cid: &str,
        mid: &str,
        edit: &MessageEdit,
        sender: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<Option<MessageRecord>> {
        self.call(
            "edit_message",
            self.inner.edit_message(cid, mid, edit, sender, now_ms),
        )
        .await
    }
}

#[async_trait]
impl<S: Store + ?Sized> MessageDeleter for Counting<S> {
    async fn delete_message(
        &self,
        cid: &str,
        mid: &str,
        sender: Option<&str>,
    ) -> StoreResult<bool> {
        self.call(
            "delete_message",
            self.inner.delete_message(cid, mid, sender),
        )
        .await
    }
}

#[async_trait]
impl<S: Store + ?Sized> ReactionAdder for Counting<S> {
    async fn add_reaction(
        &self,
        cid: &str,
        mid: &str,
        emoji: &str,
        guard: &ReactionGuard,
        max: usize,
        expires_at: i64,
        now_ms: i64,
    ) -> StoreResult<ReactionOutcome> {
        self.call(
            "add_reaction",
            self.inner
                .add_reaction(cid, mid, emoji, guard, max, expires_at, now_ms),
        )
        .await
    }
}

#[async_trait]
impl<S: Store + ?Sized> ReactionRemover for Counting<S> {
    async fn remove_reaction(
        &self,
        cid: &str,
        mid: &str,
        emoji: &str,
        guard: &ReactionGuard,
        now_ms: i64,
    ) -> StoreResult<ReactionOutcome> {
        self.call(
            "remove_reaction",
            self.inner.remove_reaction(cid, mid, emoji, guard, now_ms),
        )
        .await
    }
}

#[async_trait]
impl<S: Store + ?Sized> ReactionReader for Counting<S> {
    async fn user_reactions(
        &self,
        cid: &str,
        uid: &str,
        low: &str,
        high: &str,
        now_ms: i64,
    ) -> StoreResult<HashSet<(String, String)>> {
        self.call(
            "user_reactions",
            self.inner.user_reactions(cid, uid, low, high, now_ms),
        )
        .await
    }
}

const START_MS: i64 = 1_800_000_000_000;

/// The operations the costs are measured on, each built from one set of services over the
/// counting store, as a function's `main` builds its one.
struct Domain(Services);

impl Domain {
    async fn put_conversation(
        &self,
        id: &Identity,
        cid: &str,
        body: PutConversationBody,
    ) -> Result<ConversationSnapshot, Error> {
        self.0.build::<PutConversation>().run(id, cid, body).await
    }

    async fn send_message(
        &self,
        id: &Identity,
        cid: &str,
        body: SendMessageBody,
    ) -> Result<MessageSnapshot, Error> {
        self.0.build::<SendMessage>().run(id, cid, body).await
    }

    async fn get_message(
        &self,
        id: &Identity,
        cid: &str,
        mid: &str,
    ) -> Result<MessageSnapshot, Error> {
        self.0.build::<GetMessage>().run(id, cid, mid).await
    }

    async fn list_messages(
        &self,
        id: &Identity,
        cid: &str,
        limit: Option<usize>,
        before: Option<&str>,
    ) -> Result<MessagePageSnapshot, Error> {
        self.0
            .build::<ListMessages>()
            .run(id, cid, limit, before)
            .await
    }

    async fn edit_message(
        &self,
        id: &Identity,
        cid: &str,
        mid: &str,
        body: EditMessageBody,
    ) -> Result<MessageSnapshot, Error> {
        self.0.build::<EditMessage>().run(id, cid, mid, body).await
    }

    async fn delete_message(&self, id: &Identity, cid: &str, mid: &str) -> Result<(), Error> {
        self.0.build::<DeleteMessage>().run(id, cid, mid).await
    }

    async fn add_reaction(
        &self,
        id: &Identity,
        cid: &str,
        mid: &str,
        emoji: &str,
    ) -> Result<(), Error> {
        self.0.build::<AddReaction>().run(id, cid, mid, emoji).await
    }

    async fn remove_reaction(
        &self,
        id: &Identity,
        cid: &str,
        mid: &str,
        emoji: &str,
    ) -> Result<(), Error> {
        self.0
            .build::<RemoveReaction>()
            .run(id, cid, mid, emoji)
            .await
    }
}

struct Fixture {
    domain: Domain,
    store: Arc<Counting<dyn Store>>,
    clock: ManualClock,
    /// DynamoDB requests, when the store is DynamoDB.
    requests: Option<natter::store::dynamo::RequestCounter>,
}

impl Fixture {
    /// (round trips, store calls, DynamoDB requests) since the last look.
    fn take(&self) -> (usize, Vec<&'static str>, Option<Vec<String>>) {
        let (rounds, calls) = self.store.take();
        (rounds, calls, self.requests.as_ref().map(|c| c.take()))
    }
}

fn user(id: &str) -> Identity {
    Identity::User {
        user_id: id.to_string(),
        role: None,
    }
}

fn text(t: &str) -> SendMessageBody {
    SendMessageBody {
        text: Some(t.to_string()),
        ..SendMessageBody::default()
    }
}

async fn fixture(config: Config) -> Fixture {
    fixture_on(Arc::new(MemoryStore::new()), None, config).await
}

async fn fixture_on(
    inner: Arc<dyn Store>,
    requests: Option<natter::store::dynamo::RequestCounter>,
    config: Config,
) -> Fixture {
    let store = Arc::new(Counting::new(inner));
    // The DynamoDB items must not look expired to moto's real clock: start at the real time.
    let start = natter::clock::SystemClock.now_ms().max(START_MS);
    let clock = ManualClock::new(start);
    let domain = Domain(Services::new(
        store.clone(),
        Arc::new(MemoryInbox::new(ChangeSender::none())),
        Arc::new(MemoryRealtimeStore::new()),
        Arc::new(MemoryStore::new()),
        Arc::new(clock.clone()),
        config,
    ));
    domain
        .put_conversation(
            &user("alice"),
            "c1",
            PutConversationBody {
                participants: Some(vec!["bob".into()]),
                ..PutConversationBody::default()
            },
        )
        .await
        .unwrap();
    store.take();
    if let Some(r) = &requests {
        r.take();
    }
    Fixture {
        domain,
        store,
        clock,
        requests,
    }
}

/// Runs the hot paths, checking round trips (and DynamoDB requests, when given).
async fn hot_paths(f: Fixture) {
    let alice = user("alice");
    let bob = user("bob");
    let check = |what: &str, want_rounds: usize, want_requests: &[&str]| {
        let (rounds, calls, requests) = f.take();
        assert_eq!(rounds, want_rounds, "{what}: round trips of {calls:?}");
        if let Some(mut requests) = requests {
            let mut want: Vec<String> = want_requests.iter().map(|r| r.to_string()).collect();
            requests.sort();
            want.sort();
            assert_eq!(requests, want, "{what}: DynamoDB requests");
        }
        eprintln!("{what}: {rounds} round trips, {calls:?}");
    };

    let first = f
        .domain
        .send_message(&alice, "c1", text("hi"))
        .await
        .unwrap();
    check("send", 2, &["BatchGetItem", "TransactWriteItems"]);

    f.domain
        .add_reaction(&bob, "c1", &first.id, "👍")
        .await
        .unwrap();
    check("add reaction", 1, &["TransactWriteItems"]);

    // A reply to another user's message, with reactions to expand.
    let reply = f
        .domain
        .send_message(
            &bob,
            "c1",
            SendMessageBody {
                referenced_message_id: Some(first.id.clone()),
                ..text("re")
            },
        )
        .await
        .unwrap();
    check(
        "send a reply",
        2,
        &[
            "BatchGetItem",
            "TransactWriteItems",
            "BatchGetItem",
            "Query",
        ],
    );
    let referenced = reply
        .referenced_message
        .expect("reply expands its reference");
    assert!(referenced.reactions[0].current_user_reacted);

    f.domain.get_message(&alice, "c1", &reply.id).await.unwrap();
    check("get", 2, &["BatchGetItem", "BatchGetItem", "Query"]);

    f.domain
        .edit_message(
            &bob,
            "c1",
            &reply.id,
            EditMessageBody {
                text: Some("edited".into()),
                ..EditMessageBody::default()
            },
        )
        .await
        .unwrap();
    check(
        "edit",
        2,
        &["BatchGetItem", "UpdateItem", "BatchGetItem", "Query"],
    );

    f.domain
        .remove_reaction(&bob, "c1", &first.id, "👍")
        .await
        .unwrap();
    check("remove reaction", 1, &["TransactWriteItems"]);

    f.domain
        .delete_message(&bob, "c1", &reply.id)
        .await
        .unwrap();
    check("delete", 2, &["BatchGetItem", "DeleteItem"]);

    // A page of 30 replies, each with a reaction and a reference outside the page for some.
    let mut previous = first;
    for i in 0..40 {
        let who = if i % 2 == 0 { &alice } else { &bob };
        let m = f
            .domain
            .send_message(
                who,
                "c1",
                SendMessageBody {
                    referenced_message_id: Some(previous.id.clone()),
                    ..text(&format!("m{i}"))
                },
            )
            .await
            .unwrap();
        f.domain
            .add_reaction(&bob, "c1", &m.id, "🎉")
            .await
            .unwrap();
        previous = m;
    }
    f.take();
    let page = f
        .domain
        .list_messages(&alice, "c1", Some(30), None)
        .await
        .unwrap();
    assert_eq!(page.data.len(), 30);
    // The budget is 3; the design needs 2 (access check beside the query, then one expansion).
    check(
        "page of 30",
        2,
        &["BatchGetItem", "Query", "BatchGetItem", "Query"],
    );
}

#[tokio::test]
async fn hot_paths_stay_within_their_round_trips_memory() {
    hot_paths(fixture(Config::default()).await).await;
}

#[tokio::test]
async fn hot_paths_stay_within_their_round_trips_and_requests_dynamodb() {
    let harness = common::Harness::dynamodb("domain-costs").await;
    let counter = harness.dynamo.as_ref().map(|d| d.counter.clone());
    hot_paths(fixture_on(harness.store.clone(), counter, Config::default()).await).await;
    harness.finish().await;
}

#[tokio::test]
async fn a_page_of_thirty_replies_with_reactions_takes_at_most_three_round_trips() {
    let f = fixture(Config::default()).await;
    let alice = user("alice");
    let bob = user("bob");
    let mut previous = f
        .domain
        .send_message(&alice, "c1", text("root"))
        .await
        .unwrap();
    for i in 0..40 {
        f.clock.advance_ms(1);
        let who = if i % 2 == 0 { &alice } else { &bob };
        let m = f
            .domain
            .send_message(
                who,
                "c1",
                SendMessageBody {
                    referenced_message_id: Some(previous.id.clone()),
                    ..text(&format!("m{i}"))
                },
            )
            .await
            .unwrap();
        f.domain
            .add_reaction(&bob, "c1", &m.id, "🎉")
            .await
            .unwrap();
        previous = m;
    }
    f.store.take();
    let page = f
        .domain
        .list_messages(&alice, "c1", Some(30), None)
        .await
        .unwrap();
    let (rounds, calls) = f.store.take();
    assert_eq!(page.data.len(), 30);
    assert!(!page.loaded_all);
    // The budget is 3; the design needs 2 (access check beside the query, then one expansion).
    assert_eq!(rounds, 2, "page of 30: {calls:?}");
    // Senders, references and reactions are all there.
    let oldest = page.data.last().unwrap();
    assert!(oldest.sender.is_some());
    let referenced = oldest.referenced_message.as_ref().unwrap();
    assert!(!page.data.iter().any(|m| m.id == referenced.id));
    assert_eq!(referenced.reactions[0].count, 1);
    assert!(
        !referenced.reactions[0].current_user_reacted,
        "alice did not react"
    );
}

#[tokio::test]
async fn expired_messages_disappear_when_the_clock_passes_retention() {
    let config = Config {
        retention_secs: 60,
        ..Config::default()
    };
    let f = fixture(config).await;
    let alice = user("alice");
    let old = f
        .domain
        .send_message(&alice, "c1", text("old"))
        .await
        .unwrap();
    f.clock.advance_secs(30);
    let newer = f
        .domain
        .send_message(&alice, "c1", text("newer"))
        .await
        .unwrap();
    f.domain
        .add_reaction(&alice, "c1", &old.id, "👍")
        .await
        .unwrap();

    f.clock.advance_secs(29);
    let page = f
        .domain
        .list_messages(&alice, "c1", None, None)
        .await
        .unwrap();
    assert_eq!(page.data.len(), 2);

    // 60 s after the first message: it has expired, the newer one has not.
    f.clock.advance_secs(1);
    let page = f
        .domain
        .list_messages(&alice, "c1", None, None)
        .await
        .unwrap();
    assert_eq!(
        page.data.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        vec![newer.id.as_str()]
    );
    assert!(page.loaded_all);
    assert!(matches!(
        f.domain.get_message(&alice, "c1", &old.id).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        f.domain.add_reaction(&alice, "c1", &old.id, "🎉").await,
        Err(Error::NotFound(_))
    ));
    // A reply to an expired message is refused, and an expired idempotency key is free again.
    let reply = f
        .domain
        .send_message(
            &alice,
            "c1",
            SendMessageBody {
                referenced_message_id: Some(old.id.clone()),
                ..text("late")
            },
        )
        .await;
    assert!(matches!(reply, Err(Error::InvalidRequest(_))));
    assert!(f.clock.now_ms() > START_MS);
}

#[tokio::test]
async fn idempotent_send_returns_the_first_message_until_it_expires() {
    let config = Config {
        retention_secs: 60,
        ..Config::default()
    };
    let f = fixture(config).await;
    let alice = user("alice");
    let keyed = |t: &str| SendMessageBody {
        idempotency_key: Some("k1".into()),
        ..text(t)
    };
    let first = f
        .domain
        .send_message(&alice, "c1", keyed("one"))
        .await
        .unwrap();
    let again = f
        .domain
        .send_message(&alice, "c1", keyed("two"))
        .await
        .unwrap();
    assert_eq!(first.id, again.id);
    assert_eq!(again.plaintext, "one");
    let page = f
        .domain
        .list_messages(&alice, "c1", None, None)
        .await
        .unwrap();
    assert_eq!(page.data.len(), 1);
    // Another sender's identical key is a different key.
    let bobs = f
        .domain
        .send_message(&user("bob"), "c1", keyed("bob"))
        .await
        .unwrap();
    assert_ne!(bobs.id, first.id);

    f.clock.advance_secs(61);
    let later = f
        .domain
        .send_message(&alice, "c1", keyed("three"))
        .await
        .unwrap();
    assert_ne!(later.id, first.id);
}

/// A page of 20 conversations, each holding `messages` messages from Bob that Alice has not
/// read: (round trips, DynamoDB requests when on DynamoDB), and the snapshots' unread counts.
async fn list_cost(f: &Fixture, messages: usize) -> (usize, Option<Vec<String>>, Vec<u64>) {
    let (alice, bob) = (user("alice"), user("bob"));
    for c in 0..20 {
        let cid = format!("l{c:02}");
        f.domain
            .put_conversation(
                &alice,
                &cid,
                PutConversationBody {
                    participants: Some(vec!["bob".into()]),
                    ..PutConversationBody::default()
                },
            )
            .await
            .unwrap();
        for i in 0..messages {
            f.domain
                .send_message(&bob, &cid, text(&format!("m{i}")))
                .await
                .unwrap();
        }
    }
    f.take();
    let page = f
        .domain
        .0
        .build::<ListConversations>()
        .run(&alice, "alice", Some(20), None)
        .await
        .unwrap();
    let (rounds, calls, requests) = f.take();
    eprintln!("a page of 20 conversations of {messages} messages: {rounds} round trips, {calls:?}");
    let counts = page
        .data
        .iter()
        .map(|c| c.unread_message_count.expect("a viewer's count"))
        .collect();
    (
        rounds,
        requests.map(|mut r| {
            r.sort();
            r
        }),
        counts,
    )
}

async fn conversation_lists_cost_the_same_however_many_messages(small: Fixture, large: Fixture) {
    let (rounds, requests, counts) = list_cost(&small, 2).await;
    assert_eq!(counts, vec![2; 20]);
    let (large_rounds, large_requests, large_counts) = list_cost(&large, 40).await;
    assert_eq!(large_counts, vec![40; 20]);
    assert_eq!(
        (rounds, &requests),
        (large_rounds, &large_requests),
        "the cost grew with the messages"
    );
    // The list (one call), then the 20 snapshots side by side (each its items, then its newest
    // message beside its unread count, then the message's sender: three deep), which overlap
    // into one stretch of waiting.
    assert_eq!(rounds, 2);
    if let Some(requests) = requests {
        let count = |name: &str| requests.iter().filter(|r| *r == name).count();
        // One index query and one batch read for the list; per conversation three queries
        // (conversation and participants, newest message, unread count) and one batch read
        // (the newest message's sender).
        assert_eq!(
            (count("Query"), count("BatchGetItem")),
            (1 + 60, 1 + 20),
            "{requests:?}"
        );
        assert_eq!(requests.len(), 82, "{requests:?}");
    }
    // A read: one write.
    small
        .domain
        .0
        .build::<MarkRead>()
        .run(&user("alice"), "l00")
        .await
        .unwrap();
    let (rounds, _, requests) = small.take();
    assert_eq!(rounds, 1);
    if let Some(requests) = requests {
        assert_eq!(requests, vec!["UpdateItem".to_string()]);
    }
}

#[tokio::test]
async fn conversation_lists_cost_the_same_however_many_messages_memory() {
    conversation_lists_cost_the_same_however_many_messages(
        fixture(Config::default()).await,
        fixture(Config::default()).await,
    )
    .await;
}

#[tokio::test]
async fn conversation_lists_cost_the_same_however_many_messages_dynamodb() {
    let small = common::Harness::dynamodb("list-costs-small").await;
    let large = common::Harness::dynamodb("list-costs-large").await;
    let counter = |h: &common::Harness| h.dynamo.as_ref().map(|d| d.counter.clone());
    conversation_lists_cost_the_same_however_many_messages(
        fixture_on(small.store.clone(), counter(&small), Config::default()).await,
        fixture_on(large.store.clone(), counter(&large), Config::default()).await,
    )
    .await;
    small.finish().await;
    large.finish().await;
}
