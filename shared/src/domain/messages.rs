//! Conversation messages: send, import, read, edit and delete.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{
    conversation_not_found, message_key, message_not_found, participant_key, validate, Context,
};
use crate::auth::Identity;
use crate::content::{uses_restricted_nodes, Content, RESTRICTED_NODES};
use crate::error::{Error, Result};
use crate::ids::{imported_message_id, new_message_id};
use crate::model::{
    Access, Custom, MessageEdit, MessageRecord, MessageSnapshot, MessageType, Origin, Patch,
};
use crate::operation;
use crate::ports::{
    ItemReader, MessageCreator, MessageDeleter, MessageEditor, MessageImporter, MessageLister,
    ReactionReader,
};
use crate::store::{
    CreateConditions, CreateOutcome, Failed, IdempotencyKey, ItemKey, Items, StoreError,
};

/// `POST /conversations/{cid}/messages`. Its optional fields may be left out, never `null`
/// (openapi.yaml lists no `null` for them).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendMessageBody {
    #[serde(default, deserialize_with = "crate::json::present")]
    pub text: Option<String>,
    #[serde(default, deserialize_with = "crate::json::present")]
    pub content: Option<Content>,
    #[serde(default, deserialize_with = "crate::json::present")]
    pub custom: Option<Custom>,
    #[serde(default, deserialize_with = "crate::json::present")]
    pub referenced_message_id: Option<String>,
    #[serde(default, deserialize_with = "crate::json::present")]
    pub idempotency_key: Option<String>,
    /// Secret key only: send as this user.
    #[serde(default, deserialize_with = "crate::json::present")]
    pub sender: Option<String>,
    /// Secret key only: `SystemMessage` sends a message without a sender.
    #[serde(rename = "type")]
    #[serde(default, deserialize_with = "crate::json::present")]
    pub kind: Option<MessageType>,
}

/// `PATCH /conversations/{cid}/messages/{mid}`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EditMessageBody {
    #[serde(default, deserialize_with = "crate::json::present")]
    pub text: Option<String>,
    #[serde(default, deserialize_with = "crate::json::present")]
    pub content: Option<Content>,
    #[serde(default)]
    pub custom: Patch<BTreeMap<String, Option<String>>>,
}

/// One message of `POST /import/conversations/{cid}/messages`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportMessage {
    pub sender: String,
    #[serde(default, deserialize_with = "crate::json::present")]
    pub text: Option<String>,
    #[serde(default, deserialize_with = "crate::json::present")]
    pub content: Option<Content>,
    /// `1700000000000.0` is an integer too, as JSON Schema counts them.
    #[serde(deserialize_with = "crate::json::whole")]
    pub created_at: i64,
    #[serde(default, deserialize_with = "crate::json::present")]
    pub custom: Option<Custom>,
}

/// A page of the message list.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagePageSnapshot {
    pub data: Vec<MessageSnapshot>,
    pub loaded_all: bool,
}

operation! {
    /// `POST /conversations/{cid}/messages`.
    pub struct SendMessage {
        ctx: Context,
        items: Arc<dyn ItemReader>,
        messages: Arc<dyn MessageCreator>,
        reactions: Arc<dyn ReactionReader>,
    }
}

operation! {
    /// `POST /import/conversations/{cid}/messages`.
    pub struct ImportMessages {
        ctx: Context,
        items: Arc<dyn ItemReader>,
        messages: Arc<dyn MessageImporter>,
    }
}

operation! {
    /// `GET /conversations/{cid}/messages`.
    pub struct ListMessages {
        ctx: Context,
        items: Arc<dyn ItemReader>,
        messages: Arc<dyn MessageLister>,
        reactions: Arc<dyn ReactionReader>,
    }
}

operation! {
    /// `GET /conversations/{cid}/messages/{mid}`.
    pub struct GetMessage {
        ctx: Context,
        items: Arc<dyn ItemReader>,
        reactions: Arc<dyn ReactionReader>,
    }
}

operation! {
    /// `PATCH /conversations/{cid}/messages/{mid}`.
    pub struct EditMessage {
        ctx: Context,
        items: Arc<dyn ItemReader>,
        messages: Arc<dyn MessageEditor>,
        reactions: Arc<dyn ReactionReader>,
    }
}

operation! {
    /// `DELETE /conversations/{cid}/messages/{mid}`.
    pub struct DeleteMessage {
        ctx: Context,
        items: Arc<dyn ItemReader>,
        messages: Arc<dyn MessageDeleter>,
    }
}

impl SendMessage {
    pub async fn run(
        &self,
        identity: &Identity,
        cid: &str,
        body: SendMessageBody,
    ) -> Result<MessageSnapshot> {
        let ctx = &self.ctx;
        ctx.check_id("conversationId", cid)?;
        let limits = &ctx.config.limits;
        let kind = body.kind.unwrap_or(MessageType::UserMessage);
        let (sender, role_claim, origin) = match identity {
            Identity::User { user_id, role } => {
                if body.sender.is_some() || body.kind.is_some() {
                    return Err(Error::forbidden(
                        "only the secret key can set sender or type",
                    ));
                }
                (Some(user_id.clone()), role.as_deref(), Origin::Web)
            }
            Identity::Secret => match (kind, body.sender.clone()) {
                (MessageType::SystemMessage, None) => (None, None, Origin::Rest),
                (MessageType::SystemMessage, Some(_)) => {
                    return Err(Error::invalid("a SystemMessage has no sender"));
                }
                (MessageType::UserMessage, Some(sender)) => {
                    ctx.check_id("sender", &sender)?;
                    (Some(sender), None, Origin::Rest)
                }
                (MessageType::UserMessage, None) => {
                    return Err(Error::invalid(
                        "with the secret key, give sender or type: \"SystemMessage\"",
                    ));
                }
            },
        };
        if let Some(rid) = &body.referenced_message_id {
            ctx.check_id("referencedMessageId", rid)?;
            if sender.is_none() {
                return Err(Error::invalid("a SystemMessage cannot reply to a message"));
            }
        }
        if let Some(key) = &body.idempotency_key {
            ctx.check_id("idempotencyKey", key)?;
        }
        let custom = body.custom.unwrap_or_default();
        validate::custom(limits, &custom)?;
        let content = validate::message_content(limits, body.text, body.content)?;

        // Round trip 1: the sender's participation and user record, and the referenced message.
        let mut keys = Vec::new();
        match &sender {
            Some(uid) => {
                keys.push(participant_key(cid, uid));
                keys.push(ItemKey::User(uid.clone()));
            }
            None => keys.push(ItemKey::Conversation(cid.to_string())),
        }
        if let Some(rid) = &body.referenced_message_id {
            keys.push(message_key(cid, rid));
        }
        let items = ctx.get(&*self.items, keys).await?;
        match &sender {
            None if !items.conversations.contains_key(cid) => {
                return Err(conversation_not_found(cid))
            }
            None => {}
            Some(uid) => {
                match items.participant(cid, uid) {
                    None if *identity == Identity::Secret => {
                        // The secret key may know the conversation exists; say what is wrong.
                        return Err(Error::forbidden(format!(
                            "sender {uid:?} is not a participant of this conversation"
                        )));
                    }
                    None => return Err(conversation_not_found(cid)),
                    Some(p) if p.access != Access::ReadWrite => {
                        return Err(Error::forbidden("Read participants cannot send messages"));
                    }
                    Some(_) => {}
                }
                if *identity != Identity::Secret {
                    let grants = ctx.grants(role_claim, &items, uid);
                    if uses_restricted_nodes(&content) && !grants.send_links {
                        return Err(Error::forbidden(format!(
                            "your role may not send {RESTRICTED_NODES}"
                        )));
                    }
                    if body.referenced_message_id.is_some() && !grants.reply {
                        return Err(Error::forbidden("your role may not reply to messages"));
                    }
                }
            }
        }
        let referenced = match &body.referenced_message_id {
            None => None,
            Some(rid) => {
                let r = items.message(cid, rid).ok_or_else(|| {
                    Error::invalid(format!(
                        "referencedMessageId {rid:?} is not a message of this conversation"
                    ))
                })?;
                if r.kind == MessageType::SystemMessage {
                    return Err(Error::invalid("a system message cannot be replied to"));
                }
                Some(r.clone())
            }
        };

        let now = ctx.now_ms();
        let message = MessageRecord {
            conversation_id: cid.to_string(),
            id: new_message_id(now),
            kind,
            sender_id: sender.clone(),
            content,
            custom,
            created_at: now,
            edited_at: None,
            origin,
            referenced_message_id: referenced.as_ref().map(|r| r.id.clone()),
            referenced_sender_id: referenced.as_ref().and_then(|r| r.sender_id.clone()),
            reactions: Vec::new(),
            expires_at: ctx.message_expiry(now),
        };
        let conditions = CreateConditions {
            writer: sender.clone(),
            conversation_exists: sender.is_none(),
            referenced_message_id: message.referenced_message_id.clone(),
            idempotency_key: body.idempotency_key.map(|key| IdempotencyKey {
                sender: sender.clone(),
                key,
            }),
        };

        // Round trip 2: the conditional write, and beside it what the snapshot still lacks.
        let viewer = match identity {
            Identity::User { user_id, .. } => Some(user_id.as_str()),
            Identity::Secret => None,
        };
        let mut known = Items {
            users: items.users.clone(),
            looked_up: items.looked_up.clone(),
            ..Items::default()
        };
        if let Some(r) = referenced {
            known.messages.insert((cid.to_string(), r.id.clone()), r);
        }
        let write = self.messages.create_message(&message, &conditions, now);
        let expand = ctx.expand(
            &*self.items,
            &*self.reactions,
            cid,
            viewer,
            vec![message.clone()],
            known,
        );
        let (outcome, snapshots) = futures::join!(write, expand);
        match outcome {
            Ok(CreateOutcome::Created) => snapshots?
                .pop()
                .ok_or_else(|| Error::Internal("no snapshot for a new message".into())),
            Ok(CreateOutcome::Duplicate { message_id }) => {
                match ctx.read_message(&*self.items, &*self.reactions, identity, cid, &message_id).await {
                    Err(Error::NotFound(_)) => Err(Error::Conflict(format!(
                        "idempotencyKey was used by message {message_id:?}, which has since been deleted"
                    ))),
                    found => found,
                }
            }
            Err(StoreError::ConditionFailed(Failed::NotParticipant)) => {
                Err(conversation_not_found(cid))
            }
            Err(StoreError::ConditionFailed(Failed::ConversationMissing)) => {
                Err(conversation_not_found(cid))
            }
            Err(StoreError::ConditionFailed(_)) => {
                Err(Error::invalid("the referenced message no longer exists"))
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl ImportMessages {
    pub async fn run(
        &self,
        identity: &Identity,
        cid: &str,
        messages: Vec<ImportMessage>,
    ) -> Result<Vec<String>> {
        let ctx = &self.ctx;
        if *identity != Identity::Secret {
            return Err(Error::forbidden("importing messages needs the secret key"));
        }
        ctx.check_id("conversationId", cid)?;
        let limits = &ctx.config.limits;
        if messages.is_empty() || messages.len() > limits.max_import_messages {
            return Err(Error::invalid(format!(
                "import takes 1 to {} messages, got {}",
                limits.max_import_messages,
                messages.len()
            )));
        }
        let now = ctx.now_ms();
        let oldest = now - ctx.config.retention_secs * 1000;
        let mut records = Vec::with_capacity(messages.len());
        for (i, m) in messages.into_iter().enumerate() {
            let at = |e: Error| match e {
                Error::InvalidRequest(msg) => Error::InvalidRequest(format!("[{i}]: {msg}")),
                Error::TooLarge(msg) => Error::TooLarge(format!("[{i}]: {msg}")),
                other => other,
            };
            ctx.check_id("sender", &m.sender).map_err(at)?;
            if m.created_at > now {
                return Err(at(Error::invalid("createdAt is in the future")));
            }
            if m.created_at <= oldest {
                return Err(at(Error::invalid(
                    "createdAt is older than the retention period",
                )));
            }
            let custom = m.custom.unwrap_or_default();
            validate::custom(limits, &custom).map_err(at)?;
            let content = validate::message_content(limits, m.text, m.content).map_err(at)?;
            records.push(MessageRecord {
                conversation_id: cid.to_string(),
                id: imported_message_id(m.created_at),
                kind: MessageType::UserMessage,
                sender_id: Some(m.sender),
                content,
                custom,
                created_at: m.created_at,
                edited_at: None,
                origin: Origin::Import,
                referenced_message_id: None,
                referenced_sender_id: None,
                reactions: Vec::new(),
                expires_at: ctx.message_expiry(m.created_at),
            });
        }
        let items = ctx
            .get(&*self.items, vec![ItemKey::Conversation(cid.to_string())])
            .await?;
        if !items.conversations.contains_key(cid) {
            return Err(conversation_not_found(cid));
        }
        self.messages
            .import_messages(&records, now)
            .await
            .map_err(|e| match e {
                StoreError::ConditionFailed(_) => conversation_not_found(cid),
                other => other.into(),
            })?;
        Ok(records.into_iter().map(|m| m.id).collect())
    }
}

impl ListMessages {
    pub async fn run(
        &self,
        identity: &Identity,
        cid: &str,
        limit: Option<usize>,
        before: Option<&str>,
    ) -> Result<MessagePageSnapshot> {
        let ctx = &self.ctx;
        ctx.check_id("conversationId", cid)?;
        let limits = &ctx.config.limits;
        let limit = limit.unwrap_or(limits.default_page);
        if limit == 0 || limit > limits.max_page {
            return Err(Error::invalid(format!(
                "limit must be between 1 and {}",
                limits.max_page
            )));
        }
        if let Some(before) = before {
            ctx.check_id("before", before)?;
        }
        let now = ctx.now_ms();
        // Round trip 1: the access check and the page, side by side.
        let access = ctx.access_items(&*self.items, identity, cid, false);
        let page =
            async { Ok::<_, Error>(self.messages.list_messages(cid, before, limit, now).await?) };
        let (items, page) = futures::try_join!(access, page)?;
        // Round trip 2: senders, referenced messages and the viewer's reactions.
        let data = ctx
            .expand(
                &*self.items,
                &*self.reactions,
                cid,
                viewer_of(identity),
                page.messages,
                items,
            )
            .await?;
        Ok(MessagePageSnapshot {
            data,
            loaded_all: page.loaded_all,
        })
    }
}

impl GetMessage {
    pub async fn run(&self, identity: &Identity, cid: &str, mid: &str) -> Result<MessageSnapshot> {
        let reactions = &*self.reactions;
        (self.ctx)
            .read_message(&*self.items, reactions, identity, cid, mid)
            .await
    }
}

impl EditMessage {
    pub async fn run(
        &self,
        identity: &Identity,
        cid: &str,
        mid: &str,
        body: EditMessageBody,
    ) -> Result<MessageSnapshot> {
        let ctx = &self.ctx;
        ctx.check_id("conversationId", cid)?;
        ctx.check_id("messageId", mid)?;
        let limits = &ctx.config.limits;
        if body.text.is_none() && body.content.is_none() && body.custom.is_absent() {
            return Err(Error::invalid(
                "nothing to edit: give text, content or custom",
            ));
        }
        let content = if body.text.is_some() || body.content.is_some() {
            Some(validate::message_content(limits, body.text, body.content)?)
        } else {
            None
        };
        if let Patch::Value(changes) = &body.custom {
            validate::check_custom_len(limits, changes.len())?;
            for (key, value) in changes {
                validate::custom_entry(limits, key, value.as_ref())?;
            }
        }
        // Round trip 1: access, the editor's user record and the message.
        let (items, message) = ctx
            .access_and_message(&*self.items, identity, cid, mid, true)
            .await?;
        let message = message.ok_or_else(|| message_not_found(mid))?;
        let required_sender = match identity {
            Identity::Secret => None,
            Identity::User { user_id, role } => {
                let grants = ctx.grants(role.as_deref(), &items, user_id);
                let own = message.sender_id.as_deref() == Some(user_id.as_str());
                if message.kind == MessageType::SystemMessage {
                    return Err(Error::forbidden(
                        "only the secret key can edit system messages",
                    ));
                }
                if content.as_ref().is_some_and(uses_restricted_nodes) && !grants.send_links {
                    return Err(Error::forbidden(format!(
                        "your role may not send {RESTRICTED_NODES}"
                    )));
                }
                match (own, grants.edit_own, grants.edit_any) {
                    (_, _, true) => None,
                    (true, true, false) => Some(user_id.as_str()),
                    (true, false, false) => {
                        return Err(Error::forbidden("your role may not edit messages"))
                    }
                    (false, _, false) => {
                        return Err(Error::forbidden(
                            "your role may not edit other users' messages",
                        ))
                    }
                }
            }
        };
        if let Patch::Value(changes) = &body.custom {
            // The patch must leave the map within its limit.
            let mut after = message.custom.clone();
            crate::store::memory::apply_custom_patch(&mut after, &Patch::Value(changes.clone()));
            validate::check_custom_len(limits, after.len())?;
        }
        let now = ctx.now_ms();
        let edit = MessageEdit {
            content,
            custom: body.custom,
            edited_at: now,
            // The check above read the map; the store checks again, atomically with its write,
            // so that racing edits cannot pass the limit together.
            max_custom_keys: limits.max_custom_keys,
        };
        // Round trip 2: the conditional update, and beside it the snapshot's other parts.
        let mut edited = message.clone();
        edited.edited_at = Some(now);
        let update = self
            .messages
            .edit_message(cid, mid, &edit, required_sender, now);
        let expand = ctx.expand(
            &*self.items,
            &*self.reactions,
            cid,
            viewer_of(identity),
            vec![edited],
            items,
        );
        let (updated, snapshot) = futures::join!(update, expand);
        let updated = match updated {
            Err(StoreError::ConditionFailed(Failed::TooManyCustomKeys)) => {
                return Err(Error::invalid(format!(
                    "custom would have more than {} keys after this edit (others added keys \
                     meanwhile); the most is {}",
                    limits.max_custom_keys, limits.max_custom_keys
                )))
            }
            other => other?.ok_or_else(|| message_not_found(mid))?,
        };
        let mut snapshot = snapshot?.pop().ok_or_else(|| message_not_found(mid))?;
        // The snapshot was built from the pre-edit record; take the stored result's fields.
        snapshot.plaintext = crate::content::plaintext(&updated.content);
        snapshot.content = updated.content;
        snapshot.custom = updated.custom;
        snapshot.edited_at = updated.edited_at;
        Ok(snapshot)
    }
}

impl DeleteMessage {
    pub async fn run(&self, identity: &Identity, cid: &str, mid: &str) -> Result<()> {
        let ctx = &self.ctx;
        ctx.check_id("conversationId", cid)?;
        ctx.check_id("messageId", mid)?;
        let (items, message) = ctx
            .access_and_message(&*self.items, identity, cid, mid, true)
            .await?;
        let Some(message) = message else {
            // Deleting a message that is not there is success.
            return Ok(());
        };
        let required_sender = match identity {
            Identity::Secret => None,
            Identity::User { user_id, role } => {
                let grants = ctx.grants(role.as_deref(), &items, user_id);
                let own = message.sender_id.as_deref() == Some(user_id.as_str());
                match (own, grants.delete_own, grants.delete_any) {
                    (_, _, true) => None,
                    (true, true, false) => Some(user_id.as_str()),
                    (true, false, false) => {
                        return Err(Error::forbidden("your role may not delete messages"))
                    }
                    (false, _, false) => {
                        return Err(Error::forbidden(
                            "your role may not delete other users' messages",
                        ))
                    }
                }
            }
        };
        match self
            .messages
            .delete_message(cid, mid, required_sender)
            .await
        {
            Ok(_) => Ok(()),
            Err(StoreError::ConditionFailed(_)) => Err(Error::forbidden(
                "your role may not delete other users' messages",
            )),
            Err(e) => Err(e.into()),
        }
    }
}

impl Context {
    /// A message as `identity` sees it: the access check, then its snapshot.
    pub(crate) async fn read_message(
        &self,
        items: &dyn ItemReader,
        reactions: &dyn ReactionReader,
        identity: &Identity,
        cid: &str,
        mid: &str,
    ) -> Result<MessageSnapshot> {
        self.check_id("conversationId", cid)?;
        self.check_id("messageId", mid)?;
        let (known, message) = self
            .access_and_message(items, identity, cid, mid, false)
            .await?;
        let message = message.ok_or_else(|| message_not_found(mid))?;
        self.expand(
            items,
            reactions,
            cid,
            viewer_of(identity),
            vec![message],
            known,
        )
        .await?
        .pop()
        .ok_or_else(|| message_not_found(mid))
    }

    /// Reads what an access check needs (the caller's participant item and user record, or the
    /// conversation for the secret key) and applies it: 404 for non-participants, 403 for
    /// `Read` participants when `write` is asked.
    pub(crate) async fn access_items(
        &self,
        items: &dyn ItemReader,
        identity: &Identity,
        cid: &str,
        write: bool,
    ) -> Result<Items> {
        let items = self.get(items, access_keys(identity, cid)).await?;
        check_access(identity, cid, &items, write)?;
        Ok(items)
    }

    /// The access check and the message, in one round trip.
    async fn access_and_message(
        &self,
        items: &dyn ItemReader,
        identity: &Identity,
        cid: &str,
        mid: &str,
        write: bool,
    ) -> Result<(Items, Option<MessageRecord>)> {
        let mut keys = access_keys(identity, cid);
        keys.push(message_key(cid, mid));
        let items = self.get(items, keys).await?;
        check_access(identity, cid, &items, write)?;
        let message = items.message(cid, mid).cloned();
        Ok((items, message))
    }
}

fn viewer_of(identity: &Identity) -> Option<&str> {
    match identity {
        Identity::User { user_id, .. } => Some(user_id.as_str()),
        Identity::Secret => None,
    }
}

fn access_keys(identity: &Identity, cid: &str) -> Vec<ItemKey> {
    match identity {
        Identity::Secret => vec![ItemKey::Conversation(cid.to_string())],
        Identity::User { user_id, .. } => vec![
            participant_key(cid, user_id),
            ItemKey::User(user_id.clone()),
        ],
    }
}

fn check_access(identity: &Identity, cid: &str, items: &Items, write: bool) -> Result<()> {
    match identity {
        Identity::Secret if items.conversations.contains_key(cid) => Ok(()),
        Identity::Secret => Err(conversation_not_found(cid)),
        Identity::User { user_id, .. } => match items.participant(cid, user_id) {
            None => Err(conversation_not_found(cid)),
            Some(p) if write && p.access != Access::ReadWrite => {
                Err(Error::forbidden("Read participants cannot change messages"))
            }
            Some(_) => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_refuse_null_where_the_contract_lists_none() {
        let send = |json: &str| crate::json::from_str::<SendMessageBody>(json).map(|_| ());
        assert!(send(r#"{"text": "hi"}"#).is_ok());
        for field in [
            "content",
            "custom",
            "referencedMessageId",
            "idempotencyKey",
            "sender",
            "type",
        ] {
            let json = format!(r#"{{"text": "hi", "{field}": null}}"#);
            let err = send(&json).unwrap_err().to_string();
            // serde_json words a null enum as "expected value".
            let want = if field == "type" {
                "expected value"
            } else {
                "invalid type: null"
            };
            assert!(err.starts_with(want), "{json}: {err}");
        }
        assert!(
            send(r#"{"text": null, "content": [{"type": "text", "children": ["x"]}]}"#).is_err()
        );
        let edit = |json: &str| crate::json::from_str::<EditMessageBody>(json).map(|_| ());
        assert!(edit(r#"{"text": "hi", "custom": null}"#).is_ok());
        assert!(edit(r#"{"text": "hi", "content": null}"#).is_err());
        assert!(edit(r#"{"text": null}"#).is_err());
        let import = |json: &str| crate::json::from_str::<ImportMessage>(json);
        let m = import(r#"{"sender": "u", "text": "hi", "createdAt": 1700000000000.0}"#).unwrap();
        assert_eq!(m.created_at, 1_700_000_000_000);
        assert!(import(r#"{"sender": "u", "text": "hi", "createdAt": 1700000000000.5}"#).is_err());
        for field in ["content", "custom"] {
            let json =
                format!(r#"{{"sender": "u", "text": "hi", "createdAt": 1, "{field}": null}}"#);
            assert!(import(&json).is_err(), "{json}");
        }
    }
}
