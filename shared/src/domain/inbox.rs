//! User inbox messages: any JSON value sent to users (named by user id or by a current or
//! recently used client id), kept until the recipient deletes it or it expires.

use std::collections::HashSet;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::{user_of, Context};
use crate::auth::Identity;
use crate::error::{Error, Result};
use crate::ids::new_inbox_id;
use crate::json::RawJson;
use crate::operation;
use crate::ports::{ClientDirectory, InboxClearer, InboxDeleter, InboxReader, InboxWriter};
use crate::store::inbox::InboxRecord;

/// An inbox message as the API returns and pushes it.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InboxMessageSnapshot {
    pub message_id: String,
    /// Exactly as sent: its numbers keep every digit.
    pub message: RawJson,
    pub sender_id: String,
    pub created_at: i64,
}

impl From<InboxRecord> for InboxMessageSnapshot {
    fn from(r: InboxRecord) -> Self {
        InboxMessageSnapshot {
            message_id: r.message_id,
            message: r.message,
            sender_id: r.sender_id,
            created_at: r.created_at,
        }
    }
}

/// `POST /inbox`: `{message, recipients}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendInboxBody {
    /// Any JSON value, `null` included (absent is `None`), kept as its text.
    #[serde(default, deserialize_with = "present")]
    pub message: Option<RawJson>,
    /// One id or a list of ids (checked by `SendInboxMessage`, which says what is wrong).
    #[serde(default)]
    pub recipients: Option<Value>,
}

/// A field that is there, whatever its value (`null` too).
fn present<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<RawJson>, D::Error> {
    RawJson::deserialize(deserializer).map(Some)
}

operation! {
    /// `POST /inbox`.
    pub struct SendInboxMessage {
        ctx: Context,
        inbox: Arc<dyn InboxWriter>,
        clients: Arc<dyn ClientDirectory>,
    }
}

operation! {
    /// `GET /inbox`, and the `hello` replay.
    pub struct ListInbox {
        ctx: Context,
        inbox: Arc<dyn InboxReader>,
    }
}

operation! {
    /// `DELETE /inbox/{messageId}`.
    pub struct DeleteInboxMessage {
        ctx: Context,
        inbox: Arc<dyn InboxDeleter>,
    }
}

operation! {
    /// `DELETE /inbox`.
    pub struct ClearInbox {
        inbox: Arc<dyn InboxClearer>,
    }
}

impl SendInboxMessage {
    /// `POST /inbox`: `{message, recipients}` where `message` is any JSON value (also `null`)
    /// and `recipients` one id or a list of ids. Returns one stored message id per recipient user.
    pub async fn run(&self, identity: &Identity, body: SendInboxBody) -> Result<Vec<String>> {
        let (sender, _) = user_of(identity, "sending an inbox message")?;
        let limits = &self.ctx.config().limits;
        let message = body
            .message
            .ok_or_else(|| Error::invalid("message is required (any JSON value, also null)"))?;
        let size = message.get().len();
        if size > limits.max_inbox_message_bytes {
            return Err(Error::TooLarge(format!(
                "message is {size} bytes as JSON; the most is {}",
                limits.max_inbox_message_bytes
            )));
        }
        let named: Vec<String> = match body.recipients {
            None | Some(Value::Null) => return Err(Error::invalid("recipients is required")),
            Some(Value::String(id)) => vec![id],
            Some(Value::Array(ids)) => ids
                .into_iter()
                .enumerate()
                .map(|(i, id)| match id {
                    Value::String(id) => Ok(id),
                    other => Err(Error::invalid(format!(
                        "recipients[{i}] must be a string id, got {other}"
                    ))),
                })
                .collect::<Result<_>>()?,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "recipients must be an id or a list of ids, got {other}"
                )))
            }
        };
        if named.is_empty() {
            return Err(Error::invalid(
                "recipients must name at least one user or client",
            ));
        }
        if named.len() > limits.max_inbox_recipients {
            return Err(Error::invalid(format!(
                "recipients names {} ids; the most is {}",
                named.len(),
                limits.max_inbox_recipients
            )));
        }
        for id in &named {
            self.ctx.check_id("recipient", id)?;
        }

        let now = self.ctx.now_ms();
        let clients = self.clients.users_of_clients(&named, now).await?;
        let mut seen = HashSet::new();
        let users: Vec<String> = named
            .into_iter()
            .map(|id| clients.get(&id).cloned().unwrap_or(id))
            .filter(|user| seen.insert(user.clone()))
            .collect();
        let expires_at = self.ctx.message_expiry(now);
        let records: Vec<InboxRecord> = users
            .into_iter()
            .map(|user_id| InboxRecord {
                user_id,
                message_id: new_inbox_id(now),
                sender_id: sender.to_string(),
                message: message.clone(),
                created_at: now,
                expires_at,
            })
            .collect();
        self.inbox.put_inbox_messages(&records).await?;
        Ok(records.into_iter().map(|r| r.message_id).collect())
    }
}

/// A page of an inbox, as the store read it (before it is fitted to a frame or response).
#[derive(Debug, Clone, PartialEq)]
pub struct InboxPageSnapshot {
    /// Oldest first.
    pub messages: Vec<InboxMessageSnapshot>,
    /// More unexpired messages follow the last one.
    pub has_more: bool,
}

impl ListInbox {
    /// `GET /inbox?limit=&after=`: the caller's unexpired inbox, oldest first, the first `limit`
    /// (1 to `max_inbox_page`, that many when `None`) after message id `after`.
    pub async fn run(
        &self,
        identity: &Identity,
        limit: Option<usize>,
        after: Option<&str>,
    ) -> Result<InboxPageSnapshot> {
        let (user_id, _) = user_of(identity, "reading an inbox")?;
        let max = self.ctx.config().limits.max_inbox_page;
        let limit = limit.unwrap_or(max);
        if limit == 0 || limit > max {
            return Err(Error::invalid(format!(
                "limit must be between 1 and {max}, got {limit}"
            )));
        }
        self.of_user(user_id, after, limit).await
    }

    /// A user's unexpired inbox, oldest first, after `after` (the `hello` replay and
    /// `inboxMore`, which ask for `max_inbox_page`).
    pub async fn of_user(
        &self,
        user_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<InboxPageSnapshot> {
        if let Some(after) = after {
            self.ctx.check_id("after", after)?;
        }
        let page = self
            .inbox
            .list_inbox(user_id, after, limit, self.ctx.now_ms())
            .await?;
        Ok(InboxPageSnapshot {
            messages: page.messages.into_iter().map(Into::into).collect(),
            has_more: page.has_more,
        })
    }
}

impl DeleteInboxMessage {
    /// Deletes one of the caller's messages; another user's id deletes nothing.
    pub async fn run(&self, identity: &Identity, message_id: &str) -> Result<()> {
        let (user_id, _) = user_of(identity, "deleting inbox messages")?;
        self.ctx.check_id("messageId", message_id)?;
        self.inbox.delete_inbox_message(user_id, message_id).await?;
        Ok(())
    }
}

impl ClearInbox {
    /// Deletes all of the caller's messages.
    pub async fn run(&self, identity: &Identity) -> Result<usize> {
        let (user_id, _) = user_of(identity, "deleting inbox messages")?;
        Ok(self.inbox.clear_inbox(user_id).await?)
    }
}
