//! The one home of the table schema: every key prefix, key-building function, attribute name,
//! the GSI, the change marker the stream fan-out reads, and the table definition itself.
//!
//! Everything that reads or writes the DynamoDB table (`store::dynamo`, its inbox half,
//! `realtime::dynamo`, and the fan-out's stream decoding in `fanout.rs`) names keys and
//! attributes through this module, and `DynamoStore::create_table_if_missing` builds its
//! CreateTable request from [`TABLE`]. `template.yaml` deploys the same table; the test
//! `shared/tests/table_schema.rs` fails when the two disagree. `docs/storage.md` describes the
//! item layouts in prose.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | user | `USER#{userId}` | `#USER` |
//! | conversation | `CONV#{cid}` | `#CONV` |
//! | participant | `CONV#{cid}` | `#PART#{userId}` (and `gsi1pk` = `UCONV#{userId}`, `gsi1sk` = `activity_key(joinedAt, cid)`) |
//! | a participant's last-message activity | `ACT#{cid}` | `{userId}` (and `gsi1pk` = `UCONV#{userId}`, `gsi1sk` = `activity_key(createdAt of the last message, cid)`) |
//! | message | `CONV#{cid}` | `MSG#{messageId}` |
//! | idempotency key | `IDEM#{cid}#U#{userId}` (a user's send) or `IDEM#{cid}#S` (system messages) | `{idempotencyKey}` |
//! | a user's reaction | `RXU#{cid}#{userId}` | `{messageId}#{emoji}` |
//! | inbox message | `INBOX#{userId}` | `{messageId}` |
//! | connection | `CONN#{connectionId}` | `#CONN` (and, while connected, `gsi1pk` = `UCONN#{userId}`, `gsi1sk` = connectionId) |
//! | subscription | `SUBS#{cid}` | `{connectionId}#{subscriptionId}` |

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeValue, BillingMode, KeyType, ProjectionType, ScalarAttributeType, StreamViewType,
};

// ---- Key attributes and the index -----------------------------------------------------------

/// The table's partition key (S).
pub const PK: &str = "pk";
/// The table's sort key (S).
pub const SK: &str = "sk";
/// Seconds since the epoch after which an item is gone: the TTL attribute, on every item.
pub const EXPIRES_AT: &str = "expiresAt";

/// The one global secondary index, overloaded by key prefix (sparse: only items that carry its
/// keys are in it): a user's live connections (`UCONN#{userId}`) and a user's conversation list
/// by activity (`UCONV#{userId}`).
pub const GSI1: &str = "gsi1";
/// `gsi1`'s partition key (S): `UCONN#{userId}` or `UCONV#{userId}`.
pub const GSI1_PK: &str = "gsi1pk";
/// `gsi1`'s sort key (S): the connection id, or an activity key (`activity_key`).
pub const GSI1_SK: &str = "gsi1sk";

// ---- Key prefixes ---------------------------------------------------------------------------

pub const USER_PREFIX: &str = "USER#";
/// The sort key of a user item.
pub const USER_SK: &str = "#USER";
pub const CONV_PREFIX: &str = "CONV#";
/// The sort key of a conversation item.
pub const CONV_SK: &str = "#CONV";
pub const PART_PREFIX: &str = "#PART#";
/// What the sort keys of a conversation's own items (`#CONV`, `#PART#…`) begin with, and those
/// of its messages do not.
pub const CONV_OWN_SK_PREFIX: &str = "#";
pub const MSG_PREFIX: &str = "MSG#";
pub const IDEM_PREFIX: &str = "IDEM#";
/// The scope of a user's idempotency keys, before the user id (`IDEM#{cid}#U#{userId}`).
pub const IDEM_USER_SCOPE: &str = "U";
/// The scope of system messages' idempotency keys (`IDEM#{cid}#S`).
pub const IDEM_SYSTEM_SCOPE: &str = "S";
pub const RXU_PREFIX: &str = "RXU#";
pub const INBOX_PREFIX: &str = "INBOX#";
pub const CONN_PREFIX: &str = "CONN#";
/// The sort key of a connection item.
pub const CONN_SK: &str = "#CONN";
pub const SUBS_PREFIX: &str = "SUBS#";
/// Who is typing in a conversation: `TYPING#{cid}`, one item per typer, sort key the user id.
pub const TYPING_PREFIX: &str = "TYPING#";
/// The prefix of `gsi1pk` on a connected connection.
pub const UCONN_PREFIX: &str = "UCONN#";
/// The prefix of `gsi1pk` on a user's conversation-list entries (participant and activity
/// items).
pub const UCONV_PREFIX: &str = "UCONV#";
/// The partition of a conversation's per-participant activity items.
pub const ACT_PREFIX: &str = "ACT#";
/// The partition (and sort key) every function reads once at init to open its connection
/// (`DynamoStore::warm_up`). Nothing is ever written there: every other partition key begins
/// with a letter. IAM allows the functions `GetItem` on this partition only.
pub const WARM_UP_PK: &str = "#WARMUP";
/// Between the parts of a composite key (`RXU#{cid}#{userId}`, `{messageId}#{emoji}`,
/// `{connectionId}#{subscriptionId}`).
pub const KEY_SEPARATOR: char = '#';

// ---- Keys -----------------------------------------------------------------------------------

pub fn user_pk(user_id: &str) -> String {
    format!("{USER_PREFIX}{user_id}")
}

pub fn conv_pk(conversation_id: &str) -> String {
    format!("{CONV_PREFIX}{conversation_id}")
}

pub fn part_sk(user_id: &str) -> String {
    format!("{PART_PREFIX}{user_id}")
}

pub fn msg_sk(message_id: &str) -> String {
    format!("{MSG_PREFIX}{message_id}")
}

/// The partition of one sender's idempotency keys in one conversation: `IDEM#{cid}#U#{userId}`
/// for a user, `IDEM#{cid}#S` for system messages. Ids hold no `#`, so a scope can never be
/// mistaken for another (a user named `system` is `U#system`), and the sender's id sits in the
/// partition key, so that the longest ids and key (512 bytes each) still fit DynamoDB's key
/// limits (2048 bytes for a partition key, 1024 for a sort key).
pub fn idem_pk(conversation_id: &str, sender: Option<&str>) -> String {
    match sender {
        Some(user_id) => format!(
            "{IDEM_PREFIX}{conversation_id}{KEY_SEPARATOR}{IDEM_USER_SCOPE}{KEY_SEPARATOR}{user_id}"
        ),
        None => format!("{IDEM_PREFIX}{conversation_id}{KEY_SEPARATOR}{IDEM_SYSTEM_SCOPE}"),
    }
}

/// The sort key of an idempotency key item: the client's key itself.
pub fn idem_sk(key: &str) -> String {
    key.to_owned()
}

pub fn rxu_pk(conversation_id: &str, user_id: &str) -> String {
    format!("{RXU_PREFIX}{conversation_id}{KEY_SEPARATOR}{user_id}")
}

pub fn rxu_sk(message_id: &str, emoji: &str) -> String {
    format!("{message_id}{KEY_SEPARATOR}{emoji}")
}

/// A reaction item's sort key as (message id, emoji). Message ids hold no `#`.
pub fn split_rxu_sk(sk: &str) -> Option<(&str, &str)> {
    sk.split_once(KEY_SEPARATOR)
}

pub fn inbox_pk(user_id: &str) -> String {
    format!("{INBOX_PREFIX}{user_id}")
}

pub fn conn_pk(connection_id: &str) -> String {
    format!("{CONN_PREFIX}{connection_id}")
}

pub fn subs_pk(conversation_id: &str) -> String {
    format!("{SUBS_PREFIX}{conversation_id}")
}

/// A subscription's sort key. The connection id is API Gateway's (16 characters), so with a
/// subscription id of at most 512 bytes it stays far below the sort key's 1024 bytes.
pub fn subs_sk(connection_id: &str, subscription_id: &str) -> String {
    format!("{connection_id}{KEY_SEPARATOR}{subscription_id}")
}

/// The partition of a conversation's typers (sort key: the user id).
pub fn typing_pk(conversation_id: &str) -> String {
    format!("{TYPING_PREFIX}{conversation_id}")
}

/// `gsi1pk` of a connected connection of this user.
pub fn uconn_pk(user_id: &str) -> String {
    format!("{UCONN_PREFIX}{user_id}")
}

/// `gsi1pk` of a user's conversation-list entries.
pub fn uconv_pk(user_id: &str) -> String {
    format!("{UCONV_PREFIX}{user_id}")
}

pub fn act_pk(conversation_id: &str) -> String {
    format!("{ACT_PREFIX}{conversation_id}")
}

/// A place in a user's conversation list: the time (ms, 13 digits, so that text order is time
/// order until the year 2286) and the conversation id, which breaks ties. Newest first is
/// descending order of this key.
pub fn activity_key(at_ms: i64, conversation_id: &str) -> String {
    format!("{:013}{KEY_SEPARATOR}{conversation_id}", at_ms.max(0))
}

/// An activity key's conversation id.
pub fn activity_key_conversation(key: &str) -> Option<&str> {
    key.split_once(KEY_SEPARATOR).map(|(_, cid)| cid)
}

/// A primary key: `{pk, sk}`.
pub fn key(pk: String, sk: impl Into<String>) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_string(), AttributeValue::S(pk)),
        (SK.to_string(), AttributeValue::S(sk.into())),
    ])
}

// ---- Attributes -----------------------------------------------------------------------------

/// The attributes of the items beside their keys and `expiresAt`, by the items that carry them.
pub mod attr {
    // users
    pub const NAME: &str = "name";
    pub const ROLE: &str = "role";
    // users and conversations
    pub const PHOTO_URL: &str = "photoUrl";
    /// A map of strings (users, conversations, messages).
    pub const CUSTOM: &str = "custom";
    // conversations
    pub const SUBJECT: &str = "subject";
    /// Milliseconds (conversations, messages, inbox messages).
    pub const CREATED_AT: &str = "createdAt";
    // participants
    /// `ReadWrite` or `Read`.
    pub const ACCESS: &str = "access";
    /// When the participant joined (ms).
    pub const JOINED_AT: &str = "joinedAt";
    /// Until when the participant has read (ms); absent before the first read.
    pub const READ_UNTIL: &str = "readUntil";
    /// `true` after a mark-unread, until the next read.
    pub const MARKED_UNREAD: &str = "markedUnread";
    // activity items
    /// The id of the newest message seen for this activity item.
    pub const LAST_MESSAGE_ID: &str = "lastMessageId";
    // messages
    pub const TYPE: &str = "type";
    /// Messages and inbox messages.
    pub const SENDER_ID: &str = "senderId";
    /// The content as JSON text.
    pub const CONTENT: &str = "content";
    pub const EDITED_AT: &str = "editedAt";
    pub const ORIGIN: &str = "origin";
    pub const REF_ID: &str = "refId";
    pub const REF_SENDER_ID: &str = "refSenderId";
    /// Reaction counts: emoji → N.
    pub const RXN: &str = "rxn";
    /// When each emoji was first added (ms): emoji → N.
    pub const RXT: &str = "rxt";
    /// Each emoji's place among those added in one millisecond: emoji → N.
    pub const RXO: &str = "rxo";
    /// The next `rxo` place.
    pub const RXQ: &str = "rxq";
    // idempotency keys
    pub const MESSAGE_ID: &str = "messageId";
    // inbox messages
    /// The JSON value as text.
    pub const MESSAGE: &str = "message";
    // connections and subscriptions
    pub const USER_ID: &str = "userId";
    // connections
    pub const CONNECTED_AT: &str = "connectedAt";
    pub const CONNECTED: &str = "connected";
    /// Subscription id → conversation id.
    pub const SUBS: &str = "subs";
    // subscriptions
    pub const CONNECTION_ID: &str = "connectionId";
    pub const SUBSCRIPTION_ID: &str = "subscriptionId";
    /// Absent: the window is the whole conversation.
    pub const WINDOW_START: &str = "windowStart";
    // typers
    /// When this typing spell began (N, ms).
    pub const SINCE: &str = "since";
    /// When the typer stops typing unless they type again (N, ms): the last written `typing`
    /// frame plus `config::typing::LIFETIME_MS`.
    pub const UNTIL: &str = "until";
}

/// The change marker: a message item's last change, a map the stream fan-out reads from the new
/// image: `{kind, emoji?, userId?, at}`.
pub mod chg {
    /// The marker attribute on message items.
    pub const ATTR: &str = "chg";
    /// One of the kinds below.
    pub const KIND: &str = "kind";
    /// The emoji of a reaction change.
    pub const EMOJI: &str = "emoji";
    /// Who reacted.
    pub const USER_ID: &str = "userId";
    /// When (ms).
    pub const AT: &str = "at";

    pub const CREATED: &str = "created";
    pub const EDITED: &str = "edited";
    pub const REACTION_ADDED: &str = "reaction.added";
    pub const REACTION_REMOVED: &str = "reaction.removed";
    /// Every kind the fan-out understands.
    pub const KINDS: [&str; 4] = [CREATED, EDITED, REACTION_ADDED, REACTION_REMOVED];
}

// ---- The table ------------------------------------------------------------------------------

/// One element of a key schema.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyElement {
    pub attribute_name: &'static str,
    pub key_type: KeyType,
}

/// One attribute definition (only key attributes are defined).
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeDefinition {
    pub attribute_name: &'static str,
    pub attribute_type: ScalarAttributeType,
}

/// A global secondary index.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexDefinition {
    pub index_name: &'static str,
    pub key_schema: [KeyElement; 2],
    pub projection_type: ProjectionType,
}

/// The table as CloudFormation (`template.yaml`) and `create_table_if_missing` create it.
#[derive(Debug, Clone, PartialEq)]
pub struct TableDefinition {
    pub key_schema: [KeyElement; 2],
    pub attribute_definitions: [AttributeDefinition; 4],
    pub global_secondary_indexes: [IndexDefinition; 1],
    pub billing_mode: BillingMode,
    pub stream_view_type: StreamViewType,
    /// TTL is enabled on this attribute.
    pub ttl_attribute: &'static str,
}

const fn string_attribute(name: &'static str) -> AttributeDefinition {
    AttributeDefinition {
        attribute_name: name,
        attribute_type: ScalarAttributeType::S,
    }
}

const fn hash(name: &'static str) -> KeyElement {
    KeyElement {
        attribute_name: name,
        key_type: KeyType::Hash,
    }
}

const fn range(name: &'static str) -> KeyElement {
    KeyElement {
        attribute_name: name,
        key_type: KeyType::Range,
    }
}

/// The message table: `pk`/`sk` strings, the sparse `gsi1` (all attributes projected),
/// on-demand billing, a stream of new and old images (the fan-out needs both), TTL on
/// `expiresAt`.
pub const TABLE: TableDefinition = TableDefinition {
    key_schema: [hash(PK), range(SK)],
    attribute_definitions: [
        string_attribute(PK),
        string_attribute(SK),
        string_attribute(GSI1_PK),
        string_attribute(GSI1_SK),
    ],
    global_secondary_indexes: [IndexDefinition {
        index_name: GSI1,
        key_schema: [hash(GSI1_PK), range(GSI1_SK)],
        projection_type: ProjectionType::All,
    }],
    billing_mode: BillingMode::PayPerRequest,
    stream_view_type: StreamViewType::NewAndOldImages,
    ttl_attribute: EXPIRES_AT,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_attribute_is_defined_and_every_definition_is_a_key() {
        let mut keys: Vec<&str> = TABLE.key_schema.iter().map(|k| k.attribute_name).collect();
        for index in &TABLE.global_secondary_indexes {
            keys.extend(index.key_schema.iter().map(|k| k.attribute_name));
        }
        let mut defined: Vec<&str> = TABLE
            .attribute_definitions
            .iter()
            .map(|a| a.attribute_name)
            .collect();
        keys.sort_unstable();
        defined.sort_unstable();
        assert_eq!(keys, defined);
    }

    #[test]
    fn composite_keys_split_back() {
        assert_eq!(rxu_pk("c", "u"), "RXU#c#u");
        assert_eq!(split_rxu_sk(&rxu_sk("msg_1", "👍")), Some(("msg_1", "👍")));
        assert_eq!(split_rxu_sk(&rxu_sk("m", ":a#b:")), Some(("m", ":a#b:")));
        assert_eq!(subs_sk("conn", "s1"), "conn#s1");
        assert!(CONV_SK.starts_with(CONV_OWN_SK_PREFIX));
        assert!(part_sk("u").starts_with(CONV_OWN_SK_PREFIX));
        assert!(!msg_sk("m").starts_with(CONV_OWN_SK_PREFIX));
    }

    #[test]
    fn idempotency_scopes_never_meet_and_fit_dynamodb_keys() {
        assert_eq!(idem_pk("c", Some("alice")), "IDEM#c#U#alice");
        assert_eq!(idem_pk("c", None), "IDEM#c#S");
        assert_eq!(idem_sk("k"), "k");
        // A user named like the system scope is still a user.
        assert_ne!(idem_pk("c", Some("system")), idem_pk("c", None));
        assert_ne!(idem_pk("c", Some("S")), idem_pk("c", None));
        // Not in a conversation's partition: its queries never meet them.
        assert!(!idem_pk("c", None).starts_with(CONV_PREFIX));
        // The longest ids (128 characters of 4 bytes) and key fit DynamoDB's key limits.
        let longest = "😀".repeat(128);
        assert_eq!(longest.len(), 512);
        // DynamoDB: a partition key of at most 2048 bytes, a sort key of at most 1024.
        assert!(idem_pk(&longest, Some(&longest)).len() <= 2048);
        assert!(idem_sk(&longest).len() <= 1024);
    }
}
