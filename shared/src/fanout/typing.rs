//! Typing pushes: who is typing in a conversation, to every subscription to its messages.
//!
//! * `TypingChanged` (a typer item created, rewritten for a new spell, or deleted): one query of
//!   the conversation's live typers (`TYPING#{cid}`), one of its subscriptions (`SUBS#{cid}`),
//!   the participant filter of every push, and to each subscription its list without its own
//!   user. The typer's own subscriptions are skipped: their list did not change.
//! * A message created: the sender stops typing there. One batch read of the sender's typer
//!   item; only when it is live (and began before the message), one conditional delete, whose
//!   change then pushes the new list. A send by someone not typing costs no write.
//! * Stream decoding of typer items (`change_from_typer_record`): INSERT and REMOVE are changes,
//!   a MODIFY only when `since` changed (a new spell); one that only extends `until` is none.

use std::collections::HashMap;

use aws_lambda_events::dynamodb::EventRecord;
use aws_sdk_dynamodb::types::AttributeValue;

use super::{FanOut, Post, Report};
use crate::changes::Change;
use crate::error::Result;
use crate::model::{MessageRecord, Origin};
use crate::protocol::{ServerFrame, TypingPush};
use crate::store::schema::attr;
use crate::store::ItemKey;
use crate::typing::typing_users;

impl FanOut {
    /// Pushes who is typing now to every subscription to the conversation but `typer`'s.
    pub(super) async fn apply_typing(&self, cid: &str, typer: &str) -> Result<Report> {
        let now = self.ports.ctx.now_ms();
        let subs: Vec<_> = self
            .ports
            .subscribers
            .subscribers(cid, now)
            .await?
            .into_iter()
            .filter(|s| s.user_id != typer)
            .collect();
        if subs.is_empty() {
            return Ok(Report::default());
        }
        let typers = self.ports.typers.typers(cid, now).await?;
        let subs = self.participants_only(cid, subs).await?;
        let posts = subs
            .iter()
            .map(|sub| {
                let push = TypingPush {
                    subscription_id: sub.subscription_id.clone(),
                    conversation_id: cid.to_string(),
                    users: typing_users(&typers, &sub.user_id),
                };
                Ok(Post {
                    connection_id: sub.connection_id.clone(),
                    frame: ServerFrame::Typing(push).to_text()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        self.send(posts).await
    }

    /// The sender of a new message stops typing in its conversation (imports and system
    /// messages end nobody's typing). A spell that began after the message is kept: the
    /// sender is typing again.
    pub(super) async fn end_typing(&self, message: &MessageRecord) -> Result<()> {
        let Some(sender) = message.sender_id.as_deref() else {
            return Ok(());
        };
        if message.origin == Origin::Import {
            return Ok(());
        }
        let cid = &message.conversation_id;
        let key = ItemKey::Typer {
            conversation_id: cid.clone(),
            user_id: sender.to_string(),
        };
        let now = self.ports.ctx.now_ms();
        let items = self.ports.items.get_items(&[key], now).await?;
        let Some(typer) = items.typer(cid, sender) else {
            return Ok(());
        };
        if typer.since > message.created_at {
            return Ok(());
        }
        self.ports
            .typing_ends
            .delete_typer(cid, sender, typer.until)
            .await?;
        Ok(())
    }
}

/// The change a stream record of a typer item (`TYPING#{cid}` / `{userId}`) stands for. TTL
/// removals are filtered out before this.
pub(super) fn change_from_typer_record(
    record: &EventRecord,
    cid: &str,
    user_id: &str,
) -> std::result::Result<Option<Change>, String> {
    let changed = Some(Change::TypingChanged {
        conversation_id: cid.to_string(),
        user_id: user_id.to_string(),
    });
    match record.event_name.as_str() {
        "INSERT" | "REMOVE" => Ok(changed),
        "MODIFY" => {
            let since = |image: &serde_dynamo::Item| {
                let item: HashMap<String, AttributeValue> = image.clone().into();
                item.get(attr::SINCE).cloned()
            };
            let new = since(&record.change.new_image);
            if new.is_none() {
                return Err(
                    "the record has no new image (the stream must be NEW_AND_OLD_IMAGES)".into(),
                );
            }
            Ok(if since(&record.change.old_image) != new {
                changed
            } else {
                None
            })
        }
        other => Err(format!("unknown event name {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::super::change_from_record;
    use crate::changes::Change;

    fn image(since: i64, until: i64) -> Value {
        json!({"pk": {"S": "TYPING#c1"}, "sk": {"S": "alice"},
            "since": {"N": since.to_string()}, "until": {"N": until.to_string()},
            "expiresAt": {"N": (until / 1000 + 61).to_string()}})
    }

    fn record(event: &str, new: Option<Value>, old: Option<Value>, by_ttl: bool) -> Value {
        let mut dynamodb = json!({"Keys": {"pk": {"S": "TYPING#c1"}, "sk": {"S": "alice"}},
            "SequenceNumber": "7", "SizeBytes": 1});
        if let Some(new) = new {
            dynamodb["NewImage"] = new;
        }
        if let Some(old) = old {
            dynamodb["OldImage"] = old;
        }
        let mut record = json!({"eventID": "e1", "eventName": event, "awsRegion": "us-east-1",
            "eventSource": "aws:dynamodb", "dynamodb": dynamodb});
        if by_ttl {
            record["userIdentity"] =
                json!({"type": "Service", "principalId": "dynamodb.amazonaws.com"});
        }
        record
    }

    fn decode(record: Value) -> Option<Change> {
        change_from_record(&serde_json::from_value(record).unwrap()).unwrap()
    }

    #[test]
    fn typer_records_are_changes_when_a_spell_starts_or_ends_only() {
        let changed = Some(Change::TypingChanged {
            conversation_id: "c1".into(),
            user_id: "alice".into(),
        });
        assert_eq!(
            decode(record("INSERT", Some(image(1, 10_001)), None, false)),
            changed
        );
        assert_eq!(
            decode(record("REMOVE", None, Some(image(1, 10_001)), false)),
            changed
        );
        // Extended: same spell, nothing to tell.
        let extended = record(
            "MODIFY",
            Some(image(1, 15_001)),
            Some(image(1, 10_001)),
            false,
        );
        assert_eq!(decode(extended), None);
        // Rewritten for a new spell before any check deleted the old one.
        let new_spell = record(
            "MODIFY",
            Some(image(20_000, 30_000)),
            Some(image(1, 10_001)),
            false,
        );
        assert_eq!(decode(new_spell), changed);
        // TTL removals are not news.
        assert_eq!(
            decode(record("REMOVE", None, Some(image(1, 10_001)), true)),
            None
        );
    }
}
