//! Changes to stored data that subscribers must hear about.
//!
//! On AWS these come from the table's DynamoDB stream (`fanout::stream` decodes each stream
//! record into a `Change`); the embedded store emits them directly from its writes. Either
//! way the fan-out receives the same values, so it behaves the same locally and deployed.

use crate::model::MessageRecord;

#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    MessageCreated(MessageRecord),
    MessageEdited(MessageRecord),
    /// Deleted by a user; expiry (TTL) removals are not changes anyone is told about.
    MessageDeleted {
        conversation_id: String,
        message_id: String,
    },
    ReactionAdded {
        message: MessageRecord,
        emoji: String,
        user_id: String,
        /// The emoji's count after the change.
        count: u64,
    },
    ReactionRemoved {
        message: MessageRecord,
        emoji: String,
        user_id: String,
        count: u64,
    },
    /// A new inbox message for one recipient.
    InboxCreated(crate::store::inbox::InboxRecord),
    /// An inbox message deleted by its recipient (not by expiry).
    InboxDeleted {
        user_id: String,
        message_id: String,
    },
}

impl Change {
    /// The conversation a message change belongs to; `None` for inbox changes.
    pub fn conversation_id(&self) -> Option<&str> {
        Some(match self {
            Change::MessageCreated(m) | Change::MessageEdited(m) => &m.conversation_id,
            Change::MessageDeleted {
                conversation_id, ..
            } => conversation_id,
            Change::ReactionAdded { message, .. } | Change::ReactionRemoved { message, .. } => {
                &message.conversation_id
            }
            Change::InboxCreated(_) | Change::InboxDeleted { .. } => return None,
        })
    }

    pub fn message_id(&self) -> &str {
        match self {
            Change::MessageCreated(m) | Change::MessageEdited(m) => &m.id,
            Change::MessageDeleted { message_id, .. } => message_id,
            Change::ReactionAdded { message, .. } | Change::ReactionRemoved { message, .. } => {
                &message.id
            }
            Change::InboxCreated(record) => &record.message_id,
            Change::InboxDeleted { message_id, .. } => message_id,
        }
    }
}
