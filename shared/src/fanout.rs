//! The fan-out: each change to a conversation's messages becomes pushes to the subscriptions
//! whose window includes the message.
//!
//! Input is either `Change`s (the embedded store's feed) or a DynamoDB stream event (the table's
//! stream, record by record turned into `Change`s by `change_from_record`). For one change:
//!
//! 1. one query of the conversation's subscriptions (`SUBS#{cid}`: no scan);
//! 2. the window filter: a change reaches the subscriptions whose window start is at or before
//!    its message. A message sent now has the newest id, so it enters every window; but a
//!    creation the stream delivers after someone subscribed (DynamoDB streams lag their writes)
//!    or an imported message with an old `createdAt` is older than a window that does not hold
//!    it, and pushing it as new would put it in the wrong place;
//! 3. one batch read of those subscribers' participant items: someone who left the conversation
//!    hears nothing more from it;
//! 4. the frames of `protocol`. A message snapshot is expanded once; `currentUserReacted` is per
//!    viewer, so when the message (or the one it replies to) has reactions each subscribing user's
//!    own reactions are read (one query each), and otherwise it is `false` without a query;
//! 5. posts through a `Pusher` with bounded concurrency (`FANOUT_CONCURRENCY`, default 32).
//!    A gone connection (410) is disconnected: it and all its subscriptions are removed. Any
//!    other failed post fails the change, so the stream retries it; the pushes carry snapshots
//!    and absolute counts, so a change delivered twice only repeats what clients already know.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use aws_sdk_dynamodb::types::AttributeValue;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use serde_json::Value;

use crate::changes::Change;
use crate::config::fanout::{
    DEFAULT_CONCURRENCY, MAX_CONCURRENCY, MIN_CONCURRENCY, PUSH_FIRST_BACKOFF, PUSH_MAX_ATTEMPTS,
};
use crate::domain::Context;
use crate::error::{Error, Result};
use crate::model::{MessageRecord, MessageSnapshot};
use crate::operation;
use crate::ports::{
    ConnectionLister, Disconnector, ItemReader, Port, ReactionReader, SubscriberLister,
};
use crate::protocol::{
    InboxDeletedPush, MessageDeletedPush, MessagePush, ReactionPush, ServerFrame,
};
use crate::realtime::SubscriptionRecord;
use crate::services::{ports_of, Services};
use crate::store::{ItemKey, Items};

/// A user's (message id, emoji) reactions.
type Reacted = HashSet<(String, String)>;

// ---- Posting ----

/// What became of one post to a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    Delivered,
    /// The connection is gone (410): it should be forgotten.
    Gone,
    /// Anything else, after any retries; the change should be retried.
    Failed(String),
}

/// Sends one frame to one connection.
#[async_trait]
pub trait Pusher: Send + Sync {
    async fn push(&self, connection_id: &str, frame: &str) -> PushOutcome;
}

/// The real pusher: API Gateway's management API (`POST @connections/{id}`), with throttled
/// posts (429) retried with exponential backoff.
pub struct ManagementApiPusher {
    client: aws_sdk_apigatewaymanagement::Client,
    /// Sends of one post at most, the first included.
    pub max_attempts: u32,
    /// The wait before the second send; it doubles each time.
    pub first_backoff: Duration,
}

impl ManagementApiPusher {
    pub fn new(client: aws_sdk_apigatewaymanagement::Client) -> Self {
        ManagementApiPusher {
            client,
            max_attempts: PUSH_MAX_ATTEMPTS,
            first_backoff: PUSH_FIRST_BACKOFF,
        }
    }

    /// A client for the management endpoint of a WebSocket API stage
    /// (`https://{api}.execute-api.{region}.amazonaws.com/{stage}`, or the local gateway).
    pub fn for_endpoint(sdk: &aws_config::SdkConfig, endpoint: &str) -> Self {
        let config = aws_sdk_apigatewaymanagement::config::Builder::from(sdk)
            .endpoint_url(endpoint)
            .build();
        Self::new(aws_sdk_apigatewaymanagement::Client::from_conf(config))
    }
}

#[async_trait]
impl Pusher for ManagementApiPusher {
    async fn push(&self, connection_id: &str, frame: &str) -> PushOutcome {
        let mut backoff = self.first_backoff;
        let mut last = String::new();
        for attempt in 1..=self.max_attempts.max(1) {
            let sent = self
                .client
                .post_to_connection()
                .connection_id(connection_id)
                .data(aws_smithy_types::Blob::new(frame.as_bytes()))
                .send()
                .await;
            let err = match sent {
                Ok(_) => return PushOutcome::Delivered,
                Err(err) => err,
            };
            let status = err.raw_response().map(|r| r.status().as_u16());
            let service = err.as_service_error();
            if service.is_some_and(|e| e.is_gone_exception()) || status == Some(410) {
                return PushOutcome::Gone;
            }
            let throttled =
                status == Some(429) || service.is_some_and(|e| e.is_limit_exceeded_exception());
            last = aws_sdk_apigatewaymanagement::error::DisplayErrorContext(&err).to_string();
            if !throttled || attempt == self.max_attempts {
                break;
            }
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2);
        }
        PushOutcome::Failed(last)
    }
}

// ---- The fan-out ----

/// What one change led to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub delivered: usize,
    /// Connections found gone and removed.
    pub gone: usize,
    pub failed: usize,
}

operation! {
    /// What the fan-out reads and changes in storage: a conversation's subscribers, a user's
    /// connections, participants, the viewers' reactions, and gone connections.
    pub struct FanOutPorts {
        ctx: Context,
        items: Arc<dyn ItemReader>,
        reactions: Arc<dyn ReactionReader>,
        subscribers: Arc<dyn SubscriberLister>,
        connections: Arc<dyn ConnectionLister>,
        disconnector: Arc<dyn Disconnector>,
    }
}

pub struct FanOut {
    ports: FanOutPorts,
    pusher: Arc<dyn Pusher>,
    /// Posts in flight at once.
    concurrency: usize,
}

/// `FANOUT_CONCURRENCY` (1..=`MAX_CONCURRENCY`), or the default.
pub fn concurrency_from_env() -> std::result::Result<usize, String> {
    match std::env::var("FANOUT_CONCURRENCY") {
        Err(_) => Ok(DEFAULT_CONCURRENCY),
        Ok(v) if v.trim().is_empty() => Ok(DEFAULT_CONCURRENCY),
        Ok(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (MIN_CONCURRENCY..=MAX_CONCURRENCY).contains(n))
            .ok_or_else(|| {
                format!(
                    "FANOUT_CONCURRENCY must be a whole number in {MIN_CONCURRENCY}..={MAX_CONCURRENCY}, got {v:?}"
                )
            }),
    }
}

/// One push: the connection and the frame's text.
struct Post {
    connection_id: String,
    frame: String,
}

impl FanOut {
    pub fn new(services: &Services, pusher: Arc<dyn Pusher>, concurrency: usize) -> Self {
        FanOut {
            ports: services.build(),
            pusher,
            concurrency,
        }
    }

    /// The storage ports the fan-out function holds (what its IAM policy must grant).
    pub fn ports() -> Vec<Port> {
        ports_of::<FanOutPorts>()
    }

    /// Applies changes in order; stops at the first that fails and returns its index with the
    /// error (the ones before it are done).
    pub async fn apply_all(
        &self,
        changes: &[Change],
    ) -> std::result::Result<Report, (usize, Error)> {
        let mut total = Report::default();
        for (i, change) in changes.iter().enumerate() {
            let report = self.apply(change).await.map_err(|e| (i, e))?;
            total.delivered += report.delivered;
            total.gone += report.gone;
            total.failed += report.failed;
        }
        Ok(total)
    }

    /// Pushes one change to every subscription it concerns. An error means some post (or a
    /// read) failed and the change should be delivered again.
    pub async fn apply(&self, change: &Change) -> Result<Report> {
        // Inbox changes go to the recipient's connections, not to conversation subscriptions.
        let Some(cid) = change.conversation_id() else {
            return self.apply_inbox(change).await;
        };
        let now = self.ports.ctx.now_ms();
        let message_id = change.message_id();
        let subs: Vec<SubscriptionRecord> = self
            .ports
            .subscribers
            .subscribers(cid, now)
            .await?
            .into_iter()
            .filter(|s| s.window_includes(message_id))
            .collect();
        if subs.is_empty() {
            return Ok(Report::default());
        }
        let subs = self.participants_only(cid, subs).await?;
        let posts = self.posts(cid, change, &subs).await?;
        self.send(posts).await
    }

    /// Pushes an inbox change to every live connection of its recipient (one query of the
    /// sparse connection index).
    async fn apply_inbox(&self, change: &Change) -> Result<Report> {
        let (user_id, frame) = match change {
            Change::InboxCreated(record) => (
                &record.user_id,
                ServerFrame::InboxMessage(record.clone().into()),
            ),
            Change::InboxDeleted {
                user_id,
                message_id,
            } => (
                user_id,
                ServerFrame::InboxDeleted(InboxDeletedPush {
                    message_id: message_id.clone(),
                }),
            ),
            _ => return Ok(Report::default()),
        };
        let now = self.ports.ctx.now_ms();
        let frame = frame.to_text()?;
        let posts = self
            .ports
            .connections
            .user_connections(user_id, now)
            .await?
            .into_iter()
            .map(|c| Post {
                connection_id: c.connection_id,
                frame: frame.clone(),
            })
            .collect();
        self.send(posts).await
    }

    /// The subscriptions whose user is still a participant of the conversation.
    async fn participants_only(
        &self,
        cid: &str,
        subs: Vec<SubscriptionRecord>,
    ) -> Result<Vec<SubscriptionRecord>> {
        let users: BTreeSet<&str> = subs.iter().map(|s| s.user_id.as_str()).collect();
        let keys: Vec<ItemKey> = users
            .iter()
            .map(|u| ItemKey::Participant {
                conversation_id: cid.to_string(),
                user_id: u.to_string(),
            })
            .collect();
        let items = self
            .ports
            .items
            .get_items(&keys, self.ports.ctx.now_ms())
            .await?;
        Ok(subs
            .into_iter()
            .filter(|s| items.participant(cid, &s.user_id).is_some())
            .collect())
    }

    async fn posts(
        &self,
        cid: &str,
        change: &Change,
        subs: &[SubscriptionRecord],
    ) -> Result<Vec<Post>> {
        let post = |sub: &SubscriptionRecord, frame: ServerFrame| {
            Ok(Post {
                connection_id: sub.connection_id.clone(),
                frame: frame.to_text()?,
            })
        };
        let posts = match change {
            Change::MessageCreated(m) | Change::MessageEdited(m) => {
                let kind = if matches!(change, Change::MessageCreated(_)) {
                    ServerFrame::MessageCreated
                } else {
                    ServerFrame::MessageEdited
                };
                let snapshots = self.snapshots_per_viewer(cid, m, subs).await?;
                subs.iter()
                    .filter_map(|sub| {
                        let snapshot = snapshots.get(&sub.user_id)?;
                        let push = MessagePush {
                            message: snapshot.clone(),
                            subscription_id: sub.subscription_id.clone(),
                        };
                        Some(post(sub, kind(push)))
                    })
                    .collect::<Result<_>>()?
            }
            Change::MessageDeleted { message_id, .. } => subs
                .iter()
                .map(|sub| {
                    let push = MessageDeletedPush {
                        message_id: message_id.clone(),
                        subscription_id: sub.subscription_id.clone(),
                    };
                    post(sub, ServerFrame::MessageDeleted(push))
                })
                .collect::<Result<_>>()?,
            Change::ReactionAdded {
                message,
                emoji,
                user_id,
                count,
            }
            | Change::ReactionRemoved {
                message,
                emoji,
                user_id,
                count,
            } => {
                let kind = if matches!(change, Change::ReactionAdded { .. }) {
                    ServerFrame::ReactionAdded
                } else {
                    ServerFrame::ReactionRemoved
                };
                subs.iter()
                    .map(|sub| {
                        let push = ReactionPush {
                            message_id: message.id.clone(),
                            emoji: emoji.clone(),
                            user_id: user_id.clone(),
                            count: *count,
                            subscription_id: sub.subscription_id.clone(),
                        };
                        post(sub, kind(push))
                    })
                    .collect::<Result<_>>()?
            }
            Change::InboxCreated(_) | Change::InboxDeleted { .. } => Vec::new(),
        };
        Ok(posts)
    }

    /// The message's snapshot as each subscribing user sees it (keyed by user id).
    async fn snapshots_per_viewer(
        &self,
        cid: &str,
        message: &MessageRecord,
        subs: &[SubscriptionRecord],
    ) -> Result<HashMap<String, MessageSnapshot>> {
        let ports = &self.ports;
        let snapshot = (ports.ctx)
            .expand(
                &*ports.items,
                &*ports.reactions,
                cid,
                None,
                vec![message.clone()],
                Items::default(),
            )
            .await?
            .pop()
            .ok_or_else(|| Error::Internal("expanding a message gave no snapshot".into()))?;
        let users: BTreeSet<&str> = subs.iter().map(|s| s.user_id.as_str()).collect();
        let referenced = snapshot.referenced_message.as_ref();
        let has_reactions =
            !snapshot.reactions.is_empty() || referenced.is_some_and(|r| !r.reactions.is_empty());
        if !has_reactions {
            return Ok(users
                .into_iter()
                .map(|u| (u.to_string(), snapshot.clone()))
                .collect());
        }
        let (low, high) = match referenced {
            Some(r) if r.id < snapshot.id => (r.id.clone(), snapshot.id.clone()),
            Some(r) => (snapshot.id.clone(), r.id.clone()),
            None => (snapshot.id.clone(), snapshot.id.clone()),
        };
        let now = ports.ctx.now_ms();
        // Owned, boxed futures: each reads one user's reactions.
        let reads: Vec<BoxFuture<'static, Result<(String, Reacted)>>> = users
            .into_iter()
            .map(|user| {
                let store = ports.reactions.clone();
                let (cid, user) = (cid.to_string(), user.to_string());
                let (low, high) = (low.clone(), high.clone());
                async move {
                    let reacted = store.user_reactions(&cid, &user, &low, &high, now).await?;
                    Ok((user, reacted))
                }
                .boxed()
            })
            .collect();
        let reads = futures::stream::iter(reads)
            .buffer_unordered(self.concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        let mut out = HashMap::new();
        for read in reads {
            let (user, reacted) = read?;
            out.insert(user, with_reacted(&snapshot, &reacted));
        }
        Ok(out)
    }

    async fn send(&self, posts: Vec<Post>) -> Result<Report> {
        let pushes: Vec<BoxFuture<'static, (String, PushOutcome)>> = posts
            .into_iter()
            .map(|post| {
                let pusher = self.pusher.clone();
                async move {
                    let outcome = pusher.push(&post.connection_id, &post.frame).await;
                    (post.connection_id, outcome)
                }
                .boxed()
            })
            .collect();
        let outcomes: Vec<(String, PushOutcome)> = futures::stream::iter(pushes)
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        let mut report = Report::default();
        let mut gone = HashSet::new();
        let mut first_failure = None;
        for (connection_id, outcome) in outcomes {
            match outcome {
                PushOutcome::Delivered => report.delivered += 1,
                PushOutcome::Gone => {
                    gone.insert(connection_id);
                }
                PushOutcome::Failed(why) => {
                    report.failed += 1;
                    tracing::warn!(connection_id, why, "push failed");
                    first_failure.get_or_insert(why);
                }
            }
        }
        let now = self.ports.ctx.now_ms();
        for connection_id in &gone {
            self.ports
                .disconnector
                .disconnect(connection_id, now)
                .await?;
        }
        report.gone = gone.len();
        match first_failure {
            Some(why) => Err(Error::Internal(format!(
                "{} of {} pushes failed; first: {why}",
                report.failed,
                report.failed + report.delivered
            ))),
            None => Ok(report),
        }
    }

    /// Serves one invocation of the stream function: every record in order; the first that
    /// fails and all after it are reported as batch item failures, so Lambda retries from it.
    pub async fn handle_stream_event(&self, event: Event) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        for (i, record) in event.records.iter().enumerate() {
            let change = match change_from_record(record) {
                Ok(change) => change,
                Err(why) => {
                    // Retrying cannot fix a record that cannot be read: log it and go on.
                    tracing::error!(event_id = record.event_id, why, "unreadable stream record");
                    None
                }
            };
            let Some(change) = change else { continue };
            if let Err(e) = self.apply(&change).await {
                tracing::warn!(event_id = record.event_id, error = %e, "fan-out failed; retrying from this record");
                response.batch_item_failures = event.records[i..]
                    .iter()
                    .map(|r| {
                        let mut failure = DynamoDbBatchItemFailure::default();
                        failure.item_identifier = r.change.sequence_number.clone();
                        failure
                    })
                    .collect();
                break;
            }
        }
        response
    }
}

fn with_reacted(snapshot: &MessageSnapshot, reacted: &Reacted) -> MessageSnapshot {
    let mut out = snapshot.clone();
    let mine = |mid: &str, emoji: &str| reacted.contains(&(mid.to_string(), emoji.to_string()));
    for r in &mut out.reactions {
        r.current_user_reacted = mine(&snapshot.id, &r.emoji);
    }
    if let Some(referenced) = &mut out.referenced_message {
        let rid = referenced.id.clone();
        for r in &mut referenced.reactions {
            r.current_user_reacted = mine(&rid, &r.emoji);
        }
    }
    out
}

// ---- Stream records ----

use crate::store::schema::{attr, chg, CONV_PREFIX, INBOX_PREFIX, MSG_PREFIX, PK, SK};

/// The change a DynamoDB stream record stands for: `None` for items other than messages, for
/// TTL removals (expiry is not news), and for updates that changed nothing a client sees.
pub fn change_from_record(record: &EventRecord) -> std::result::Result<Option<Change>, String> {
    let ttl_removal = record
        .user_identity
        .as_ref()
        .is_some_and(|u| u.type_ == "Service" && u.principal_id == "dynamodb.amazonaws.com");
    if ttl_removal {
        return Ok(None);
    }
    let keys = item_of(&record.change.keys)?;
    let text_key = |name: &str| {
        keys.get(name)
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
    };
    if let Some(user_id) = text_key(PK).and_then(|pk| pk.strip_prefix(INBOX_PREFIX)) {
        return match record.event_name.as_str() {
            "INSERT" => {
                let new = item_of(&record.change.new_image)?;
                let inbox =
                    crate::store::dynamo::inbox::read_inbox(&new).map_err(|e| e.to_string())?;
                Ok(Some(Change::InboxCreated(inbox)))
            }
            "REMOVE" => Ok(text_key(SK).map(|message_id| Change::InboxDeleted {
                user_id: user_id.to_string(),
                message_id: message_id.to_string(),
            })),
            _ => Ok(None),
        };
    }
    let (Some(cid), Some(mid)) = (
        text_key(PK).and_then(|pk| pk.strip_prefix(CONV_PREFIX)),
        text_key(SK).and_then(|sk| sk.strip_prefix(MSG_PREFIX)),
    ) else {
        return Ok(None);
    };
    match record.event_name.as_str() {
        "REMOVE" => Ok(Some(Change::MessageDeleted {
            conversation_id: cid.to_string(),
            message_id: mid.to_string(),
        })),
        "INSERT" | "MODIFY" => {
            let new = item_of(&record.change.new_image)?;
            if new.is_empty() {
                return Err(
                    "the record has no new image (the stream must be NEW_AND_OLD_IMAGES)".into(),
                );
            }
            let old = item_of(&record.change.old_image)?;
            // An update that left the last-change marker and everything a client sees alone
            // (such as sweeping zero reaction counts) is no news. Two edits within one
            // millisecond share a marker but not their content, so both are pushed.
            let unchanged = |name: &str| old.get(name) == new.get(name);
            if record.event_name == "MODIFY"
                && [chg::ATTR, attr::CONTENT, attr::CUSTOM, attr::EDITED_AT]
                    .into_iter()
                    .all(unchanged)
            {
                return Ok(None);
            }
            let message = crate::store::dynamo::read_message(&new).map_err(|e| e.to_string())?;
            let chg = match new.get(chg::ATTR) {
                Some(AttributeValue::M(m)) => m.clone(),
                _ => Default::default(),
            };
            let chg_text = |name: &str| chg.get(name).and_then(|v| v.as_s().ok()).cloned();
            let kind = chg_text(chg::KIND).unwrap_or_else(|| {
                if record.event_name == "INSERT" {
                    chg::CREATED
                } else {
                    chg::EDITED
                }
                .to_string()
            });
            let reaction = || -> std::result::Result<(String, String, u64), String> {
                let emoji = chg_text(chg::EMOJI).ok_or("a reaction change has no emoji")?;
                let user_id = chg_text(chg::USER_ID).ok_or("a reaction change has no userId")?;
                let count = match new.get(attr::RXN) {
                    Some(AttributeValue::M(counts)) => counts
                        .get(&emoji)
                        .and_then(|v| v.as_n().ok())
                        .and_then(|n| n.parse::<u64>().ok())
                        .unwrap_or(0),
                    _ => 0,
                };
                Ok((emoji, user_id, count))
            };
            Ok(Some(match kind.as_str() {
                chg::CREATED => Change::MessageCreated(message),
                chg::EDITED => Change::MessageEdited(message),
                chg::REACTION_ADDED => {
                    let (emoji, user_id, count) = reaction()?;
                    Change::ReactionAdded {
                        message,
                        emoji,
                        user_id,
                        count,
                    }
                }
                chg::REACTION_REMOVED => {
                    let (emoji, user_id, count) = reaction()?;
                    Change::ReactionRemoved {
                        message,
                        emoji,
                        user_id,
                        count,
                    }
                }
                other => return Err(format!("unknown change kind {other:?}")),
            }))
        }
        other => Err(format!("unknown event name {other:?}")),
    }
}

/// A stream image (DynamoDB JSON as the Lambda event carries it) as SDK attribute values.
fn item_of<T: serde::Serialize>(
    image: &T,
) -> std::result::Result<HashMap<String, AttributeValue>, String> {
    match serde_json::to_value(image).map_err(|e| e.to_string())? {
        Value::Null => Ok(HashMap::new()),
        Value::Object(fields) => fields
            .into_iter()
            .map(|(k, v)| Ok((k, attribute_from_json(&v)?)))
            .collect(),
        other => Err(format!("an image is not a map: {other}")),
    }
}

/// One DynamoDB JSON attribute value (`{"S": "x"}`, `{"M": {...}}`, ...) as an SDK value.
pub fn attribute_from_json(value: &Value) -> std::result::Result<AttributeValue, String> {
    let bad = || format!("not a DynamoDB attribute value: {value}");
    let Value::Object(fields) = value else {
        return Err(bad());
    };
    let (tag, inner) = fields.iter().next().ok_or_else(bad)?;
    let strings = |v: &Value| -> std::result::Result<Vec<String>, String> {
        v.as_array()
            .ok_or_else(bad)?
            .iter()
            .map(|s| s.as_str().map(str::to_string).ok_or_else(bad))
            .collect()
    };
    let binary = |s: &str| -> std::result::Result<aws_smithy_types::Blob, String> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(aws_smithy_types::Blob::new)
            .map_err(|e| e.to_string())
    };
    Ok(match tag.as_str() {
        "S" => AttributeValue::S(inner.as_str().ok_or_else(bad)?.to_string()),
        "N" => AttributeValue::N(inner.as_str().ok_or_else(bad)?.to_string()),
        "BOOL" => AttributeValue::Bool(inner.as_bool().ok_or_else(bad)?),
        "NULL" => AttributeValue::Null(inner.as_bool().unwrap_or(true)),
        "B" => AttributeValue::B(binary(inner.as_str().ok_or_else(bad)?)?),
        "SS" => AttributeValue::Ss(strings(inner)?),
        "NS" => AttributeValue::Ns(strings(inner)?),
        "BS" => AttributeValue::Bs(
            strings(inner)?
                .iter()
                .map(|s| binary(s))
                .collect::<std::result::Result<_, _>>()?,
        ),
        "L" => AttributeValue::L(
            inner
                .as_array()
                .ok_or_else(bad)?
                .iter()
                .map(attribute_from_json)
                .collect::<std::result::Result<_, _>>()?,
        ),
        "M" => AttributeValue::M(
            inner
                .as_object()
                .ok_or_else(bad)?
                .iter()
                .map(|(k, v)| Ok((k.clone(), attribute_from_json(v)?)))
                .collect::<std::result::Result<_, String>>()?,
        ),
        _ => return Err(bad()),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::json;

    use super::*;
    use crate::auth::Identity;
    use crate::clock::{Clock, SystemClock};
    use crate::config::Config;
    use crate::domain::{PutConversation, SendMessage};
    use crate::realtime::ConnectionRecord;
    use crate::scripted_http::{Received, Reply};

    /// Records every post; connections listed in `gone` answer 410, in `failing` fail.
    #[derive(Default)]
    struct FakePusher {
        posts: Mutex<Vec<(String, Value)>>,
        gone: Vec<String>,
        failing: Vec<String>,
    }

    #[async_trait]
    impl Pusher for FakePusher {
        async fn push(&self, connection_id: &str, frame: &str) -> PushOutcome {
            if let Ok(mut posts) = self.posts.lock() {
                posts.push((
                    connection_id.to_string(),
                    serde_json::from_str(frame).unwrap(),
                ));
            }
            if self.gone.iter().any(|c| c == connection_id) {
                PushOutcome::Gone
            } else if self.failing.iter().any(|c| c == connection_id) {
                PushOutcome::Failed("boom".into())
            } else {
                PushOutcome::Delivered
            }
        }
    }

    struct Setup {
        services: Services,
        feed: crate::changes::ChangeReceiver,
    }

    async fn setup() -> Setup {
        let (services, feed) = Services::memory(Arc::new(SystemClock), Config::default());
        let body = serde_json::from_value(json!({"participants": ["alice", "bob"]})).unwrap();
        services
            .build::<PutConversation>()
            .run(&Identity::Secret, "c1", body)
            .await
            .unwrap();
        let realtime = services.realtime.clone();
        let now = SystemClock.now_ms();
        for (conn, user) in [("A", "alice"), ("B", "bob"), ("E", "eve")] {
            realtime
                .put_connection(&ConnectionRecord::new(conn, user, now))
                .await
                .unwrap();
            let sub = SubscriptionRecord {
                conversation_id: "c1".into(),
                connection_id: conn.into(),
                subscription_id: "s".into(),
                user_id: user.into(),
                window_start: None,
                expires_at: 0,
            };
            realtime.put_subscription(&sub, now).await.unwrap();
        }
        Setup { services, feed }
    }

    fn fan_out(setup: &Setup, pusher: Arc<FakePusher>) -> FanOut {
        FanOut::new(&setup.services, pusher, 4)
    }

    async fn send(setup: &mut Setup, user: &str, text: &str) -> Change {
        let identity = Identity::User {
            user_id: user.into(),
            role: None,
        };
        let body = serde_json::from_value(json!({ "text": text })).unwrap();
        setup
            .services
            .build::<SendMessage>()
            .run(&identity, "c1", body)
            .await
            .unwrap();
        setup.feed.recv().await.unwrap()
    }

    #[tokio::test]
    async fn pushes_reach_participants_only_and_gone_connections_are_removed() {
        let mut setup = setup().await;
        let pusher = Arc::new(FakePusher {
            gone: vec!["B".into()],
            ..Default::default()
        });
        let change = send(&mut setup, "alice", "hi").await;
        let report = fan_out(&setup, pusher.clone())
            .apply(&change)
            .await
            .unwrap();
        // eve subscribed but is no participant: nothing for her.
        assert_eq!(
            report,
            Report {
                delivered: 1,
                gone: 1,
                failed: 0
            }
        );
        let posts = pusher.posts.lock().unwrap().clone();
        let mut to: Vec<&str> = posts.iter().map(|(c, _)| c.as_str()).collect();
        to.sort();
        assert_eq!(to, vec!["A", "B"]);
        assert_eq!(posts[0].1["type"], "message.created");
        assert_eq!(posts[0].1["subscriptionId"], "s");
        let now = SystemClock.now_ms();
        let bob = (setup.services.realtime)
            .get_connection("B", now)
            .await
            .unwrap()
            .unwrap();
        assert!(!bob.connected && bob.subscriptions.is_empty());
        assert_eq!(
            setup
                .services
                .realtime
                .subscribers("c1", now)
                .await
                .unwrap()
                .len(),
            2
        );
    }

    #[tokio::test]
    async fn a_failed_post_fails_the_change_and_the_rest_of_the_batch() {
        let mut setup = setup().await;
        let pusher = Arc::new(FakePusher {
            failing: vec!["A".into()],
            ..Default::default()
        });
        let first = send(&mut setup, "bob", "one").await;
        let fan_out = fan_out(&setup, pusher);
        assert!(fan_out.apply(&first).await.is_err());
        let second = send(&mut setup, "bob", "two").await;
        let (failed, _) = fan_out
            .apply_all(&[
                Change::MessageDeleted {
                    conversation_id: "c9".into(),
                    message_id: "msg_x".into(),
                },
                second,
            ])
            .await
            .unwrap_err();
        assert_eq!(failed, 1);
    }

    fn remove_record(seq: &str, mid: &str, ttl: bool) -> Value {
        let mut record = json!({
            "eventID": seq,
            "eventName": "REMOVE",
            "awsRegion": "us-east-1",
            "dynamodb": {
                "Keys": {"pk": {"S": "CONV#c1"}, "sk": {"S": format!("MSG#{mid}")}},
                "SequenceNumber": seq,
                "SizeBytes": 1,
            },
        });
        if ttl {
            record["userIdentity"] =
                json!({"type": "Service", "principalId": "dynamodb.amazonaws.com"});
        }
        record
    }

    #[tokio::test]
    async fn stream_batches_report_failures_from_the_first_failed_record() {
        let setup = setup().await;
        let failing = Arc::new(FakePusher {
            failing: vec!["A".into()],
            ..Default::default()
        });
        let event: Event = serde_json::from_value(json!({"Records": [
            remove_record("1", "msg_1", true),
            remove_record("2", "msg_2", false),
            remove_record("3", "msg_3", false),
        ]}))
        .unwrap();
        let response = fan_out(&setup, failing.clone())
            .handle_stream_event(event.clone())
            .await;
        let failed: Vec<Option<String>> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        assert_eq!(failed, vec![Some("2".to_string()), Some("3".to_string())]);
        // The TTL removal pushed nothing; record 2 was tried, record 3 was not.
        let posts = failing.posts.lock().unwrap().clone();
        assert!(posts.iter().all(|(_, frame)| frame["messageId"] == "msg_2"));
        assert_eq!(posts[0].1["type"], "message.deleted");

        let fine = Arc::new(FakePusher::default());
        let response = fan_out(&setup, fine.clone())
            .handle_stream_event(event)
            .await;
        assert!(response.batch_item_failures.is_empty());
        // msg_2 and msg_3 to alice and bob (eve is no participant).
        assert_eq!(fine.posts.lock().unwrap().len(), 4);
    }

    /// The management API's answer for `status`: 410 gone, 429 throttled, 400 refused, else 200.
    fn management_reply(status: u16) -> Reply {
        let (error_type, body) = match status {
            410 => ("GoneException", r#"{"message":"Gone"}"#),
            429 => ("LimitExceededException", r#"{"message":"slow down"}"#),
            400 => ("BadRequestException", r#"{"message":"no"}"#),
            _ => return Reply::new(200, ""),
        };
        Reply::new(status, body).header(&format!("x-amzn-errortype: {error_type}"))
    }

    /// A management API answering with `statuses` in order, then 200.
    async fn scripted_server(statuses: Vec<u16>) -> (String, Received) {
        let replies = statuses.into_iter().map(management_reply).collect();
        crate::scripted_http::scripted_server(replies, management_reply(200)).await
    }

    fn real_pusher(endpoint: &str) -> ManagementApiPusher {
        let mut pusher =
            ManagementApiPusher::for_endpoint(&crate::scripted_http::sdk_config(), endpoint);
        pusher.first_backoff = Duration::from_millis(5);
        pusher
    }

    #[tokio::test]
    async fn the_management_api_pusher_reads_410_and_retries_429() {
        let (endpoint, count) = scripted_server(vec![410]).await;
        assert_eq!(
            real_pusher(&endpoint).push("c=", "{}").await,
            PushOutcome::Gone
        );
        assert_eq!(count.count(), 1);

        let (endpoint, count) = scripted_server(vec![429, 429, 429]).await;
        assert_eq!(
            real_pusher(&endpoint).push("c=", "{}").await,
            PushOutcome::Delivered
        );
        assert_eq!(count.count(), 4);

        let (endpoint, count) = scripted_server(vec![429; 20]).await;
        let outcome = real_pusher(&endpoint).push("c=", "{}").await;
        assert!(matches!(outcome, PushOutcome::Failed(_)), "{outcome:?}");
        assert_eq!(count.count(), 6, "bounded retries");

        let (endpoint, count) = scripted_server(vec![400]).await;
        let outcome = real_pusher(&endpoint).push("c=", "{}").await;
        assert!(matches!(outcome, PushOutcome::Failed(_)), "{outcome:?}");
        assert_eq!(count.count(), 1, "no retry for other errors");
    }

    #[test]
    fn stream_images_convert_to_sdk_values() {
        let value = json!({"M": {"a": {"S": "x"}, "n": {"N": "3"}, "l": {"L": [{"BOOL": true}, {"NULL": true}]}}});
        let converted = attribute_from_json(&value).unwrap();
        let AttributeValue::M(map) = converted else {
            panic!("not a map")
        };
        assert_eq!(map["a"], AttributeValue::S("x".into()));
        assert_eq!(map["n"], AttributeValue::N("3".into()));
        assert!(attribute_from_json(&json!({"Q": 1})).is_err());
        assert!(attribute_from_json(&json!("S")).is_err());
    }
}
