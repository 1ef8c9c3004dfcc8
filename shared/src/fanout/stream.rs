//! Stream-record decoding: what one DynamoDB stream record (as the Lambda event carries it)
//! means to subscribers, as a `Change`, or nothing.
//!
//! This layer knows the table's item layout (through `store::schema` and the store's item
//! readers) and nothing of subscriptions or pushes; the per-change fan-out in `fanout` takes
//! the `Change`s it yields. The images come as `serde_dynamo` items (`aws_lambda_events` reads
//! the event's DynamoDB JSON with it) and are converted to the SDK's `AttributeValue`s with
//! serde_dynamo's `aws-sdk-dynamodb+1` conversions, so that the store's own item readers
//! (`read_message`, `read_inbox`) decode them exactly as they decode what DynamoDB returns.

use std::collections::HashMap;

use aws_lambda_events::dynamodb::EventRecord;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::changes::Change;
use crate::store::schema::{
    attr, chg, CONV_PREFIX, CONV_SK, INBOX_PREFIX, MSG_PREFIX, PART_PREFIX, PK, SK, TYPING_PREFIX,
};

/// The change a DynamoDB stream record stands for: `None` for items other than messages, for
/// TTL removals (expiry is not news), and for updates that changed nothing a client sees.
pub fn change_from_record(record: &EventRecord) -> std::result::Result<Option<Change>, String> {
    let ttl_removal = record
        .user_identity
        .as_ref()
        .is_some_and(|u| u.type_ == "Service" && u.principal_id == "dynamodb.amazonaws.com");
    if ttl_removal {
        return Ok(None);
    }
    let keys = sdk_item(&record.change.keys);
    let text_key = |name: &str| {
        keys.get(name)
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
    };
    if let Some(user_id) = text_key(PK).and_then(|pk| pk.strip_prefix(INBOX_PREFIX)) {
        return match record.event_name.as_str() {
            "INSERT" => {
                let new = sdk_item(&record.change.new_image);
                let inbox =
                    crate::store::dynamo::inbox::read_inbox(&new).map_err(|e| e.to_string())?;
                Ok(Some(Change::InboxCreated(inbox)))
            }
            "REMOVE" => Ok(text_key(SK).map(|message_id| Change::InboxDeleted {
                user_id: user_id.to_string(),
                message_id: message_id.to_string(),
            })),
            _ => Ok(None),
        };
    }
    if let (Some(cid), Some(user_id)) = (
        text_key(PK).and_then(|pk| pk.strip_prefix(TYPING_PREFIX)),
        text_key(SK),
    ) {
        return super::typing::change_from_typer_record(record, cid, user_id);
    }
    let Some(cid) = text_key(PK).and_then(|pk| pk.strip_prefix(CONV_PREFIX)) else {
        return Ok(None);
    };
    if text_key(SK) == Some(CONV_SK) {
        return conversation_change(record, cid);
    }
    if let Some(uid) = text_key(SK).and_then(|sk| sk.strip_prefix(PART_PREFIX)) {
        return participant_change(record, cid, uid);
    }
    let Some(mid) = text_key(SK).and_then(|sk| sk.strip_prefix(MSG_PREFIX)) else {
        return Ok(None);
    };
    match record.event_name.as_str() {
        "REMOVE" => Ok(Some(Change::MessageDeleted {
            conversation_id: cid.to_string(),
            message_id: mid.to_string(),
        })),
        "INSERT" | "MODIFY" => {
            let new = sdk_item(&record.change.new_image);
            if new.is_empty() {
                return Err(
                    "the record has no new image (the stream must be NEW_AND_OLD_IMAGES)".into(),
                );
            }
            let old = sdk_item(&record.change.old_image);
            // An update that left the last-change marker and everything a client sees alone
            // (such as sweeping zero reaction counts) is no news. Two edits within one
            // millisecond share a marker but not their content, so both are pushed.
            let unchanged = |name: &str| old.get(name) == new.get(name);
            if record.event_name == "MODIFY"
                && [chg::ATTR, attr::CONTENT, attr::CUSTOM, attr::EDITED_AT]
                    .into_iter()
                    .all(unchanged)
            {
                return Ok(None);
            }
            let message = crate::store::dynamo::read_message(&new).map_err(|e| e.to_string())?;
            let chg = match new.get(chg::ATTR) {
                Some(AttributeValue::M(m)) => m.clone(),
                _ => Default::default(),
            };
            let chg_text = |name: &str| chg.get(name).and_then(|v| v.as_s().ok()).cloned();
            let kind = chg_text(chg::KIND).unwrap_or_else(|| {
                if record.event_name == "INSERT" {
                    chg::CREATED
                } else {
                    chg::EDITED
                }
                .to_string()
            });
            let reaction = || -> std::result::Result<(String, String, u64), String> {
                let emoji = chg_text(chg::EMOJI).ok_or("a reaction change has no emoji")?;
                let user_id = chg_text(chg::USER_ID).ok_or("a reaction change has no userId")?;
                let count = match new.get(attr::RXN) {
                    Some(AttributeValue::M(counts)) => counts
                        .get(&emoji)
                        .and_then(|v| v.as_n().ok())
                        .and_then(|n| n.parse::<u64>().ok())
                        .unwrap_or(0),
                    _ => 0,
                };
                Ok((emoji, user_id, count))
            };
            Ok(Some(match kind.as_str() {
                chg::CREATED => Change::MessageCreated(message),
                chg::EDITED => Change::MessageEdited(message),
                chg::REACTION_ADDED => {
                    let (emoji, user_id, count) = reaction()?;
                    Change::ReactionAdded {
                        message,
                        emoji,
                        user_id,
                        count,
                    }
                }
                chg::REACTION_REMOVED => {
                    let (emoji, user_id, count) = reaction()?;
                    Change::ReactionRemoved {
                        message,
                        emoji,
                        user_id,
                        count,
                    }
                }
                other => return Err(format!("unknown change kind {other:?}")),
            }))
        }
        other => Err(format!("unknown event name {other:?}")),
    }
}

/// A conversation item's change: news when what a snapshot shows of it changed (not on its
/// creation, whose participants' arrivals are the news, nor on a refresh of its expiry).
fn conversation_change(
    record: &EventRecord,
    cid: &str,
) -> std::result::Result<Option<Change>, String> {
    if record.event_name != "MODIFY" {
        return Ok(None);
    }
    let (old, new) = (
        sdk_item(&record.change.old_image),
        sdk_item(&record.change.new_image),
    );
    let unchanged = |name: &str| old.get(name) == new.get(name);
    if [attr::SUBJECT, attr::PHOTO_URL, attr::CUSTOM]
        .into_iter()
        .all(unchanged)
    {
        return Ok(None);
    }
    Ok(Some(Change::ConversationChanged {
        conversation_id: cid.to_string(),
    }))
}

/// A participant item's change: a join, a leave, or a change of access or read state (a
/// refresh of its expiry is no news).
fn participant_change(
    record: &EventRecord,
    cid: &str,
    uid: &str,
) -> std::result::Result<Option<Change>, String> {
    let read = |image: &serde_dynamo::Item| {
        let item = sdk_item(image);
        if item.is_empty() {
            return Ok(None);
        }
        crate::store::dynamo::read_participant(&item)
            .map(Some)
            .map_err(|e| e.to_string())
    };
    let before = read(&record.change.old_image)?;
    let after = read(&record.change.new_image)?;
    let seen = |p: &crate::model::ParticipantRecord| (p.access, p.read_until, p.marked_unread);
    if before.as_ref().map(seen) == after.as_ref().map(seen) {
        return Ok(None);
    }
    Ok(Some(Change::ParticipantChanged {
        conversation_id: cid.to_string(),
        user_id: uid.to_string(),
        before,
        after,
    }))
}

/// A stream image as SDK attribute values, what the store's item readers take. The Lambda event
/// arrives with its DynamoDB JSON already read into serde_dynamo's values; serde_dynamo converts
/// those to the SDK's.
fn sdk_item(image: &serde_dynamo::Item) -> HashMap<String, AttributeValue> {
    image.clone().into()
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::format::parse_text;
    use crate::model::{Access, Custom, MessageRecord, MessageType, Origin, ReactionCount};
    use crate::store::inbox::InboxRecord;

    const CREATED_AT: i64 = 1_700_000_000_000;
    const EXPIRES_AT: i64 = 1_702_592_000;

    /// One stream record as the Lambda event carries it (DynamoDB JSON images).
    fn record(
        event_name: &str,
        keys: Value,
        new: Option<Value>,
        old: Option<Value>,
    ) -> EventRecord {
        let mut dynamodb = json!({"Keys": keys, "SequenceNumber": "7", "SizeBytes": 1});
        if let Some(new) = new {
            dynamodb["NewImage"] = new;
        }
        if let Some(old) = old {
            dynamodb["OldImage"] = old;
        }
        serde_json::from_value(json!({
            "eventID": "e1",
            "eventName": event_name,
            "awsRegion": "us-east-1",
            "eventSource": "aws:dynamodb",
            "dynamodb": dynamodb,
        }))
        .unwrap()
    }

    /// The same record as DynamoDB's own TTL deletion makes it.
    fn by_ttl(mut record: EventRecord) -> EventRecord {
        record.user_identity = serde_json::from_value(
            json!({"type": "Service", "principalId": "dynamodb.amazonaws.com"}),
        )
        .unwrap();
        record
    }

    fn keys(pk: &str, sk: &str) -> Value {
        json!({"pk": {"S": pk}, "sk": {"S": sk}})
    }

    fn marker(kind: &str, emoji: Option<&str>, user: Option<&str>, at: i64) -> Value {
        let mut m = json!({"kind": {"S": kind}, "at": {"N": at.to_string()}});
        if let Some(emoji) = emoji {
            m["emoji"] = json!({ "S": emoji });
        }
        if let Some(user) = user {
            m["userId"] = json!({ "S": user });
        }
        json!({ "M": m })
    }

    /// A message item of `c1` as the store writes it, with its change marker `chg`.
    fn message_image(mid: &str, text: &str, chg: Option<Value>) -> Value {
        let content = serde_json::to_string(&parse_text(text)).unwrap();
        let mut image = json!({
            "pk": {"S": "CONV#c1"},
            "sk": {"S": format!("MSG#{mid}")},
            "type": {"S": "UserMessage"},
            "senderId": {"S": "alice"},
            "content": {"S": content},
            "custom": {"M": {"pinned": {"S": "yes"}}},
            "createdAt": {"N": CREATED_AT.to_string()},
            "origin": {"S": "rest"},
            "rxn": {"M": {}},
            "rxt": {"M": {}},
            "rxo": {"M": {}},
            "rxq": {"N": "0"},
            "expiresAt": {"N": EXPIRES_AT.to_string()},
        });
        if let Some(chg) = chg {
            image["chg"] = chg;
        }
        image
    }

    /// The record `message_image` stands for.
    fn message(mid: &str, text: &str) -> MessageRecord {
        MessageRecord {
            conversation_id: "c1".into(),
            id: mid.into(),
            kind: MessageType::UserMessage,
            sender_id: Some("alice".into()),
            content: parse_text(text),
            custom: Custom::from([("pinned".to_string(), "yes".to_string())]),
            created_at: CREATED_AT,
            edited_at: None,
            origin: Origin::Rest,
            referenced_message_id: None,
            referenced_sender_id: None,
            reactions: Vec::new(),
            expires_at: EXPIRES_AT,
        }
    }

    /// `image` with reaction counters: 👍 twice (first added at +1), 🎉 swept to zero (+2).
    fn with_reactions(mut image: Value) -> Value {
        image["rxn"] = json!({"M": {"👍": {"N": "2"}, "🎉": {"N": "0"}}});
        image["rxt"] = json!({"M": {
            "👍": {"N": (CREATED_AT + 1).to_string()},
            "🎉": {"N": (CREATED_AT + 2).to_string()},
        }});
        image["rxo"] = json!({"M": {"👍": {"N": "0"}, "🎉": {"N": "1"}}});
        image["rxq"] = json!({"N": "2"});
        image
    }

    fn thumbs_up_twice() -> Vec<ReactionCount> {
        vec![ReactionCount {
            emoji: "👍".into(),
            count: 2,
            first_added_at: CREATED_AT + 1,
        }]
    }

    fn decode(record: &EventRecord) -> Option<Change> {
        change_from_record(record).unwrap()
    }

    #[test]
    fn a_new_message_is_created() {
        let created = marker("created", None, None, CREATED_AT);
        let insert = record(
            "INSERT",
            keys("CONV#c1", "MSG#msg_1"),
            Some(message_image("msg_1", "*hi* there", Some(created))),
            None,
        );
        assert_eq!(
            decode(&insert),
            Some(Change::MessageCreated(message("msg_1", "*hi* there")))
        );
        // Without a marker, an insert is a creation.
        let unmarked = record(
            "INSERT",
            keys("CONV#c1", "MSG#msg_1"),
            Some(message_image("msg_1", "hi", None)),
            None,
        );
        assert_eq!(
            decode(&unmarked),
            Some(Change::MessageCreated(message("msg_1", "hi")))
        );
    }

    #[test]
    fn an_edit_is_pushed_with_the_new_image() {
        let old = message_image("msg_2", "before", Some(marker("created", None, None, 1)));
        let mut new = message_image("msg_2", "after", Some(marker("edited", None, None, 2)));
        new["editedAt"] = json!({"N": "1700000000500"});
        new["refId"] = json!({"S": "msg_1"});
        new["refSenderId"] = json!({"S": "bob"});
        new["custom"] = json!({"M": {}});
        let modify = record("MODIFY", keys("CONV#c1", "MSG#msg_2"), Some(new), Some(old));
        let mut expected = message("msg_2", "after");
        expected.edited_at = Some(1_700_000_000_500);
        expected.referenced_message_id = Some("msg_1".into());
        expected.referenced_sender_id = Some("bob".into());
        expected.custom = Custom::new();
        assert_eq!(decode(&modify), Some(Change::MessageEdited(expected)));

        // Two edits within one millisecond share their marker but not their content.
        let same_marker = marker("edited", None, None, 3);
        let modify = record(
            "MODIFY",
            keys("CONV#c1", "MSG#msg_2"),
            Some(message_image("msg_2", "third", Some(same_marker.clone()))),
            Some(message_image("msg_2", "second", Some(same_marker))),
        );
        assert_eq!(
            decode(&modify),
            Some(Change::MessageEdited(message("msg_2", "third")))
        );
        // A change without a marker on an existing item is an edit.
        let modify = record(
            "MODIFY",
            keys("CONV#c1", "MSG#msg_2"),
            Some(message_image("msg_2", "new", None)),
            Some(message_image("msg_2", "old", None)),
        );
        assert_eq!(
            decode(&modify),
            Some(Change::MessageEdited(message("msg_2", "new")))
        );
    }

    #[test]
    fn reactions_carry_the_emoji_the_user_and_the_count_after_the_change() {
        let old = message_image("msg_3", "hi", Some(marker("created", None, None, 1)));
        let added = marker("reaction.added", Some("👍"), Some("bob"), 2);
        let new = with_reactions(message_image("msg_3", "hi", Some(added)));
        let modify = record("MODIFY", keys("CONV#c1", "MSG#msg_3"), Some(new), Some(old));
        let mut expected = message("msg_3", "hi");
        expected.reactions = thumbs_up_twice();
        assert_eq!(
            decode(&modify),
            Some(Change::ReactionAdded {
                message: expected.clone(),
                emoji: "👍".into(),
                user_id: "bob".into(),
                count: 2,
            })
        );

        // Removed to zero: the counter stays at 0 until swept, and is not a visible reaction.
        let added = marker("reaction.added", Some("👍"), Some("bob"), 2);
        let old = with_reactions(message_image("msg_3", "hi", Some(added)));
        let removed = marker("reaction.removed", Some("🎉"), Some("carol"), 3);
        let new = with_reactions(message_image("msg_3", "hi", Some(removed)));
        let modify = record("MODIFY", keys("CONV#c1", "MSG#msg_3"), Some(new), Some(old));
        assert_eq!(
            decode(&modify),
            Some(Change::ReactionRemoved {
                message: expected.clone(),
                emoji: "🎉".into(),
                user_id: "carol".into(),
                count: 0,
            })
        );

        // An emoji with no counter at all counts 0.
        let old = message_image("msg_3", "hi", None);
        let removed = marker("reaction.removed", Some("🙈"), Some("bob"), 4);
        let new = with_reactions(message_image("msg_3", "hi", Some(removed)));
        let modify = record("MODIFY", keys("CONV#c1", "MSG#msg_3"), Some(new), Some(old));
        assert!(matches!(
            decode(&modify),
            Some(Change::ReactionRemoved { count: 0, ref emoji, .. }) if emoji == "🙈"
        ));
    }

    #[test]
    fn an_update_that_changed_nothing_a_client_sees_is_no_news() {
        // Sweeping zero counts rewrites the counters but leaves the marker and the content.
        let chg = marker("reaction.removed", Some("🎉"), Some("bob"), 5);
        let old = with_reactions(message_image("msg_4", "hi", Some(chg.clone())));
        let mut new = message_image("msg_4", "hi", Some(chg));
        new["rxn"] = json!({"M": {"👍": {"N": "2"}}});
        new["rxt"] = json!({"M": {"👍": {"N": (CREATED_AT + 1).to_string()}}});
        new["rxo"] = json!({"M": {"👍": {"N": "0"}}});
        let modify = record("MODIFY", keys("CONV#c1", "MSG#msg_4"), Some(new), Some(old));
        assert_eq!(change_from_record(&modify), Ok(None));
    }

    #[test]
    fn a_deletion_is_pushed_and_an_expiry_is_not() {
        let old = message_image("msg_5", "hi", None);
        let remove = record("REMOVE", keys("CONV#c1", "MSG#msg_5"), None, Some(old));
        assert_eq!(
            decode(&remove),
            Some(Change::MessageDeleted {
                conversation_id: "c1".into(),
                message_id: "msg_5".into(),
            })
        );
        assert_eq!(change_from_record(&by_ttl(remove)), Ok(None));
    }

    #[test]
    fn inbox_messages_are_created_and_deleted() {
        let keys = keys("INBOX#bob", "inb_1");
        let image = json!({
            "pk": {"S": "INBOX#bob"},
            "sk": {"S": "inb_1"},
            "message": {"S": r#"{"foo":["quux","bar"],"n":1}"#},
            "senderId": {"S": "alice"},
            "createdAt": {"N": CREATED_AT.to_string()},
            "expiresAt": {"N": EXPIRES_AT.to_string()},
        });
        let insert = record("INSERT", keys.clone(), Some(image.clone()), None);
        assert_eq!(
            decode(&insert),
            Some(Change::InboxCreated(InboxRecord {
                user_id: "bob".into(),
                message_id: "inb_1".into(),
                sender_id: "alice".into(),
                message: crate::json::RawJson::from_value(&json!({"foo": ["quux", "bar"], "n": 1})),
                created_at: CREATED_AT,
                expires_at: EXPIRES_AT,
            }))
        );
        let remove = record("REMOVE", keys.clone(), None, Some(image.clone()));
        assert_eq!(
            decode(&remove),
            Some(Change::InboxDeleted {
                user_id: "bob".into(),
                message_id: "inb_1".into(),
            })
        );
        assert_eq!(change_from_record(&by_ttl(remove)), Ok(None));
        let modify = record("MODIFY", keys, Some(image.clone()), Some(image));
        assert_eq!(change_from_record(&modify), Ok(None));
    }

    #[test]
    fn items_other_than_messages_and_inbox_messages_are_ignored() {
        let others = [
            ("USER#alice", "#USER"),
            ("CONV#c1", "#CONV"),
            ("CONV#c1", "IDEM#alice#k-1"),
            ("ACT#c1", "bob"),
            ("RXU#c1#bob", "msg_1#👍"),
            ("CONN#A=", "#CONN"),
            ("SUBS#c1", "A=#s1"),
        ];
        for (pk, sk) in others {
            let image = json!({"pk": {"S": pk}, "sk": {"S": sk}, "expiresAt": {"N": "1"}});
            for event in ["INSERT", "MODIFY", "REMOVE"] {
                let r = record(
                    event,
                    keys(pk, sk),
                    Some(image.clone()),
                    Some(image.clone()),
                );
                assert_eq!(change_from_record(&r), Ok(None), "{event} {pk} {sk}");
            }
        }
    }

    #[test]
    fn participants_joining_leaving_and_reading_are_changes() {
        let keys = || keys("CONV#c1", "#PART#bob");
        let image = |access: &str, read: Option<i64>, expires: &str| {
            let mut v = json!({
                "pk": {"S": "CONV#c1"}, "sk": {"S": "#PART#bob"}, "access": {"S": access},
                "joinedAt": {"N": "5"}, "expiresAt": {"N": expires},
            });
            if let Some(read) = read {
                v["readUntil"] = json!({"N": read.to_string()});
            }
            v
        };
        let change = |r: &EventRecord| match change_from_record(r) {
            Ok(Some(Change::ParticipantChanged { before, after, .. })) => (
                before.map(|p| (p.access, p.read_until)),
                after.map(|p| (p.access, p.read_until)),
            ),
            other => panic!("expected a participant change, got {other:?}"),
        };
        let joined = record("INSERT", keys(), Some(image("Read", None, "9")), None);
        assert_eq!(change(&joined), (None, Some((Access::Read, None))));
        let read = record(
            "MODIFY",
            keys(),
            Some(image("Read", Some(7), "9")),
            Some(image("Read", None, "9")),
        );
        assert_eq!(
            change(&read),
            (Some((Access::Read, None)), Some((Access::Read, Some(7))))
        );
        let left = record("REMOVE", keys(), None, Some(image("ReadWrite", None, "9")));
        assert_eq!(change(&left), (Some((Access::ReadWrite, None)), None));
        // A refreshed expiry is no news.
        let refreshed = record(
            "MODIFY",
            keys(),
            Some(image("Read", Some(7), "10")),
            Some(image("Read", Some(7), "9")),
        );
        assert_eq!(change_from_record(&refreshed), Ok(None));
    }

    #[test]
    fn a_conversation_change_is_news_when_a_snapshot_shows_it() {
        let keys = || keys("CONV#c1", "#CONV");
        let image = |subject: &str, expires: &str| {
            json!({
                "pk": {"S": "CONV#c1"}, "sk": {"S": "#CONV"}, "subject": {"S": subject},
                "createdAt": {"N": "1"}, "expiresAt": {"N": expires},
            })
        };
        let renamed = record(
            "MODIFY",
            keys(),
            Some(image("new", "9")),
            Some(image("old", "9")),
        );
        assert_eq!(
            change_from_record(&renamed),
            Ok(Some(Change::ConversationChanged {
                conversation_id: "c1".into()
            }))
        );
        let refreshed = record(
            "MODIFY",
            keys(),
            Some(image("old", "10")),
            Some(image("old", "9")),
        );
        assert_eq!(change_from_record(&refreshed), Ok(None));
        let created = record("INSERT", keys(), Some(image("old", "9")), None);
        assert_eq!(change_from_record(&created), Ok(None));
    }

    #[test]
    fn records_that_cannot_be_read_are_errors() {
        let msg = keys("CONV#c1", "MSG#msg_6");
        let no_image = record("INSERT", msg.clone(), None, None);
        let err = change_from_record(&no_image).unwrap_err();
        assert!(err.contains("NEW_AND_OLD_IMAGES"), "{err}");

        let unknown_kind = message_image("msg_6", "hi", Some(marker("pinned", None, None, 1)));
        let r = record("INSERT", msg.clone(), Some(unknown_kind), None);
        assert!(change_from_record(&r).unwrap_err().contains("pinned"));

        let no_emoji = message_image(
            "msg_6",
            "hi",
            Some(marker("reaction.added", None, Some("bob"), 1)),
        );
        let r = record("INSERT", msg.clone(), Some(no_emoji), None);
        assert!(change_from_record(&r).unwrap_err().contains("emoji"));

        let no_user = message_image(
            "msg_6",
            "hi",
            Some(marker("reaction.added", Some("👍"), None, 1)),
        );
        let r = record("INSERT", msg.clone(), Some(no_user), None);
        assert!(change_from_record(&r).unwrap_err().contains("userId"));

        let mut untyped = message_image("msg_6", "hi", None);
        untyped.as_object_mut().unwrap().remove("type");
        let r = record("INSERT", msg.clone(), Some(untyped), None);
        assert!(change_from_record(&r).is_err());

        let r = record(
            "TRUNCATE",
            msg,
            Some(message_image("msg_6", "hi", None)),
            None,
        );
        assert!(change_from_record(&r).unwrap_err().contains("TRUNCATE"));

        let inbox = json!({"pk": {"S": "INBOX#bob"}, "sk": {"S": "inb_2"},
            "message": {"S": "{not json"}, "senderId": {"S": "alice"},
            "createdAt": {"N": "1"}, "expiresAt": {"N": "1"}});
        let r = record("INSERT", keys("INBOX#bob", "inb_2"), Some(inbox), None);
        assert!(change_from_record(&r).is_err());
    }

    #[test]
    fn every_attribute_type_of_an_image_converts_to_its_sdk_value() {
        let mut image = message_image("msg_7", "hi", None);
        image["extra"] = json!({"M": {
            "s": {"S": "x"},
            "n": {"N": "3.5"},
            "b": {"B": "aGk="},
            "t": {"BOOL": true},
            "z": {"NULL": true},
            "ss": {"SS": ["a", "b"]},
            "ns": {"NS": ["1", "2"]},
            "bs": {"BS": ["aGk=", "eW8="]},
            "l": {"L": [{"S": "y"}, {"M": {"k": {"N": "1"}}}]},
        }});
        let r = record("INSERT", keys("CONV#c1", "MSG#msg_7"), Some(image), None);
        let item = sdk_item(&r.change.new_image);
        let Some(AttributeValue::M(extra)) = item.get("extra") else {
            panic!("extra is not a map: {item:?}")
        };
        let blob = |b: &[u8]| aws_smithy_types::Blob::new(b.to_vec());
        assert_eq!(extra["s"], AttributeValue::S("x".into()));
        assert_eq!(extra["n"], AttributeValue::N("3.5".into()));
        assert_eq!(extra["b"], AttributeValue::B(blob(b"hi")));
        assert_eq!(extra["t"], AttributeValue::Bool(true));
        assert_eq!(extra["z"], AttributeValue::Null(true));
        assert_eq!(
            extra["ss"],
            AttributeValue::Ss(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            extra["ns"],
            AttributeValue::Ns(vec!["1".into(), "2".into()])
        );
        assert_eq!(
            extra["bs"],
            AttributeValue::Bs(vec![blob(b"hi"), blob(b"yo")])
        );
        assert_eq!(
            extra["l"],
            AttributeValue::L(vec![
                AttributeValue::S("y".into()),
                AttributeValue::M(HashMap::from([(
                    "k".to_string(),
                    AttributeValue::N("1".into())
                )])),
            ])
        );
        // Attributes the message does not have are ignored.
        assert_eq!(
            decode(&r),
            Some(Change::MessageCreated(message("msg_7", "hi")))
        );
    }
}
