//! Emoji reactions. Adding or removing one is a single conditional transaction: the
//! participant check, the role check, the per-user item and the message's counter move together.

use super::{conversation_not_found, message_not_found, participant_key, user_of, Domain};
use crate::auth::Identity;
use crate::emoji::normalize_reaction;
use crate::error::{Error, Result};
use crate::model::Access;
use crate::store::{ReactionGuard, ReactionOutcome};

impl Domain {
    pub async fn add_reaction(
        &self,
        identity: &Identity,
        cid: &str,
        mid: &str,
        emoji: &str,
    ) -> Result<()> {
        let (uid, emoji, guard) = self.reaction_request(identity, cid, mid, emoji, true)?;
        let now = self.now_ms();
        let outcome = self
            .store
            .add_reaction(
                cid,
                mid,
                &emoji,
                &guard,
                self.config.limits.max_distinct_reactions,
                self.message_expiry(now),
                now,
            )
            .await?;
        self.reaction_result(outcome, cid, mid, uid).await
    }

    pub async fn remove_reaction(
        &self,
        identity: &Identity,
        cid: &str,
        mid: &str,
        emoji: &str,
    ) -> Result<()> {
        let (uid, emoji, guard) = self.reaction_request(identity, cid, mid, emoji, false)?;
        let outcome = self
            .store
            .remove_reaction(cid, mid, &emoji, &guard, self.now_ms())
            .await?;
        self.reaction_result(outcome, cid, mid, uid).await
    }

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
                let items = self.get(vec![participant_key(cid, uid)]).await?;
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
