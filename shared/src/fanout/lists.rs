//! The conversation lists' side of a change: `conversation.updated` (and
//! `conversation.removed`) to the conversation-list subscriptions of the participants it
//! concerns, and the upkeep of their activity items, which place the conversation in each
//! participant's list.
//!
//! Who hears of what:
//! * a new message: every participant (its activity item moves to the message first, so the
//!   conversation enters every window);
//! * a deleted message: every participant (the unread count or last message may change; an
//!   activity item that named it moves to the newest message left);
//! * an edit: every participant, when it is the newest message (the last message changed);
//! * a join, a leave, a change of access, or of subject, photo or `custom`: every participant
//!   (the participants are part of the snapshot); the one who left gets `conversation.removed`;
//! * a read or a mark-unread: the reader, and every participant when `everyoneReadUntil`
//!   changed.
//!
//! Reactions change nothing in a list.
//!
//! For each of those users: one query of their list subscriptions (`SUBS#` + the list topic);
//! for a user who has some, one batch read of where the conversation stands in their list (a
//! window holds the conversations at or after its start) and one snapshot as they see it.

use std::collections::BTreeSet;

use futures::StreamExt;

use super::{FanOut, Post, Report};
use crate::changes::Change;
use crate::error::Result;
use crate::model::ParticipantRecord;
use crate::protocol::{ConversationPush, ConversationRemovedPush, FrameConversation, ServerFrame};
use crate::realtime::conversation_list_topic;
use crate::store::Activity;

/// Participants whose lists are looked at side by side.
const LIST_CONCURRENCY: usize = 16;

/// Who hears of a change, and who hears that the conversation is no longer theirs.
#[derive(Default)]
struct Audience {
    updated: BTreeSet<String>,
    removed: Option<String>,
}

impl FanOut {
    pub(super) async fn apply_to_lists(&self, cid: &str, change: &Change) -> Result<Report> {
        let ports = &self.ports;
        let now = ports.ctx.now_ms();
        let audience = match self.audience(cid, change, now).await? {
            Some(audience) => audience,
            None => return Ok(Report::default()),
        };
        let mut posts = Vec::new();
        if let Some(user_id) = &audience.removed {
            for sub in ports
                .subscribers
                .subscribers(&conversation_list_topic(user_id), now)
                .await?
            {
                let frame = ServerFrame::ConversationRemoved(ConversationRemovedPush {
                    conversation_id: cid.to_string(),
                    subscription_id: sub.subscription_id.clone(),
                });
                posts.push(Post {
                    connection_id: sub.connection_id,
                    frame: frame.to_text()?,
                });
            }
        }
        if audience.updated.is_empty() {
            return self.send(posts).await;
        }
        let Some((conversation, participants)) =
            ports.conversations.get_conversation(cid, now).await?
        else {
            return self.send(posts).await;
        };
        let (conversation, participants) = (&conversation, &participants);
        let per_user: Vec<Result<Vec<Post>>> = futures::stream::iter(audience.updated)
            .map(|user_id: String| async move {
                let user_id = user_id.as_str();
                let subs = ports
                    .subscribers
                    .subscribers(&conversation_list_topic(user_id), now)
                    .await?;
                if subs.is_empty() {
                    return Ok(Vec::new());
                }
                let Some(position) = ports
                    .lister
                    .conversation_position(user_id, cid, now)
                    .await?
                else {
                    return Ok(Vec::new());
                };
                let subs: Vec<_> = subs
                    .into_iter()
                    .filter(|s| s.window_includes(&position))
                    .collect();
                if subs.is_empty() {
                    return Ok(Vec::new());
                }
                let snapshot = ports
                    .views
                    .view_of(Some(user_id), conversation.clone(), participants.clone())
                    .await?;
                let framed = FrameConversation::of(snapshot)?;
                subs.into_iter()
                    .map(|sub| {
                        let frame = ServerFrame::ConversationUpdated(ConversationPush {
                            conversation: framed.clone(),
                            subscription_id: sub.subscription_id.clone(),
                        });
                        Ok(Post {
                            connection_id: sub.connection_id,
                            frame: frame.to_text()?,
                        })
                    })
                    .collect()
            })
            .buffer_unordered(LIST_CONCURRENCY)
            .collect()
            .await;
        for user_posts in per_user {
            posts.extend(user_posts?);
        }
        self.send(posts).await
    }

    /// Who hears of the change (`None`: nobody), after the activity upkeep it needs.
    async fn audience(&self, cid: &str, change: &Change, now: i64) -> Result<Option<Audience>> {
        let ports = &self.ports;
        let everyone = || async {
            let participants = match ports.conversations.get_conversation(cid, now).await? {
                Some((_, participants)) => participants,
                None => Vec::new(),
            };
            Ok::<_, crate::error::Error>(
                participants
                    .into_iter()
                    .map(|p| p.user_id)
                    .collect::<BTreeSet<_>>(),
            )
        };
        let audience = match change {
            Change::MessageCreated(message) => {
                let users: Vec<String> = everyone().await?.into_iter().collect();
                ports
                    .activity
                    .record_activity(cid, &users, &Activity::of(message))
                    .await?;
                Audience {
                    updated: users.into_iter().collect(),
                    removed: None,
                }
            }
            Change::MessageDeleted { message_id, .. } => {
                let users: Vec<String> = everyone().await?.into_iter().collect();
                let newest = ports.messages.list_messages(cid, None, 1, now).await?;
                let replacement = newest.messages.first().map(Activity::of);
                ports
                    .activity
                    .retract_activity(cid, &users, message_id, replacement.as_ref())
                    .await?;
                Audience {
                    updated: users.into_iter().collect(),
                    removed: None,
                }
            }
            Change::MessageEdited(message) => {
                let newest = ports.messages.list_messages(cid, None, 1, now).await?;
                if newest.messages.first().map(|m| &m.id) != Some(&message.id) {
                    return Ok(None);
                }
                Audience {
                    updated: everyone().await?,
                    removed: None,
                }
            }
            Change::ConversationChanged { .. } => Audience {
                updated: everyone().await?,
                removed: None,
            },
            Change::ParticipantChanged {
                user_id,
                before,
                after,
                ..
            } => {
                let access = |p: &Option<ParticipantRecord>| p.as_ref().map(|p| p.access);
                if access(before) != access(after) {
                    Audience {
                        updated: everyone().await?,
                        removed: after.is_none().then(|| user_id.clone()),
                    }
                } else {
                    // A change of read state: the reader, and everyone when the earliest
                    // `readUntil` moved.
                    let participants = match ports.conversations.get_conversation(cid, now).await? {
                        Some((_, participants)) => participants,
                        None => return Ok(None),
                    };
                    let earliest = |read: Option<i64>| {
                        participants
                            .iter()
                            .map(|p| {
                                if &p.user_id == user_id {
                                    read
                                } else {
                                    p.read_until
                                }
                            })
                            .collect::<Option<Vec<i64>>>()
                            .and_then(|all| all.into_iter().min())
                    };
                    let read =
                        |p: &Option<ParticipantRecord>| p.as_ref().and_then(|p| p.read_until);
                    let updated = if earliest(read(before)) != earliest(read(after)) {
                        participants.into_iter().map(|p| p.user_id).collect()
                    } else {
                        BTreeSet::from([user_id.clone()])
                    };
                    Audience {
                        updated,
                        removed: None,
                    }
                }
            }
            Change::ReactionAdded { .. }
            | Change::ReactionRemoved { .. }
            | Change::TypingChanged { .. }
            | Change::InboxCreated(_)
            | Change::InboxDeleted { .. } => return Ok(None),
        };
        Ok(Some(audience))
    }
}
