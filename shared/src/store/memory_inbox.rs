//! The embedded inbox store. It shares the message store's change feed, so that the local
//! gateway's fan-out hears about inbox messages as the stream would tell it on AWS.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::store::inbox::{InboxClearer, InboxDeleter, InboxReader, InboxWriter};
use async_trait::async_trait;

use super::inbox::{InboxPage, InboxRecord};
use super::{is_expired, StoreError, StoreResult};
use crate::changes::{Change, ChangeSender};

pub struct MemoryInbox {
    /// user id → message id → message; ids sort by arrival.
    messages: Mutex<BTreeMap<String, BTreeMap<String, InboxRecord>>>,
    changes: ChangeSender,
}

impl MemoryInbox {
    /// An inbox that sends its changes into this feed (`ChangeSender::none()` for none).
    pub fn new(changes: ChangeSender) -> Self {
        MemoryInbox {
            messages: Mutex::default(),
            changes,
        }
    }

    fn lock(
        &self,
    ) -> StoreResult<std::sync::MutexGuard<'_, BTreeMap<String, BTreeMap<String, InboxRecord>>>>
    {
        self.messages
            .lock()
            .map_err(|_| StoreError::Backend("memory inbox lock poisoned".into()))
    }
}

#[async_trait]
impl InboxWriter for MemoryInbox {
    async fn put_inbox_messages(&self, messages: &[InboxRecord]) -> StoreResult<()> {
        let ticket = {
            let mut all = self.lock()?;
            for m in messages {
                all.entry(m.user_id.clone())
                    .or_default()
                    .insert(m.message_id.clone(), m.clone());
            }
            self.changes.ticket()
        };
        ticket
            .send(messages.iter().cloned().map(Change::InboxCreated).collect())
            .await;
        Ok(())
    }
}

#[async_trait]
impl InboxReader for MemoryInbox {
    async fn list_inbox(
        &self,
        user_id: &str,
        after: Option<&str>,
        limit: usize,
        now_ms: i64,
    ) -> StoreResult<InboxPage> {
        use std::ops::Bound;
        let all = self.lock()?;
        let mut messages: Vec<InboxRecord> = match all.get(user_id) {
            None => Vec::new(),
            Some(ms) => {
                let from = match after {
                    Some(after) => Bound::Excluded(after.to_string()),
                    None => Bound::Unbounded,
                };
                ms.range((from, Bound::Unbounded))
                    .map(|(_, m)| m)
                    .filter(|m| !is_expired(m.expires_at, now_ms))
                    .take(limit.saturating_add(1))
                    .cloned()
                    .collect()
            }
        };
        let has_more = messages.len() > limit;
        messages.truncate(limit);
        Ok(InboxPage { messages, has_more })
    }
}

#[async_trait]
impl InboxDeleter for MemoryInbox {
    async fn delete_inbox_message(&self, user_id: &str, message_id: &str) -> StoreResult<bool> {
        let (removed, ticket) = {
            let mut all = self.lock()?;
            let removed = all
                .get_mut(user_id)
                .and_then(|ms| ms.remove(message_id))
                .is_some();
            (removed, self.changes.ticket())
        };
        if removed {
            ticket
                .send(vec![Change::InboxDeleted {
                    user_id: user_id.to_string(),
                    message_id: message_id.to_string(),
                }])
                .await;
        }
        Ok(removed)
    }
}

#[async_trait]
impl InboxClearer for MemoryInbox {
    async fn clear_inbox(&self, user_id: &str) -> StoreResult<usize> {
        let (removed, ticket) = {
            let mut all = self.lock()?;
            (
                all.remove(user_id).unwrap_or_default(),
                self.changes.ticket(),
            )
        };
        let count = removed.len();
        // Every deletion of the request, in id order, behind the changes written before it.
        ticket
            .send(
                removed
                    .into_keys()
                    .map(|message_id| Change::InboxDeleted {
                        user_id: user_id.to_string(),
                        message_id,
                    })
                    .collect(),
            )
            .await;
        Ok(count)
    }
}
