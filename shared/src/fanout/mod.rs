//! The fan-out, per change: each change to a conversation's messages becomes pushes to the
//! subscriptions whose window includes the message; each inbox change, pushes to the
//! recipient's connections. This layer works over ports only: the storage ports of
//! `FanOutPorts` and the push port `Pusher`.
//!
//! The layers around it, outside in:
//!
//! * `batch`: the Lambda batch adapter. It runs a stream event's records in order and reports
//!   the first that failed and every one after it as batch item failures; it knows nothing of
//!   changes or pushes. `FanOut::handle_stream_event` is this layer used with the two below.
//! * `stream`: stream-record decoding, one DynamoDB stream record to a `Change` (or nothing).
//! * this module: one `Change` to its pushes (`FanOut::apply`). The embedded store's change
//!   feed comes in here directly, with no stream records.
//! * `push`: the push port and its API Gateway adapter (`ManagementApiPusher`).
//!
//! For one change:
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
//! 5. posts through a `Pusher` with bounded concurrency (`FANOUT_CONCURRENCY`, default 128).
//!    A gone connection (410) is disconnected: it and all its subscriptions are removed. A post
//!    refused for good (413, 400, 403: see `push`) is logged with its connection and the reason
//!    and skipped, so that it never holds back the changes after it. A post that failed in a way
//!    that may pass (throttled, 5xx, a timeout, after the pusher's own retries) fails the
//!    change, so the stream retries it; the pushes carry snapshots and absolute counts, so a
//!    change delivered twice only repeats what clients already know.
//!
//! A message whose snapshot would not fit in a frame is pushed in its short form
//! (`FrameMessage::of`: `{id, conversationId, truncated: true}`), for the client to fetch.

mod batch;
mod lists;
mod push;
mod signing;
mod stream;
mod typing;

pub use push::{plain_http_connector, rustls_connector, ManagementApiPusher, PushOutcome, Pusher};
pub use stream::change_from_record;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::streams::DynamoDbEventResponse;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

use crate::changes::Change;
use crate::config::fanout::{DEFAULT_CONCURRENCY, MAX_CONCURRENCY, MIN_CONCURRENCY};
use crate::domain::Context;
use crate::domain::ConversationViews;
use crate::error::{Error, Result};
use crate::model::{MessageRecord, MessageSnapshot};
use crate::operation;
use crate::ports::{
    ActivityWriter, ConnectionLister, ConversationLister, ConversationReader, Disconnector,
    ItemReader, MessageLister, Port, ReactionReader, SubscriberLister, TypingLister, TypingRemover,
};
use crate::protocol::{
    FrameMessage, InboxDeletedPush, MessageDeletedPush, MessagePush, ReactionPush, ServerFrame,
};
use crate::realtime::SubscriptionRecord;
use crate::services::{ports_of, Services};
use crate::store::{ItemKey, Items};

/// A user's (message id, emoji) reactions.
type Reacted = HashSet<(String, String)>;

/// What one change led to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub delivered: usize,
    /// Connections found gone and removed.
    pub gone: usize,
    /// Posts refused for good, and skipped.
    pub refused: usize,
    pub failed: usize,
}

impl Report {
    fn add(&mut self, other: Report) {
        self.delivered += other.delivered;
        self.gone += other.gone;
        self.refused += other.refused;
        self.failed += other.failed;
    }
}

operation! {
    /// What the fan-out reads and changes in storage: a conversation's subscribers, a user's
    /// connections, participants, the viewers' reactions, gone connections, and typers (who
    /// is typing; a sender's typing ends with their message).
    pub struct FanOutPorts {
        ctx: Context,
        items: Arc<dyn ItemReader>,
        reactions: Arc<dyn ReactionReader>,
        subscribers: Arc<dyn SubscriberLister>,
        connections: Arc<dyn ConnectionLister>,
        disconnector: Arc<dyn Disconnector>,
        conversations: Arc<dyn ConversationReader>,
        messages: Arc<dyn MessageLister>,
        lister: Arc<dyn ConversationLister>,
        activity: Arc<dyn ActivityWriter>,
        views: ConversationViews,
        typers: Arc<dyn TypingLister>,
        typing_ends: Arc<dyn TypingRemover>,
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
            total.add(self.apply(change).await.map_err(|e| (i, e))?);
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
        // Who is typing goes to every message subscription, whatever its window (`typing`).
        if let Change::TypingChanged { user_id, .. } = change {
            return self.apply_typing(cid, user_id).await;
        }
        if let Change::MessageCreated(m) = change {
            self.end_typing(m).await?;
        }
        let mut report = match change.message_id() {
            Some(message_id) => self.apply_to_messages(cid, message_id, change).await?,
            None => Report::default(),
        };
        report.add(self.apply_to_lists(cid, change).await?);
        Ok(report)
    }

    /// Pushes a message change to the conversation's message subscriptions.
    async fn apply_to_messages(
        &self,
        cid: &str,
        message_id: &str,
        change: &Change,
    ) -> Result<Report> {
        let now = self.ports.ctx.now_ms();
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
                        let message = match FrameMessage::of(snapshot.clone()) {
                            Ok(message) => message,
                            Err(e) => return Some(Err(e)),
                        };
                        let push = MessagePush {
                            message,
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
            Change::ParticipantChanged { .. }
            | Change::ConversationChanged { .. }
            | Change::TypingChanged { .. }
            | Change::InboxCreated(_)
            | Change::InboxDeleted { .. } => Vec::new(),
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
                PushOutcome::Refused(why) => {
                    // Sending it again would be refused again: skip it rather than fail the
                    // change (and with it every change after it in the stream).
                    report.refused += 1;
                    tracing::error!(connection_id, why, "push refused; skipped");
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
                report.failed + report.delivered + report.refused
            ))),
            None => Ok(report),
        }
    }

    /// Serves one invocation of the stream function: each record decoded into a `Change` and
    /// applied, in order; the first that fails and all after it are reported as batch item
    /// failures, so Lambda retries from it (`batch::run_in_order`).
    pub async fn handle_stream_event(&self, event: Event) -> DynamoDbEventResponse {
        batch::run_in_order(&event, change_from_record, |change| async move {
            self.apply(&change).await
        })
        .await
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

#[cfg(test)]
mod tests;
