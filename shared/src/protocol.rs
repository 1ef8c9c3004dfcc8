//! The one definition of the WebSocket frames: every frame a client sends (`ClientFrame`) and
//! every frame the server replies or pushes (`ServerFrame`), as Rust types whose serde form is
//! the JSON on the wire.
//!
//! `docs/protocol.schema.json` is generated from these types (`schema()`), for clients that
//! generate their own types from it; a test fails when the committed file is not current
//! (`NATTER_UPDATE_SCHEMA=1 cargo test -p natter-shared --lib protocol` rewrites it).
//!
//! * A client frame is a JSON object whose `action` names it. It may carry a `requestId` (any
//!   JSON value, `null` included) that the reply echoes verbatim. `IncomingFrame` holds the
//!   object and the `requestId`; `IncomingFrame::frame` reads it as a `ClientFrame`. Unknown
//!   fields are refused, with serde's message (`invalid subscribe frame: unknown field ...`).
//! * The schema describes the frames the server accepts. The Rust types read more, so that a
//!   frame the schema refuses still gets its precise error: a missing `subscriptionId` is an
//!   `error` frame, a missing `conversationId` or a bad `limit` a subscription in state
//!   `error`, and a bad `count` an `error` frame (`ws.rs` checks those).
//! * Server frames carry a `type`. Replies (`hello`, `subscription`, `error`) echo the
//!   `requestId` of the frame they answer, as their last field (`ws.rs` adds it); pushes never
//!   carry one. Every field is always present unless the schema says otherwise: `null` is a
//!   value, not an absent field.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::domain::InboxMessageSnapshot;
use crate::error::{Error, Result};
use crate::model::{ConversationSnapshot, MessageSnapshot};

// ---- Client frames ----

/// A frame a client sends. `action` names it (API Gateway routes on `$request.body.action`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum ClientFrame {
    Hello(HelloFrame),
    InboxMore(InboxMoreFrame),
    Ping(PingFrame),
    Subscribe(SubscribeFrame),
    LoadMore(LoadMoreFrame),
    Unsubscribe(UnsubscribeFrame),
    SubscribeConversations(SubscribeConversationsFrame),
    Typing(TypingFrame),
}

/// `{action: "hello"}`: who am I, and the inbox replay. Answered by `hello`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "HelloFrame", transform = with_request_id)]
pub struct HelloFrame {}

/// `{action: "inboxMore", after}`: the inbox messages after `after` (the last `messageId` the
/// client received, from `hello` or an earlier `inbox`). Answered by `inbox`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "InboxMoreFrame", transform = with_request_id)]
pub struct InboxMoreFrame {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(
        with = "String",
        required,
        length(min = 1, max = 128),
        pattern(ID_PATTERN)
    )]
    pub after: Option<String>,
}

/// `{action: "ping"}`: keeps the connection open (API Gateway closes it after 10 minutes
/// without a client frame; ping at least every 9 minutes). Answered by `pong`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "PingFrame", transform = with_request_id)]
pub struct PingFrame {}

/// `{action: "subscribe", subscriptionId, conversationId, limit?}`: the newest `limit` messages
/// of a conversation, and every change to the window from then on. Answered by `subscription`
/// (state `active` or `error`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(title = "SubscribeFrame", transform = with_request_id)]
pub struct SubscribeFrame {
    /// Chosen by the client, unique per connection; subscribing again with an id in use
    /// replaces that subscription.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(
        with = "String",
        required,
        length(min = 1, max = 128),
        pattern(ID_PATTERN)
    )]
    pub subscription_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(
        with = "String",
        required,
        length(min = 1, max = 128),
        pattern(ID_PATTERN)
    )]
    pub conversation_id: Option<String>,
    /// How many messages the first window holds: 1 to 100, 30 when absent or `null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<u32>", range(min = 1, max = 100))]
    pub limit: Option<Value>,
}

/// `{action: "loadMore", subscriptionId, count?}`: the `count` messages older than the window,
/// which then reaches back to the oldest of them. Answered by `subscription` (state `active`,
/// or `error` when the caller is no longer a participant) or `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(title = "LoadMoreFrame", transform = with_request_id)]
pub struct LoadMoreFrame {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(
        with = "String",
        required,
        length(min = 1, max = 128),
        pattern(ID_PATTERN)
    )]
    pub subscription_id: Option<String>,
    /// 1 to 100, 30 when absent or `null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<u32>", range(min = 1, max = 100))]
    pub count: Option<Value>,
}

/// `{action: "unsubscribe", subscriptionId}`: no more pushes to that subscription (an unknown
/// or ended one is fine). Answered by `subscription` (state `unsubscribed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(title = "UnsubscribeFrame", transform = with_request_id)]
pub struct UnsubscribeFrame {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(
        with = "String",
        required,
        length(min = 1, max = 128),
        pattern(ID_PATTERN)
    )]
    pub subscription_id: Option<String>,
}

/// `{action: "subscribeConversations", subscriptionId, limit?}`: the caller's `limit`
/// conversations of latest activity, and every change to them from then on. Answered by
/// `conversations` (state `active` or `error`); `loadMore` and `unsubscribe` work on it as on a
/// message subscription, and answer with `conversations` too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(title = "SubscribeConversationsFrame", transform = with_request_id)]
pub struct SubscribeConversationsFrame {
    /// Chosen by the client, unique per connection (shared with message subscriptions).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(
        with = "String",
        required,
        length(min = 1, max = 128),
        pattern(ID_PATTERN)
    )]
    pub subscription_id: Option<String>,
    /// How many conversations the first window holds: 1 to 100, 20 when absent or `null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<u32>", range(min = 1, max = 100))]
    pub limit: Option<Value>,
}

/// `{action: "typing", conversationId}`: the caller (a `ReadWrite` participant) is typing
/// there, for the next 10 seconds. No reply; an `error` frame when refused. Every subscription
/// to the conversation's messages (but the caller's own) gets a `typing` push when who is typing
/// changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(title = "TypingFrame", transform = with_request_id)]
pub struct TypingFrame {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(
        with = "String",
        required,
        length(min = 1, max = 128),
        pattern(ID_PATTERN)
    )]
    pub conversation_id: Option<String>,
}

/// Ids: 1 to 128 characters, no control characters, `#` or `/` (as in `docs/openapi.yaml`).
const ID_PATTERN: &str = r"^[^\x00-\x1F\x7F-\x9F#/]+$";

const ACTIONS: &str =
    "hello, inboxMore, ping, subscribe, loadMore, unsubscribe, subscribeConversations or typing";

/// A client frame as it arrives: its JSON object, with the `requestId` to echo.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingFrame {
    fields: Map<String, Value>,
    /// `Some(Value::Null)` for `"requestId": null`, which is echoed too.
    pub request_id: Option<Value>,
}

impl IncomingFrame {
    /// Reads the body of a frame (none reads as empty): it must be a JSON object.
    pub fn parse(body: Option<&str>) -> Result<IncomingFrame> {
        // No key twice in any object of it (serde_json would keep the last).
        let value: Value = crate::json::from_str(body.unwrap_or(""))
            .map_err(|e| Error::invalid(format!("a frame must be a JSON object: {e}")))?;
        let Value::Object(fields) = value else {
            return Err(Error::invalid("a frame must be a JSON object"));
        };
        let request_id = fields.get("requestId").cloned();
        Ok(IncomingFrame { fields, request_id })
    }

    /// The `action`, when it is a string.
    pub fn action(&self) -> Option<&str> {
        self.fields.get("action").and_then(Value::as_str)
    }

    /// The frame as a `ClientFrame`: an unknown or missing action and unknown fields are
    /// refused (`invalid_request`).
    pub fn frame(&self) -> Result<ClientFrame> {
        let action = match self.action() {
            Some(
                action @ ("hello"
                | "inboxMore"
                | "ping"
                | "subscribe"
                | "loadMore"
                | "unsubscribe"
                | "subscribeConversations"
                | "typing"),
            ) => action,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "unknown action {other:?}; expected {ACTIONS}"
                )))
            }
            None => {
                return Err(Error::invalid(format!(
                    "a frame needs an action: {ACTIONS}"
                )))
            }
        };
        let mut fields = self.fields.clone();
        fields.remove("requestId");
        serde_json::from_value(Value::Object(fields))
            .map_err(|e| Error::invalid(format!("invalid {action} frame: {e}")))
    }
}

// ---- Server frames ----

/// A frame the server sends: a reply to a client frame (`hello`, `subscription`, `error`) or a
/// push (`message.*`, `reaction.*`, `inbox.*`).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(tag = "type")]
pub enum ServerFrame {
    #[serde(rename = "hello")]
    Hello(HelloReply),
    #[serde(rename = "inbox")]
    Inbox(InboxReply),
    #[serde(rename = "pong")]
    Pong(PongReply),
    #[serde(rename = "subscription")]
    Subscription(SubscriptionReply),
    #[serde(rename = "error")]
    Error(ErrorReply),
    /// To every subscription whose window includes the new message.
    #[serde(rename = "message.created")]
    MessageCreated(MessagePush),
    #[serde(rename = "message.edited")]
    MessageEdited(MessagePush),
    #[serde(rename = "message.deleted")]
    MessageDeleted(MessageDeletedPush),
    #[serde(rename = "reaction.added")]
    ReactionAdded(ReactionPush),
    #[serde(rename = "reaction.removed")]
    ReactionRemoved(ReactionPush),
    /// To every connection of the recipient.
    #[serde(rename = "inbox.message")]
    InboxMessage(InboxMessageSnapshot),
    /// To every connection of the recipient.
    #[serde(rename = "inbox.deleted")]
    InboxDeleted(InboxDeletedPush),
    /// The reply to `subscribeConversations`, and to `loadMore` and `unsubscribe` on a
    /// conversation-list subscription.
    #[serde(rename = "conversations")]
    Conversations(ConversationsReply),
    /// To every conversation-list subscription of a participant whose window holds the
    /// conversation (a conversation that gets a message always enters it).
    #[serde(rename = "conversation.updated")]
    ConversationUpdated(ConversationPush),
    /// To the conversation-list subscriptions of a user who left a conversation (or was
    /// removed): it is no longer theirs.
    #[serde(rename = "conversation.removed")]
    ConversationRemoved(ConversationRemovedPush),
    /// To every subscription to a conversation's messages, when who is typing there changes.
    #[serde(rename = "typing")]
    Typing(TypingPush),
}

/// The reply to `hello`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = with_request_id)]
pub struct HelloReply {
    /// This connection's id: inbox messages may be sent to it while it is connected and for 24
    /// hours after.
    pub client_id: String,
    pub user_id: String,
    /// The user's oldest unexpired inbox messages, oldest first: at most 100, fewer when the
    /// next would not fit in the frame.
    pub messages: Vec<InboxMessageSnapshot>,
    /// More remain: ask for them with `inboxMore` after the last one.
    pub has_more: bool,
}

/// The reply to `inboxMore`: the next inbox messages, as in `hello`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = with_request_id)]
pub struct InboxReply {
    /// Oldest first: at most 100, fewer when the next would not fit in the frame.
    pub messages: Vec<InboxMessageSnapshot>,
    pub has_more: bool,
}

/// The reply to `ping`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(transform = with_request_id)]
pub struct PongReply {}

/// A message as a frame carries it: whole, or, when its snapshot alone could not fit in a
/// frame (more than `config::sizes::FRAME_MESSAGE_MAX_BYTES` as JSON), its short form; `GET
/// /conversations/{cid}/messages/{mid}` returns it whole.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum FrameMessage {
    Full(Box<MessageSnapshot>),
    Truncated(TruncatedMessage),
}

/// A conversation as a frame carries it: whole, with its last message as a `FrameMessage`; or,
/// when even that could not fit in a frame (thousands of participants), its short form
/// `{id, truncated: true}`: `GET /conversations/{cid}` returns it whole.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum FrameConversation {
    Full(Box<ConversationSnapshot<FrameMessage>>),
    Truncated(TruncatedConversation),
}

/// `{id, truncated: true}`: a conversation too big for a frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct TruncatedConversation {
    pub id: String,
    /// Always `true`.
    #[schemars(extend("const" = true))]
    pub truncated: bool,
}

impl FrameConversation {
    /// The conversation as frames carry it.
    pub fn of(snapshot: ConversationSnapshot) -> Result<FrameConversation> {
        let framed = snapshot.map_last_message(FrameMessage::of)?;
        if crate::sizes::json_len(&framed)? > crate::config::sizes::FRAME_MESSAGE_MAX_BYTES {
            Ok(FrameConversation::Truncated(TruncatedConversation {
                id: framed.id,
                truncated: true,
            }))
        } else {
            Ok(FrameConversation::Full(Box::new(framed)))
        }
    }

    pub fn id(&self) -> &str {
        match self {
            FrameConversation::Full(c) => &c.id,
            FrameConversation::Truncated(c) => &c.id,
        }
    }
}

/// The reply to `subscribeConversations`, and to `loadMore` and `unsubscribe` on its
/// subscription.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = with_request_id)]
pub struct ConversationsReply {
    pub subscription_id: String,
    #[serde(flatten)]
    pub state: ConversationsState,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(
    tag = "state",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum ConversationsState {
    /// Latest activity first: the first window (`subscribeConversations`) or the older ones
    /// added (`loadMore`); at most `limit`/`count`, fewer when the next would not fit in the
    /// frame.
    Active {
        conversations: Vec<FrameConversation>,
        /// No conversation with older activity remains.
        loaded_all: bool,
    },
    /// No subscription was made: `error` says why.
    Error {
        error: ErrorBody,
    },
    Unsubscribed,
}

/// `conversation.updated`: the conversation as the subscriber sees it now.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationPush {
    pub conversation: FrameConversation,
    pub subscription_id: String,
}

/// `conversation.removed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationRemovedPush {
    pub conversation_id: String,
    pub subscription_id: String,
}

/// `{id, conversationId, truncated: true}`: a message too big for a frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TruncatedMessage {
    pub id: String,
    pub conversation_id: String,
    /// Always `true`.
    #[schemars(extend("const" = true))]
    pub truncated: bool,
}

impl FrameMessage {
    /// The message as frames carry it: its short form when its snapshot is too big.
    pub fn of(snapshot: MessageSnapshot) -> Result<FrameMessage> {
        if crate::sizes::json_len(&snapshot)? > crate::config::sizes::FRAME_MESSAGE_MAX_BYTES {
            Ok(FrameMessage::Truncated(TruncatedMessage {
                id: snapshot.id,
                conversation_id: snapshot.conversation_id,
                truncated: true,
            }))
        } else {
            Ok(FrameMessage::Full(Box::new(snapshot)))
        }
    }

    pub fn id(&self) -> &str {
        match self {
            FrameMessage::Full(m) => &m.id,
            FrameMessage::Truncated(m) => &m.id,
        }
    }
}

/// The reply to `subscribe`, `loadMore` and `unsubscribe`: the subscription's state.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = with_request_id)]
pub struct SubscriptionReply {
    pub subscription_id: String,
    #[serde(flatten)]
    pub state: SubscriptionState,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(
    tag = "state",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum SubscriptionState {
    /// Messages newest first: the first window (`subscribe`) or the older ones added
    /// (`loadMore`); at most `limit`/`count`, fewer when the next would not fit in the frame.
    Active {
        messages: Vec<FrameMessage>,
        /// No older message remains: the window is the whole conversation. `false` when the
        /// reply stopped early: the window starts at its oldest message and `loadMore` goes on
        /// from there.
        loaded_all: bool,
    },
    /// No subscription was made (`subscribe`), or it has ended (`loadMore` by someone who is no
    /// longer a participant): `error` says why.
    Error {
        error: ErrorBody,
    },
    Unsubscribed,
}

/// The reply to a frame that could not be served.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(transform = with_request_id)]
pub struct ErrorReply {
    pub error: ErrorBody,
}

/// The HTTP API's error object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ErrorBody {
    /// A stable, machine-readable code (`invalid_request`, `unauthorized`, `forbidden`,
    /// `not_found`, `conflict`, `too_large`, `limit_exceeded`, `internal`).
    pub code: String,
    /// What was wrong, for people.
    pub message: String,
}

impl From<&Error> for ErrorBody {
    fn from(error: &Error) -> Self {
        ErrorBody {
            code: error.code().to_string(),
            message: error.public_message(),
        }
    }
}

/// `message.created` and `message.edited`: the message as the subscriber sees it, or its short
/// form (`truncated: true`, fetch it over HTTP) when its snapshot would not fit in a frame.
// In every push `subscriptionId` is the last field on the wire, after the change's own ones.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessagePush {
    pub message: FrameMessage,
    pub subscription_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageDeletedPush {
    pub message_id: String,
    pub subscription_id: String,
}

/// `reaction.added` and `reaction.removed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReactionPush {
    pub message_id: String,
    pub emoji: String,
    /// Who reacted (or took the reaction back).
    pub user_id: String,
    /// The emoji's count on the message after the change.
    pub count: u64,
    pub subscription_id: String,
}

/// `typing`: who is typing in the subscription's conversation now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TypingPush {
    pub subscription_id: String,
    pub conversation_id: String,
    /// The user ids of those typing, the one typing longest first; never the subscription's
    /// own user. Empty when nobody (else) types any more.
    pub users: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InboxDeletedPush {
    pub message_id: String,
}

impl ServerFrame {
    /// `{type: "error", error}`.
    pub fn error(error: &Error) -> Self {
        ServerFrame::Error(ErrorReply {
            error: error.into(),
        })
    }

    /// `{type: "subscription", subscriptionId, state: "active", messages, loadedAll}`.
    pub fn subscription_active(
        subscription_id: &str,
        messages: Vec<FrameMessage>,
        loaded_all: bool,
    ) -> Self {
        Self::subscription(
            subscription_id,
            SubscriptionState::Active {
                messages,
                loaded_all,
            },
        )
    }

    /// `{type: "subscription", subscriptionId, state: "error", error}`.
    pub fn subscription_error(subscription_id: &str, error: ErrorBody) -> Self {
        Self::subscription(subscription_id, SubscriptionState::Error { error })
    }

    /// `{type: "conversations", subscriptionId, state, ...}`.
    pub fn conversations(subscription_id: &str, state: ConversationsState) -> Self {
        ServerFrame::Conversations(ConversationsReply {
            subscription_id: subscription_id.to_string(),
            state,
        })
    }

    /// `{type: "subscription", subscriptionId, state: "unsubscribed"}`.
    pub fn unsubscribed(subscription_id: &str) -> Self {
        Self::subscription(subscription_id, SubscriptionState::Unsubscribed)
    }

    fn subscription(subscription_id: &str, state: SubscriptionState) -> Self {
        ServerFrame::Subscription(SubscriptionReply {
            subscription_id: subscription_id.to_string(),
            state,
        })
    }

    /// The frame as a JSON value.
    pub fn to_value(&self) -> Result<Value> {
        serde_json::to_value(self).map_err(|e| Error::Internal(format!("a frame: {e}")))
    }

    /// The frame as the text sent on the connection.
    pub fn to_text(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::Internal(format!("a frame: {e}")))
    }
}

// ---- The schema ----

/// Adds the optional `requestId` (any JSON value) to a frame's properties.
fn with_request_id(schema: &mut Schema) {
    let properties = schema
        .ensure_object()
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(properties) = properties {
        properties.insert(
            "requestId".into(),
            json!({
                "description": "Any JSON value, `null` included: a client frame may carry one, \
                    and the reply to it echoes it verbatim."
            }),
        );
    }
}

/// The JSON Schema (2020-12) of the protocol, as committed in `docs/protocol.schema.json`: a
/// frame is a `ClientFrame` (as the server reads it) or a `ServerFrame` (as it writes it).
pub fn schema() -> Value {
    let mut defs = Map::new();
    let mut root_of = |settings: SchemaSettings, root: fn(&mut schemars::SchemaGenerator)| {
        let mut generator = settings.into_generator();
        root(&mut generator);
        for (name, def) in generator.take_definitions(true) {
            if let Some(other) = defs.get(&name) {
                // One name, one shape: the two directions share no type that differs.
                assert_eq!(
                    other, &def,
                    "{name} differs between client and server frames"
                );
            }
            defs.insert(name, def);
        }
    };
    root_of(SchemaSettings::draft2020_12().for_deserialize(), |g| {
        g.subschema_for::<ClientFrame>();
    });
    root_of(SchemaSettings::draft2020_12().for_serialize(), |g| {
        g.subschema_for::<ServerFrame>();
    });
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "natter WebSocket protocol",
        "description": "Every JSON text frame of natter's WebSocket API: a ClientFrame (sent by \
            clients) or a ServerFrame (replies and pushes). Generated from \
            shared/src/protocol.rs; do not edit.",
        "oneOf": [
            {"$ref": "#/$defs/ClientFrame"},
            {"$ref": "#/$defs/ServerFrame"},
        ],
        "$defs": defs,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::content::{ContentBlock, FileSubtype, TextNode};
    use crate::model::{Custom, UserSnapshot};
    use crate::model::{MessageType, Origin, ReactionSnapshot, ReferencedMessageSnapshot};

    const SCHEMA_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.schema.json");

    fn incoming(text: &str) -> IncomingFrame {
        IncomingFrame::parse(Some(text)).unwrap()
    }

    /// The `invalid_request` message of reading `text` as a client frame.
    fn refusal(text: &str) -> String {
        match IncomingFrame::parse(Some(text)).and_then(|f| f.frame()) {
            Err(Error::InvalidRequest(message)) => message,
            other => panic!("{text} was not refused: {other:?}"),
        }
    }

    #[test]
    fn every_client_frame_reads_from_its_json_and_writes_back_the_same() {
        let cases = [
            (
                json!({"action": "hello"}),
                ClientFrame::Hello(HelloFrame {}),
            ),
            (
                json!({"action": "inboxMore", "after": "inb_1"}),
                ClientFrame::InboxMore(InboxMoreFrame {
                    after: Some("inb_1".into()),
                }),
            ),
            (json!({"action": "ping"}), ClientFrame::Ping(PingFrame {})),
            (
                json!({"action": "typing", "conversationId": "c1"}),
                ClientFrame::Typing(TypingFrame {
                    conversation_id: Some("c1".into()),
                }),
            ),
            (
                json!({"action": "subscribe", "subscriptionId": "s1", "conversationId": "c1"}),
                ClientFrame::Subscribe(SubscribeFrame {
                    subscription_id: Some("s1".into()),
                    conversation_id: Some("c1".into()),
                    limit: None,
                }),
            ),
            (
                json!({"action": "subscribe", "subscriptionId": "s1", "conversationId": "c1",
                    "limit": 5}),
                ClientFrame::Subscribe(SubscribeFrame {
                    subscription_id: Some("s1".into()),
                    conversation_id: Some("c1".into()),
                    limit: Some(json!(5)),
                }),
            ),
            (
                json!({"action": "loadMore", "subscriptionId": "s1", "count": 10}),
                ClientFrame::LoadMore(LoadMoreFrame {
                    subscription_id: Some("s1".into()),
                    count: Some(json!(10)),
                }),
            ),
            (
                json!({"action": "loadMore", "subscriptionId": "s1"}),
                ClientFrame::LoadMore(LoadMoreFrame {
                    subscription_id: Some("s1".into()),
                    count: None,
                }),
            ),
            (
                json!({"action": "unsubscribe", "subscriptionId": "s1"}),
                ClientFrame::Unsubscribe(UnsubscribeFrame {
                    subscription_id: Some("s1".into()),
                }),
            ),
        ];
        for (json, expected) in cases {
            let frame = incoming(&json.to_string());
            assert_eq!(frame.request_id, None);
            assert_eq!(frame.frame().unwrap(), expected, "{json}");
            assert_eq!(serde_json::to_value(&expected).unwrap(), json);
            // With a requestId: the same frame, and the id to echo.
            let mut with_id = json.clone();
            with_id["requestId"] = json!({"n": [1, 2]});
            let frame = incoming(&with_id.to_string());
            assert_eq!(frame.request_id, Some(json!({"n": [1, 2]})));
            assert_eq!(frame.frame().unwrap(), expected, "{with_id}");
        }
    }

    #[test]
    fn fields_the_checks_read_later_may_be_anything_or_missing() {
        // `ws` answers these with their own errors (a subscription in state "error" for a bad
        // limit, an error frame for a missing subscriptionId), so reading them must not fail.
        let frame = incoming(r#"{"action": "subscribe", "limit": "many", "conversationId": null}"#);
        assert_eq!(
            frame.frame().unwrap(),
            ClientFrame::Subscribe(SubscribeFrame {
                subscription_id: None,
                conversation_id: None,
                limit: Some(json!("many")),
            })
        );
        let frame = incoming(r#"{"action": "loadMore", "count": null}"#);
        assert_eq!(
            frame.frame().unwrap(),
            ClientFrame::LoadMore(LoadMoreFrame {
                subscription_id: None,
                count: None,
            })
        );
    }

    #[test]
    fn request_ids_are_any_json_value_null_included() {
        for id in [
            json!(null),
            json!(0),
            json!("r-1"),
            json!([1]),
            json!({}),
            json!(false),
        ] {
            let text = json!({"requestId": id, "action": "hello"}).to_string();
            assert_eq!(incoming(&text).request_id, Some(id));
        }
        // Even a frame that is refused has one to echo.
        let frame = incoming(r#"{"action": "hello", "x": 1, "requestId": 9}"#);
        assert_eq!(frame.request_id, Some(json!(9)));
        assert!(frame.frame().is_err());
    }

    #[test]
    fn unknown_fields_are_refused_with_serde_s_message() {
        let cases = [
            (
                r#"{"action": "hello", "unexpected": 1}"#,
                "invalid hello frame: unknown field `unexpected`, there are no fields",
            ),
            (
                r#"{"action": "subscribe", "subscriptionId": "s", "extra": true}"#,
                "invalid subscribe frame: unknown field `extra`, expected one of \
                 `subscriptionId`, `conversationId`, `limit`",
            ),
            (
                r#"{"action": "loadMore", "subscriptionId": "s", "limit": 3}"#,
                "invalid loadMore frame: unknown field `limit`, expected `subscriptionId` or \
                 `count`",
            ),
            (
                r#"{"action": "unsubscribe", "subscriptionId": "s", "count": 1}"#,
                "invalid unsubscribe frame: unknown field `count`, expected `subscriptionId`",
            ),
            (
                r#"{"action": "subscribe", "subscriptionId": 5}"#,
                "invalid subscribe frame: invalid type: integer `5`, expected a string",
            ),
        ];
        for (text, message) in cases {
            assert_eq!(refusal(text), message, "{text}");
        }
    }

    #[test]
    fn unknown_and_missing_actions_and_non_objects_are_refused() {
        let cases = [
            (
                r#"{"action": "dance"}"#,
                "unknown action \"dance\"; expected hello, inboxMore, ping, subscribe, loadMore, \
                 unsubscribe, subscribeConversations or typing",
            ),
            (
                r#"{"action": "Hello"}"#,
                "unknown action \"Hello\"; expected hello, inboxMore, ping, subscribe, loadMore, \
                 unsubscribe, subscribeConversations or typing",
            ),
            (
                r#"{"noAction": true}"#,
                "a frame needs an action: hello, inboxMore, ping, subscribe, loadMore, unsubscribe, subscribeConversations or typing",
            ),
            (
                r#"{"action": 5}"#,
                "a frame needs an action: hello, inboxMore, ping, subscribe, loadMore, unsubscribe, subscribeConversations or typing",
            ),
            (r#"[{"action": "hello"}]"#, "a frame must be a JSON object"),
            (
                "this is not json",
                "a frame must be a JSON object: expected ident at line 1 column 2",
            ),
        ];
        for (text, message) in cases {
            assert_eq!(refusal(text), message, "{text}");
        }
        match IncomingFrame::parse(None) {
            Err(Error::InvalidRequest(message)) => assert_eq!(
                message,
                "a frame must be a JSON object: EOF while parsing a value at line 1 column 0"
            ),
            other => panic!("an empty frame was not refused: {other:?}"),
        }
    }

    fn user(id: &str) -> UserSnapshot {
        UserSnapshot {
            id: id.into(),
            name: Some("Ann".into()),
            photo_url: None,
            role: "default".into(),
            custom: Custom::from([("k".to_string(), "v".to_string())]),
        }
    }

    /// A snapshot that uses every kind of field: a reply, with reactions, formatted text, a file
    /// and a location.
    pub(super) fn snapshot() -> MessageSnapshot {
        let content = vec![
            ContentBlock::Text {
                children: vec![
                    TextNode::Text("hi ".into()),
                    TextNode::Bold {
                        children: vec![TextNode::Text("there".into())],
                    },
                ],
            },
            ContentBlock::File {
                url: "https://f.io/a.png".into(),
                filename: "a.png".into(),
                size: 12,
                subtype: Some(FileSubtype::Image),
                width: Some(3),
                height: None,
                duration: None,
            },
            ContentBlock::Location {
                latitude: 52.5,
                longitude: -4.25,
            },
        ];
        MessageSnapshot {
            id: "msg_2".into(),
            conversation_id: "c1".into(),
            kind: MessageType::UserMessage,
            sender: Some(user("ann")),
            content: content.clone(),
            plaintext: "hi there\na.png\n52.5,-4.25".into(),
            custom: Custom::new(),
            created_at: 1_700_000_000_000,
            edited_at: Some(1_700_000_000_500),
            origin: Origin::Web,
            referenced_message: Some(ReferencedMessageSnapshot {
                id: "msg_1".into(),
                conversation_id: "c1".into(),
                kind: MessageType::SystemMessage,
                sender: user("bob"),
                content,
                plaintext: "x".into(),
                custom: Custom::new(),
                created_at: 1_699_999_999_000,
                edited_at: None,
                origin: Origin::Import,
                referenced_message_id: None,
                reactions: vec![],
            }),
            reactions: vec![ReactionSnapshot {
                emoji: "👍".into(),
                count: 2,
                current_user_reacted: true,
            }],
        }
    }

    fn inbox_message() -> InboxMessageSnapshot {
        InboxMessageSnapshot {
            message_id: "inb_1".into(),
            message: crate::json::RawJson::from_value(&json!({"any": ["json", null]})),
            sender_id: "bob".into(),
            created_at: 1_700_000_000_000,
        }
    }

    /// A push as the fan-out built it: the change's fields, then `subscriptionId`.
    fn old_push(mut body: Value, subscription_id: &str) -> Value {
        if let Value::Object(fields) = &mut body {
            fields.insert("subscriptionId".into(), json!(subscription_id));
        }
        body
    }

    /// Every kind of server frame, with the JSON the routes and the fan-out built for it before
    /// the frames were typed.
    fn server_frames() -> Vec<(ServerFrame, Value)> {
        let not_found = Error::not_found("conversation \"c2\" not found");
        let snapshot = snapshot();
        let push = |subscription_id: &str| MessagePush {
            message: FrameMessage::Full(Box::new(snapshot.clone())),
            subscription_id: subscription_id.into(),
        };
        let reaction = ReactionPush {
            message_id: "msg_2".into(),
            emoji: "👍".into(),
            user_id: "bob".into(),
            count: 3,
            subscription_id: "s".into(),
        };
        vec![
            (
                ServerFrame::Hello(HelloReply {
                    client_id: "A".into(),
                    user_id: "ann".into(),
                    messages: vec![inbox_message()],
                    has_more: true,
                }),
                json!({
                    "type": "hello",
                    "clientId": "A",
                    "userId": "ann",
                    "messages": [inbox_message()],
                    "hasMore": true,
                }),
            ),
            (
                ServerFrame::Inbox(InboxReply {
                    messages: vec![inbox_message()],
                    has_more: false,
                }),
                json!({"type": "inbox", "messages": [inbox_message()], "hasMore": false}),
            ),
            (ServerFrame::Pong(PongReply {}), json!({"type": "pong"})),
            (
                ServerFrame::subscription_active(
                    "s1",
                    vec![
                        FrameMessage::Full(Box::new(snapshot.clone())),
                        FrameMessage::Truncated(TruncatedMessage {
                            id: "msg_1".into(),
                            conversation_id: "c1".into(),
                            truncated: true,
                        }),
                    ],
                    false,
                ),
                json!({
                    "type": "subscription",
                    "subscriptionId": "s1",
                    "state": "active",
                    "messages": [snapshot, {"id": "msg_1", "conversationId": "c1", "truncated": true}],
                    "loadedAll": false,
                }),
            ),
            (
                ServerFrame::subscription_active("s1", Vec::new(), true),
                json!({
                    "type": "subscription",
                    "subscriptionId": "s1",
                    "state": "active",
                    "messages": [],
                    "loadedAll": true,
                }),
            ),
            (
                ServerFrame::subscription_error("s1", (&not_found).into()),
                json!({
                    "type": "subscription",
                    "subscriptionId": "s1",
                    "state": "error",
                    "error": not_found.body()["error"],
                }),
            ),
            (
                ServerFrame::unsubscribed("s1"),
                json!({
                    "type": "subscription",
                    "subscriptionId": "s1",
                    "state": "unsubscribed",
                }),
            ),
            (
                ServerFrame::error(&Error::invalid("subscriptionId is required")),
                json!({"type": "error", "error": Error::invalid("subscriptionId is required").body()["error"]}),
            ),
            (
                ServerFrame::error(&Error::Internal("a secret detail".into())),
                json!({"type": "error", "error": {"code": "internal", "message": "internal error"}}),
            ),
            (
                ServerFrame::MessageCreated(push("s")),
                old_push(json!({"type": "message.created", "message": snapshot}), "s"),
            ),
            (
                ServerFrame::MessageEdited(push("t")),
                old_push(json!({"type": "message.edited", "message": snapshot}), "t"),
            ),
            (
                ServerFrame::MessageDeleted(MessageDeletedPush {
                    message_id: "msg_2".into(),
                    subscription_id: "s".into(),
                }),
                old_push(
                    json!({"type": "message.deleted", "messageId": "msg_2"}),
                    "s",
                ),
            ),
            (
                ServerFrame::ReactionAdded(reaction.clone()),
                old_push(
                    json!({"type": "reaction.added", "messageId": "msg_2", "emoji": "👍",
                        "userId": "bob", "count": 3}),
                    "s",
                ),
            ),
            (
                ServerFrame::ReactionRemoved(reaction),
                old_push(
                    json!({"type": "reaction.removed", "messageId": "msg_2", "emoji": "👍",
                        "userId": "bob", "count": 3}),
                    "s",
                ),
            ),
            (
                ServerFrame::InboxMessage(inbox_message()),
                json!({
                    "type": "inbox.message",
                    "messageId": "inb_1",
                    "message": {"any": ["json", null]},
                    "senderId": "bob",
                    "createdAt": 1_700_000_000_000_i64,
                }),
            ),
            (
                ServerFrame::InboxDeleted(InboxDeletedPush {
                    message_id: "inb_1".into(),
                }),
                json!({"type": "inbox.deleted", "messageId": "inb_1"}),
            ),
            (
                ServerFrame::conversations(
                    "l",
                    ConversationsState::Active {
                        conversations: vec![
                            FrameConversation::of(conversation(Some(snapshot.clone()))).unwrap(),
                            FrameConversation::Truncated(TruncatedConversation {
                                id: "c9".into(),
                                truncated: true,
                            }),
                        ],
                        loaded_all: false,
                    },
                ),
                json!({
                    "type": "conversations",
                    "subscriptionId": "l",
                    "state": "active",
                    "conversations": [
                        conversation_json(json!(snapshot)),
                        {"id": "c9", "truncated": true},
                    ],
                    "loadedAll": false,
                }),
            ),
            (
                ServerFrame::conversations("l", ConversationsState::Unsubscribed),
                json!({"type": "conversations", "subscriptionId": "l", "state": "unsubscribed"}),
            ),
            (
                ServerFrame::ConversationUpdated(ConversationPush {
                    conversation: FrameConversation::of(conversation(None)).unwrap(),
                    subscription_id: "l".into(),
                }),
                json!({
                    "type": "conversation.updated",
                    "conversation": conversation_json(Value::Null),
                    "subscriptionId": "l",
                }),
            ),
            (
                ServerFrame::ConversationRemoved(ConversationRemovedPush {
                    conversation_id: "c1".into(),
                    subscription_id: "l".into(),
                }),
                json!({"type": "conversation.removed", "conversationId": "c1", "subscriptionId": "l"}),
            ),
            (
                ServerFrame::Typing(TypingPush {
                    subscription_id: "s".into(),
                    conversation_id: "c1".into(),
                    users: vec!["alice".into(), "carol".into()],
                }),
                json!({"type": "typing", "subscriptionId": "s", "conversationId": "c1",
                    "users": ["alice", "carol"]}),
            ),
        ]
    }

    fn conversation(last_message: Option<MessageSnapshot>) -> ConversationSnapshot {
        ConversationSnapshot {
            id: "c1".into(),
            subject: Some("Plans".into()),
            photo_url: None,
            custom: Default::default(),
            created_at: 1,
            participants: [(
                "ann".to_string(),
                crate::model::ParticipantSnapshot {
                    access: crate::model::Access::ReadWrite,
                },
            )]
            .into(),
            access: Some(crate::model::Access::ReadWrite),
            joined_at: Some(1),
            last_message,
            unread_message_count: Some(2),
            read_until: None,
            everyone_read_until: None,
            is_unread: Some(true),
        }
    }

    fn conversation_json(last_message: Value) -> Value {
        json!({
            "id": "c1", "subject": "Plans", "photoUrl": null, "custom": {}, "createdAt": 1,
            "participants": {"ann": {"access": "ReadWrite"}}, "access": "ReadWrite",
            "joinedAt": 1, "lastMessage": last_message, "unreadMessageCount": 2,
            "readUntil": null, "everyoneReadUntil": null, "isUnread": true,
        })
    }

    #[test]
    fn every_server_frame_is_the_json_it_was_before_to_the_byte() {
        for (frame, old) in server_frames() {
            assert_eq!(frame.to_value().unwrap(), old);
            // Same fields in the same order: the very text clients got.
            assert_eq!(frame.to_text().unwrap(), old.to_string());
        }
    }

    /// The `const`s of a tagged union's variants in the schema.
    fn tags(schema: &Value, union: &str, tag: &str) -> Vec<String> {
        schema["$defs"][union]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["properties"][tag]["const"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn the_schema_names_every_frame() {
        let schema = schema();
        let mut written: Vec<String> = server_frames()
            .iter()
            .map(|(f, _)| f.to_value().unwrap()["type"].as_str().unwrap().to_string())
            .collect();
        written.dedup();
        assert_eq!(tags(&schema, "ServerFrame", "type"), written);
        assert_eq!(
            tags(&schema, "ClientFrame", "action"),
            [
                "hello",
                "inboxMore",
                "ping",
                "subscribe",
                "loadMore",
                "unsubscribe",
                "subscribeConversations",
                "typing"
            ]
        );
        // Client frames are closed; the ids a valid frame needs are required.
        let subscribe = &schema["$defs"]["ClientFrame"]["oneOf"][3];
        assert_eq!(subscribe["additionalProperties"], false);
        assert_eq!(
            subscribe["required"],
            json!(["action", "subscriptionId", "conversationId"])
        );
        assert!(subscribe["properties"]["requestId"].is_object());
        // Replies may echo a requestId; pushes never carry one.
        for reply in [
            "HelloReply",
            "InboxReply",
            "PongReply",
            "SubscriptionReply",
            "ErrorReply",
        ] {
            assert!(schema["$defs"][reply]["properties"]["requestId"].is_object());
        }
        for push in [
            "MessagePush",
            "ReactionPush",
            "InboxMessageSnapshot",
            "TypingPush",
        ] {
            assert!(schema["$defs"][push]["properties"]
                .get("requestId")
                .is_none());
        }
        // The bounds the schema states are the ones `ws` checks.
        let limits = crate::config::Config::default().limits;
        assert_eq!(subscribe["properties"]["limit"]["maximum"], limits.max_page);
        assert_eq!(
            subscribe["properties"]["subscriptionId"]["maxLength"],
            limits.max_id_chars
        );
        assert_eq!(limits.default_page, 30, "the schema's descriptions say 30");
    }

    /// `NATTER_UPDATE_SCHEMA=1 cargo test -p natter-shared --lib protocol` rewrites the file.
    #[test]
    fn the_committed_schema_is_current() {
        let generated = schema();
        if std::env::var("NATTER_UPDATE_SCHEMA").as_deref() == Ok("1") {
            let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
            std::fs::write(SCHEMA_PATH, text).unwrap();
        }
        let committed = std::fs::read_to_string(SCHEMA_PATH).unwrap_or_default();
        let committed: Value = serde_json::from_str(&committed).unwrap_or(Value::Null);
        assert!(
            committed == generated,
            "docs/protocol.schema.json is not what shared/src/protocol.rs generates: regenerate \
             it with `NATTER_UPDATE_SCHEMA=1 cargo test -p natter-shared --lib protocol`"
        );
    }
}

#[cfg(test)]
mod envelope_tests {
    use serde_json::json;

    use super::tests::snapshot;
    use super::*;
    use crate::config::sizes::{
        FRAME_ENVELOPE_RESERVE_BYTES, FRAME_MAX_BYTES, FRAME_MESSAGE_MAX_BYTES,
        REQUEST_ID_MAX_BYTES,
    };

    /// The widest id the limits allow: 128 characters of four bytes each.
    fn widest_id() -> String {
        "𝄞".repeat(128)
    }

    /// The bytes a frame takes around the one message it carries.
    fn envelope(frame_bytes: usize) -> usize {
        frame_bytes - crate::sizes::json_len(&snapshot()).expect("size")
    }

    #[test]
    fn every_frame_around_one_message_fits_the_reserve() {
        let sub = widest_id();
        let push = |kind: fn(MessagePush) -> ServerFrame| {
            kind(MessagePush {
                message: FrameMessage::Full(Box::new(snapshot())),
                subscription_id: sub.clone(),
            })
        };
        let request_id = json!("\"".repeat((REQUEST_ID_MAX_BYTES - 2) / 2));
        let reply = ServerFrame::subscription_active(
            &sub,
            vec![FrameMessage::Full(Box::new(snapshot()))],
            false,
        );
        let widths = [
            envelope(push(ServerFrame::MessageCreated).to_text().unwrap().len()),
            envelope(push(ServerFrame::MessageEdited).to_text().unwrap().len()),
            envelope(crate::ws::frame_len(reply, Some(&request_id)).unwrap()),
        ];
        for width in widths {
            println!("envelope: {width} bytes of {FRAME_ENVELOPE_RESERVE_BYTES}");
            assert!(width <= FRAME_ENVELOPE_RESERVE_BYTES, "{width}");
            // So the biggest message that frames carry whole fits with it.
            assert!(FRAME_MESSAGE_MAX_BYTES + width <= FRAME_MAX_BYTES);
        }
    }
}
