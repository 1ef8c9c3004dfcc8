//! User inbox messages: any JSON value sent to users (named by user id or by a current or
//! recently used client id), kept until the recipient deletes it or it expires.

use std::collections::HashSet;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use super::user_of;
use crate::auth::Identity;
use crate::clock::Clock;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::ids::{new_inbox_id, validate_id};
use crate::store::inbox::{ClientDirectory, InboxRecord, InboxStore};

/// An inbox message as the API returns and pushes it.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InboxMessageSnapshot {
    pub message_id: String,
    pub message: Value,
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

#[derive(Clone)]
pub struct Inbox {
    pub store: Arc<dyn InboxStore>,
    pub clients: Arc<dyn ClientDirectory>,
    pub clock: Arc<dyn Clock>,
    pub config: Arc<Config>,
}

impl Inbox {
    /// `POST /inbox`: `{message, recipients}` where `message` is any JSON value (also `null`)
    /// and `recipients` one id or a list of ids. Returns one stored message id per recipient user.
    pub async fn send(&self, identity: &Identity, body: Value) -> Result<Vec<String>> {
        let (sender, _) = user_of(identity, "sending an inbox message")?;
        let limits = &self.config.limits;
        let Value::Object(mut body) = body else {
            return Err(Error::invalid(
                "body must be a JSON object {message, recipients}",
            ));
        };
        if let Some(unknown) = body.keys().find(|k| *k != "message" && *k != "recipients") {
            return Err(Error::invalid(format!(
                "unknown field {unknown:?}; expected message and recipients"
            )));
        }
        let message = body
            .remove("message")
            .ok_or_else(|| Error::invalid("message is required (any JSON value, also null)"))?;
        let size = message.to_string().len();
        if size > limits.max_inbox_message_bytes {
            return Err(Error::TooLarge(format!(
                "message is {size} bytes as JSON; the most is {}",
                limits.max_inbox_message_bytes
            )));
        }
        let named: Vec<String> = match body.remove("recipients") {
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
            validate_id("recipient", id, limits.max_id_chars)?;
        }

        let now = self.clock.now_ms();
        let clients = self.clients.users_of_clients(&named, now).await?;
        let mut seen = HashSet::new();
        let users: Vec<String> = named
            .into_iter()
            .map(|id| clients.get(&id).cloned().unwrap_or(id))
            .filter(|user| seen.insert(user.clone()))
            .collect();
        let expires_at = now.div_euclid(1000) + self.config.retention_secs;
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
        self.store.put_inbox_messages(&records).await?;
        Ok(records.into_iter().map(|r| r.message_id).collect())
    }

    /// The caller's unexpired inbox, oldest first (`GET /inbox`, and the `hello` replay).
    pub async fn list(&self, user_id: &str) -> Result<Vec<InboxMessageSnapshot>> {
        let records = self.store.list_inbox(user_id, self.clock.now_ms()).await?;
        Ok(records.into_iter().map(Into::into).collect())
    }

    pub async fn list_for(&self, identity: &Identity) -> Result<Vec<InboxMessageSnapshot>> {
        let (user_id, _) = user_of(identity, "reading an inbox")?;
        self.list(user_id).await
    }

    /// Deletes one of the caller's messages; another user's id deletes nothing.
    pub async fn delete(&self, identity: &Identity, message_id: &str) -> Result<()> {
        let (user_id, _) = user_of(identity, "deleting inbox messages")?;
        validate_id("messageId", message_id, self.config.limits.max_id_chars)?;
        self.store.delete_inbox_message(user_id, message_id).await?;
        Ok(())
    }

    /// Deletes all of the caller's messages.
    pub async fn clear(&self, identity: &Identity) -> Result<usize> {
        let (user_id, _) = user_of(identity, "deleting inbox messages")?;
        Ok(self.store.clear_inbox(user_id).await?)
    }
}
