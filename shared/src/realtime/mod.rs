//! Realtime state: WebSocket connections and their windowed subscriptions.
//!
//! A small store of its own, beside the message store, with an embedded implementation and a
//! DynamoDB one that keeps its items in the same table:
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | connection | `CONN#{connId}` | `#CONN` | `userId`, `connectedAt` (ms), `connected`, `subs` (subscription id → conversation id), `expiresAt`; `gsi1pk` = `UCONN#{userId}` and `gsi1sk` = connId only while connected |
//! | subscription | `SUBS#{cid}` | `{connId}#{subId}` | `connectionId`, `subscriptionId`, `userId`, `windowStart` (absent: the whole conversation), `expiresAt` |
//!
//! API Gateway closes every connection after two hours, so a subscription expires two hours after
//! its connection was made and a connection item 24 hours after that: its id stays a "recently
//! used client id" for a day. `$disconnect` (or a 410 from the management API) marks the
//! connection not connected, takes it out of the sparse index, and deletes its subscriptions.
//! Every read ignores expired items, because DynamoDB deletes them late.

pub mod dynamo;
pub mod memory;

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::config::aws::WS_CONNECTION_MAX_SECS;
use crate::config::connections::CLIENT_ID_GRACE_SECS;
use crate::store::StoreResult;

/// A WebSocket connection as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRecord {
    pub connection_id: String,
    pub user_id: String,
    /// Milliseconds since the epoch.
    pub connected_at: i64,
    /// False once `$disconnect` ran or a push found it gone.
    pub connected: bool,
    /// Subscription id → conversation id.
    pub subscriptions: BTreeMap<String, String>,
    /// Seconds since the epoch (TTL).
    pub expires_at: i64,
}

impl ConnectionRecord {
    /// A new, connected connection.
    pub fn new(connection_id: &str, user_id: &str, connected_at_ms: i64) -> Self {
        ConnectionRecord {
            connection_id: connection_id.to_string(),
            user_id: user_id.to_string(),
            connected_at: connected_at_ms,
            connected: true,
            subscriptions: BTreeMap::new(),
            expires_at: connection_expiry(connected_at_ms),
        }
    }

    /// When subscriptions made on this connection expire (seconds).
    pub fn subscription_expiry(&self) -> i64 {
        subscription_expiry(self.connected_at)
    }
}

/// The topic of a user's conversation-list subscriptions, where a message subscription has its
/// conversation id: `#conversations#{userId}`. Ids hold no `#`, so it never names a
/// conversation, and a user's list subscriptions are one query (`SUBS#` + topic), as a
/// conversation's message subscriptions are.
pub fn conversation_list_topic(user_id: &str) -> String {
    format!("{CONVERSATION_LIST_TOPIC}{user_id}")
}

/// What every conversation-list topic begins with.
pub const CONVERSATION_LIST_TOPIC: &str = "#conversations#";

/// One subscription of a connection: to a conversation's messages, or to a user's
/// conversation list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRecord {
    /// The conversation, or `conversation_list_topic(userId)` for a conversation list.
    pub conversation_id: String,
    pub connection_id: String,
    pub subscription_id: String,
    pub user_id: String,
    /// The oldest message id in the window (for a conversation list, the place of its oldest
    /// conversation, `schema::activity_key`); `None` is everything.
    pub window_start: Option<String>,
    /// Seconds since the epoch (TTL).
    pub expires_at: i64,
}

impl SubscriptionRecord {
    /// Whether this is a conversation-list subscription.
    pub fn is_conversation_list(&self) -> bool {
        self.conversation_id.starts_with(CONVERSATION_LIST_TOPIC)
    }

    /// Whether a change to message `message_id` falls in this subscription's window.
    pub fn window_includes(&self, message_id: &str) -> bool {
        self.window_start
            .as_deref()
            .is_none_or(|start| message_id >= start)
    }
}

/// What `put_subscription` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeOutcome {
    Subscribed,
    /// The connection is unknown, expired or no longer connected.
    ConnectionGone,
    /// The connection already holds `config::connections::MAX_SUBSCRIPTIONS_PER_CONNECTION` other
    /// subscriptions.
    TooMany,
}

/// When a connection made at `connected_at_ms` expires (seconds).
pub fn connection_expiry(connected_at_ms: i64) -> i64 {
    subscription_expiry(connected_at_ms) + CLIENT_ID_GRACE_SECS
}

/// When a subscription on a connection made at `connected_at_ms` expires (seconds).
pub fn subscription_expiry(connected_at_ms: i64) -> i64 {
    connected_at_ms.div_euclid(1000) + WS_CONNECTION_MAX_SECS
}

/// Every realtime port at once, for wiring and the conformance suite.
pub trait RealtimeStore:
    ConnectionWriter
    + ConnectionReader
    + ConnectionLister
    + SubscriptionWriter
    + SubscriptionReader
    + WindowExtender
    + SubscriptionRemover
    + SubscriberLister
    + Disconnector
{
}

impl<
        T: ConnectionWriter
            + ConnectionReader
            + ConnectionLister
            + SubscriptionWriter
            + SubscriptionReader
            + WindowExtender
            + SubscriptionRemover
            + SubscriberLister
            + Disconnector
            + ?Sized,
    > RealtimeStore for T
{
}

#[async_trait]
pub trait ConnectionWriter: Send + Sync {
    /// Stores a new connection (connected, no subscriptions), replacing any item of that id.
    async fn put_connection(&self, connection: &ConnectionRecord) -> StoreResult<()>;
}

#[async_trait]
pub trait ConnectionReader: Send + Sync {
    /// The connection, connected or recently closed; `None` when missing or expired.
    async fn get_connection(
        &self,
        connection_id: &str,
        now_ms: i64,
    ) -> StoreResult<Option<ConnectionRecord>>;
}

#[async_trait]
pub trait ConnectionLister: Send + Sync {
    /// A user's connections that are still connected (one query of the sparse index).
    async fn user_connections(
        &self,
        user_id: &str,
        now_ms: i64,
    ) -> StoreResult<Vec<ConnectionRecord>>;
}

#[async_trait]
pub trait SubscriptionWriter: Send + Sync {
    /// Adds or replaces subscription `sub.subscription_id` of `sub.connection_id`; a replaced
    /// subscription to another conversation is removed with it, atomically. The stored
    /// `expires_at` is the connection's `subscription_expiry` (whatever `sub` says).
    async fn put_subscription(
        &self,
        sub: &SubscriptionRecord,
        now_ms: i64,
    ) -> StoreResult<SubscribeOutcome>;
}

#[async_trait]
pub trait SubscriptionReader: Send + Sync {
    /// A connection's subscription, when both are live.
    async fn get_subscription(
        &self,
        connection_id: &str,
        subscription_id: &str,
        now_ms: i64,
    ) -> StoreResult<Option<SubscriptionRecord>>;
}

#[async_trait]
pub trait WindowExtender: Send + Sync {
    /// Moves a subscription's window start back to `new_start` (`None`: the whole
    /// conversation). A window never shrinks: when it already reaches further, nothing changes.
    /// `false` when the subscription is missing or expired.
    async fn extend_window(
        &self,
        conversation_id: &str,
        connection_id: &str,
        subscription_id: &str,
        new_start: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<bool>;
}

#[async_trait]
pub trait SubscriptionRemover: Send + Sync {
    /// Removes a subscription; returns its conversation id when it existed.
    async fn delete_subscription(
        &self,
        connection_id: &str,
        subscription_id: &str,
    ) -> StoreResult<Option<String>>;
}

#[async_trait]
pub trait SubscriberLister: Send + Sync {
    /// Every live subscription to a conversation (one query of `SUBS#{cid}`).
    async fn subscribers(
        &self,
        conversation_id: &str,
        now_ms: i64,
    ) -> StoreResult<Vec<SubscriptionRecord>>;
}

#[async_trait]
pub trait Disconnector: Send + Sync {
    /// Marks the connection closed (kept for `CLIENT_ID_GRACE_SECS` as a recent client id) and
    /// deletes its subscriptions. Missing or already closed connections are fine.
    async fn disconnect(&self, connection_id: &str, now_ms: i64) -> StoreResult<()>;
}
