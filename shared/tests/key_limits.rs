//! Every key fits DynamoDB's limits for every valid id: this writes each kind of item with the
//! widest ids (128 characters of four bytes each: 512 bytes, `config::input::ID_MAX_BYTES`) to a
//! DynamoDB table (moto at `NATTER_TEST_DYNAMODB_ENDPOINT`; never skipped), then reads the whole
//! table back and measures every key: partition keys at most 2048 bytes, sort keys at most 1024
//! (the same for the index's keys). moto refuses an oversized key on a write as DynamoDB does;
//! the measurement says which key and by how much, and holds on any server.

mod common;

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use common::*;
use natter::config::input::{CUSTOM_EMOJI_MAX_CHARS, ID_MAX_BYTES};
use natter::ids::validate_id;
use natter::model::{Access, ConversationPatch, MessageEdit, Patch, UserPatch};
use natter::realtime::dynamo::DynamoRealtimeStore;
use natter::realtime::{
    ConnectionReader, ConnectionRecord, ConnectionWriter, SubscriptionRecord, SubscriptionWriter,
    WindowExtender,
};
use natter::store::dynamo::DynamoStore;
use natter::store::inbox::{InboxRecord, InboxWriter};
use natter::store::schema::{GSI1_PK, GSI1_SK, PK, SK};
use natter::store::{
    ConversationWriter, CreateConditions, CreateOutcome, IdempotencyKey, ItemKey, ItemReader,
    MessageCreator, MessageEditor, ReactionAdder, ReactionReader, UserWriter,
};

/// DynamoDB's limits on a key attribute, in bytes of UTF-8.
const PARTITION_KEY_MAX_BYTES: usize = 2048;
const SORT_KEY_MAX_BYTES: usize = 1024;

/// The widest valid id, made distinct by its last character.
fn widest(last: char) -> String {
    let mut id = "😀".repeat(127);
    id.push(last);
    assert_eq!(id.chars().count(), 128);
    assert_eq!(id.len(), ID_MAX_BYTES, "{last:?} must take four bytes");
    validate_id("id", &id, 128).expect("the widest id is valid");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_key_fits_for_the_widest_ids() {
    let h = Harness::dynamodb("every_key_fits").await;
    let d = h.dynamo.as_ref().expect("a DynamoDB harness");
    let store = DynamoStore::new(d.client.clone(), d.table.clone());
    let realtime = DynamoRealtimeStore::new(d.client.clone(), d.table.clone());
    let (user, other, cid) = (widest('😃'), widest('😎'), widest('🙂'));
    let (key, sub_id, named_client) = (widest('🙃'), widest('🤖'), widest('👾'));
    // Connection ids are API Gateway's (16 characters of base64), never chosen by a client: the
    // subscription's sort key `{connectionId}#{subscriptionId}` relies on that. A client id that
    // an inbox message names is any valid id, looked up as `CONN#{id}`.
    let client_id = "Xyz0123456789A=".to_string();
    let exp = exp_in(HOUR);

    // A user, a conversation and its participants.
    let patch = UserPatch {
        name: Patch::Value("wide".into()),
        custom: Patch::Value(custom(&[("k", "v")])),
        ..UserPatch::default()
    };
    store
        .upsert_user(&user, &patch, T0, exp)
        .await
        .expect("user");
    let participants = vec![
        (user.clone(), Access::ReadWrite),
        (other.clone(), Access::Read),
    ];
    store
        .upsert_conversation(
            &cid,
            &ConversationPatch::default(),
            &participants,
            true,
            T0,
            exp,
        )
        .await
        .expect("conversation");

    // A message with the widest idempotency key (and the same key again: a duplicate).
    let m = message(&cid, &mid(1), Some(&user), exp);
    let conditions = CreateConditions {
        writer: Some(user.clone()),
        idempotency_key: Some(IdempotencyKey {
            sender: Some(user.clone()),
            key: key.clone(),
        }),
        ..CreateConditions::default()
    };
    assert_eq!(
        store
            .create_message(&m, &conditions, T0)
            .await
            .expect("message"),
        CreateOutcome::Created
    );
    let again = message(&cid, &mid(2), Some(&user), exp);
    assert_eq!(
        store
            .create_message(&again, &conditions, T0)
            .await
            .expect("duplicate"),
        CreateOutcome::Duplicate {
            message_id: m.id.clone()
        }
    );
    // A reply, an edit, reactions with the longest custom emoji and a Unicode one, and the
    // readers that build keys from ids.
    let reply = message(&cid, &mid(3), Some(&user), exp);
    let reply_conditions = CreateConditions {
        writer: Some(user.clone()),
        referenced_message_id: Some(m.id.clone()),
        ..CreateConditions::default()
    };
    store
        .create_message(&reply, &reply_conditions, T0)
        .await
        .expect("reply");
    let edit = MessageEdit {
        content: None,
        custom: Patch::Value(BTreeMap::from([("j".to_string(), Some("w".to_string()))])),
        edited_at: T0 + 1,
        max_custom_keys: 50,
    };
    store
        .edit_message(&cid, &m.id, &edit, Some(&user), T0 + 1)
        .await
        .expect("edit")
        .expect("edited");
    let custom_emoji = format!(":{}:", "e".repeat(CUSTOM_EMOJI_MAX_CHARS - 2));
    for emoji in [custom_emoji.as_str(), "👍"] {
        store
            .add_reaction(&cid, &m.id, emoji, &guard(&user), 50, exp, T0 + 2)
            .await
            .expect("reaction");
    }
    let reacted = store
        .user_reactions(&cid, &user, &m.id, &reply.id, T0 + 2)
        .await
        .expect("user reactions");
    assert_eq!(reacted.len(), 2);
    let keys = [
        ItemKey::User(user.clone()),
        ItemKey::Conversation(cid.clone()),
        ItemKey::Participant {
            conversation_id: cid.clone(),
            user_id: other.clone(),
        },
        ItemKey::Message {
            conversation_id: cid.clone(),
            message_id: widest('🎯'),
        },
    ];
    let items = store.get_items(&keys, T0 + 2).await.expect("get items");
    assert_eq!((items.users.len(), items.participants.len()), (1, 1));

    // An inbox message to the widest user, a connection of the widest user, the widest client
    // id looked up, and a subscription with the widest id to the widest conversation.
    let inbox = InboxRecord {
        user_id: user.clone(),
        message_id: natter::ids::new_inbox_id(T0),
        sender_id: other.clone(),
        message: natter::json::RawJson::from_text("{\"n\":12345678901234567890123}").expect("JSON"),
        created_at: T0,
        expires_at: exp,
    };
    store.put_inbox_messages(&[inbox]).await.expect("inbox");
    realtime
        .put_connection(&ConnectionRecord::new(&client_id, &user, T0))
        .await
        .expect("connection");
    let named = realtime
        .get_connection(&named_client, T0)
        .await
        .expect("a client id lookup");
    assert!(named.is_none());
    let sub = SubscriptionRecord {
        conversation_id: cid.clone(),
        connection_id: client_id.clone(),
        subscription_id: sub_id.clone(),
        user_id: user.clone(),
        window_start: Some(m.id.clone()),
        expires_at: 0,
    };
    realtime
        .put_subscription(&sub, T0)
        .await
        .expect("subscription");
    realtime
        .extend_window(&cid, &client_id, &sub_id, None, T0)
        .await
        .expect("window");

    // Every key of every item, measured.
    let mut scanned = 0;
    let mut problems = Vec::new();
    let mut start = None;
    loop {
        let page = d
            .client
            .scan()
            .table_name(&d.table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan");
        for item in page.items() {
            scanned += 1;
            for (name, max) in [
                (PK, PARTITION_KEY_MAX_BYTES),
                (SK, SORT_KEY_MAX_BYTES),
                (GSI1_PK, PARTITION_KEY_MAX_BYTES),
                (GSI1_SK, SORT_KEY_MAX_BYTES),
            ] {
                if let Some(AttributeValue::S(value)) = item.get(name) {
                    if value.len() > max {
                        problems.push(format!(
                            "{name} of {} bytes (the most is {max}): {value}",
                            value.len()
                        ));
                    }
                }
            }
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            break;
        }
    }
    // user, conversation, 2 participants, 2 messages, 1 idempotency item, 2 reactions,
    // 1 inbox message, 1 connection, 1 subscription.
    assert_eq!(scanned, 12, "items written");
    assert!(
        problems.is_empty(),
        "keys over DynamoDB's limits:\n{}",
        problems.join("\n")
    );
    h.finish().await;
}
