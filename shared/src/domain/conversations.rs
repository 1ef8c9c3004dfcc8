//! Conversations and their participants.

use std::sync::Arc;

use serde::Deserialize;

use super::lists::ConversationViews;
use super::{conversation_not_found, participant_key, validate, Context};
use crate::auth::Identity;
use crate::error::{Error, Result};
use crate::model::{
    Access, ConversationPatch, ConversationSnapshot, Custom, ParticipantRecord, Patch,
};
use crate::operation;
use crate::ports::{
    ConversationReader, ConversationWriter, ItemReader, ParticipantRemover, ParticipantWriter,
};
use crate::store::{Failed, StoreError};

operation! {
    /// `PUT /conversations/{cid}`.
    pub struct PutConversation {
        ctx: Context,
        reader: Arc<dyn ConversationReader>,
        writer: Arc<dyn ConversationWriter>,
        views: ConversationViews,
    }
}

operation! {
    /// `GET /conversations/{cid}`.
    pub struct GetConversation {
        ctx: Context,
        views: ConversationViews,
    }
}

operation! {
    /// `PUT /conversations/{cid}/participants/{userId}`.
    pub struct PutParticipant {
        ctx: Context,
        items: Arc<dyn ItemReader>,
        participants: Arc<dyn ParticipantWriter>,
    }
}

operation! {
    /// `DELETE /conversations/{cid}/participants/{userId}`.
    pub struct DeleteParticipant {
        ctx: Context,
        items: Arc<dyn ItemReader>,
        participants: Arc<dyn ParticipantRemover>,
    }
}

/// `PUT /conversations/{cid}`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutConversationBody {
    #[serde(default)]
    pub subject: Patch<String>,
    #[serde(default)]
    pub photo_url: Patch<String>,
    #[serde(default)]
    pub custom: Patch<Custom>,
    /// Users to add as `ReadWrite` participants.
    #[serde(default)]
    pub participants: Option<Vec<String>>,
}

/// `PUT /conversations/{cid}/participants/{userId}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParticipantBody {
    #[serde(default)]
    pub access: Option<Access>,
}

impl PutConversation {
    pub async fn run(
        &self,
        identity: &Identity,
        cid: &str,
        body: PutConversationBody,
    ) -> Result<ConversationSnapshot> {
        let ctx = &self.ctx;
        ctx.check_id("conversationId", cid)?;
        let limits = &ctx.config.limits;
        if let Patch::Value(v) = &body.subject {
            validate::short_text(limits, "subject", v)?;
        }
        if let Patch::Value(url) = &body.photo_url {
            validate::url_field(limits, "photoUrl", url)?;
        }
        if let Patch::Value(custom) = &body.custom {
            validate::custom(limits, custom)?;
        }
        let named = body.participants.unwrap_or_default();
        if named.len() > limits.max_participants_per_request {
            return Err(Error::invalid(format!(
                "participants has {} users; the most per request is {}",
                named.len(),
                limits.max_participants_per_request
            )));
        }
        for uid in &named {
            ctx.check_id("participants[]", uid)?;
        }
        let now = ctx.now_ms();
        let patch = ConversationPatch {
            subject: body.subject,
            photo_url: body.photo_url,
            custom: body.custom,
        };
        // A user creating the conversation becomes its participant only if the write creates
        // it (`only_if_new`): of users racing to create one, one does; the others read it again
        // and are treated as what they are then, non-participants (404) as a rule.
        for attempt in 0..2 {
            let existing = self.reader.get_conversation(cid, now).await?;
            let mut added: Vec<(String, Access)> = Vec::new();
            let mut creating = false;
            if let Identity::User { user_id, .. } = identity {
                match &existing {
                    None => {
                        added.push((user_id.clone(), Access::ReadWrite));
                        creating = true;
                    }
                    Some((_, participants)) => {
                        match participants.iter().find(|p| &p.user_id == user_id) {
                            None => return Err(conversation_not_found(cid)),
                            Some(p) if p.access != Access::ReadWrite => {
                                return Err(Error::forbidden(
                                    "Read participants cannot change the conversation",
                                ))
                            }
                            Some(_) => {}
                        }
                    }
                }
            }
            for uid in &named {
                if !added.iter().any(|(u, _)| u == uid) {
                    added.push((uid.clone(), Access::ReadWrite));
                }
            }
            let expires_at = ctx.record_expiry(now);
            match self
                .writer
                .upsert_conversation(cid, &patch, &added, creating, now, expires_at)
                .await
            {
                Ok(()) => break,
                Err(StoreError::ConditionFailed(Failed::ConversationExists)) if attempt == 0 => {}
                Err(StoreError::ConditionFailed(Failed::ConversationExists)) => {
                    return Err(conversation_not_found(cid))
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.views.view(viewer_of(identity), cid).await
    }
}

impl GetConversation {
    pub async fn run(&self, identity: &Identity, cid: &str) -> Result<ConversationSnapshot> {
        self.ctx.check_id("conversationId", cid)?;
        self.views.view(viewer_of(identity), cid).await
    }
}

/// The user a snapshot is built for; `None` for the secret key.
fn viewer_of(identity: &Identity) -> Option<&str> {
    match identity {
        Identity::User { user_id, .. } => Some(user_id),
        Identity::Secret => None,
    }
}

impl PutParticipant {
    pub async fn run(
        &self,
        identity: &Identity,
        cid: &str,
        uid: &str,
        body: ParticipantBody,
    ) -> Result<()> {
        let ctx = &self.ctx;
        ctx.check_id("conversationId", cid)?;
        ctx.check_id("userId", uid)?;
        ctx.require_writer(&*self.items, identity, cid).await?;
        let now = ctx.now_ms();
        let participant = ParticipantRecord::joining(
            cid,
            uid,
            body.access.unwrap_or(Access::ReadWrite),
            now,
            ctx.record_expiry(now),
        );
        self.participants
            .put_participant(&participant, now)
            .await
            .map_err(|e| match e {
                crate::store::StoreError::ConditionFailed(_) => conversation_not_found(cid),
                other => other.into(),
            })
    }
}

impl DeleteParticipant {
    pub async fn run(&self, identity: &Identity, cid: &str, uid: &str) -> Result<()> {
        let ctx = &self.ctx;
        ctx.check_id("conversationId", cid)?;
        ctx.check_id("userId", uid)?;
        let leaving_self = matches!(identity, Identity::User { user_id, .. } if user_id == uid);
        if !leaving_self {
            ctx.require_writer(&*self.items, identity, cid).await?;
        }
        self.participants.delete_participant(cid, uid).await?;
        Ok(())
    }
}

impl Context {
    /// Passes for the secret key (when the conversation exists) and for `ReadWrite` participants;
    /// a non-participant gets 404, a `Read` participant 403.
    async fn require_writer(
        &self,
        items: &dyn ItemReader,
        identity: &Identity,
        cid: &str,
    ) -> Result<()> {
        let key = match identity {
            Identity::Secret => crate::store::ItemKey::Conversation(cid.to_string()),
            Identity::User { user_id, .. } => participant_key(cid, user_id),
        };
        let items = self.get(items, vec![key]).await?;
        match identity {
            Identity::Secret if items.conversations.contains_key(cid) => Ok(()),
            Identity::Secret => Err(conversation_not_found(cid)),
            Identity::User { user_id, .. } => match items.participant(cid, user_id) {
                None => Err(conversation_not_found(cid)),
                Some(p) if p.access != Access::ReadWrite => Err(Error::forbidden(
                    "Read participants cannot change participants",
                )),
                Some(_) => Ok(()),
            },
        }
    }
}
