//! Conversation snapshots as a viewer sees them, a user's conversation list, and read state.
//!
//! A snapshot is the conversation and its participants (one query), its newest live message
//! (one query, then its expansion), and, for a participant viewer, their unread count (one
//! counting query, bounded by `Limits::max_unread_count`): a bounded number of requests whatever
//! the conversation holds. A list page reads the user's list (one index query and one batch
//! read) and builds its snapshots side by side.

use std::sync::Arc;

use futures::StreamExt;

use super::{conversation_not_found, Context};
use crate::auth::Identity;
use crate::error::{Error, Result};
use crate::model::{
    ConversationRecord, ConversationSnapshot, ParticipantRecord, ParticipantSnapshot,
};
use crate::operation;
use crate::ports::{
    ConversationLister, ConversationReader, ItemReader, MessageLister, ReactionReader, ReadMarker,
    UnreadCounter,
};
use crate::store::{Items, ListedConversation};

/// Snapshots built at once by a list page.
const SNAPSHOT_CONCURRENCY: usize = 20;

operation! {
    /// Builds `ConversationSnapshot`s as one viewer sees them.
    pub struct ConversationViews {
        ctx: Context,
        conversations: Arc<dyn ConversationReader>,
        messages: Arc<dyn MessageLister>,
        unread: Arc<dyn UnreadCounter>,
        items: Arc<dyn ItemReader>,
        reactions: Arc<dyn ReactionReader>,
    }
}

operation! {
    /// `GET /users/{userId}/conversations`.
    pub struct ListConversations {
        ctx: Context,
        lister: Arc<dyn ConversationLister>,
        views: ConversationViews,
    }
}

operation! {
    /// `POST /conversations/{cid}/read`.
    pub struct MarkRead {
        ctx: Context,
        markers: Arc<dyn ReadMarker>,
    }
}

operation! {
    /// `POST /conversations/{cid}/unread`.
    pub struct MarkUnread {
        ctx: Context,
        markers: Arc<dyn ReadMarker>,
    }
}

/// A page of a user's conversation list.
#[derive(Debug)]
pub struct ConversationPage {
    pub data: Vec<ConversationSnapshot>,
    pub loaded_all: bool,
    /// Each snapshot's place in the list (`schema::activity_key`), in the same order: where a
    /// subscription's window ends.
    pub positions: Vec<String>,
}

impl ConversationViews {
    /// The conversation as `viewer` sees it (`None`: the secret key); not found when it is
    /// missing or the viewer is not a participant.
    pub async fn view(&self, viewer: Option<&str>, cid: &str) -> Result<ConversationSnapshot> {
        let now = self.ctx.now_ms();
        let (conversation, participants) = self
            .conversations
            .get_conversation(cid, now)
            .await?
            .ok_or_else(|| conversation_not_found(cid))?;
        self.view_of(viewer, conversation, participants).await
    }

    /// The snapshot of a conversation already read.
    pub async fn view_of(
        &self,
        viewer: Option<&str>,
        conversation: ConversationRecord,
        participants: Vec<ParticipantRecord>,
    ) -> Result<ConversationSnapshot> {
        let ctx = &self.ctx;
        let cid = conversation.id.clone();
        let me = match viewer {
            Some(uid) => Some(
                participants
                    .iter()
                    .find(|p| p.user_id == uid)
                    .cloned()
                    .ok_or_else(|| conversation_not_found(&cid))?,
            ),
            None => None,
        };
        let now = ctx.now_ms();
        let cap = ctx.config.limits.max_unread_count;
        let last = async {
            let page = self.messages.list_messages(&cid, None, 1, now).await?;
            let snapshots = ctx
                .expand(
                    &*self.items,
                    &*self.reactions,
                    &cid,
                    viewer,
                    page.messages,
                    Items::default(),
                )
                .await?;
            Ok::<_, Error>(snapshots.into_iter().next())
        };
        let unread = async {
            match &me {
                Some(p) => Ok::<_, Error>(Some(
                    self.unread
                        .count_unread(&cid, &p.user_id, p.read_until, cap, now)
                        .await?,
                )),
                None => Ok(None),
            }
        };
        let (last_message, unread_message_count) = futures::try_join!(last, unread)?;
        let everyone_read_until = everyone_read_until(&participants);
        Ok(ConversationSnapshot {
            id: conversation.id,
            subject: conversation.subject,
            photo_url: conversation.photo_url,
            custom: conversation.custom,
            created_at: conversation.created_at,
            participants: participants
                .iter()
                .map(|p| (p.user_id.clone(), ParticipantSnapshot { access: p.access }))
                .collect(),
            access: me.as_ref().map(|p| p.access),
            joined_at: me.as_ref().map(|p| p.joined_at),
            last_message,
            unread_message_count,
            read_until: me.as_ref().and_then(|p| p.read_until),
            everyone_read_until,
            is_unread: me
                .as_ref()
                .map(|p| p.marked_unread || unread_message_count.is_some_and(|n| n > 0)),
        })
    }

    /// The snapshots of these conversations as `viewer` sees them, in the same order; a
    /// conversation that vanished or that the viewer left meanwhile is left out.
    pub async fn views(
        &self,
        viewer: &str,
        listed: Vec<ListedConversation>,
    ) -> Result<(Vec<ConversationSnapshot>, Vec<String>)> {
        let built: Vec<Result<Option<(ConversationSnapshot, String)>>> =
            futures::stream::iter(listed.into_iter().map(|c| async move {
                match self.view(Some(viewer), &c.conversation_id).await {
                    Ok(snapshot) => Ok(Some((snapshot, c.position))),
                    Err(Error::NotFound(_)) => Ok(None),
                    Err(e) => Err(e),
                }
            }))
            .buffered(SNAPSHOT_CONCURRENCY)
            .collect()
            .await;
        let mut snapshots = Vec::new();
        let mut positions = Vec::new();
        for one in built {
            if let Some((snapshot, position)) = one? {
                snapshots.push(snapshot);
                positions.push(position);
            }
        }
        Ok((snapshots, positions))
    }
}

/// The earliest `readUntil` among the participants; `None` while one of them has never read.
fn everyone_read_until(participants: &[ParticipantRecord]) -> Option<i64> {
    participants
        .iter()
        .map(|p| p.read_until)
        .collect::<Option<Vec<i64>>>()?
        .into_iter()
        .min()
}

impl ListConversations {
    /// The user's conversations, latest activity first, as that user sees them (also when the
    /// secret key asks). `before` is the id of the last conversation of the previous page.
    pub async fn run(
        &self,
        identity: &Identity,
        user_id: &str,
        limit: Option<usize>,
        before: Option<&str>,
    ) -> Result<ConversationPage> {
        let ctx = &self.ctx;
        ctx.check_id("userId", user_id)?;
        if let Identity::User {
            user_id: caller, ..
        } = identity
        {
            if caller != user_id {
                return Err(Error::forbidden(
                    "a user may list only their own conversations",
                ));
            }
        }
        let limits = &ctx.config.limits;
        let limit = limit.unwrap_or(limits.default_conversation_page);
        if limit == 0 || limit > limits.max_page {
            return Err(Error::invalid(format!(
                "limit must be between 1 and {}",
                limits.max_page
            )));
        }
        let now = ctx.now_ms();
        let position = match before {
            Some(cid) => {
                ctx.check_id("before", cid)?;
                let found = self.lister.conversation_position(user_id, cid, now).await?;
                Some(found.ok_or_else(|| {
                    Error::not_found(format!(
                        "before names conversation {cid:?}, which is not in this user's list"
                    ))
                })?)
            }
            None => None,
        };
        self.page(user_id, position.as_deref(), limit).await
    }

    /// A page of the list strictly after `position` (an activity key).
    pub async fn page(
        &self,
        user_id: &str,
        position: Option<&str>,
        limit: usize,
    ) -> Result<ConversationPage> {
        let now = self.ctx.now_ms();
        let listed = self
            .lister
            .list_conversations(user_id, position, limit, now)
            .await?;
        let (data, positions) = self.views.views(user_id, listed.conversations).await?;
        Ok(ConversationPage {
            data,
            loaded_all: listed.loaded_all,
            positions,
        })
    }
}

impl MarkRead {
    pub async fn run(&self, identity: &Identity, cid: &str) -> Result<()> {
        let ctx = &self.ctx;
        ctx.check_id("conversationId", cid)?;
        let user_id = participant_caller(identity)?;
        let now = ctx.now_ms();
        if !self.markers.mark_read(cid, user_id, now, now).await? {
            return Err(conversation_not_found(cid));
        }
        Ok(())
    }
}

impl MarkUnread {
    pub async fn run(&self, identity: &Identity, cid: &str) -> Result<()> {
        let ctx = &self.ctx;
        ctx.check_id("conversationId", cid)?;
        let user_id = participant_caller(identity)?;
        if !self.markers.mark_unread(cid, user_id, ctx.now_ms()).await? {
            return Err(conversation_not_found(cid));
        }
        Ok(())
    }
}

/// Read state is a participant's own: the secret key has none to mark.
fn participant_caller(identity: &Identity) -> Result<&str> {
    match identity {
        Identity::User { user_id, .. } => Ok(user_id),
        Identity::Secret => Err(Error::forbidden(
            "read state belongs to a participant: use a user token",
        )),
    }
}
