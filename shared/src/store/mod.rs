//! Storage: one trait, an embedded in-memory implementation and a DynamoDB one.
//!
//! Each method is one access pattern with the atomicity it needs spelled out, so the domain
//! never reads-then-writes without a condition. Every item carries `expiresAt` (seconds since the
//! epoch, the table's TTL attribute); every read drops items whose `expiresAt` is not in the
//! future, because DynamoDB deletes expired items late. The table design and the request count
//! of each method are documented in `docs/storage.md`.

pub mod dynamo;
pub mod inbox;
pub mod memory;
pub mod memory_inbox;
pub mod schema;
pub mod typing;

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;

use crate::model::{
    Access, ConversationPatch, ConversationRecord, MessageEdit, MessageRecord, ParticipantRecord,
    UserPatch, UserRecord,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A condition that the domain checked a moment earlier no longer holds (a race); the
    /// caller answers as if it had seen the new state.
    #[error("condition failed: {0:?}")]
    ConditionFailed(Failed),
    #[error("storage error: {0}")]
    Backend(String),
}

/// Which condition of a write failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    ConversationMissing,
    NotParticipant,
    ReferencedMissing,
    MessageMissing,
    /// `upsert_conversation` with `only_if_new`: the conversation exists (and is live).
    ConversationExists,
    /// `edit_message`: the patch would leave `custom` with more than `max_custom_keys` keys.
    TooManyCustomKeys,
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The key of an item that `get_items` can fetch in one batch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ItemKey {
    User(String),
    Conversation(String),
    Participant {
        conversation_id: String,
        user_id: String,
    },
    Message {
        conversation_id: String,
        message_id: String,
    },
    /// A user's typer item (`store::typing`); read only while live (`until` not passed).
    Typer {
        conversation_id: String,
        user_id: String,
    },
}

/// What `get_items` found; missing and expired items are absent.
#[derive(Debug, Clone, Default)]
pub struct Items {
    pub users: HashMap<String, UserRecord>,
    pub conversations: HashMap<String, ConversationRecord>,
    /// Keyed by (conversation id, user id).
    pub participants: HashMap<(String, String), ParticipantRecord>,
    /// Keyed by (conversation id, message id).
    pub messages: HashMap<(String, String), MessageRecord>,
    /// Keyed by (conversation id, user id); only live typers.
    pub typers: HashMap<(String, String), typing::TyperRecord>,
    /// Every key these items answer for, found or not (filled in by the domain), so that an
    /// item known to be missing is not read again.
    pub looked_up: HashSet<ItemKey>,
}

impl Items {
    pub fn participant(&self, conversation_id: &str, user_id: &str) -> Option<&ParticipantRecord> {
        self.participants
            .get(&(conversation_id.to_string(), user_id.to_string()))
    }

    pub fn message(&self, conversation_id: &str, message_id: &str) -> Option<&MessageRecord> {
        self.messages
            .get(&(conversation_id.to_string(), message_id.to_string()))
    }

    pub fn typer(&self, conversation_id: &str, user_id: &str) -> Option<&typing::TyperRecord> {
        self.typers
            .get(&(conversation_id.to_string(), user_id.to_string()))
    }
}

/// Conditions that must hold, atomically, for a message to be created.
#[derive(Debug, Clone, Default)]
pub struct CreateConditions {
    /// This user must be an unexpired participant with `ReadWrite` access.
    pub writer: Option<String>,
    /// The conversation must exist (used when no participant is checked).
    pub conversation_exists: bool,
    /// This message of the same conversation must exist, unexpired.
    pub referenced_message_id: Option<String>,
    /// A key that may be used once per conversation and sender while the message it created
    /// lives.
    pub idempotency_key: Option<IdempotencyKey>,
}

/// An idempotency key in its scope: one sender's keys (or the system messages') never meet
/// another's, whatever the ids are (`docs/storage.md`, "Idempotency keys").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey {
    /// The user the message is sent as; `None` for system messages.
    pub sender: Option<String>,
    /// The client's `idempotencyKey`.
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    Created,
    /// The idempotency key was used before, by this message.
    Duplicate {
        message_id: String,
    },
}

/// A page of a conversation's messages, newest first.
#[derive(Debug, Clone, Default)]
pub struct MessagePage {
    pub messages: Vec<MessageRecord>,
    /// No older unexpired message exists beyond this page.
    pub loaded_all: bool,
}

/// Conditions on the reacting user, checked in the same transaction as the reaction write.
#[derive(Debug, Clone, Default)]
pub struct ReactionGuard {
    /// Must be an unexpired participant; with `write_access`, with `ReadWrite` access.
    pub participant: String,
    pub write_access: bool,
    /// When set, the user's stored role must not be one of these (roles without the react
    /// grant); a user with no stored role has the default role.
    pub denied_roles: Vec<String>,
    /// Whether a user with no stored role is denied (the default role lacks the grant).
    pub deny_default_role: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReactionOutcome {
    /// The reaction was added or removed.
    Changed,
    /// Nothing to do: the user had already reacted (add) or had not (remove).
    Unchanged,
    MessageMissing,
    NotParticipant,
    /// The user's stored role may not react.
    RoleDenied,
    /// The message already holds the most distinct reactions.
    TooManyReactions,
}

/// A place in a user's conversation list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedConversation {
    pub conversation_id: String,
    /// Its activity key (`schema::activity_key`): the later of the user's joining and the
    /// conversation's newest live message.
    pub position: String,
}

/// A page of a user's conversation list, latest activity first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationListPage {
    pub conversations: Vec<ListedConversation>,
    /// No conversation lies beyond this page.
    pub loaded_all: bool,
}

/// A message as the newest activity of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    pub message_id: String,
    pub created_at: i64,
    /// The message's `expiresAt` (seconds): the activity ends with it.
    pub expires_at: i64,
}

impl Activity {
    pub fn of(message: &MessageRecord) -> Self {
        Activity {
            message_id: message.id.clone(),
            created_at: message.created_at,
            expires_at: message.expires_at,
        }
    }
}

/// Every message-store port at once: what the composition root and the conformance suite hold.
/// Operations never take it; each names the ports it uses (see `crate::ports`).
pub trait Store:
    ItemReader
    + UserWriter
    + ConversationWriter
    + ConversationReader
    + ParticipantWriter
    + ParticipantRemover
    + MessageCreator
    + MessageImporter
    + MessageLister
    + MessageEditor
    + MessageDeleter
    + ReactionAdder
    + ReactionRemover
    + ReactionReader
    + ConversationLister
    + ReadMarker
    + UnreadCounter
    + ActivityWriter
{
}

impl<
        T: ItemReader
            + UserWriter
            + ConversationWriter
            + ConversationReader
            + ParticipantWriter
            + ParticipantRemover
            + MessageCreator
            + MessageImporter
            + MessageLister
            + MessageEditor
            + MessageDeleter
            + ReactionAdder
            + ReactionRemover
            + ReactionReader
            + ConversationLister
            + ReadMarker
            + UnreadCounter
            + ActivityWriter
            + ?Sized,
    > Store for T
{
}

#[async_trait]
pub trait ItemReader: Send + Sync {
    /// Fetches users, conversations, participants, messages and typers by key in one round
    /// trip.
    async fn get_items(&self, keys: &[ItemKey], now_ms: i64) -> StoreResult<Items>;
}

#[async_trait]
pub trait UserWriter: Send + Sync {
    /// Creates or updates a user (an expired record counts as missing); returns the stored record.
    async fn upsert_user(
        &self,
        user_id: &str,
        patch: &UserPatch,
        now_ms: i64,
        expires_at: i64,
    ) -> StoreResult<UserRecord>;
}

#[async_trait]
pub trait ConversationWriter: Send + Sync {
    /// Creates the conversation when missing (`created_at` = `now_ms`), applies the patch and
    /// puts the given participants, atomically. With `only_if_new`, only a missing (or expired)
    /// conversation is written: a live one is `Failed::ConversationExists` and nothing changes,
    /// so that of many racing creators exactly one creates it.
    async fn upsert_conversation(
        &self,
        conversation_id: &str,
        patch: &ConversationPatch,
        participants: &[(String, Access)],
        only_if_new: bool,
        now_ms: i64,
        expires_at: i64,
    ) -> StoreResult<()>;
}

#[async_trait]
pub trait ConversationReader: Send + Sync {
    /// The conversation and its participants.
    async fn get_conversation(
        &self,
        conversation_id: &str,
        now_ms: i64,
    ) -> StoreResult<Option<(ConversationRecord, Vec<ParticipantRecord>)>>;
}

#[async_trait]
pub trait ParticipantWriter: Send + Sync {
    /// Adds a participant or changes their access; the conversation must exist
    /// (`Failed::ConversationMissing`).
    async fn put_participant(
        &self,
        participant: &ParticipantRecord,
        now_ms: i64,
    ) -> StoreResult<()>;
}

#[async_trait]
pub trait ParticipantRemover: Send + Sync {
    /// Removes a participant; removing a missing one succeeds.
    async fn delete_participant(&self, conversation_id: &str, user_id: &str) -> StoreResult<()>;
}

#[async_trait]
pub trait MessageCreator: Send + Sync {
    /// Creates a message when every condition holds, in one transaction. A reused idempotency
    /// key is `CreateOutcome::Duplicate`; other failures are `StoreError::ConditionFailed`.
    async fn create_message(
        &self,
        message: &MessageRecord,
        conditions: &CreateConditions,
        now_ms: i64,
    ) -> StoreResult<CreateOutcome>;
}

#[async_trait]
pub trait MessageImporter: Send + Sync {
    /// Stores up to 100 messages of one existing conversation all at once, or none.
    async fn import_messages(&self, messages: &[MessageRecord], now_ms: i64) -> StoreResult<()>;
}

#[async_trait]
pub trait MessageLister: Send + Sync {
    /// A conversation's unexpired messages older than `before` (all when `None`), newest first.
    async fn list_messages(
        &self,
        conversation_id: &str,
        before: Option<&str>,
        limit: usize,
        now_ms: i64,
    ) -> StoreResult<MessagePage>;
}

#[async_trait]
pub trait MessageEditor: Send + Sync {
    /// Applies an edit to an unexpired message (sent by `required_sender` when given); `None`
    /// when the message is missing, expired or not that sender's. A `custom` patch that would
    /// leave more than `edit.max_custom_keys` keys, adding more than it removes, is
    /// `Failed::TooManyCustomKeys` and changes nothing, checked atomically with the write.
    async fn edit_message(
        &self,
        conversation_id: &str,
        message_id: &str,
        edit: &MessageEdit,
        required_sender: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<Option<MessageRecord>>;
}

#[async_trait]
pub trait MessageDeleter: Send + Sync {
    /// Deletes a message (only if sent by `required_sender`, when given); `true` if it was there.
    async fn delete_message(
        &self,
        conversation_id: &str,
        message_id: &str,
        required_sender: Option<&str>,
    ) -> StoreResult<bool>;
}

#[async_trait]
pub trait ReactionAdder: Send + Sync {
    /// Adds `guard.participant`'s reaction, atomically with the guard and the distinct-reaction
    /// limit. The per-user reaction item expires at `reaction_expires_at` (never before the
    /// message itself; readers only consult it for live messages).
    #[allow(clippy::too_many_arguments)]
    async fn add_reaction(
        &self,
        conversation_id: &str,
        message_id: &str,
        emoji: &str,
        guard: &ReactionGuard,
        max_distinct: usize,
        reaction_expires_at: i64,
        now_ms: i64,
    ) -> StoreResult<ReactionOutcome>;
}

#[async_trait]
pub trait ReactionRemover: Send + Sync {
    /// Removes `guard.participant`'s reaction, atomically with the guard.
    async fn remove_reaction(
        &self,
        conversation_id: &str,
        message_id: &str,
        emoji: &str,
        guard: &ReactionGuard,
        now_ms: i64,
    ) -> StoreResult<ReactionOutcome>;
}

#[async_trait]
pub trait ReactionReader: Send + Sync {
    /// The (message id, emoji) pairs `user_id` reacted with on messages whose ids lie in
    /// `low..=high`.
    async fn user_reactions(
        &self,
        conversation_id: &str,
        user_id: &str,
        low: &str,
        high: &str,
        now_ms: i64,
    ) -> StoreResult<HashSet<(String, String)>>;
}

#[async_trait]
pub trait ConversationLister: Send + Sync {
    /// A user's conversations, latest activity first (the later of the user's joining and the
    /// conversation's newest live message), those placed before `before` (an activity key,
    /// exclusive) when given: one query of the conversation-list index and one batch read,
    /// whatever the conversations hold.
    async fn list_conversations(
        &self,
        user_id: &str,
        before: Option<&str>,
        limit: usize,
        now_ms: i64,
    ) -> StoreResult<ConversationListPage>;

    /// Where a conversation stands in a user's list; `None` when the user is not a live
    /// participant of it.
    async fn conversation_position(
        &self,
        user_id: &str,
        conversation_id: &str,
        now_ms: i64,
    ) -> StoreResult<Option<String>>;
}

#[async_trait]
pub trait ReadMarker: Send + Sync {
    /// Marks everything sent until `at_ms` as read by the participant (a later `readUntil` is
    /// kept) and clears a mark-unread; `false` when the user is not a live participant.
    async fn mark_read(
        &self,
        conversation_id: &str,
        user_id: &str,
        at_ms: i64,
        now_ms: i64,
    ) -> StoreResult<bool>;

    /// Marks the conversation unread for the participant until their next read; `false` when
    /// the user is not a live participant.
    async fn mark_unread(
        &self,
        conversation_id: &str,
        user_id: &str,
        now_ms: i64,
    ) -> StoreResult<bool>;
}

#[async_trait]
pub trait UnreadCounter: Send + Sync {
    /// How many live messages of the conversation were created after `after_ms` (all when
    /// `None`) by anyone but `user_id` (system messages count), counting at most `cap`.
    async fn count_unread(
        &self,
        conversation_id: &str,
        user_id: &str,
        after_ms: Option<i64>,
        cap: usize,
        now_ms: i64,
    ) -> StoreResult<u64>;
}

#[async_trait]
pub trait ActivityWriter: Send + Sync {
    /// Records `activity` as the newest message of the conversation in each user's list,
    /// unless a newer one is recorded already (so a change delivered twice, or late, changes
    /// nothing).
    async fn record_activity(
        &self,
        conversation_id: &str,
        user_ids: &[String],
        activity: &Activity,
    ) -> StoreResult<()>;

    /// After message `removed_id` was deleted: each user's activity that still names it becomes
    /// `replacement` (the newest live message left), or is removed when there is none.
    async fn retract_activity(
        &self,
        conversation_id: &str,
        user_ids: &[String],
        removed_id: &str,
        replacement: Option<&Activity>,
    ) -> StoreResult<()>;
}

/// Where a conversation stands in a user's list, from its live entries there: the later of the
/// user's joining and the newest message recorded for them (both activity keys).
pub fn list_place<'a>(joined: &'a str, messaged: Option<&'a str>) -> &'a str {
    match messaged {
        Some(m) if m > joined => m,
        _ => joined,
    }
}

/// True when an item with this `expiresAt` (seconds) is gone at `now_ms`.
pub fn is_expired(expires_at: i64, now_ms: i64) -> bool {
    expires_at * 1000 <= now_ms
}
