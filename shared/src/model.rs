//! Stored records and the snapshots the API returns.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::content::Content;

pub type Custom = BTreeMap<String, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Access {
    ReadWrite,
    Read,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::ReadWrite => "ReadWrite",
            Access::Read => "Read",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ReadWrite" => Some(Access::ReadWrite),
            "Read" => Some(Access::Read),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MessageType {
    UserMessage,
    SystemMessage,
}

impl MessageType {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::UserMessage => "UserMessage",
            MessageType::SystemMessage => "SystemMessage",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "UserMessage" => Some(MessageType::UserMessage),
            "SystemMessage" => Some(MessageType::SystemMessage),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Web,
    Rest,
    Import,
    Email,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Web => "web",
            Origin::Rest => "rest",
            Origin::Import => "import",
            Origin::Email => "email",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "web" => Some(Origin::Web),
            "rest" => Some(Origin::Rest),
            "import" => Some(Origin::Import),
            "email" => Some(Origin::Email),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: String,
    pub name: Option<String>,
    pub photo_url: Option<String>,
    pub role: Option<String>,
    pub custom: Custom,
    /// Seconds since the epoch (DynamoDB TTL).
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRecord {
    pub id: String,
    pub subject: Option<String>,
    pub photo_url: Option<String>,
    pub custom: Custom,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantRecord {
    pub conversation_id: String,
    pub user_id: String,
    pub access: Access,
    /// When the user joined (ms). Set by the first write; a change of access keeps it.
    pub joined_at: i64,
    /// Until when the user has read the conversation (ms); `None` before their first read.
    pub read_until: Option<i64>,
    /// Marked unread since the last read.
    pub marked_unread: bool,
    pub expires_at: i64,
}

impl ParticipantRecord {
    /// A participant joining at `now_ms`, with nothing read.
    pub fn joining(
        conversation_id: &str,
        user_id: &str,
        access: Access,
        now_ms: i64,
        expires_at: i64,
    ) -> Self {
        ParticipantRecord {
            conversation_id: conversation_id.to_string(),
            user_id: user_id.to_string(),
            access,
            joined_at: now_ms,
            read_until: None,
            marked_unread: false,
            expires_at,
        }
    }
}

/// One distinct reaction on a message, as kept on the message item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReactionCount {
    pub emoji: String,
    pub count: u64,
    /// When this emoji was first added (ms); orders the reactions list.
    pub first_added_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MessageRecord {
    pub conversation_id: String,
    pub id: String,
    pub kind: MessageType,
    pub sender_id: Option<String>,
    pub content: Content,
    pub custom: Custom,
    pub created_at: i64,
    pub edited_at: Option<i64>,
    pub origin: Origin,
    pub referenced_message_id: Option<String>,
    /// The referenced message's sender, copied at send time so that a reply's snapshot can be
    /// expanded without first reading the referenced message.
    pub referenced_sender_id: Option<String>,
    /// Distinct reactions with a count above zero, in first-added order.
    pub reactions: Vec<ReactionCount>,
    pub expires_at: i64,
}

/// A partial update with three states: leave as is, clear, or set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Patch<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<T> Patch<T> {
    pub fn is_absent(&self) -> bool {
        matches!(self, Patch::Absent)
    }

    /// Applies the patch to a current value.
    pub fn apply(self, current: Option<T>) -> Option<T> {
        match self {
            Patch::Absent => current,
            Patch::Null => None,
            Patch::Value(v) => Some(v),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(d)? {
            None => Patch::Null,
            Some(v) => Patch::Value(v),
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPatch {
    pub name: Patch<String>,
    pub photo_url: Patch<String>,
    pub role: Patch<String>,
    /// Replaces the whole map when present.
    pub custom: Patch<Custom>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationPatch {
    pub subject: Patch<String>,
    pub photo_url: Patch<String>,
    pub custom: Patch<Custom>,
}

/// An edit to a message: new content and a patch of `custom` (a `None` value removes the key).
#[derive(Debug, Clone, PartialEq)]
pub struct MessageEdit {
    pub content: Option<Content>,
    pub custom: Patch<BTreeMap<String, Option<String>>>,
    pub edited_at: i64,
    /// The most keys `custom` may hold after the patch (`Limits::max_custom_keys`): the store
    /// refuses, atomically with the write, a patch that would leave more and adds more keys than
    /// it removes (`Failed::TooManyCustomKeys`), however many edits race.
    pub max_custom_keys: usize,
}

// ---- Snapshots: what the API returns ----

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserSnapshot {
    pub id: String,
    pub name: Option<String>,
    pub photo_url: Option<String>,
    pub role: String,
    pub custom: Custom,
}

impl UserSnapshot {
    /// The snapshot of a user, or of a user id that has no record yet.
    pub fn of(id: &str, record: Option<&UserRecord>) -> Self {
        match record {
            Some(u) => UserSnapshot {
                id: u.id.clone(),
                name: u.name.clone(),
                photo_url: u.photo_url.clone(),
                role: u.role.clone().unwrap_or_else(|| "default".to_string()),
                custom: u.custom.clone(),
            },
            None => UserSnapshot {
                id: id.to_string(),
                name: None,
                photo_url: None,
                role: "default".to_string(),
                custom: Custom::new(),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ParticipantSnapshot {
    pub access: Access,
}

/// A conversation as one viewer sees it (TalkJS's shape). The viewer fields (`access`,
/// `joinedAt`, `readUntil`, `unreadMessageCount`, `isUnread`) are null for the secret key.
/// `M` is how the last message is carried: whole over HTTP, as a `FrameMessage` in frames.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationSnapshot<M = MessageSnapshot> {
    pub id: String,
    pub subject: Option<String>,
    pub photo_url: Option<String>,
    pub custom: Custom,
    pub created_at: i64,
    pub participants: BTreeMap<String, ParticipantSnapshot>,
    pub access: Option<Access>,
    pub joined_at: Option<i64>,
    /// The newest live message, or null.
    pub last_message: Option<M>,
    /// Others' live messages after `readUntil`, counted up to `Limits::max_unread_count`.
    pub unread_message_count: Option<u64>,
    pub read_until: Option<i64>,
    /// The earliest `readUntil` among the participants (null while one has never read).
    pub everyone_read_until: Option<i64>,
    pub is_unread: Option<bool>,
}

impl<M> ConversationSnapshot<M> {
    /// The same snapshot with its last message carried another way.
    pub fn map_last_message<N>(
        self,
        f: impl FnOnce(M) -> std::result::Result<N, crate::error::Error>,
    ) -> std::result::Result<ConversationSnapshot<N>, crate::error::Error> {
        Ok(ConversationSnapshot {
            id: self.id,
            subject: self.subject,
            photo_url: self.photo_url,
            custom: self.custom,
            created_at: self.created_at,
            participants: self.participants,
            access: self.access,
            joined_at: self.joined_at,
            last_message: self.last_message.map(f).transpose()?,
            unread_message_count: self.unread_message_count,
            read_until: self.read_until,
            everyone_read_until: self.everyone_read_until,
            is_unread: self.is_unread,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReactionSnapshot {
    pub emoji: String,
    pub count: u64,
    pub current_user_reacted: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReferencedMessageSnapshot {
    pub id: String,
    pub conversation_id: String,
    #[serde(rename = "type")]
    pub kind: MessageType,
    pub sender: UserSnapshot,
    pub content: Content,
    pub plaintext: String,
    pub custom: Custom,
    pub created_at: i64,
    pub edited_at: Option<i64>,
    pub origin: Origin,
    pub referenced_message_id: Option<String>,
    pub reactions: Vec<ReactionSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageSnapshot {
    pub id: String,
    pub conversation_id: String,
    #[serde(rename = "type")]
    pub kind: MessageType,
    pub sender: Option<UserSnapshot>,
    pub content: Content,
    pub plaintext: String,
    pub custom: Custom,
    pub created_at: i64,
    pub edited_at: Option<i64>,
    pub origin: Origin,
    pub referenced_message: Option<ReferencedMessageSnapshot>,
    pub reactions: Vec<ReactionSnapshot>,
}
