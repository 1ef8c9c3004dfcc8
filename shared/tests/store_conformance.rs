//! One conformance suite for every `Store`: each test below is an async function over a
//! `Harness`, instantiated twice by `conformance!` — `memory::*` (the reference `MemoryStore`)
//! and `dynamodb::*` (`DynamoStore` on moto at `NATTER_TEST_DYNAMODB_ENDPOINT`; without it the
//! DynamoDB tests panic, they never skip). Each DynamoDB test has its own table, so tests run in
//! parallel. Time is the `now_ms` each call is given, so expiry tests just pass a later time.
//!
//! `dynamodb_only::request_counts` checks, with `RequestCounter`, that each method is the one
//! request `docs/storage.md` promises.
//!
//! Against moto: the concurrency tests need a moto whose transactions are isolated
//! (`tests/common/moto_server.py`, or moto_server run single-threaded); the 10,000-reaction test
//! needs `tests/common/moto_server.py`, because stock moto copies the whole table on every
//! transaction (see there and `docs/storage.md`), and fails saying so on any other moto.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use common::*;
use futures::StreamExt;
use natter::model::{
    Access, ConversationPatch, ConversationRecord, MessageEdit, MessageRecord, ParticipantRecord,
    Patch, ReactionCount, UserPatch, UserRecord,
};
use natter::store::{
    Activity, CreateConditions, CreateOutcome, Failed, IdempotencyKey, ItemKey, ReactionGuard,
    ReactionOutcome, Store, StoreError,
};

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test(super::Harness::memory()).await;
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test(super::Harness::dynamodb(stringify!($test)).await).await;
                }
            )*
        }
    };
}

conformance!(
    users_upsert_patch_and_expiry,
    conversations_upsert_get_and_expiry,
    put_participant_needs_a_live_conversation,
    create_message_conditions,
    create_message_idempotency,
    idempotency_scopes_never_meet,
    get_items_mixed_kinds,
    list_messages_paging,
    list_messages_skips_expired,
    edit_message_patches,
    delete_message_cases,
    import_hundred_messages,
    reactions_add_remove_and_order,
    reactions_guard,
    reactions_message_missing,
    reactions_distinct_limit_and_sweep,
    user_reactions_range,
    concurrent_distinct_reactions_respect_the_limit,
    concurrent_duplicate_reactions_count_once,
    custom_key_limit_of_edits,
    concurrent_edits_keep_the_custom_key_limit,
    only_one_creates_a_new_conversation,
    ten_thousand_reactions,
    read_state_is_kept_per_participant,
    unread_counts_others_live_messages,
    conversation_lists_follow_joining_and_activity,
    conversation_lists_page_through_many,
);

mod dynamodb_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn request_counts() {
        super::request_counts(super::Harness::dynamodb("request_counts").await).await;
    }
}

const RW: Access = Access::ReadWrite;
const READ: Access = Access::Read;

fn conditions() -> CreateConditions {
    CreateConditions::default()
}

async fn create(
    store: &dyn Store,
    m: &MessageRecord,
    c: CreateConditions,
    now: i64,
) -> Result<CreateOutcome, StoreError> {
    store.create_message(m, &c, now).await
}

fn assert_failed(result: Result<CreateOutcome, StoreError>, expected: Failed) {
    match result {
        Err(StoreError::ConditionFailed(f)) => assert_eq!(f, expected),
        other => panic!("expected ConditionFailed({expected:?}), got {other:?}"),
    }
}

async fn get_message(store: &dyn Store, cid: &str, id: &str, now: i64) -> Option<MessageRecord> {
    let key = ItemKey::Message {
        conversation_id: cid.to_string(),
        message_id: id.to_string(),
    };
    store
        .get_items(&[key], now)
        .await
        .expect("get_items")
        .message(cid, id)
        .cloned()
}

async fn reactions_of(store: &dyn Store, cid: &str, id: &str, now: i64) -> Vec<(String, u64)> {
    get_message(store, cid, id, now)
        .await
        .expect("the message exists")
        .reactions
        .into_iter()
        .map(|r| (r.emoji, r.count))
        .collect()
}

async fn add(
    store: &dyn Store,
    cid: &str,
    id: &str,
    emoji: &str,
    g: &ReactionGuard,
    now: i64,
) -> ReactionOutcome {
    store
        .add_reaction(cid, id, emoji, g, 50, exp_in(HOUR), now)
        .await
        .expect("add_reaction")
}

async fn remove(
    store: &dyn Store,
    cid: &str,
    id: &str,
    emoji: &str,
    g: &ReactionGuard,
    now: i64,
) -> ReactionOutcome {
    store
        .remove_reaction(cid, id, emoji, g, now)
        .await
        .expect("remove_reaction")
}

fn owned(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
    pairs.iter().map(|(e, c)| (e.to_string(), *c)).collect()
}

// ---- Users ---------------------------------------------------------------------------------

async fn users_upsert_patch_and_expiry(h: Harness) {
    let s = &*h.store;
    let exp = exp_in(HOUR);
    let full = UserPatch {
        name: Patch::Value("Alice".into()),
        photo_url: Patch::Value("https://p/a.png".into()),
        role: Patch::Value("admin".into()),
        custom: Patch::Value(custom(&[("a", "1")])),
    };
    let u1 = s.upsert_user("alice", &full, T0, exp).await.unwrap();
    let expected = UserRecord {
        id: "alice".into(),
        name: Some("Alice".into()),
        photo_url: Some("https://p/a.png".into()),
        role: Some("admin".into()),
        custom: custom(&[("a", "1")]),
        expires_at: exp,
    };
    assert_eq!(u1, expected);
    let items = s
        .get_items(
            &[
                ItemKey::User("alice".into()),
                ItemKey::User("nobody".into()),
            ],
            T0,
        )
        .await
        .unwrap();
    assert_eq!(items.users.len(), 1);
    assert_eq!(items.users["alice"], expected);

    // A patch: set one field, clear another, leave the rest; expiresAt moves.
    let u2 = s
        .upsert_user(
            "alice",
            &UserPatch {
                name: Patch::Value("Al".into()),
                role: Patch::Null,
                ..UserPatch::default()
            },
            T0 + 1000,
            exp + 10,
        )
        .await
        .unwrap();
    let expected = UserRecord {
        name: Some("Al".into()),
        role: None,
        expires_at: exp + 10,
        ..expected
    };
    assert_eq!(u2, expected);

    // custom: null clears the map; a value replaces it.
    let u3 = s
        .upsert_user(
            "alice",
            &UserPatch {
                custom: Patch::Null,
                photo_url: Patch::Null,
                ..UserPatch::default()
            },
            T0 + 2000,
            exp + 10,
        )
        .await
        .unwrap();
    assert_eq!(u3.custom, BTreeMap::new());
    assert_eq!(u3.photo_url, None);
    assert_eq!(u3.name.as_deref(), Some("Al"));
    let u4 = s
        .upsert_user(
            "alice",
            &UserPatch {
                custom: Patch::Value(custom(&[("b", "2"), ("c", "3")])),
                role: Patch::Value("moderator".into()),
                photo_url: Patch::Value("https://p/b.png".into()),
                ..UserPatch::default()
            },
            T0 + 3000,
            exp + 10,
        )
        .await
        .unwrap();
    assert_eq!(u4.custom, custom(&[("b", "2"), ("c", "3")]));
    assert_eq!(u4.role.as_deref(), Some("moderator"));

    // A new user from an empty patch: no fields, an empty custom map.
    let bob = s
        .upsert_user("bob", &UserPatch::default(), T0, exp)
        .await
        .unwrap();
    assert_eq!(
        bob,
        UserRecord {
            id: "bob".into(),
            name: None,
            photo_url: None,
            role: None,
            custom: BTreeMap::new(),
            expires_at: exp,
        }
    );

    // Expiry: alive one millisecond before, gone at the second it expires.
    let gone_at = at_expiry(exp + 10);
    let before = s
        .get_items(&[ItemKey::User("alice".into())], gone_at - 1)
        .await
        .unwrap();
    assert_eq!(before.users["alice"], u4);
    let after = s
        .get_items(&[ItemKey::User("alice".into())], gone_at)
        .await
        .unwrap();
    assert!(after.users.is_empty(), "{:?}", after.users);

    // An upsert after expiry starts from nothing: no field of the expired record comes back.
    let reborn = s
        .upsert_user(
            "alice",
            &UserPatch {
                name: Patch::Value("New Alice".into()),
                ..UserPatch::default()
            },
            gone_at,
            exp_in(2 * HOUR),
        )
        .await
        .unwrap();
    let expected = UserRecord {
        id: "alice".into(),
        name: Some("New Alice".into()),
        photo_url: None,
        role: None,
        custom: BTreeMap::new(),
        expires_at: exp_in(2 * HOUR),
    };
    assert_eq!(reborn, expected);
    let items = s
        .get_items(&[ItemKey::User("alice".into())], gone_at)
        .await
        .unwrap();
    assert_eq!(items.users["alice"], expected);
    h.finish().await;
}

// ---- Conversations and participants --------------------------------------------------------

async fn conversations_upsert_get_and_expiry(h: Harness) {
    let s = &*h.store;
    let exp = exp_in(HOUR);
    let exp2 = exp + 100;
    s.upsert_conversation(
        "c1",
        &ConversationPatch {
            subject: Patch::Value("Hello".into()),
            photo_url: Patch::Absent,
            custom: Patch::Value(custom(&[("x", "1")])),
        },
        &[("a".into(), RW), ("b".into(), READ)],
        false,
        T0,
        exp,
    )
    .await
    .unwrap();
    let part = |u: &str, access, expires_at| ParticipantRecord {
        conversation_id: "c1".into(),
        user_id: u.into(),
        access,
        joined_at: T0,
        read_until: None,
        marked_unread: false,
        expires_at,
    };
    let expected = ConversationRecord {
        id: "c1".into(),
        subject: Some("Hello".into()),
        photo_url: None,
        custom: custom(&[("x", "1")]),
        created_at: T0,
        expires_at: exp,
    };
    let (c, ps) = s
        .get_conversation("c1", T0)
        .await
        .unwrap()
        .expect("conversation");
    assert_eq!(c, expected);
    assert_eq!(ps, vec![part("a", RW, exp), part("b", READ, exp)]);

    // A second upsert patches, keeps createdAt, and adds or changes participants.
    let t1 = T0 + 5000;
    s.upsert_conversation(
        "c1",
        &ConversationPatch {
            subject: Patch::Null,
            photo_url: Patch::Value("https://p/c.png".into()),
            custom: Patch::Absent,
        },
        &[("c".into(), RW), ("b".into(), RW)],
        false,
        t1,
        exp2,
    )
    .await
    .unwrap();
    let expected = ConversationRecord {
        subject: None,
        photo_url: Some("https://p/c.png".into()),
        expires_at: exp2,
        ..expected
    };
    let (c, ps) = s
        .get_conversation("c1", t1)
        .await
        .unwrap()
        .expect("conversation");
    assert_eq!(c, expected);
    assert_eq!(
        ps,
        vec![part("a", RW, exp), part("b", RW, exp2), part("c", RW, exp2)]
    );
    let items = s
        .get_items(
            &[
                ItemKey::Conversation("c1".into()),
                ItemKey::Participant {
                    conversation_id: "c1".into(),
                    user_id: "b".into(),
                },
                ItemKey::Participant {
                    conversation_id: "c1".into(),
                    user_id: "zed".into(),
                },
            ],
            t1,
        )
        .await
        .unwrap();
    assert_eq!(items.conversations["c1"], expected);
    assert_eq!(items.participant("c1", "b"), Some(&part("b", RW, exp2)));
    assert_eq!(items.participant("c1", "zed"), None);

    // custom: null clears it.
    s.upsert_conversation(
        "c1",
        &ConversationPatch {
            custom: Patch::Null,
            ..ConversationPatch::default()
        },
        &[],
        false,
        t1,
        exp2,
    )
    .await
    .unwrap();
    let (c, _) = s
        .get_conversation("c1", t1)
        .await
        .unwrap()
        .expect("conversation");
    assert_eq!(c.custom, BTreeMap::new());
    assert_eq!(c.photo_url.as_deref(), Some("https://p/c.png"));

    // Participant `a` expires first.
    let (_, ps) = s
        .get_conversation("c1", at_expiry(exp))
        .await
        .unwrap()
        .expect("conversation");
    assert_eq!(ps, vec![part("b", RW, exp2), part("c", RW, exp2)]);
    let items = s
        .get_items(
            &[ItemKey::Participant {
                conversation_id: "c1".into(),
                user_id: "a".into(),
            }],
            at_expiry(exp),
        )
        .await
        .unwrap();
    assert!(items.participants.is_empty());

    // Then the conversation.
    let gone_at = at_expiry(exp2);
    assert!(s.get_conversation("c1", gone_at).await.unwrap().is_none());
    assert!(s
        .get_items(&[ItemKey::Conversation("c1".into())], gone_at)
        .await
        .unwrap()
        .conversations
        .is_empty());

    // Upserting an expired conversation creates it anew: nothing of the old record survives.
    s.upsert_conversation(
        "c1",
        &ConversationPatch::default(),
        &[("d".into(), READ)],
        false,
        gone_at,
        exp_in(2 * HOUR),
    )
    .await
    .unwrap();
    let (c, ps) = s
        .get_conversation("c1", gone_at)
        .await
        .unwrap()
        .expect("conversation");
    assert_eq!(
        c,
        ConversationRecord {
            id: "c1".into(),
            subject: None,
            photo_url: None,
            custom: BTreeMap::new(),
            created_at: gone_at,
            expires_at: exp_in(2 * HOUR),
        }
    );
    assert_eq!(ps, vec![part("d", READ, exp_in(2 * HOUR))]);

    assert!(s.get_conversation("missing", T0).await.unwrap().is_none());
    h.finish().await;
}

async fn put_participant_needs_a_live_conversation(h: Harness) {
    let s = &*h.store;
    let exp = exp_in(HOUR);
    let p = |cid: &str, u: &str, access| ParticipantRecord {
        conversation_id: cid.into(),
        user_id: u.into(),
        access,
        joined_at: T0,
        read_until: None,
        marked_unread: false,
        expires_at: exp,
    };
    match s.put_participant(&p("nope", "u", RW), T0).await {
        Err(StoreError::ConditionFailed(Failed::ConversationMissing)) => {}
        other => panic!("expected ConversationMissing, got {other:?}"),
    }
    assert!(s.get_conversation("nope", T0).await.unwrap().is_none());

    conversation(s, "c2", &[], exp).await;
    s.put_participant(&p("c2", "u", READ), T0).await.unwrap();
    let (_, ps) = s.get_conversation("c2", T0).await.unwrap().unwrap();
    assert_eq!(ps, vec![p("c2", "u", READ)]);
    s.put_participant(&p("c2", "u", RW), T0).await.unwrap();
    let (_, ps) = s.get_conversation("c2", T0).await.unwrap().unwrap();
    assert_eq!(ps, vec![p("c2", "u", RW)]);

    s.delete_participant("c2", "u").await.unwrap();
    let (_, ps) = s.get_conversation("c2", T0).await.unwrap().unwrap();
    assert!(ps.is_empty());
    s.delete_participant("c2", "u").await.unwrap();
    s.delete_participant("nope", "u").await.unwrap();

    // An expired conversation is missing.
    match s.put_participant(&p("c2", "v", RW), at_expiry(exp)).await {
        Err(StoreError::ConditionFailed(Failed::ConversationMissing)) => {}
        other => panic!("expected ConversationMissing, got {other:?}"),
    }
    h.finish().await;
}

// ---- Messages ------------------------------------------------------------------------------

async fn create_message_conditions(h: Harness) {
    let s = &*h.store;
    let exp = exp_in(HOUR);
    conversation(s, "c", &[("w", RW), ("r", READ)], exp).await;
    s.put_participant(
        &ParticipantRecord {
            conversation_id: "c".into(),
            user_id: "x".into(),
            access: RW,
            joined_at: T0,
            read_until: None,
            marked_unread: false,
            expires_at: exp_in(10),
        },
        T0,
    )
    .await
    .unwrap();
    let writer = |u: &str| CreateConditions {
        writer: Some(u.into()),
        ..conditions()
    };

    let m1 = message("c", &mid(1), Some("w"), exp);
    assert_eq!(
        create(s, &m1, writer("w"), T0).await.unwrap(),
        CreateOutcome::Created
    );
    // A Read participant, a stranger and an expired participant may not write.
    assert_failed(
        create(s, &message("c", &mid(2), Some("r"), exp), writer("r"), T0).await,
        Failed::NotParticipant,
    );
    assert_failed(
        create(s, &message("c", &mid(3), Some("z"), exp), writer("z"), T0).await,
        Failed::NotParticipant,
    );
    assert_failed(
        create(
            s,
            &message("c", &mid(4), Some("x"), exp),
            writer("x"),
            at_expiry(exp_in(10)),
        )
        .await,
        Failed::NotParticipant,
    );
    // The conversation must exist.
    let exists = CreateConditions {
        conversation_exists: true,
        ..conditions()
    };
    assert_failed(
        create(s, &message("nope", &mid(5), None, exp), exists.clone(), T0).await,
        Failed::ConversationMissing,
    );
    let m6 = message("c", &mid(6), None, exp);
    assert_eq!(
        create(s, &m6, exists.clone(), T0).await.unwrap(),
        CreateOutcome::Created
    );
    assert_failed(
        create(
            s,
            &message("c", &mid(50), None, exp),
            exists,
            at_expiry(exp),
        )
        .await,
        Failed::ConversationMissing,
    );
    // The referenced message must exist, unexpired.
    let reply = |r: &str| CreateConditions {
        referenced_message_id: Some(r.into()),
        ..conditions()
    };
    let mut m7 = message("c", &mid(7), Some("w"), exp);
    m7.referenced_message_id = Some(m1.id.clone());
    m7.referenced_sender_id = Some("w".into());
    assert_eq!(
        create(s, &m7, reply(&m1.id), T0).await.unwrap(),
        CreateOutcome::Created
    );
    assert_failed(
        create(
            s,
            &message("c", &mid(8), Some("w"), exp),
            reply(&mid(999)),
            T0,
        )
        .await,
        Failed::ReferencedMissing,
    );
    let m9 = message("c", &mid(9), Some("w"), exp_in(5));
    create(s, &m9, conditions(), T0).await.unwrap();
    assert_failed(
        create(
            s,
            &message("c", &mid(10), Some("w"), exp),
            reply(&m9.id),
            at_expiry(exp_in(5)),
        )
        .await,
        Failed::ReferencedMissing,
    );
    // All conditions at once, all holding.
    let m11 = message("c", &mid(11), Some("w"), exp);
    let all = CreateConditions {
        writer: Some("w".into()),
        conversation_exists: true,
        referenced_message_id: Some(m1.id.clone()),
        idempotency_key: Some(idem(Some("w"), "all")),
    };
    assert_eq!(
        create(s, &m11, all, T0).await.unwrap(),
        CreateOutcome::Created
    );

    // What was created is stored as given; what failed is not stored at all.
    for m in [&m1, &m6, &m7, &m11] {
        assert_eq!(get_message(s, "c", &m.id, T0).await.as_ref(), Some(m));
    }
    for i in [2, 3, 4, 8, 10, 50] {
        assert_eq!(get_message(s, "c", &mid(i), T0).await, None, "message {i}");
    }
    assert_eq!(get_message(s, "nope", &mid(5), T0).await, None);
    h.finish().await;
}

/// An idempotency key of `sender` (`None`: system messages).
fn idem(sender: Option<&str>, key: &str) -> IdempotencyKey {
    IdempotencyKey {
        sender: sender.map(str::to_string),
        key: key.to_string(),
    }
}

/// A user's keys, another user's and the system messages' never meet, whatever the user ids:
/// a user named `system` (or `S`, the system scope's name in the table) has keys of its own.
async fn idempotency_scopes_never_meet(h: Harness) {
    let s = &*h.store;
    let exp = exp_in(HOUR);
    conversation(s, "c", &[("system", RW), ("S", RW), ("bob", RW)], exp).await;
    let keyed = |sender: Option<&str>| CreateConditions {
        writer: sender.map(str::to_string),
        conversation_exists: sender.is_none(),
        idempotency_key: Some(idem(sender, "k")),
        ..conditions()
    };
    let senders = [Some("system"), Some("S"), Some("bob"), None];
    let mut created = Vec::new();
    for (i, sender) in senders.iter().enumerate() {
        let m = message("c", &mid(i as i64 + 1), *sender, exp);
        assert_eq!(
            create(s, &m, keyed(*sender), T0).await.unwrap(),
            CreateOutcome::Created,
            "the first send of key k by {sender:?}"
        );
        created.push(m);
    }
    for m in &created {
        assert_eq!(get_message(s, "c", &m.id, T0).await.as_ref(), Some(m));
    }
    // Each scope still knows its own key.
    for (i, sender) in senders.iter().enumerate() {
        let again = message("c", &mid(10 + i as i64), *sender, exp);
        assert_eq!(
            create(s, &again, keyed(*sender), T0).await.unwrap(),
            CreateOutcome::Duplicate {
                message_id: created[i].id.clone()
            },
            "key k again by {sender:?}"
        );
    }
    h.finish().await;
}

async fn create_message_idempotency(h: Harness) {
    let s = &*h.store;
    let exp = exp_in(HOUR);
    conversation(s, "c", &[("w", RW)], exp).await;
    // Keys of sender "w" ("w:k1" is w's key "k1").
    let keyed = |k: &str, w: Option<&str>| CreateConditions {
        writer: w.map(str::to_string),
        idempotency_key: k
            .split_once(':')
            .map(|(sender, key)| idem(Some(sender), key)),
        ..conditions()
    };
    let m1 = message("c", &mid(1), Some("w"), exp);
    assert_eq!(
        create(s, &m1, keyed("w:k1", Some("w")), T0).await.unwrap(),
        CreateOutcome::Created
    );
    // The same key again: the first message's id, and nothing new stored.
    let dup = CreateOutcome::Duplicate {
        message_id: m1.id.clone(),
    };
    let m2 = message("c", &mid(2), Some("w"), exp);
    assert_eq!(
        create(s, &m2, keyed("w:k1", Some("w")), T0).await.unwrap(),
        dup
    );
    assert_eq!(get_message(s, "c", &m2.id, T0).await, None);
    // A duplicate wins over other failed conditions (like the memory store checks it first).
    let m3 = message("c", &mid(3), Some("z"), exp);
    assert_eq!(
        create(s, &m3, keyed("w:k1", Some("z")), T0).await.unwrap(),
        dup
    );
    // Another key, or the same key in another conversation, is new.
    let m4 = message("c", &mid(4), Some("w"), exp);
    assert_eq!(
        create(s, &m4, keyed("w:k2", None), T0).await.unwrap(),
        CreateOutcome::Created
    );
    let other = message("c-other", &mid(5), Some("w"), exp);
    assert_eq!(
        create(s, &other, keyed("w:k1", None), T0).await.unwrap(),
        CreateOutcome::Created
    );

    // A key lives as long as its message; then it may be used again.
    let short = message("c", &mid(6), Some("w"), exp_in(5));
    assert_eq!(
        create(s, &short, keyed("w:k3", None), T0).await.unwrap(),
        CreateOutcome::Created
    );
    let later = at_expiry(exp_in(5));
    let m7 = message("c", &mid(7), Some("w"), exp);
    assert_eq!(
        create(
            s,
            &message("c", &mid(8), Some("w"), exp),
            keyed("w:k3", None),
            later - 1
        )
        .await
        .unwrap(),
        CreateOutcome::Duplicate {
            message_id: short.id.clone()
        }
    );
    assert_eq!(
        create(s, &m7, keyed("w:k3", None), later).await.unwrap(),
        CreateOutcome::Created
    );
    assert_eq!(
        create(
            s,
            &message("c", &mid(9), Some("w"), exp),
            keyed("w:k3", None),
            later
        )
        .await
        .unwrap(),
        CreateOutcome::Duplicate {
            message_id: m7.id.clone()
        }
    );
    assert_eq!(get_message(s, "c", &m7.id, later).await.as_ref(), Some(&m7));
    h.finish().await;
}

async fn get_items_mixed_kinds(h: Harness) {
    let s = &*h.store;
    let exp = exp_in(HOUR);
    let short = exp_in(10);
    let now = at_expiry(short); // everything with `short` is expired
    s.upsert_user("u1", &UserPatch::default(), T0, exp)
        .await
        .unwrap();
    s.upsert_user("u2", &UserPatch::default(), T0, short)
        .await
        .unwrap();
    conversation(s, "c", &[("u1", RW), ("u2", READ)], exp).await;
    conversation(s, "gone", &[("u1", RW)], short).await;
    s.put_participant(
        &ParticipantRecord {
            conversation_id: "c".into(),
            user_id: "u3".into(),
            access: RW,
            joined_at: T0,
            read_until: None,
            marked_unread: false,
            expires_at: short,
        },
        T0,
    )
    .await
    .unwrap();
    // 130 live messages (more than one batch), one expired.
    let mut msgs = Vec::new();
    for i in 0..130 {
        msgs.push(message("c", &mid(i), Some("u1"), exp));
    }
    s.import_messages(&msgs[..100], T0).await.unwrap();
    s.import_messages(&msgs[100..], T0).await.unwrap();
    let expired = message("c", &mid(500), None, short);
    create(s, &expired, conditions(), T0).await.unwrap();

    let mut keys = vec![
        ItemKey::User("u1".into()),
        ItemKey::User("u2".into()),
        ItemKey::User("nobody".into()),
        ItemKey::User("u1".into()),
        ItemKey::Conversation("c".into()),
        ItemKey::Conversation("gone".into()),
        ItemKey::Conversation("never".into()),
        ItemKey::Participant {
            conversation_id: "c".into(),
            user_id: "u1".into(),
        },
        ItemKey::Participant {
            conversation_id: "c".into(),
            user_id: "u2".into(),
        },
        ItemKey::Participant {
            conversation_id: "c".into(),
            user_id: "u3".into(),
        },
        ItemKey::Participant {
            conversation_id: "gone".into(),
            user_id: "u1".into(),
        },
        ItemKey::Message {
            conversation_id: "c".into(),
            message_id: expired.id.clone(),
        },
        ItemKey::Message {
            conversation_id: "c".into(),
            message_id: mid(999),
        },
    ];
    for m in &msgs {
        keys.push(ItemKey::Message {
            conversation_id: "c".into(),
            message_id: m.id.clone(),
        });
    }
    keys.push(keys[4].clone());
    let items = s.get_items(&keys, now).await.unwrap();
    assert_eq!(items.users.keys().collect::<Vec<_>>(), vec!["u1"]);
    assert_eq!(items.conversations.keys().collect::<Vec<_>>(), vec!["c"]);
    let mut parts: Vec<_> = items.participants.keys().cloned().collect();
    parts.sort();
    assert_eq!(
        parts,
        vec![
            ("c".to_string(), "u1".to_string()),
            ("c".to_string(), "u2".to_string())
        ]
    );
    assert_eq!(items.participant("c", "u2").map(|p| p.access), Some(READ));
    assert_eq!(items.messages.len(), 130);
    for m in &msgs {
        assert_eq!(items.message("c", &m.id), Some(m));
    }
    assert!(items.message("c", &expired.id).is_none());

    // Nothing asked, nothing found.
    let none = s.get_items(&[], now).await.unwrap();
    assert!(none.users.is_empty() && none.messages.is_empty());
    h.finish().await;
}

async fn list_messages_paging(h: Harness) {
    let s = &*h.store;
    let exp = exp_in(HOUR);
    conversation(s, "c", &[("w", RW)], exp).await;
    let all_ids: Vec<String> = (1..=10).map(mid).collect();
    let ids = &all_ids;
    for (i, id) in ids.iter().enumerate() {
        let c = CreateConditions {
            idempotency_key: Some(idem(Some("w"), &i.to_string())),
            ..conditions()
        };
        create(s, &message("c", id, Some("w"), exp), c, T0)
            .await
            .unwrap();
    }
    create(
        s,
        &message("c-other", &mid(11), None, exp),
        conditions(),
        T0,
    )
    .await
    .unwrap();
    let page = |before: Option<usize>, limit: usize| {
        let before = before.map(|i| ids[i - 1].clone());
        async move {
            let p = s
                .list_messages("c", before.as_deref(), limit, T0)
                .await
                .unwrap();
            let got: Vec<usize> = p
                .messages
                .iter()
                .map(|m| ids.iter().position(|id| *id == m.id).expect("a known id") + 1)
                .collect();
            (got, p.loaded_all)
        }
    };
    assert_eq!(page(None, 3).await, (vec![10, 9, 8], false));
    assert_eq!(page(Some(8), 3).await, (vec![7, 6, 5], false));
    assert_eq!(page(Some(5), 3).await, (vec![4, 3, 2], false));
    assert_eq!(page(Some(2), 3).await, (vec![1], true));
    assert_eq!(page(Some(1), 3).await, (vec![], true));
    assert_eq!(page(Some(5), 4).await, (vec![4, 3, 2, 1], true));
    assert_eq!(
        page(None, 10).await,
        ((1..=10).rev().collect::<Vec<usize>>(), true)
    );
    assert_eq!(
        page(None, 9).await,
        ((2..=10).rev().collect::<Vec<usize>>(), false)
    );
    assert_eq!(page(None, 0).await, (vec![], false));
    // `before` need not be a stored id.
    let p = s.list_messages("c", Some(&mid(0)), 5, T0).await.unwrap();
    assert!(p.messages.is_empty() && p.loaded_all);
    let p = s.list_messages("c", Some(&mid(100)), 2, T0).await.unwrap();
    assert_eq!(
        p.messages.iter().map(|m| m.id.clone()).collect::<Vec<_>>(),
        vec![ids[9].clone(), ids[8].clone()]
    );
    // The records are complete.
    let p = s.list_messages("c", None, 1, T0).await.unwrap();
    assert_eq!(p.messages, vec![message("c", &ids[9], Some("w"), exp)]);
    // Another or an empty conversation.
    let p = s.list_messages("c-other", None, 5, T0).await.unwrap();
    assert_eq!(p.messages.len(), 1);
    assert!(p.loaded_all);
    let p = s.list_messages("empty", None, 5, T0).await.unwrap();
    assert!(p.messages.is_empty() && p.loaded_all);
    h.finish().await;
}

async fn list_messages_skips_expired(h: Harness) {
    let s = &*h.store;
    let live = exp_in(HOUR);
    let dead = exp_in(1);
    let now = at_expiry(dead);
    conversation(s, "c", &[], live).await;
    // Oldest first: 1..=35 expired (a long tail), 36..=40 live, 41..=45 expired, 46..=50 live.
    let msgs: Vec<MessageRecord> = (1..=50)
        .map(|i| {
            let e = if (36..=40).contains(&i) || i > 45 {
                live
            } else {
                dead
            };
            message("c", &mid(i), Some("w"), e)
        })
        .collect();
    s.import_messages(&msgs, T0).await.unwrap();
    let ids = |p: &natter::store::MessagePage| -> Vec<i64> {
        p.messages
            .iter()
            .map(|m| (1..=50).find(|i| mid(*i) == m.id).expect("a known id"))
            .collect()
    };
    let p = s.list_messages("c", None, 5, now).await.unwrap();
    assert_eq!((ids(&p), p.loaded_all), (vec![50, 49, 48, 47, 46], false));
    let p = s.list_messages("c", Some(&mid(46)), 5, now).await.unwrap();
    assert_eq!((ids(&p), p.loaded_all), (vec![40, 39, 38, 37, 36], true));
    let p = s.list_messages("c", Some(&mid(46)), 4, now).await.unwrap();
    assert_eq!((ids(&p), p.loaded_all), (vec![40, 39, 38, 37], false));
    let p = s.list_messages("c", Some(&mid(36)), 5, now).await.unwrap();
    assert_eq!((ids(&p), p.loaded_all), (vec![], true));
    let p = s.list_messages("c", None, 100, now).await.unwrap();
    assert_eq!(p.messages.len(), 10);
    assert!(p.loaded_all);
    // Before they expired, all 50 are there.
    let p = s.list_messages("c", None, 100, T0).await.unwrap();
    assert_eq!(p.messages.len(), 50);
    h.finish().await;
}

async fn edit_message_patches(h: Harness) {
    let s = &*h.store;
    let exp = exp_in(HOUR);
    conversation(s, "c", &[("s", RW), ("t", RW)], exp).await;
    let mut m = message("c", &mid(1), Some("s"), exp);
    m.custom = custom(&[("a", "1"), ("b", "2")]);
    create(s, &m, conditions(), T0).await.unwrap();
    assert_eq!(
        add(s, "c", &m.id, "👍", &guard("t"), T0).await,
        ReactionOutcome::Changed
    );

    let edit = MessageEdit {
        content: Some(text("edited")),
        custom: Patch::Value(BTreeMap::from([
            ("a".to_string(), None),
            ("c".to_string(), Some("3".to_string())),
            ("b".to_string(), Some("two".to_string())),
        ])),
        edited_at: T0 + 1,
        max_custom_keys: 50,
    };
    let e1 = s
        .edit_message("c", &m.id, &edit, None, T0 + 1)
        .await
        .unwrap()
        .expect("edited");
    let mut expected = m.clone();
    expected.content = text("edited");
    expected.custom = custom(&[("b", "two"), ("c", "3")]);
    expected.edited_at = Some(T0 + 1);
    expected.reactions = vec![ReactionCount {
        emoji: "👍".into(),
        count: 1,
        first_added_at: T0,
    }];
    assert_eq!(e1, expected);
    assert_eq!(
        get_message(s, "c", &m.id, T0 + 1).await.as_ref(),
        Some(&expected)
    );

    // Clearing custom, by the sender; content untouched.
    let clear = MessageEdit {
        content: None,
        custom: Patch::Null,
        edited_at: T0 + 2,
        max_custom_keys: 50,
    };
    let e2 = s
        .edit_message("c", &m.id, &clear, Some("s"), T0 + 2)
        .await
        .unwrap()
        .expect("edited");
    expected.custom = BTreeMap::new();
    expected.edited_at = Some(T0 + 2);
    assert_eq!(e2, expected);
    // Only editedAt.
    let touch = MessageEdit {
        content: None,
        custom: Patch::Absent,
        edited_at: T0 + 3,
        max_custom_keys: 50,
    };
    let e3 = s
        .edit_message("c", &m.id, &touch, None, T0 + 3)
        .await
        .unwrap()
        .expect("edited");
    expected.edited_at = Some(T0 + 3);
    assert_eq!(e3, expected);

    // Someone else's message, a system message, a missing one, an expired one: None, unchanged.
    assert!(s
        .edit_message("c", &m.id, &edit, Some("t"), T0 + 4)
        .await
        .unwrap()
        .is_none());
    let sys = message("c", &mid(2), None, exp);
    create(s, &sys, conditions(), T0).await.unwrap();
    assert!(s
        .edit_message("c", &sys.id, &edit, Some("s"), T0 + 4)
        .await
        .unwrap()
        .is_none());
    assert_eq!(get_message(s, "c", &sys.id, T0).await.as_ref(), Some(&sys));
    assert!(s
        .edit_message("c", &mid(3), &edit, None, T0 + 4)
        .await
        .unwrap()
        .is_none());
    assert!(s
        .edit_message("c", &m.id, &edit, None, at_expiry(exp))
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        get_message(s, "c", &m.id, T0 + 4).await.as_ref(),
        Some(&expected)
    );
    assert_eq!(get_message(s, "c", &mid(3), T0).await, None);
    h.finish().await;
}

async fn delete_message_cases(h: Harness) {
    let s = &*h.store;
    let exp = exp_in(HOUR);
    assert!(!s.delete_message("c", &mid(1), None).await.unwrap());
    assert!(!s.delete_message("c", &mid(1), Some("s")).await.unwrap());
    let m = message("c", &mid(1), Some("s"), exp);
    create(s, &m, conditions(), T0).await.unwrap();
    match s.delete_message("c", &m.id, Some("t")).await {
        Err(StoreError::ConditionFailed(Failed::MessageMissing)) => {}
        other => panic!("expected ConditionFailed(MessageMissing), got {other:?}"),
    }
    assert!(get_message(s, "c", &m.id, T0).await.is_some());
    assert!(s.delete_message("c", &m.id, Some("s")).await.unwrap());
    assert!(get_message(s, "c", &m.id, T0).await.is_none());
    assert!(!s.delete_message("c", &m.id, Some("s")).await.unwrap());

    let sys = message("c", &mid(2), None, exp);
    create(s, &sys, conditions(), T0).await.unwrap();
    match s.delete_message("c", &sys.id, Some("s")).await {
        Err(StoreError::ConditionFailed(Failed::MessageMissing)) => {}
        other => panic!("expected ConditionFailed(MessageMissing), got {other:?}"),
    }
    assert!(s.delete_message("c", &sys.id, None).await.unwrap());
    assert!(s
        .list_messages("c", None, 10, T0)
        .await
        .unwrap()
        .messages
        .is_empty());
    h.finish().await;
}

async fn import_hundred_messages(h: Harness) {
    let s = &*h.store;
    let exp = exp_in(HOUR);
    conversation(s, "c", &[("w", RW)], exp).await;
    s.import_messages(&[], T0).await.unwrap();
    let msgs: Vec<MessageRecord> = (0..100)
        .map(|i| {
            let mut m = message("c", &mid(i), Some("w"), exp);
            m.origin = natter::model::Origin::Import;
            m.created_at = T0 - 1000 + i;
            m
        })
        .collect();
    s.import_messages(&msgs, T0).await.unwrap();
    let p = s.list_messages("c", None, 100, T0).await.unwrap();
    assert!(p.loaded_all);
    let mut newest_first = msgs.clone();
    newest_first.reverse();
    assert_eq!(p.messages, newest_first);
    h.finish().await;
}

// ---- Reactions -----------------------------------------------------------------------------

async fn reactions_add_remove_and_order(h: Harness) {
    let s = &*h.store;
    let exp = exp_in(HOUR);
    conversation(s, "c", &[("a", RW), ("b", RW), ("c", RW)], exp).await;
    let m = message("c", &mid(1), Some("a"), exp);
    create(s, &m, conditions(), T0).await.unwrap();
    let id = m.id.as_str();
    let (a, b, c) = (guard("a"), guard("b"), guard("c"));

    assert_eq!(
        add(s, "c", id, "👍", &a, T0 + 1).await,
        ReactionOutcome::Changed
    );
    assert_eq!(
        add(s, "c", id, "👍", &a, T0 + 2).await,
        ReactionOutcome::Unchanged
    );
    assert_eq!(
        add(s, "c", id, "❤️", &b, T0 + 3).await,
        ReactionOutcome::Changed
    );
    assert_eq!(
        add(s, "c", id, ":party_parrot:", &c, T0 + 4).await,
        ReactionOutcome::Changed
    );
    assert_eq!(
        add(s, "c", id, "❤️", &a, T0 + 5).await,
        ReactionOutcome::Changed
    );
    assert_eq!(
        add(s, "c", id, "❤️", &c, T0 + 6).await,
        ReactionOutcome::Changed
    );
    assert_eq!(
        reactions_of(s, "c", id, T0).await,
        owned(&[("👍", 1), ("❤️", 3), (":party_parrot:", 1)])
    );
    let full = get_message(s, "c", id, T0).await.unwrap();
    assert_eq!(
        full.reactions
            .iter()
            .map(|r| r.first_added_at)
            .collect::<Vec<_>>(),
        vec![T0 + 1, T0 + 3, T0 + 4]
    );

    // Removing: once changes, twice does not; a count of 0 is not listed.
    assert_eq!(
        remove(s, "c", id, "👍", &a, T0 + 7).await,
        ReactionOutcome::Changed
    );
    assert_eq!(
        remove(s, "c", id, "👍", &a, T0 + 8).await,
        ReactionOutcome::Unchanged
    );
    assert_eq!(
        remove(s, "c", id, "👍", &b, T0 + 8).await,
        ReactionOutcome::Unchanged
    );
    assert_eq!(
        remove(s, "c", id, "❤️", &b, T0 + 9).await,
        ReactionOutcome::Changed
    );
    // Never added, and not on the message at all.
    assert_eq!(
        remove(s, "c", id, "🙈", &b, T0 + 9).await,
        ReactionOutcome::Unchanged
    );
    assert_eq!(
        reactions_of(s, "c", id, T0).await,
        owned(&[("❤️", 2), (":party_parrot:", 1)])
    );
    // Re-adding an emoji whose count fell to 0 keeps its first-added place.
    assert_eq!(
        add(s, "c", id, "👍", &b, T0 + 10).await,
        ReactionOutcome::Changed
    );
    assert_eq!(
        reactions_of(s, "c", id, T0).await,
        owned(&[("👍", 1), ("❤️", 2), (":party_parrot:", 1)])
    );
    // Emoji first added in the same millisecond keep the order they were added in.
    let m2 = message("c", &mid(2), Some("a"), exp);
    create(s, &m2, conditions(), T0).await.unwrap();
    for e in ["b", "c", "a"] {
        assert_eq!(
            add(s, "c", &m2.id, e, &a, T0 + 20).await,
            ReactionOutcome::Changed
        );
    }
    assert_eq!(
        reactions_of(s, "c", &m2.id, T0).await,
        owned(&[("b", 1), ("c", 1), ("a", 1)])
    );
    // list_messages carries them too.
    let p = s.list_messages("c", None, 10, T0).await.unwrap();
    assert_eq!(
        p.messages[1].reactions,
        get_message(s, "c", id, T0).await.unwrap().reactions
    );
    h.finish().await;
}

async fn reactions_guard(h: Harness) {
    let s = &*h.store;
    let exp = exp_in(HOUR);
    let members = [
        "a", "r", "x", "admin", "guest", "plain", "norole", "expuser",
    ];
    let ps: Vec<(&str, Access)> = members
        .iter()
        .map(|u| (*u, if *u == "r" { READ } else { RW }))
        .collect();
    conversation(s, "c", &ps, exp).await;
    s.put_participant(
        &ParticipantRecord {
            conversation_id: "c".into(),
            user_id: "x".into(),
            access: RW,
            joined_at: T0,
            read_until: None,
            marked_unread: false,
            expires_at: exp_in(10),
        },
        T0,
    )
    .await
    .unwrap();
    let with_role = |r: &str| UserPatch {
        role: Patch::Value(r.into()),
        ..UserPatch::default()
    };
    s.upsert_user("admin", &with_role("admin"), T0, exp)
        .await
        .unwrap();
    s.upsert_user("guest", &with_role("guest"), T0, exp)
        .await
        .unwrap();
    s.upsert_user("norole", &UserPatch::default(), T0, exp)
        .await
        .unwrap();
    s.upsert_user("expuser", &with_role("guest"), T0, exp_in(10))
        .await
        .unwrap();
    let m = message("c", &mid(1), Some("a"), exp);
    create(s, &m, conditions(), T0).await.unwrap();
    let id = m.id.as_str();
    let later = at_expiry(exp_in(10)); // x and expuser have expired

    // Participants.
    assert_eq!(
        add(s, "c", id, "1", &guard("stranger"), T0).await,
        ReactionOutcome::NotParticipant
    );
    assert_eq!(
        add(s, "c", id, "1", &guard("r"), T0).await,
        ReactionOutcome::NotParticipant
    );
    let read_ok = ReactionGuard {
        write_access: false,
        ..guard("r")
    };
    assert_eq!(
        add(s, "c", id, "1", &read_ok, T0).await,
        ReactionOutcome::Changed
    );
    assert_eq!(
        add(s, "c", id, "1", &guard("x"), T0).await,
        ReactionOutcome::Changed
    );
    assert_eq!(
        add(s, "c", id, "2", &guard("x"), later).await,
        ReactionOutcome::NotParticipant
    );
    assert_eq!(
        remove(s, "c", id, "1", &guard("x"), later).await,
        ReactionOutcome::NotParticipant
    );
    assert_eq!(
        remove(s, "c", id, "1", &guard("stranger"), T0).await,
        ReactionOutcome::NotParticipant
    );

    // Denied roles; users without a stored role (or whose record expired) have the default.
    let deny = |u: &str, roles: &[&str], default: bool| ReactionGuard {
        denied_roles: roles.iter().map(|r| r.to_string()).collect(),
        deny_default_role: default,
        ..guard(u)
    };
    let cases: &[(&str, &[&str], bool, ReactionOutcome)] = &[
        ("guest", &["guest"], false, ReactionOutcome::RoleDenied),
        (
            "guest",
            &["other", "guest"],
            false,
            ReactionOutcome::RoleDenied,
        ),
        ("admin", &["guest"], false, ReactionOutcome::Changed),
        ("plain", &["guest"], false, ReactionOutcome::Changed),
        ("norole", &["guest"], false, ReactionOutcome::Changed),
        ("expuser", &["guest"], false, ReactionOutcome::Changed),
        ("plain", &["guest"], true, ReactionOutcome::RoleDenied),
        ("norole", &["guest"], true, ReactionOutcome::RoleDenied),
        ("expuser", &["guest"], true, ReactionOutcome::RoleDenied),
        ("admin", &["guest"], true, ReactionOutcome::Changed),
        ("admin", &[], true, ReactionOutcome::Changed),
        ("plain", &[], true, ReactionOutcome::RoleDenied),
        ("guest", &[], true, ReactionOutcome::Changed),
        ("guest", &["admin"], false, ReactionOutcome::Changed),
    ];
    for (i, (user, roles, default, expected)) in cases.iter().enumerate() {
        let emoji = format!(":case{i}:");
        assert_eq!(
            add(s, "c", id, &emoji, &deny(user, roles, *default), later).await,
            *expected,
            "case {i}: {user} denied {roles:?} default denied {default}"
        );
        // Removing with the same guard: refused alike, or allowed.
        let removed = remove(s, "c", id, &emoji, &deny(user, roles, *default), later).await;
        let expected_removal = if *expected == ReactionOutcome::Changed {
            ReactionOutcome::Changed
        } else {
            *expected
        };
        assert_eq!(removed, expected_removal, "case {i} (removal)");
    }
    // The participant check comes before the role check.
    assert_eq!(
        add(s, "c", id, "3", &deny("stranger", &["guest"], true), later).await,
        ReactionOutcome::NotParticipant
    );
    assert_eq!(reactions_of(s, "c", id, later).await, owned(&[("1", 2)]));
    h.finish().await;
}

async fn reactions_message_missing(h: Harness) {
    let s = &*h.store;
    let exp = exp_in(HOUR);
    conversation(s, "c", &[("a", RW)], exp).await;
    let m = message("c", &mid(1), Some("a"), exp_in(10));
    create(s, &m, conditions(), T0).await.unwrap();
    let a = guard("a");
    assert_eq!(
        add(s, "c", &mid(2), "👍", &a, T0).await,
        ReactionOutcome::MessageMissing
    );
    assert_eq!(
        remove(s, "c", &mid(2), "👍", &a, T0).await,
        ReactionOutcome::MessageMissing
    );
    assert_eq!(
        add(s, "c", &m.id, "👍", &a, T0).await,
        ReactionOutcome::Changed
    );
    let later = at_expiry(exp_in(10));
    assert_eq!(
        add(s, "c", &m.id, "❤️", &a, later).await,
        ReactionOutcome::MessageMissing
    );
    assert_eq!(
        add(s, "c", &m.id, "👍", &a, later).await,
        ReactionOutcome::MessageMissing
    );
    assert_eq!(
        remove(s, "c", &m.id, "👍", &a, later).await,
        ReactionOutcome::MessageMissing
    );
    // The participant check comes first.
    assert_eq!(
        add(s, "c", &mid(2), "👍", &guard("stranger"), T0).await,
        ReactionOutcome::NotParticipant
    );
    // A deleted message is missing.
    assert!(s.delete_message("c", &m.id, None).await.unwrap());
    assert_eq!(
        add(s, "c", &m.id, "❤️", &a, T0).await,
        ReactionOutcome::MessageMissing
    );
    assert_eq!(
        remove(s, "c", &m.id, "👍", &a, T0).await,
        ReactionOutcome::MessageMissing
    );
    h.finish().await;
}

async fn reactions_distinct_limit_and_sweep(h: Harness) {
    let s = &*h.store;
    let exp = exp_in(HOUR);
    conversation(s, "c", &[("a", RW), ("b", RW)], exp).await;
    let m = message("c", &mid(1), Some("a"), exp);
    create(s, &m, conditions(), T0).await.unwrap();
    let id = m.id.as_str();
    let (a, b) = (guard("a"), guard("b"));
    let e = |i: usize| format!(":e{i}:");
    for i in 0..50 {
        assert_eq!(
            add(s, "c", id, &e(i), &a, T0 + i as i64).await,
            ReactionOutcome::Changed
        );
    }
    // The 51st distinct emoji is refused; existing ones can still be added.
    assert_eq!(
        add(s, "c", id, &e(50), &a, T0 + 100).await,
        ReactionOutcome::TooManyReactions
    );
    assert_eq!(
        add(s, "c", id, &e(50), &b, T0 + 100).await,
        ReactionOutcome::TooManyReactions
    );
    assert_eq!(
        add(s, "c", id, &e(0), &b, T0 + 101).await,
        ReactionOutcome::Changed
    );
    let r = reactions_of(s, "c", id, T0).await;
    assert_eq!(r.len(), 50);
    assert_eq!(r[0], (e(0), 2));

    // An emoji whose count fell to 0 can be re-added in place (no sweep needed) ...
    assert_eq!(
        remove(s, "c", id, &e(2), &a, T0 + 102).await,
        ReactionOutcome::Changed
    );
    assert_eq!(reactions_of(s, "c", id, T0).await.len(), 49);
    assert_eq!(
        add(s, "c", id, &e(2), &b, T0 + 103).await,
        ReactionOutcome::Changed
    );
    let r = reactions_of(s, "c", id, T0).await;
    assert_eq!((r.len(), r[2].clone()), (50, (e(2), 1)));

    // ... and its slot is freed for a new emoji at the limit (the zero count is swept).
    assert_eq!(
        remove(s, "c", id, &e(1), &a, T0 + 104).await,
        ReactionOutcome::Changed
    );
    assert_eq!(
        add(s, "c", id, ":new:", &a, T0 + 105).await,
        ReactionOutcome::Changed
    );
    let r = reactions_of(s, "c", id, T0).await;
    assert_eq!(r.len(), 50);
    assert_eq!(r[49], (":new:".to_string(), 1));
    assert!(!r.iter().any(|(x, _)| *x == e(1)));
    // Full again: the swept emoji is now a new one.
    assert_eq!(
        add(s, "c", id, &e(1), &a, T0 + 106).await,
        ReactionOutcome::TooManyReactions
    );
    // Several zero counts are swept together, freeing several slots.
    for i in [10, 11, 12] {
        assert_eq!(
            remove(s, "c", id, &e(i), &a, T0 + 107).await,
            ReactionOutcome::Changed
        );
    }
    for (i, x) in [":x1:", ":x2:", ":x3:"].iter().enumerate() {
        assert_eq!(
            add(s, "c", id, x, &b, T0 + 108 + i as i64).await,
            ReactionOutcome::Changed,
            "{x}"
        );
    }
    assert_eq!(
        add(s, "c", id, ":x4:", &b, T0 + 120).await,
        ReactionOutcome::TooManyReactions
    );
    assert_eq!(reactions_of(s, "c", id, T0).await.len(), 50);

    // A smaller limit per call.
    let m2 = message("c", &mid(2), Some("a"), exp);
    create(s, &m2, conditions(), T0).await.unwrap();
    for x in ["1", "2"] {
        let outcome = s
            .add_reaction("c", &m2.id, x, &a, 2, exp, T0)
            .await
            .unwrap();
        assert_eq!(outcome, ReactionOutcome::Changed);
    }
    let outcome = s
        .add_reaction("c", &m2.id, "3", &a, 2, exp, T0)
        .await
        .unwrap();
    assert_eq!(outcome, ReactionOutcome::TooManyReactions);
    h.finish().await;
}

async fn user_reactions_range(h: Harness) {
    let s = &*h.store;
    let exp = exp_in(HOUR);
    conversation(s, "c", &[("u", RW), ("v", RW)], exp).await;
    conversation(s, "d", &[("u", RW)], exp).await;
    for i in 1..=4 {
        create(s, &message("c", &mid(i), None, exp), conditions(), T0)
            .await
            .unwrap();
    }
    create(s, &message("d", &mid(2), None, exp), conditions(), T0)
        .await
        .unwrap();
    let u = guard("u");
    for (i, e) in [(1, "👍"), (1, "❤️"), (2, "👍"), (3, ":x:"), (4, "👍")] {
        assert_eq!(
            add(s, "c", &mid(i), e, &u, T0).await,
            ReactionOutcome::Changed
        );
    }
    assert_eq!(
        add(s, "d", &mid(2), "🎉", &u, T0).await,
        ReactionOutcome::Changed
    );
    assert_eq!(
        add(s, "c", &mid(2), "🎉", &guard("v"), T0).await,
        ReactionOutcome::Changed
    );
    // A reaction that expires early.
    let short = s
        .add_reaction("c", &mid(3), "⏳", &u, 50, exp_in(10), T0)
        .await
        .unwrap();
    assert_eq!(short, ReactionOutcome::Changed);

    let set = |pairs: &[(i64, &str)]| -> HashSet<(String, String)> {
        pairs
            .iter()
            .map(|(i, e)| (mid(*i), e.to_string()))
            .collect()
    };
    let got = s
        .user_reactions("c", "u", &mid(1), &mid(2), T0)
        .await
        .unwrap();
    assert_eq!(got, set(&[(1, "👍"), (1, "❤️"), (2, "👍")]));
    let got = s
        .user_reactions("c", "u", &mid(2), &mid(3), T0)
        .await
        .unwrap();
    assert_eq!(got, set(&[(2, "👍"), (3, ":x:"), (3, "⏳")]));
    let got = s
        .user_reactions("c", "u", &mid(2), &mid(3), at_expiry(exp_in(10)))
        .await
        .unwrap();
    assert_eq!(got, set(&[(2, "👍"), (3, ":x:")]));
    let got = s
        .user_reactions("c", "u", &mid(0), &mid(9), T0)
        .await
        .unwrap();
    assert_eq!(got.len(), 6);
    let got = s
        .user_reactions("c", "u", &mid(4), &mid(4), T0)
        .await
        .unwrap();
    assert_eq!(got, set(&[(4, "👍")]));
    assert!(s
        .user_reactions("c", "u", &mid(5), &mid(9), T0)
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .user_reactions("c", "u", &mid(3), &mid(2), T0)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.user_reactions("c", "v", &mid(1), &mid(4), T0)
            .await
            .unwrap(),
        set(&[(2, "🎉")])
    );
    assert_eq!(
        s.user_reactions("d", "u", &mid(1), &mid(4), T0)
            .await
            .unwrap(),
        set(&[(2, "🎉")])
    );
    assert!(s
        .user_reactions("c", "w", &mid(1), &mid(4), T0)
        .await
        .unwrap()
        .is_empty());
    // Removed reactions are gone.
    assert_eq!(
        remove(s, "c", &mid(1), "❤️", &u, T0).await,
        ReactionOutcome::Changed
    );
    let got = s
        .user_reactions("c", "u", &mid(1), &mid(1), T0)
        .await
        .unwrap();
    assert_eq!(got, set(&[(1, "👍")]));
    h.finish().await;
}

// ---- Concurrency and scale -----------------------------------------------------------------

async fn concurrent_distinct_reactions_respect_the_limit(h: Harness) {
    let s = &*h.store;
    let exp = exp_in(HOUR);
    let users: Vec<String> = (0..60).map(|i| format!("u{i}")).collect();
    let ps: Vec<(String, Access)> = users.iter().map(|u| (u.clone(), RW)).collect();
    s.upsert_conversation("c", &ConversationPatch::default(), &ps, false, T0, exp)
        .await
        .unwrap();
    let m = message("c", &mid(1), None, exp);
    create(s, &m, conditions(), T0).await.unwrap();
    let tasks = users.iter().enumerate().map(|(i, u)| {
        let store = Arc::clone(&h.store);
        let (id, g, emoji) = (m.id.clone(), guard(u), format!(":e{i}:"));
        tokio::spawn(async move {
            store
                .add_reaction("c", &id, &emoji, &g, 50, exp, T0 + i as i64)
                .await
                .expect("add_reaction")
        })
    });
    let outcomes: Vec<ReactionOutcome> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();
    let changed = outcomes
        .iter()
        .filter(|o| **o == ReactionOutcome::Changed)
        .count();
    let refused = outcomes
        .iter()
        .filter(|o| **o == ReactionOutcome::TooManyReactions)
        .count();
    assert_eq!(
        (changed, refused),
        (50, 10),
        "{outcomes:?}{}",
        h.isolation_hint()
    );
    let r = reactions_of(s, "c", &m.id, T0).await;
    assert_eq!(r.len(), 50);
    assert!(r.iter().all(|(_, c)| *c == 1));
    if let Some(d) = &h.dynamo {
        let item = raw_message(d, "c", &m.id).await;
        match item.get("rxn") {
            Some(aws_sdk_dynamodb::types::AttributeValue::M(rxn)) => assert_eq!(rxn.len(), 50),
            other => panic!("rxn: {other:?}"),
        }
    }
    h.finish().await;
}

async fn concurrent_duplicate_reactions_count_once(h: Harness) {
    let s = &*h.store;
    let exp = exp_in(HOUR);
    conversation(s, "c", &[("u", RW)], exp).await;
    let m = message("c", &mid(1), None, exp);
    create(s, &m, conditions(), T0).await.unwrap();
    let tasks = (0..50).map(|i| {
        let store = Arc::clone(&h.store);
        let id = m.id.clone();
        tokio::spawn(async move {
            store
                .add_reaction("c", &id, "👍", &guard("u"), 50, exp, T0 + i)
                .await
                .expect("add_reaction")
        })
    });
    let outcomes: Vec<ReactionOutcome> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();
    let changed = outcomes
        .iter()
        .filter(|o| **o == ReactionOutcome::Changed)
        .count();
    let unchanged = outcomes
        .iter()
        .filter(|o| **o == ReactionOutcome::Unchanged)
        .count();
    assert_eq!(
        (changed, unchanged),
        (1, 49),
        "{outcomes:?}{}",
        h.isolation_hint()
    );
    assert_eq!(reactions_of(s, "c", &m.id, T0).await, owned(&[("👍", 1)]));
    h.finish().await;
}

async fn ten_thousand_reactions(h: Harness) {
    const USERS: usize = 10_000;
    const EMOJI: [&str; 10] = [
        "👍", "❤️", "😂", "🎉", "😮", "😢", "🙏", "🔥", ":shipit:", ":e12:",
    ];
    h.require_atomic_transactions(
        "its TransactWriteItems deep-copies the whole table (~16 µs an item), so 10,000 \
         reactions would take about 40 minutes",
    );
    let s = &*h.store;
    let exp = exp_in(HOUR);
    let started = Instant::now();
    let users: Vec<String> = (0..USERS).map(|i| format!("user-{i:05}")).collect();
    // The reactors must be participants: 50 per upsert (the API's per-request limit).
    futures::stream::iter(users.chunks(50))
        .map(|chunk| {
            let ps: Vec<(String, Access)> = chunk.iter().map(|u| (u.clone(), RW)).collect();
            async move {
                s.upsert_conversation("big", &ConversationPatch::default(), &ps, false, T0, exp)
                    .await
                    .expect("upsert conversation")
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    let m = message("big", &mid(1), None, exp);
    create(s, &m, conditions(), T0).await.unwrap();
    let setup = started.elapsed();
    let reacting = Instant::now();
    let outcomes: Vec<ReactionOutcome> = futures::stream::iter(users.iter().enumerate())
        .map(|(i, u)| {
            let id = m.id.clone();
            async move {
                s.add_reaction(
                    "big",
                    &id,
                    EMOJI[i % EMOJI.len()],
                    &guard(u),
                    50,
                    exp,
                    T0 + i as i64,
                )
                .await
                .expect("add_reaction")
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let reacted = reacting.elapsed();
    assert!(outcomes.iter().all(|o| *o == ReactionOutcome::Changed));
    let r = reactions_of(s, "big", &m.id, T0).await;
    assert_eq!(r.len(), EMOJI.len());
    assert!(
        r.iter().all(|(_, c)| *c == (USERS / EMOJI.len()) as u64),
        "{r:?}"
    );
    let mut line = format!(
        "[{}] {USERS} reactions: setup {setup:.1?}, reactions {reacted:.1?}",
        h.kind()
    );
    if let Some(d) = &h.dynamo {
        let item = raw_message(d, "big", &m.id).await;
        let size = item_size(&item);
        line.push_str(&format!(", message item {size} bytes"));
        assert!(size < 10 * 1024, "the message item is {size} bytes");
    }
    println!("{line}");
    // The user's own reactions are still found among 10,000.
    let got = s
        .user_reactions("big", "user-04321", &m.id, &m.id, T0)
        .await
        .unwrap();
    assert_eq!(
        got,
        HashSet::from([(m.id.clone(), EMOJI[4321 % EMOJI.len()].to_string())])
    );
    h.finish().await;
}

/// A reaction on the first message of "c" with a limit of 2 distinct emoji.
async fn add_max2(s: &dyn Store, emoji: &str, user: &str) -> ReactionOutcome {
    s.add_reaction("c", &mid(1), emoji, &guard(user), 2, exp_in(HOUR), T0)
        .await
        .expect("add_reaction")
}

async fn raw_message(
    d: &Dynamo,
    cid: &str,
    id: &str,
) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    use aws_sdk_dynamodb::types::AttributeValue::S;
    d.client
        .get_item()
        .table_name(&d.table)
        .key("pk", S(format!("CONV#{cid}")))
        .key("sk", S(format!("MSG#{id}")))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem")
        .item
        .expect("the message item")
}

// ---- Request counts (DynamoDB only) --------------------------------------------------------

async fn request_counts(h: Harness) {
    let s = &*h.store;
    let d = h.dynamo.as_ref().expect("a DynamoDB harness");
    let counter = &d.counter;
    let exp = exp_in(HOUR);
    let mut report = Vec::new();
    let mut check = |what: &str, expected: &[&str]| {
        let attempts = counter.attempts();
        let got = counter.take();
        report.push(format!("{what}: {}", got.join(" + ")));
        assert_eq!(got, expected, "{what}");
        assert_eq!(attempts, got.len(), "{what}: the SDK retried");
    };

    s.upsert_user("w", &UserPatch::default(), T0, exp)
        .await
        .unwrap();
    check("upsert_user", &["UpdateItem"]);
    conversation(s, "c", &[("w", RW), ("v", RW)], exp).await;
    check("upsert_conversation", &["TransactWriteItems"]);
    s.put_participant(
        &ParticipantRecord {
            conversation_id: "c".into(),
            user_id: "x".into(),
            access: READ,
            joined_at: T0,
            read_until: None,
            marked_unread: false,
            expires_at: exp,
        },
        T0,
    )
    .await
    .unwrap();
    check("put_participant", &["TransactWriteItems"]);
    s.get_conversation("c", T0).await.unwrap().unwrap();
    check("get_conversation", &["Query"]);

    let msgs: Vec<MessageRecord> = (1..=40)
        .map(|i| message("c", &mid(i), Some("w"), exp))
        .collect();
    s.import_messages(&msgs, T0).await.unwrap();
    check("import_messages (40)", &["TransactWriteItems"]);

    let m = message("c", &mid(41), Some("w"), exp);
    let all = CreateConditions {
        writer: Some("w".into()),
        conversation_exists: true,
        referenced_message_id: Some(mid(1)),
        idempotency_key: Some(idem(Some("w"), "key")),
    };
    assert_eq!(
        s.create_message(&m, &all, T0).await.unwrap(),
        CreateOutcome::Created
    );
    check("create_message (all conditions)", &["TransactWriteItems"]);
    let dup = message("c", &mid(42), Some("w"), exp);
    assert!(matches!(
        s.create_message(&dup, &all, T0).await.unwrap(),
        CreateOutcome::Duplicate { .. }
    ));
    check("create_message (duplicate)", &["TransactWriteItems"]);

    let keys = vec![
        ItemKey::User("w".into()),
        ItemKey::Conversation("c".into()),
        ItemKey::Participant {
            conversation_id: "c".into(),
            user_id: "w".into(),
        },
        ItemKey::Message {
            conversation_id: "c".into(),
            message_id: m.id.clone(),
        },
        ItemKey::Message {
            conversation_id: "c".into(),
            message_id: mid(1),
        },
    ];
    assert_eq!(s.get_items(&keys, T0).await.unwrap().messages.len(), 2);
    check("get_items (5 keys)", &["BatchGetItem"]);

    let denying = ReactionGuard {
        denied_roles: vec!["guest".into()],
        ..guard("w")
    };
    assert_eq!(
        add(s, "c", &m.id, "👍", &denying, T0).await,
        ReactionOutcome::Changed
    );
    check("add_reaction (with role check)", &["TransactWriteItems"]);
    assert_eq!(
        add(s, "c", &m.id, "👍", &guard("w"), T0).await,
        ReactionOutcome::Unchanged
    );
    check("add_reaction (already there)", &["TransactWriteItems"]);
    assert_eq!(
        remove(s, "c", &m.id, "👍", &guard("w"), T0).await,
        ReactionOutcome::Changed
    );
    check("remove_reaction", &["TransactWriteItems"]);
    assert_eq!(
        remove(s, "c", &m.id, "👍", &guard("w"), T0).await,
        ReactionOutcome::Unchanged
    );
    check("remove_reaction (not there)", &["TransactWriteItems"]);
    assert_eq!(
        add(s, "c", &mid(99), "👍", &guard("w"), T0).await,
        ReactionOutcome::MessageMissing
    );
    check("add_reaction (message missing)", &["TransactWriteItems"]);
    // At the limit: refused in one request; with a zero count to sweep, three.
    assert_eq!(add_max2(s, "a", "w").await, ReactionOutcome::Changed);
    assert_eq!(add_max2(s, "b", "w").await, ReactionOutcome::Changed);
    counter.take();
    assert_eq!(
        add_max2(s, "c", "w").await,
        ReactionOutcome::TooManyReactions
    );
    check("add_reaction (limit reached)", &["TransactWriteItems"]);
    assert_eq!(
        remove(s, "c", &mid(1), "a", &guard("w"), T0).await,
        ReactionOutcome::Changed
    );
    counter.take();
    assert_eq!(add_max2(s, "c", "v").await, ReactionOutcome::Changed);
    check(
        "add_reaction (limit reached, a zero count swept)",
        &["TransactWriteItems", "UpdateItem", "TransactWriteItems"],
    );

    let edit = MessageEdit {
        content: Some(text("new")),
        custom: Patch::Value(BTreeMap::from([("k".to_string(), None)])),
        edited_at: T0 + 1,
        max_custom_keys: 50,
    };
    assert!(s
        .edit_message("c", &m.id, &edit, Some("w"), T0)
        .await
        .unwrap()
        .is_some());
    check("edit_message", &["UpdateItem"]);
    assert!(s
        .edit_message("c", &m.id, &edit, Some("v"), T0)
        .await
        .unwrap()
        .is_none());
    check("edit_message (not the sender)", &["UpdateItem"]);

    let p = s.list_messages("c", None, 30, T0).await.unwrap();
    assert_eq!((p.messages.len(), p.loaded_all), (30, false));
    check("list_messages (30)", &["Query"]);
    let p = s.list_messages("c", Some(&mid(20)), 30, T0).await.unwrap();
    assert_eq!((p.messages.len(), p.loaded_all), (19, true));
    check("list_messages (30, before)", &["Query"]);

    assert_eq!(
        s.user_reactions("c", "w", &mid(1), &mid(41), T0)
            .await
            .unwrap()
            .len(),
        1
    );
    check("user_reactions", &["Query"]);

    assert!(s.delete_message("c", &m.id, Some("w")).await.unwrap());
    check("delete_message", &["DeleteItem"]);
    s.delete_participant("c", "x").await.unwrap();
    check("delete_participant", &["DeleteItem"]);

    println!("request counts:\n  {}", report.join("\n  "));
    h.finish().await;
}

/// An edit may not leave more than `max_custom_keys` keys in `custom` (refused, unchanged),
/// unless it removes at least as many keys as it adds (a lowered limit never blocks cleaning up).
async fn custom_key_limit_of_edits(h: Harness) {
    let s = &*h.store;
    let exp = exp_in(HOUR);
    conversation(s, "c", &[("s", RW)], exp).await;
    let mut m = message("c", &mid(1), Some("s"), exp);
    m.custom = custom(&[("a", "1"), ("b", "2"), ("c", "3")]);
    create(s, &m, conditions(), T0).await.unwrap();
    let edit = |changes: &[(&str, Option<&str>)], max: usize| MessageEdit {
        content: None,
        custom: Patch::Value(
            changes
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
        ),
        edited_at: T0 + 1,
        max_custom_keys: max,
    };
    // 3 keys, a limit of 4: one new key fits, two do not; changing existing keys always fits.
    let two_new = edit(&[("d", Some("4")), ("e", Some("5"))], 4);
    match s.edit_message("c", &m.id, &two_new, None, T0 + 1).await {
        Err(StoreError::ConditionFailed(Failed::TooManyCustomKeys)) => {}
        other => panic!("expected TooManyCustomKeys, got {other:?}"),
    }
    assert_eq!(
        get_message(s, "c", &m.id, T0 + 1).await.unwrap().custom,
        m.custom
    );
    let replace_and_add = edit(&[("a", None), ("d", Some("4")), ("e", Some("5"))], 4);
    let edited = s
        .edit_message("c", &m.id, &replace_and_add, Some("s"), T0 + 1)
        .await
        .unwrap()
        .expect("edited");
    assert_eq!(
        edited.custom,
        custom(&[("b", "2"), ("c", "3"), ("d", "4"), ("e", "5")])
    );
    let update = edit(&[("b", Some("two")), ("c", Some("three"))], 4);
    let edited = s
        .edit_message("c", &m.id, &update, None, T0 + 1)
        .await
        .unwrap()
        .expect("edited");
    assert_eq!(edited.custom.len(), 4);
    // Over a lowered limit, an edit that does not grow the map still goes through.
    let swap = edit(&[("b", None), ("f", Some("6"))], 2);
    let edited = s
        .edit_message("c", &m.id, &swap, None, T0 + 1)
        .await
        .unwrap()
        .expect("edited");
    assert_eq!(edited.custom.len(), 4);
    // A missing message is still `None`, whatever the patch.
    assert!(s
        .edit_message("c", &mid(9), &two_new, None, T0 + 1)
        .await
        .unwrap()
        .is_none());
    // Not the sender: `None`, also with a patch that adds keys.
    let add_one = edit(&[("g", Some("7"))], 50);
    assert!(s
        .edit_message("c", &m.id, &add_one, Some("t"), T0 + 1)
        .await
        .unwrap()
        .is_none());
    h.finish().await;
}

/// 50 edits at once, each adding two new keys to one message with a 50-key limit: exactly 25
/// are applied and 25 refused, and the stored map holds 50 keys (not 100).
async fn concurrent_edits_keep_the_custom_key_limit(h: Harness) {
    h.require_atomic_transactions("50 conditional updates of one item race");
    let s = &*h.store;
    let exp = exp_in(HOUR);
    conversation(s, "c", &[("s", RW)], exp).await;
    let mut m = message("c", &mid(1), Some("s"), exp);
    m.custom = BTreeMap::new();
    create(s, &m, conditions(), T0).await.unwrap();
    let tasks = (0..50).map(|i| {
        let store = Arc::clone(&h.store);
        let id = m.id.clone();
        tokio::spawn(async move {
            let edit = MessageEdit {
                content: None,
                custom: Patch::Value(BTreeMap::from([
                    (format!("a{i}"), Some("x".to_string())),
                    (format!("b{i}"), Some("y".to_string())),
                ])),
                edited_at: T0 + 1,
                max_custom_keys: 50,
            };
            store.edit_message("c", &id, &edit, Some("s"), T0 + 1).await
        })
    });
    let mut applied = 0;
    let mut refused = 0;
    for outcome in futures::future::join_all(tasks).await {
        match outcome.expect("task") {
            Ok(Some(_)) => applied += 1,
            Err(StoreError::ConditionFailed(Failed::TooManyCustomKeys)) => refused += 1,
            other => panic!("unexpected outcome {other:?}{}", h.isolation_hint()),
        }
    }
    let stored = get_message(s, "c", &m.id, T0 + 1).await.unwrap().custom;
    assert_eq!(
        (applied, refused, stored.len()),
        (25, 25, 50),
        "{}",
        h.isolation_hint()
    );
    h.finish().await;
}

/// Of 20 users creating one new conversation at once (`only_if_new`), one creates it and the
/// others fail with `ConversationExists`; exactly one participant is stored.
async fn only_one_creates_a_new_conversation(h: Harness) {
    h.require_atomic_transactions("20 conditional creates of one item race");
    let exp = exp_in(HOUR);
    let tasks = (0..20).map(|i| {
        let store = Arc::clone(&h.store);
        tokio::spawn(async move {
            let me = vec![(format!("u{i}"), RW)];
            store
                .upsert_conversation("new", &ConversationPatch::default(), &me, true, T0, exp)
                .await
        })
    });
    let mut created = 0;
    let mut exists = 0;
    for outcome in futures::future::join_all(tasks).await {
        match outcome.expect("task") {
            Ok(()) => created += 1,
            Err(StoreError::ConditionFailed(Failed::ConversationExists)) => exists += 1,
            Err(e) => panic!("unexpected error {e}{}", h.isolation_hint()),
        }
    }
    assert_eq!((created, exists), (1, 19), "{}", h.isolation_hint());
    let (_, participants) = h
        .store
        .get_conversation("new", T0)
        .await
        .unwrap()
        .expect("created");
    assert_eq!(participants.len(), 1, "{participants:?}");
    // An existing, live conversation refuses `only_if_new`; an expired one may be created anew.
    let again = h
        .store
        .upsert_conversation("new", &ConversationPatch::default(), &[], true, T0 + 1, exp)
        .await;
    assert!(
        matches!(
            again,
            Err(StoreError::ConditionFailed(Failed::ConversationExists))
        ),
        "{again:?}"
    );
    let later = at_expiry(exp);
    let me = vec![("late".to_string(), RW)];
    h.store
        .upsert_conversation(
            "new",
            &ConversationPatch::default(),
            &me,
            true,
            later,
            exp_in(3 * HOUR),
        )
        .await
        .expect("an expired conversation is created anew");
    let (conversation, participants) = h
        .store
        .get_conversation("new", later)
        .await
        .unwrap()
        .expect("created anew");
    assert_eq!(conversation.created_at, later);
    assert_eq!(
        participants
            .iter()
            .map(|p| p.user_id.as_str())
            .collect::<Vec<_>>(),
        vec!["late"]
    );
    h.finish().await;
}

// ---- Read state and conversation lists ------------------------------------------------------

/// A message of `cid` created at `T0 + i` ms, with the id of that time.
fn message_at(cid: &str, i: i64, sender: Option<&str>, expires_at: i64) -> MessageRecord {
    MessageRecord {
        created_at: T0 + i,
        ..message(cid, &mid(i), sender, expires_at)
    }
}

fn activity_at(i: i64, expires_at: i64) -> Activity {
    Activity {
        message_id: mid(i),
        created_at: T0 + i,
        expires_at,
    }
}

async fn participant_of(
    s: &dyn Store,
    cid: &str,
    uid: &str,
    now: i64,
) -> Option<ParticipantRecord> {
    let (_, ps) = s.get_conversation(cid, now).await.unwrap()?;
    ps.into_iter().find(|p| p.user_id == uid)
}

async fn read_state_is_kept_per_participant(h: Harness) {
    let s = &*h.store;
    let exp = exp_in(HOUR);
    conversation(s, "c", &[("a", RW), ("b", READ)], exp).await;
    let a = participant_of(s, "c", "a", T0).await.unwrap();
    assert_eq!(
        (a.joined_at, a.read_until, a.marked_unread),
        (T0, None, false)
    );

    assert!(s.mark_read("c", "a", T0 + 50, T0 + 50).await.unwrap());
    let a = participant_of(s, "c", "a", T0 + 50).await.unwrap();
    assert_eq!((a.read_until, a.marked_unread), (Some(T0 + 50), false));
    assert!(s.mark_unread("c", "a", T0 + 60).await.unwrap());
    let a = participant_of(s, "c", "a", T0 + 60).await.unwrap();
    assert_eq!((a.read_until, a.marked_unread), (Some(T0 + 50), true));
    // An earlier read (a clock behind) keeps the later readUntil but ends the mark.
    assert!(s.mark_read("c", "a", T0 + 40, T0 + 70).await.unwrap());
    let a = participant_of(s, "c", "a", T0 + 70).await.unwrap();
    assert_eq!((a.read_until, a.marked_unread), (Some(T0 + 50), false));

    // Strangers, missing conversations: nothing to mark, nothing written.
    assert!(!s.mark_read("c", "eve", T0, T0).await.unwrap());
    assert!(!s.mark_unread("c", "eve", T0).await.unwrap());
    assert!(!s.mark_read("nope", "a", T0, T0).await.unwrap());
    assert!(participant_of(s, "c", "eve", T0).await.is_none());

    // A change of access, or the conversation written again with them, keeps the joining
    // and the read state.
    s.put_participant(
        &ParticipantRecord::joining("c", "a", READ, T0 + 100, exp),
        T0 + 100,
    )
    .await
    .unwrap();
    s.upsert_conversation(
        "c",
        &ConversationPatch::default(),
        &[("a".into(), RW)],
        false,
        T0 + 200,
        exp,
    )
    .await
    .unwrap();
    let a = participant_of(s, "c", "a", T0 + 200).await.unwrap();
    assert_eq!(
        (a.access, a.joined_at, a.read_until),
        (RW, T0, Some(T0 + 50))
    );
    // Leaving and joining again starts over.
    s.delete_participant("c", "a").await.unwrap();
    s.put_participant(
        &ParticipantRecord::joining("c", "a", RW, T0 + 300, exp),
        T0 + 300,
    )
    .await
    .unwrap();
    let a = participant_of(s, "c", "a", T0 + 300).await.unwrap();
    assert_eq!(
        (a.joined_at, a.read_until, a.marked_unread),
        (T0 + 300, None, false)
    );
    // An expired participant marks nothing.
    assert!(!s.mark_read("c", "b", T0, at_expiry(exp)).await.unwrap());
    h.finish().await;
}

async fn unread_counts_others_live_messages(h: Harness) {
    let s = &*h.store;
    let exp = exp_in(HOUR);
    let short = exp_in(10);
    conversation(s, "c", &[("a", RW), ("b", RW)], exp).await;
    // b sends 1..=5, a sends 6, the system 7, b 8 (expiring early), b 9.
    let mut msgs: Vec<MessageRecord> = (1..=5)
        .map(|i| message_at("c", i, Some("b"), exp))
        .collect();
    msgs.push(message_at("c", 6, Some("a"), exp));
    msgs.push(message_at("c", 7, None, exp));
    msgs.push(message_at("c", 8, Some("b"), short));
    msgs.push(message_at("c", 9, Some("b"), exp));
    s.import_messages(&msgs, T0).await.unwrap();
    conversation(s, "other", &[("a", RW)], exp).await;
    s.import_messages(&[message_at("other", 1, Some("b"), exp)], T0)
        .await
        .unwrap();
    let count = |user: &'static str, after: Option<i64>, cap: usize, now: i64| async move {
        s.count_unread("c", user, after, cap, now).await.unwrap()
    };
    assert_eq!(
        count("a", None, 255, T0).await,
        8,
        "b's six, the system's one, not a's"
    );
    assert_eq!(count("b", None, 255, T0).await, 2, "a's and the system's");
    assert_eq!(count("a", Some(T0 + 5), 255, T0).await, 3, "7, 8 and 9");
    assert_eq!(count("a", Some(T0 + 9), 255, T0).await, 0);
    assert_eq!(
        count("a", Some(T0 + 4), 255, at_expiry(short)).await,
        3,
        "5, 7, 9: 8 expired"
    );
    assert_eq!(count("a", None, 3, T0).await, 3, "the cap");
    assert_eq!(count("a", None, 0, T0).await, 0);
    assert_eq!(s.count_unread("none", "a", None, 255, T0).await.unwrap(), 0);
    h.finish().await;
}

async fn conversation_lists_follow_joining_and_activity(h: Harness) {
    let s = &*h.store;
    let exp = exp_in(HOUR);
    let short = exp_in(10);
    for (i, cid) in ["c1", "c2", "c3"].into_iter().enumerate() {
        let at = T0 + 10 * i as i64;
        s.upsert_conversation(
            cid,
            &ConversationPatch::default(),
            &[("u".into(), RW), ("v".into(), RW)],
            false,
            at,
            exp,
        )
        .await
        .unwrap();
    }
    let order = |user: &'static str, before: Option<String>, limit: usize, now: i64| async move {
        let page = s
            .list_conversations(user, before.as_deref(), limit, now)
            .await
            .unwrap();
        let ids: Vec<String> = page
            .conversations
            .iter()
            .map(|c| c.conversation_id.clone())
            .collect();
        (ids, page.loaded_all)
    };
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        order("u", None, 10, T0 + 50).await,
        (names(&["c3", "c2", "c1"]), true)
    );
    assert_eq!(order("nobody", None, 10, T0).await, (Vec::new(), true));

    // A message moves c1 to the front, for each user it was recorded for.
    s.record_activity("c1", &["u".into()], &activity_at(100, exp))
        .await
        .unwrap();
    assert_eq!(
        order("u", None, 10, T0 + 100).await,
        (names(&["c1", "c3", "c2"]), true)
    );
    assert_eq!(
        order("v", None, 10, T0 + 100).await,
        (names(&["c3", "c2", "c1"]), true)
    );
    // An older message recorded late changes nothing.
    s.record_activity("c1", &["u".into()], &activity_at(60, exp))
        .await
        .unwrap();
    assert_eq!(
        s.conversation_position("u", "c1", T0 + 100).await.unwrap(),
        Some(natter::store::schema::activity_key(T0 + 100, "c1"))
    );

    // Pages, each after the last conversation of the one before.
    assert_eq!(
        order("u", None, 2, T0 + 100).await,
        (names(&["c1", "c3"]), false)
    );
    let after_c3 = s.conversation_position("u", "c3", T0 + 100).await.unwrap();
    assert_eq!(
        order("u", after_c3, 2, T0 + 100).await,
        (names(&["c2"]), true)
    );
    assert_eq!(
        s.conversation_position("nobody", "c3", T0).await.unwrap(),
        None
    );

    // The newest message of c2 is deleted: its place goes back to the message before it, then
    // to the joining when none is left; a retraction that names another message does nothing.
    s.record_activity("c2", &["u".into()], &activity_at(200, exp))
        .await
        .unwrap();
    assert_eq!(order("u", None, 1, T0 + 200).await.0, names(&["c2"]));
    s.retract_activity("c2", &["u".into()], &mid(999), None)
        .await
        .unwrap();
    assert_eq!(order("u", None, 1, T0 + 200).await.0, names(&["c2"]));
    s.retract_activity("c2", &["u".into()], &mid(200), Some(&activity_at(90, exp)))
        .await
        .unwrap();
    assert_eq!(
        order("u", None, 10, T0 + 200).await.0,
        names(&["c1", "c2", "c3"])
    );
    s.retract_activity("c2", &["u".into()], &mid(90), None)
        .await
        .unwrap();
    assert_eq!(
        order("u", None, 10, T0 + 200).await.0,
        names(&["c1", "c3", "c2"])
    );

    // When the newest message expires, the conversation falls back to the joining.
    s.record_activity("c2", &["u".into()], &activity_at(300, short))
        .await
        .unwrap();
    assert_eq!(
        order("u", None, 10, T0 + 300).await.0,
        names(&["c2", "c1", "c3"])
    );
    assert_eq!(
        order("u", None, 10, at_expiry(short)).await.0,
        names(&["c1", "c3", "c2"])
    );

    // Leaving takes the conversation out of the list, its activity too; joining again puts
    // it at the new joining.
    let later = at_expiry(short);
    s.delete_participant("c1", "u").await.unwrap();
    assert_eq!(order("u", None, 10, later).await.0, names(&["c3", "c2"]));
    assert_eq!(
        s.conversation_position("u", "c1", later).await.unwrap(),
        None
    );
    s.put_participant(
        &ParticipantRecord::joining("c1", "u", READ, later + 1, exp),
        later + 1,
    )
    .await
    .unwrap();
    assert_eq!(
        order("u", None, 10, later + 1).await.0,
        names(&["c1", "c3", "c2"])
    );
    h.finish().await;
}

async fn conversation_lists_page_through_many(h: Harness) {
    let s = &*h.store;
    let exp = exp_in(HOUR);
    // 45 conversations joined one millisecond apart, half of them with a message later on.
    for i in 0..45_i64 {
        let cid = format!("c{i:02}");
        s.upsert_conversation(
            &cid,
            &ConversationPatch::default(),
            &[("u".into(), RW)],
            false,
            T0 + i,
            exp,
        )
        .await
        .unwrap();
        if i % 2 == 0 {
            s.record_activity(&cid, &["u".into()], &activity_at(1000 + i, exp))
                .await
                .unwrap();
        }
    }
    let mut expected: Vec<(i64, String)> = (0..45_i64)
        .map(|i| (if i % 2 == 0 { 1000 + i } else { i }, format!("c{i:02}")))
        .collect();
    expected.sort_by(|a, b| b.cmp(a));
    let expected: Vec<String> = expected.into_iter().map(|(_, c)| c).collect();
    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let page = s
            .list_conversations("u", before.as_deref(), 7, T0 + 2000)
            .await
            .unwrap();
        assert!(page.conversations.len() <= 7);
        seen.extend(page.conversations.iter().map(|c| c.conversation_id.clone()));
        if page.loaded_all {
            break;
        }
        before = page.conversations.last().map(|c| c.position.clone());
        assert!(seen.len() <= 45, "paging does not end");
    }
    assert_eq!(seen, expected);
    h.finish().await;
}
