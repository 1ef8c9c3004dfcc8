//! Who is typing: one short-lived item per typer (`TYPING#{cid}` / `{userId}`, see
//! `docs/storage.md`), written at most once per `config::typing::THROTTLE_MS` by the `typing`
//! route and deleted by the expiry check (`crate::typing::TypingExpiry`) or when the typer sends a
//! message (the fan-out). A typer whose `until` has passed is not typing, whether or not the item
//! is still there: every read leaves it out.
//!
//! The item is written and deleted like any other, so its changes reach the fan-out the same
//! way: from the table's stream on AWS, from the embedded store's change feed locally
//! (`Change::TypingChanged`).

use async_trait::async_trait;

use super::{is_expired, StoreResult};

/// One user typing in one conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TyperRecord {
    pub conversation_id: String,
    pub user_id: String,
    /// When this typing spell began (ms): what orders a conversation's typers.
    pub since: i64,
    /// When the user stops typing unless a `typing` frame extends it (ms).
    pub until: i64,
    /// Seconds since the epoch (TTL), a little after `until`.
    pub expires_at: i64,
}

impl TyperRecord {
    /// Whether the user is still typing at `now_ms`.
    pub fn is_live(&self, now_ms: i64) -> bool {
        self.until > now_ms && !is_expired(self.expires_at, now_ms)
    }
}

/// Every typing port at once, for wiring and the conformance suite. (The typer item is read
/// through `ItemReader`, `ItemKey::Typer`, beside the caller's participant item.)
pub trait TypingStore: TypingWriter + TypingLister + TypingRemover {}

impl<T: TypingWriter + TypingLister + TypingRemover + ?Sized> TypingStore for T {}

#[async_trait]
pub trait TypingWriter: Send + Sync {
    /// Stores the typer item, replacing the one there (one PutItem, no condition: the domain
    /// decides `since` from the item it read, and a lost race only moves `since`).
    async fn put_typer(&self, typer: &TyperRecord) -> StoreResult<()>;
}

#[async_trait]
pub trait TypingLister: Send + Sync {
    /// A conversation's live typers (one Query of `TYPING#{cid}`), oldest spell first (by
    /// `since`, then user id).
    async fn typers(&self, conversation_id: &str, now_ms: i64) -> StoreResult<Vec<TyperRecord>>;
}

#[async_trait]
pub trait TypingRemover: Send + Sync {
    /// Deletes the typer item only while its `until` is still `until` (a typer who typed again
    /// meanwhile is kept); `true` when it was deleted.
    async fn delete_typer(
        &self,
        conversation_id: &str,
        user_id: &str,
        until: i64,
    ) -> StoreResult<bool>;
}

/// `typers` in the order the protocol lists them: oldest spell first, then by user id.
pub fn sort_typers(typers: &mut [TyperRecord]) {
    typers.sort_by(|a, b| (a.since, &a.user_id).cmp(&(b.since, &b.user_id)));
}
