//! Storage for user inbox messages: a small trait of its own, so that the inbox functions'
//! permissions match exactly what they call.

use async_trait::async_trait;

use super::StoreResult;

/// One stored inbox message of one recipient.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxRecord {
    pub user_id: String,
    /// `inb_` plus a time-sortable id: id order is arrival order.
    pub message_id: String,
    pub sender_id: String,
    /// Any JSON value, exactly as sent (its text: numbers keep every digit).
    pub message: crate::json::RawJson,
    pub created_at: i64,
    pub expires_at: i64,
}

/// Every inbox port at once, for wiring and the conformance suite.
pub trait InboxStore: InboxWriter + InboxReader + InboxDeleter + InboxClearer {}

impl<T: InboxWriter + InboxReader + InboxDeleter + InboxClearer + ?Sized> InboxStore for T {}

#[async_trait]
pub trait InboxWriter: Send + Sync {
    /// Stores one copy per recipient.
    async fn put_inbox_messages(&self, messages: &[InboxRecord]) -> StoreResult<()>;
}

/// A page of a user's inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxPage {
    /// Oldest first.
    pub messages: Vec<InboxRecord>,
    /// More unexpired messages follow the last one.
    pub has_more: bool,
}

#[async_trait]
pub trait InboxReader: Send + Sync {
    /// A user's unexpired inbox messages, oldest first: the first `limit` (at least 1) after
    /// message id `after` (exclusive; from the start when `None`), and whether more follow.
    async fn list_inbox(
        &self,
        user_id: &str,
        after: Option<&str>,
        limit: usize,
        now_ms: i64,
    ) -> StoreResult<InboxPage>;
}

#[async_trait]
pub trait InboxDeleter: Send + Sync {
    /// Deletes one of the user's messages; `true` if it was there (expired or not).
    async fn delete_inbox_message(&self, user_id: &str, message_id: &str) -> StoreResult<bool>;
}

#[async_trait]
pub trait InboxClearer: Send + Sync {
    /// Deletes all of the user's messages, however many; returns how many were deleted.
    async fn clear_inbox(&self, user_id: &str) -> StoreResult<usize>;
}

/// Which user a client id (a WebSocket connection id, current or of the last 24 hours) belongs
/// to. Inbox recipients may be named by client id.
#[async_trait]
pub trait ClientDirectory: Send + Sync {
    /// The user of each id that is a known client id; other ids are absent from the answer.
    async fn users_of_clients(
        &self,
        ids: &[String],
        now_ms: i64,
    ) -> StoreResult<std::collections::HashMap<String, String>>;
}

/// Client ids are WebSocket connection ids: a connection record (live, or closed within the
/// last 24 hours) names its user.
pub struct ConnectionDirectory(pub std::sync::Arc<dyn crate::realtime::ConnectionReader>);

#[async_trait]
impl ClientDirectory for ConnectionDirectory {
    async fn users_of_clients(
        &self,
        ids: &[String],
        now_ms: i64,
    ) -> StoreResult<std::collections::HashMap<String, String>> {
        // One lookup per named id, all at once (at most the recipient limit).
        let lookups = ids.iter().map(|id| async move {
            let found = self.0.get_connection(id, now_ms).await?;
            Ok::<_, super::StoreError>(found.map(|c| (id.clone(), c.user_id)))
        });
        let found = futures::future::try_join_all(lookups).await?;
        Ok(found.into_iter().flatten().collect())
    }
}
