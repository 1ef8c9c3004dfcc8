//! Emoji reactions. Adding or removing one is a single conditional transaction: the
//! participant check, the role check, the per-user item and the message's counter move together.

use std::sync::Arc;

use super::{conversation_not_found, message_not_found, participant_key, user_of, Context};
use crate::auth::Identity;
use crate::emoji::normalize_reaction;
use crate::error::{Error, Result};
use crate::model::Access;
use crate::operation;
use crate::ports::{ItemReader, ReactionAdder, ReactionRemover};
use crate::store::{ReactionGuard, ReactionOutcome};

operation! {
    /// `PUT /conversations/{cid}/messages/{mid}/reactions/{emoji}`.
    pub struct AddReaction {
        ctx: Context,
        items: Arc<dyn ItemReader>,
        reactions: Arc<dyn ReactionAdder>,
    }
}

operation! {
    /// `DELETE /conversations/{cid}/messages/{mid}/reactions/{emoji}`.
    pub struct RemoveReaction {
        ctx: Context,
        items: Arc<dyn ItemReader>,
        reactions: Arc<dyn ReactionRemover>,
    }
}

impl AddReaction {
    pub async fn run(&self, identity: &Identity, cid: &str, mid: &str, emoji: &str) -> Result<()> {
        let ctx = &self.ctx;
        let (uid, emoji, guard) = ctx.reaction_request(identity, cid, mid, emoji, true)?;
        let now = ctx.now_ms();
        let outcome = self
            .reactions
            .add_reaction(
                cid,
                mid,
                &emoji,
                &guard,
                ctx.config.limits.max_distinct_reactions,
                ctx.message_expiry(now),
                now,
            )
            .await?;
        ctx.reaction_result(&*self.items, outcome, cid, mid, uid)
            .await
    }
}

impl RemoveReaction {
    pub async fn run(&self, identity: &Identity, cid: &str, mid: &str, emoji: &str) -> Result<()> {
        let ctx = &self.ctx;
        let (uid, emoji, guard) = ctx.reaction_request(identity, cid, mid, emoji, false)?;
        let outcome = self
            .reactions
            .remove_reaction(cid, mid, &emoji, &guard, ctx.now_ms())
            .await?;
        ctx.reaction_result(&*self.items, outcome, cid, mid, uid)
            .await
    }
}

impl Context {
    /// Validates a reaction request and builds the guard the store checks atomically.
    fn reaction_request<'a>(
        &self,
        identity: &'a Identity,
        cid: &str,
        mid: &str,
        emoji: &str,
        adding: bool,
    ) -> Result<(&'a str, String, ReactionGuard)> {
        let (uid, role_claim) = user_of(identity, "reacting")?;
        self.check_id("conversationId", cid)?;
        self.check_id("messageId", mid)?;
        let emoji = normalize_reaction(emoji).map_err(|e| Error::invalid(e.to_string()))?;
        let roles = &self.config.roles;
        let mut guard = ReactionGuard {
            participant: uid.to_string(),
            write_access: adding,
            ..ReactionGuard::default()
        };
        if adding {
            match role_claim {
                // The token's role is known now; no stored role is consulted.
                Some(role) if !roles.grants(role).react => {
                    return Err(Error::forbidden("your role may not react to messages"))
                }
                Some(_) => {}
                None => {
                    guard.denied_roles = roles.names_without(|g| !g.react);
                    guard.deny_default_role = !roles.grants("default").react;
                }
            }
        }
        Ok((uid, emoji, guard))
    }

    async fn reaction_result(
        &self,
        items: &dyn ItemReader,
        outcome: ReactionOutcome,
        cid: &str,
        mid: &str,
        uid: &str,
    ) -> Result<()> {
        match outcome {
            ReactionOutcome::Changed | ReactionOutcome::Unchanged => Ok(()),
            ReactionOutcome::MessageMissing => Err(message_not_found(mid)),
            ReactionOutcome::RoleDenied => {
                Err(Error::forbidden("your role may not react to messages"))
            }
            ReactionOutcome::TooManyReactions => Err(Error::LimitExceeded(format!(
                "this message already has {} different reactions",
                self.config.limits.max_distinct_reactions
            ))),
            ReactionOutcome::NotParticipant => {
                // Only on this failure path: tell a Read participant (403) from a stranger (404).
                let items = self.get(items, vec![participant_key(cid, uid)]).await?;
                match items.participant(cid, uid) {
                    Some(p) if p.access == Access::Read => Err(Error::forbidden(
                        "Read participants cannot react to messages",
                    )),
                    _ => Err(conversation_not_found(cid)),
                }
            }
        }
    }
}
