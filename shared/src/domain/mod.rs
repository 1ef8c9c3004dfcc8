//! The product's rules: who may do what, validation, and how records become snapshots.
//!
//! Knows nothing of Lambda or HTTP: callers pass the caller's `Identity` and typed inputs, and
//! get typed results or an `Error` with a stable code.
//!
//! Each operation is a struct declared with `operation!`: its fields are the ports it uses (see
//! `crate::ports`) and the `Context` (clock and settings), built from `Services`. Shared reads
//! (access checks, snapshot expansion) take the ports they need as arguments.

mod conversations;
mod expand;
mod inbox;
mod lists;
mod messages;
mod reactions;
mod users;
mod validate;

use std::sync::Arc;

pub use conversations::{
    DeleteParticipant, GetConversation, ParticipantBody, PutConversation, PutConversationBody,
    PutParticipant,
};
pub use inbox::{
    ClearInbox, DeleteInboxMessage, InboxMessageSnapshot, InboxPageSnapshot, ListInbox,
    SendInboxBody, SendInboxMessage,
};
pub use lists::{ConversationPage, ConversationViews, ListConversations, MarkRead, MarkUnread};
pub use messages::{
    DeleteMessage, EditMessage, EditMessageBody, GetMessage, ImportMessage, ImportMessages,
    ListMessages, MessagePageSnapshot, SendMessage, SendMessageBody,
};
pub use reactions::{AddReaction, RemoveReaction};
pub use users::{GetUser, PutUser, PutUserBody};

use crate::auth::Identity;
use crate::clock::Clock;
use crate::config::{Config, RoleGrants};
use crate::error::{Error, Result};
use crate::ports::{ItemReader, Port};
use crate::services::{Component, Services};
use crate::store::{ItemKey, Items};

/// What every operation has besides its ports: the clock and the deployment's settings.
#[derive(Clone)]
pub struct Context {
    clock: Arc<dyn Clock>,
    config: Arc<Config>,
}

impl Component for Context {
    fn build(services: &Services) -> Self {
        Context {
            clock: services.clock().clone(),
            config: services.config().clone(),
        }
    }

    fn ports(_: &mut Vec<Port>) {}
}

impl Context {
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// When something created now expires (messages, reactions, inbox messages), in seconds.
    fn message_expiry(&self, created_ms: i64) -> i64 {
        created_ms.div_euclid(1000) + self.config.retention_secs
    }

    /// When a user, conversation or participant written now expires, in seconds.
    fn record_expiry(&self, now_ms: i64) -> i64 {
        now_ms.div_euclid(1000) + self.config.record_retention_secs
    }

    pub(crate) fn check_id(&self, kind: &str, id: &str) -> Result<()> {
        crate::ids::validate_id(kind, id, self.config.limits.max_id_chars)
    }

    /// The grants of a user: the token's `role` claim wins; otherwise the stored role.
    fn grants(&self, role_claim: Option<&str>, items: &Items, user_id: &str) -> &RoleGrants {
        let stored = items.users.get(user_id).and_then(|u| u.role.as_deref());
        self.config
            .roles
            .grants(role_claim.or(stored).unwrap_or("default"))
    }

    /// Reads items by key, remembering which keys were asked for (found or not).
    async fn get(&self, items: &dyn ItemReader, keys: Vec<ItemKey>) -> Result<Items> {
        let mut found = items.get_items(&keys, self.now_ms()).await?;
        found.looked_up.extend(keys);
        Ok(found)
    }
}

/// The user id behind an identity, or a 403 for the secret key where a user is needed.
fn user_of<'a>(identity: &'a Identity, what: &str) -> Result<(&'a str, Option<&'a str>)> {
    match identity {
        Identity::User { user_id, role } => Ok((user_id.as_str(), role.as_deref())),
        Identity::Secret => Err(Error::forbidden(format!(
            "{what} needs a user token, not the secret key"
        ))),
    }
}

fn conversation_not_found(cid: &str) -> Error {
    Error::not_found(format!("conversation {cid:?} not found"))
}

fn message_not_found(mid: &str) -> Error {
    Error::not_found(format!("message {mid:?} not found"))
}

fn participant_key(cid: &str, uid: &str) -> ItemKey {
    ItemKey::Participant {
        conversation_id: cid.to_string(),
        user_id: uid.to_string(),
    }
}

fn message_key(cid: &str, mid: &str) -> ItemKey {
    ItemKey::Message {
        conversation_id: cid.to_string(),
        message_id: mid.to_string(),
    }
}
