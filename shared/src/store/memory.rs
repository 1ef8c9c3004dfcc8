//! The embedded store: every access pattern of the DynamoDB store, kept in memory behind one
//! lock, so that each method is atomic exactly like its DynamoDB transaction.

mod typing;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use crate::store::{
    ActivityWriter, ConversationLister, ConversationReader, ConversationWriter, ItemReader,
    MessageCreator, MessageDeleter, MessageEditor, MessageImporter, MessageLister,
    ParticipantRemover, ParticipantWriter, ReactionAdder, ReactionReader, ReactionRemover,
    ReadMarker, UnreadCounter, UserWriter,
};
use async_trait::async_trait;

use super::schema::activity_key;
use super::{
    is_expired, Activity, ConversationListPage, CreateConditions, CreateOutcome, Failed,
    IdempotencyKey, ItemKey, Items, ListedConversation, MessagePage, ReactionGuard,
    ReactionOutcome, StoreError, StoreResult,
};
use crate::changes::{Change, ChangeSender};
use crate::model::{
    Access, ConversationPatch, ConversationRecord, MessageEdit, MessageRecord, ParticipantRecord,
    ReactionCount, UserPatch, UserRecord,
};

#[derive(Default)]
struct State {
    users: HashMap<String, UserRecord>,
    conversations: HashMap<String, ConversationRecord>,
    /// conversation id → user id → participant
    participants: HashMap<String, BTreeMap<String, ParticipantRecord>>,
    /// conversation id → message id → message (ids sort by time)
    messages: HashMap<String, BTreeMap<String, StoredMessage>>,
    /// (conversation id, key in its scope) → (message id, expiresAt)
    idempotency: HashMap<(String, IdempotencyKey), (String, i64)>,
    /// (conversation id, user id) → (message id, emoji) → expiresAt
    user_reactions: HashMap<(String, String), BTreeMap<(String, String), i64>>,
    /// (conversation id, user id) → the newest message recorded for that user's list
    activity: HashMap<(String, String), Activity>,
    /// conversation id → user id → typer (`store::typing`)
    typers: HashMap<String, BTreeMap<String, super::typing::TyperRecord>>,
}

/// A message with its reaction counts, zero counts included: like the DynamoDB item, an emoji
/// whose count fell to zero still takes a slot until an add at the limit sweeps it away.
#[derive(Clone)]
struct StoredMessage {
    record: MessageRecord,
    reactions: Vec<ReactionCount>,
}

impl StoredMessage {
    fn snapshot(&self) -> MessageRecord {
        let mut record = self.record.clone();
        record.reactions = visible_reactions(&self.reactions);
        record
    }
}

/// Reactions with a count above zero, in first-added order.
pub(crate) fn visible_reactions(all: &[ReactionCount]) -> Vec<ReactionCount> {
    let mut shown: Vec<ReactionCount> = all.iter().filter(|r| r.count > 0).cloned().collect();
    // Stable: emoji first added in the same millisecond keep the order they were added in.
    shown.sort_by_key(|r| r.first_added_at);
    shown
}

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    /// The change feed: what a DynamoDB stream would carry. A write takes its ticket under the
    /// lock and sends its changes after releasing it (`changes::ChangeSender`).
    changes: ChangeSender,
}

impl MemoryStore {
    /// A store whose changes nobody hears about.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that sends every change it makes into this feed (`changes::feed`).
    pub fn with_changes(changes: ChangeSender) -> Self {
        MemoryStore {
            state: Mutex::default(),
            changes,
        }
    }

    fn lock(&self) -> StoreResult<std::sync::MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| StoreError::Backend("memory store lock poisoned".into()))
    }
}

impl State {
    /// Adds or updates a participant: a live one keeps its `joinedAt` and read state. Returns
    /// the change when the participant is new or its access changed.
    fn put_participant(
        &mut self,
        mut participant: ParticipantRecord,
        now_ms: i64,
    ) -> Option<Change> {
        let cid = participant.conversation_id.clone();
        let uid = participant.user_id.clone();
        let before = self.live_participant(&cid, &uid, now_ms).cloned();
        if let Some(before) = &before {
            participant.joined_at = before.joined_at;
            participant.read_until = before.read_until;
            participant.marked_unread = before.marked_unread;
        }
        let changed = before
            .as_ref()
            .is_none_or(|b| b.access != participant.access);
        self.participants
            .entry(cid.clone())
            .or_default()
            .insert(uid.clone(), participant.clone());
        changed.then_some(Change::ParticipantChanged {
            conversation_id: cid,
            user_id: uid,
            before,
            after: Some(participant),
        })
    }

    /// A user's place in their conversation list: the later of their joining and the newest
    /// live message recorded for them.
    fn position(&self, user_id: &str, cid: &str, now_ms: i64) -> Option<String> {
        let participant = self.live_participant(cid, user_id, now_ms)?;
        let joined = activity_key(participant.joined_at, cid);
        let messaged = self
            .activity
            .get(&(cid.to_string(), user_id.to_string()))
            .filter(|a| !is_expired(a.expires_at, now_ms))
            .map(|a| activity_key(a.created_at, cid));
        Some(super::list_place(&joined, messaged.as_deref()).to_string())
    }

    fn live_participant(&self, cid: &str, uid: &str, now_ms: i64) -> Option<&ParticipantRecord> {
        self.participants
            .get(cid)
            .and_then(|ps| ps.get(uid))
            .filter(|p| !is_expired(p.expires_at, now_ms))
    }

    fn live_conversation(&self, cid: &str, now_ms: i64) -> Option<&ConversationRecord> {
        self.conversations
            .get(cid)
            .filter(|c| !is_expired(c.expires_at, now_ms))
    }

    fn live_message(&self, cid: &str, mid: &str, now_ms: i64) -> Option<&StoredMessage> {
        self.messages
            .get(cid)
            .and_then(|ms| ms.get(mid))
            .filter(|m| !is_expired(m.record.expires_at, now_ms))
    }

    fn live_message_mut(
        &mut self,
        cid: &str,
        mid: &str,
        now_ms: i64,
    ) -> Option<&mut StoredMessage> {
        self.messages
            .get_mut(cid)
            .and_then(|ms| ms.get_mut(mid))
            .filter(|m| !is_expired(m.record.expires_at, now_ms))
    }

    /// Checks a reaction guard; `Some(outcome)` when it refuses.
    fn check_guard(
        &self,
        cid: &str,
        guard: &ReactionGuard,
        now_ms: i64,
    ) -> Option<ReactionOutcome> {
        match self.live_participant(cid, &guard.participant, now_ms) {
            None => return Some(ReactionOutcome::NotParticipant),
            Some(p) if guard.write_access && p.access != Access::ReadWrite => {
                return Some(ReactionOutcome::NotParticipant)
            }
            Some(_) => {}
        }
        let stored_role = self
            .users
            .get(&guard.participant)
            .filter(|u| !is_expired(u.expires_at, now_ms))
            .and_then(|u| u.role.clone());
        let denied = match stored_role {
            Some(role) => guard.denied_roles.contains(&role),
            None => guard.deny_default_role,
        };
        denied.then_some(ReactionOutcome::RoleDenied)
    }
}

#[async_trait]
impl ItemReader for MemoryStore {
    async fn get_items(&self, keys: &[ItemKey], now_ms: i64) -> StoreResult<Items> {
        let state = self.lock()?;
        let mut items = Items::default();
        for key in keys {
            match key {
                ItemKey::User(id) => {
                    if let Some(u) = state
                        .users
                        .get(id)
                        .filter(|u| !is_expired(u.expires_at, now_ms))
                    {
                        items.users.insert(id.clone(), u.clone());
                    }
                }
                ItemKey::Conversation(id) => {
                    if let Some(c) = state.live_conversation(id, now_ms) {
                        items.conversations.insert(id.clone(), c.clone());
                    }
                }
                ItemKey::Participant {
                    conversation_id,
                    user_id,
                } => {
                    if let Some(p) = state.live_participant(conversation_id, user_id, now_ms) {
                        items
                            .participants
                            .insert((conversation_id.clone(), user_id.clone()), p.clone());
                    }
                }
                ItemKey::Message {
                    conversation_id,
                    message_id,
                } => {
                    if let Some(m) = state.live_message(conversation_id, message_id, now_ms) {
                        items
                            .messages
                            .insert((conversation_id.clone(), message_id.clone()), m.snapshot());
                    }
                }
                ItemKey::Typer {
                    conversation_id,
                    user_id,
                } => {
                    if let Some(t) = state
                        .typers
                        .get(conversation_id)
                        .and_then(|ts| ts.get(user_id))
                        .filter(|t| t.is_live(now_ms))
                    {
                        items
                            .typers
                            .insert((conversation_id.clone(), user_id.clone()), t.clone());
                    }
                }
            }
        }
        Ok(items)
    }
}

#[async_trait]
impl UserWriter for MemoryStore {
    async fn upsert_user(
        &self,
        user_id: &str,
        patch: &UserPatch,
        now_ms: i64,
        expires_at: i64,
    ) -> StoreResult<UserRecord> {
        let mut state = self.lock()?;
        // An expired record is gone: start over rather than reviving its fields.
        let current = state
            .users
            .get(user_id)
            .filter(|u| !is_expired(u.expires_at, now_ms))
            .cloned();
        let base = current.unwrap_or(UserRecord {
            id: user_id.to_string(),
            name: None,
            photo_url: None,
            role: None,
            custom: Default::default(),
            expires_at,
        });
        let user = UserRecord {
            id: user_id.to_string(),
            name: patch.name.clone().apply(base.name),
            photo_url: patch.photo_url.clone().apply(base.photo_url),
            role: patch.role.clone().apply(base.role),
            custom: patch
                .custom
                .clone()
                .apply(Some(base.custom))
                .unwrap_or_default(),
            expires_at,
        };
        state.users.insert(user_id.to_string(), user.clone());
        Ok(user)
    }
}

#[async_trait]
impl ConversationWriter for MemoryStore {
    async fn upsert_conversation(
        &self,
        conversation_id: &str,
        patch: &ConversationPatch,
        participants: &[(String, Access)],
        only_if_new: bool,
        now_ms: i64,
        expires_at: i64,
    ) -> StoreResult<()> {
        let (changes, ticket) = {
            let mut state = self.lock()?;
            let current = state.live_conversation(conversation_id, now_ms).cloned();
            if only_if_new && current.is_some() {
                return Err(StoreError::ConditionFailed(Failed::ConversationExists));
            }
            let base = current.clone().unwrap_or(ConversationRecord {
                id: conversation_id.to_string(),
                subject: None,
                photo_url: None,
                custom: Default::default(),
                created_at: now_ms,
                expires_at,
            });
            let conversation = ConversationRecord {
                id: conversation_id.to_string(),
                subject: patch.subject.clone().apply(base.subject),
                photo_url: patch.photo_url.clone().apply(base.photo_url),
                custom: patch
                    .custom
                    .clone()
                    .apply(Some(base.custom))
                    .unwrap_or_default(),
                created_at: base.created_at,
                expires_at,
            };
            let mut changes = Vec::new();
            if let Some(before) = &current {
                if (&before.subject, &before.photo_url, &before.custom)
                    != (
                        &conversation.subject,
                        &conversation.photo_url,
                        &conversation.custom,
                    )
                {
                    changes.push(Change::ConversationChanged {
                        conversation_id: conversation_id.to_string(),
                    });
                }
            }
            state
                .conversations
                .insert(conversation_id.to_string(), conversation);
            for (user_id, access) in participants {
                let joining = ParticipantRecord::joining(
                    conversation_id,
                    user_id,
                    *access,
                    now_ms,
                    expires_at,
                );
                changes.extend(state.put_participant(joining, now_ms));
            }
            (changes, self.changes.ticket())
        };
        ticket.send(changes).await;
        Ok(())
    }
}

#[async_trait]
impl ConversationReader for MemoryStore {
    async fn get_conversation(
        &self,
        conversation_id: &str,
        now_ms: i64,
    ) -> StoreResult<Option<(ConversationRecord, Vec<ParticipantRecord>)>> {
        let state = self.lock()?;
        let Some(conversation) = state.live_conversation(conversation_id, now_ms).cloned() else {
            return Ok(None);
        };
        let participants = state
            .participants
            .get(conversation_id)
            .map(|ps| {
                ps.values()
                    .filter(|p| !is_expired(p.expires_at, now_ms))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some((conversation, participants)))
    }
}

#[async_trait]
impl ParticipantWriter for MemoryStore {
    async fn put_participant(
        &self,
        participant: &ParticipantRecord,
        now_ms: i64,
    ) -> StoreResult<()> {
        let (changes, ticket) = {
            let mut state = self.lock()?;
            if state
                .live_conversation(&participant.conversation_id, now_ms)
                .is_none()
            {
                return Err(StoreError::ConditionFailed(Failed::ConversationMissing));
            }
            let changes: Vec<Change> = state
                .put_participant(participant.clone(), now_ms)
                .into_iter()
                .collect();
            (changes, self.changes.ticket())
        };
        ticket.send(changes).await;
        Ok(())
    }
}

#[async_trait]
impl ParticipantRemover for MemoryStore {
    async fn delete_participant(&self, conversation_id: &str, user_id: &str) -> StoreResult<()> {
        let (changes, ticket) = {
            let mut state = self.lock()?;
            let removed = state
                .participants
                .get_mut(conversation_id)
                .and_then(|ps| ps.remove(user_id));
            state
                .activity
                .remove(&(conversation_id.to_string(), user_id.to_string()));
            let changes: Vec<Change> = removed
                .map(|before| Change::ParticipantChanged {
                    conversation_id: conversation_id.to_string(),
                    user_id: user_id.to_string(),
                    before: Some(before),
                    after: None,
                })
                .into_iter()
                .collect();
            (changes, self.changes.ticket())
        };
        ticket.send(changes).await;
        Ok(())
    }
}

#[async_trait]
impl ReadMarker for MemoryStore {
    async fn mark_read(
        &self,
        conversation_id: &str,
        user_id: &str,
        at_ms: i64,
        now_ms: i64,
    ) -> StoreResult<bool> {
        self.change_read_state(conversation_id, user_id, now_ms, |p| {
            p.read_until = Some(p.read_until.map_or(at_ms, |r| r.max(at_ms)));
            p.marked_unread = false;
        })
        .await
    }

    async fn mark_unread(
        &self,
        conversation_id: &str,
        user_id: &str,
        now_ms: i64,
    ) -> StoreResult<bool> {
        self.change_read_state(conversation_id, user_id, now_ms, |p| {
            p.marked_unread = true;
        })
        .await
    }
}

impl MemoryStore {
    /// Changes a live participant's read state; `false` when there is none.
    async fn change_read_state(
        &self,
        conversation_id: &str,
        user_id: &str,
        now_ms: i64,
        change: impl FnOnce(&mut ParticipantRecord),
    ) -> StoreResult<bool> {
        let (changes, ticket) = {
            let mut state = self.lock()?;
            let Some(before) = state
                .live_participant(conversation_id, user_id, now_ms)
                .cloned()
            else {
                return Ok(false);
            };
            let mut after = before.clone();
            change(&mut after);
            let mut changes = Vec::new();
            if after != before {
                changes.push(Change::ParticipantChanged {
                    conversation_id: conversation_id.to_string(),
                    user_id: user_id.to_string(),
                    before: Some(before),
                    after: Some(after.clone()),
                });
                state
                    .participants
                    .entry(conversation_id.to_string())
                    .or_default()
                    .insert(user_id.to_string(), after);
            }
            (changes, self.changes.ticket())
        };
        ticket.send(changes).await;
        Ok(true)
    }
}

#[async_trait]
impl UnreadCounter for MemoryStore {
    async fn count_unread(
        &self,
        conversation_id: &str,
        user_id: &str,
        after_ms: Option<i64>,
        cap: usize,
        now_ms: i64,
    ) -> StoreResult<u64> {
        let state = self.lock()?;
        let count = state
            .messages
            .get(conversation_id)
            .map(|ms| {
                ms.values()
                    .rev()
                    .map(|m| &m.record)
                    .filter(|m| !is_expired(m.expires_at, now_ms))
                    .filter(|m| after_ms.is_none_or(|after| m.created_at > after))
                    .filter(|m| m.sender_id.as_deref() != Some(user_id))
                    .take(cap)
                    .count()
            })
            .unwrap_or(0);
        Ok(count as u64)
    }
}

#[async_trait]
impl ConversationLister for MemoryStore {
    async fn list_conversations(
        &self,
        user_id: &str,
        before: Option<&str>,
        limit: usize,
        now_ms: i64,
    ) -> StoreResult<ConversationListPage> {
        let state = self.lock()?;
        let mut listed: Vec<ListedConversation> = state
            .participants
            .keys()
            .filter_map(|cid| {
                let position = state.position(user_id, cid, now_ms)?;
                Some(ListedConversation {
                    conversation_id: cid.clone(),
                    position,
                })
            })
            .filter(|c| before.is_none_or(|before| c.position.as_str() < before))
            .collect();
        listed.sort_by(|a, b| b.position.cmp(&a.position));
        let loaded_all = listed.len() <= limit;
        listed.truncate(limit);
        Ok(ConversationListPage {
            conversations: listed,
            loaded_all,
        })
    }

    async fn conversation_position(
        &self,
        user_id: &str,
        conversation_id: &str,
        now_ms: i64,
    ) -> StoreResult<Option<String>> {
        Ok(self.lock()?.position(user_id, conversation_id, now_ms))
    }
}

#[async_trait]
impl ActivityWriter for MemoryStore {
    async fn record_activity(
        &self,
        conversation_id: &str,
        user_ids: &[String],
        activity: &Activity,
    ) -> StoreResult<()> {
        let mut state = self.lock()?;
        for user_id in user_ids {
            let slot = state
                .activity
                .entry((conversation_id.to_string(), user_id.clone()))
                .or_insert_with(|| activity.clone());
            if slot.message_id < activity.message_id {
                *slot = activity.clone();
            }
        }
        Ok(())
    }

    async fn retract_activity(
        &self,
        conversation_id: &str,
        user_ids: &[String],
        removed_id: &str,
        replacement: Option<&Activity>,
    ) -> StoreResult<()> {
        let mut state = self.lock()?;
        for user_id in user_ids {
            let key = (conversation_id.to_string(), user_id.clone());
            if state.activity.get(&key).map(|a| a.message_id.as_str()) != Some(removed_id) {
                continue;
            }
            match replacement {
                Some(activity) => {
                    state.activity.insert(key, activity.clone());
                }
                None => {
                    state.activity.remove(&key);
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl MessageCreator for MemoryStore {
    async fn create_message(
        &self,
        message: &MessageRecord,
        conditions: &CreateConditions,
        now_ms: i64,
    ) -> StoreResult<CreateOutcome> {
        let ticket = {
            let mut state = self.lock()?;
            let cid = message.conversation_id.as_str();
            if let Some(key) = &conditions.idempotency_key {
                if let Some((mid, expires_at)) =
                    state.idempotency.get(&(cid.to_string(), key.clone()))
                {
                    if !is_expired(*expires_at, now_ms) {
                        return Ok(CreateOutcome::Duplicate {
                            message_id: mid.clone(),
                        });
                    }
                }
            }
            if let Some(writer) = &conditions.writer {
                match state.live_participant(cid, writer, now_ms) {
                    Some(p) if p.access == Access::ReadWrite => {}
                    _ => return Err(StoreError::ConditionFailed(Failed::NotParticipant)),
                }
            }
            if conditions.conversation_exists && state.live_conversation(cid, now_ms).is_none() {
                return Err(StoreError::ConditionFailed(Failed::ConversationMissing));
            }
            if let Some(referenced) = &conditions.referenced_message_id {
                if state.live_message(cid, referenced, now_ms).is_none() {
                    return Err(StoreError::ConditionFailed(Failed::ReferencedMissing));
                }
            }
            if let Some(key) = &conditions.idempotency_key {
                state.idempotency.insert(
                    (cid.to_string(), key.clone()),
                    (message.id.clone(), message.expires_at),
                );
            }
            state.messages.entry(cid.to_string()).or_default().insert(
                message.id.clone(),
                StoredMessage {
                    record: message.clone(),
                    reactions: Vec::new(),
                },
            );
            self.changes.ticket()
        };
        ticket
            .send(vec![Change::MessageCreated(message.clone())])
            .await;
        Ok(CreateOutcome::Created)
    }
}

#[async_trait]
impl MessageImporter for MemoryStore {
    async fn import_messages(&self, messages: &[MessageRecord], now_ms: i64) -> StoreResult<()> {
        let ticket = {
            let mut state = self.lock()?;
            for m in messages {
                if state
                    .live_conversation(&m.conversation_id, now_ms)
                    .is_none()
                {
                    return Err(StoreError::ConditionFailed(Failed::ConversationMissing));
                }
            }
            for m in messages {
                state
                    .messages
                    .entry(m.conversation_id.clone())
                    .or_default()
                    .insert(
                        m.id.clone(),
                        StoredMessage {
                            record: m.clone(),
                            reactions: Vec::new(),
                        },
                    );
            }
            self.changes.ticket()
        };
        ticket
            .send(
                messages
                    .iter()
                    .cloned()
                    .map(Change::MessageCreated)
                    .collect(),
            )
            .await;
        Ok(())
    }
}

#[async_trait]
impl MessageLister for MemoryStore {
    async fn list_messages(
        &self,
        conversation_id: &str,
        before: Option<&str>,
        limit: usize,
        now_ms: i64,
    ) -> StoreResult<MessagePage> {
        let state = self.lock()?;
        let Some(all) = state.messages.get(conversation_id) else {
            return Ok(MessagePage {
                messages: Vec::new(),
                loaded_all: true,
            });
        };
        let mut live = all
            .iter()
            .rev()
            .filter(|(id, _)| before.is_none_or(|b| id.as_str() < b))
            .map(|(_, m)| m)
            .filter(|m| !is_expired(m.record.expires_at, now_ms));
        let messages: Vec<MessageRecord> =
            live.by_ref().take(limit).map(|m| m.snapshot()).collect();
        let loaded_all = live.next().is_none();
        Ok(MessagePage {
            messages,
            loaded_all,
        })
    }
}

#[async_trait]
impl MessageEditor for MemoryStore {
    async fn edit_message(
        &self,
        conversation_id: &str,
        message_id: &str,
        edit: &MessageEdit,
        required_sender: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<Option<MessageRecord>> {
        let (edited, ticket) = {
            let mut state = self.lock()?;
            let Some(stored) = state.live_message_mut(conversation_id, message_id, now_ms) else {
                return Ok(None);
            };
            if required_sender.is_some() && stored.record.sender_id.as_deref() != required_sender {
                return Ok(None);
            }
            let mut custom = stored.record.custom.clone();
            apply_custom_patch(&mut custom, &edit.custom);
            if too_many_custom_keys(
                stored.record.custom.len(),
                custom.len(),
                edit.max_custom_keys,
            ) {
                return Err(StoreError::ConditionFailed(Failed::TooManyCustomKeys));
            }
            if let Some(content) = &edit.content {
                stored.record.content = content.clone();
            }
            stored.record.custom = custom;
            stored.record.edited_at = Some(edit.edited_at);
            let edited = stored.snapshot();
            (edited, self.changes.ticket())
        };
        ticket
            .send(vec![Change::MessageEdited(edited.clone())])
            .await;
        Ok(Some(edited))
    }
}

#[async_trait]
impl MessageDeleter for MemoryStore {
    async fn delete_message(
        &self,
        conversation_id: &str,
        message_id: &str,
        required_sender: Option<&str>,
    ) -> StoreResult<bool> {
        let ticket = {
            let mut state = self.lock()?;
            let Some(messages) = state.messages.get_mut(conversation_id) else {
                return Ok(false);
            };
            match messages.get(message_id) {
                None => return Ok(false),
                Some(m)
                    if required_sender.is_some()
                        && m.record.sender_id.as_deref() != required_sender =>
                {
                    return Err(StoreError::ConditionFailed(Failed::MessageMissing))
                }
                Some(_) => {}
            }
            messages.remove(message_id);
            self.changes.ticket()
        };
        ticket
            .send(vec![Change::MessageDeleted {
                conversation_id: conversation_id.to_string(),
                message_id: message_id.to_string(),
            }])
            .await;
        Ok(true)
    }
}

#[async_trait]
impl ReactionAdder for MemoryStore {
    async fn add_reaction(
        &self,
        conversation_id: &str,
        message_id: &str,
        emoji: &str,
        guard: &ReactionGuard,
        max_distinct: usize,
        reaction_expires_at: i64,
        now_ms: i64,
    ) -> StoreResult<ReactionOutcome> {
        let (message, count, ticket) = {
            let mut state = self.lock()?;
            if let Some(refused) = state.check_guard(conversation_id, guard, now_ms) {
                return Ok(refused);
            }
            let user_key = (conversation_id.to_string(), guard.participant.clone());
            let reaction_key = (message_id.to_string(), emoji.to_string());
            if state
                .live_message(conversation_id, message_id, now_ms)
                .is_none()
            {
                return Ok(ReactionOutcome::MessageMissing);
            }
            let already = state
                .user_reactions
                .get(&user_key)
                .and_then(|rs| rs.get(&reaction_key))
                .is_some_and(|exp| !is_expired(*exp, now_ms));
            if already {
                return Ok(ReactionOutcome::Unchanged);
            }
            let Some(stored) = state.live_message_mut(conversation_id, message_id, now_ms) else {
                return Ok(ReactionOutcome::MessageMissing);
            };
            match stored.reactions.iter_mut().find(|r| r.emoji == emoji) {
                Some(r) => r.count += 1,
                None => {
                    if stored.reactions.len() >= max_distinct {
                        // Sweep emoji whose count fell to zero, as the DynamoDB store does.
                        stored.reactions.retain(|r| r.count > 0);
                        if stored.reactions.len() >= max_distinct {
                            return Ok(ReactionOutcome::TooManyReactions);
                        }
                    }
                    stored.reactions.push(ReactionCount {
                        emoji: emoji.to_string(),
                        count: 1,
                        first_added_at: now_ms,
                    });
                }
            }
            let (message, count) = reaction_change(stored, emoji);
            state
                .user_reactions
                .entry(user_key)
                .or_default()
                .insert(reaction_key, reaction_expires_at);
            (message, count, self.changes.ticket())
        };
        ticket
            .send(vec![Change::ReactionAdded {
                message,
                emoji: emoji.to_string(),
                user_id: guard.participant.clone(),
                count,
            }])
            .await;
        Ok(ReactionOutcome::Changed)
    }
}

#[async_trait]
impl ReactionRemover for MemoryStore {
    async fn remove_reaction(
        &self,
        conversation_id: &str,
        message_id: &str,
        emoji: &str,
        guard: &ReactionGuard,
        now_ms: i64,
    ) -> StoreResult<ReactionOutcome> {
        let (message, count, ticket) = {
            let mut state = self.lock()?;
            if let Some(refused) = state.check_guard(conversation_id, guard, now_ms) {
                return Ok(refused);
            }
            if state
                .live_message(conversation_id, message_id, now_ms)
                .is_none()
            {
                return Ok(ReactionOutcome::MessageMissing);
            }
            let user_key = (conversation_id.to_string(), guard.participant.clone());
            let reaction_key = (message_id.to_string(), emoji.to_string());
            let had = state
                .user_reactions
                .get_mut(&user_key)
                .and_then(|rs| rs.remove(&reaction_key))
                .is_some_and(|exp| !is_expired(exp, now_ms));
            if !had {
                return Ok(ReactionOutcome::Unchanged);
            }
            let Some(stored) = state.live_message_mut(conversation_id, message_id, now_ms) else {
                return Ok(ReactionOutcome::MessageMissing);
            };
            if let Some(r) = stored.reactions.iter_mut().find(|r| r.emoji == emoji) {
                r.count = r.count.saturating_sub(1);
            }
            let (message, count) = reaction_change(stored, emoji);
            (message, count, self.changes.ticket())
        };
        ticket
            .send(vec![Change::ReactionRemoved {
                message,
                emoji: emoji.to_string(),
                user_id: guard.participant.clone(),
                count,
            }])
            .await;
        Ok(ReactionOutcome::Changed)
    }
}

#[async_trait]
impl ReactionReader for MemoryStore {
    async fn user_reactions(
        &self,
        conversation_id: &str,
        user_id: &str,
        low: &str,
        high: &str,
        now_ms: i64,
    ) -> StoreResult<HashSet<(String, String)>> {
        let state = self.lock()?;
        let Some(reactions) = state
            .user_reactions
            .get(&(conversation_id.to_string(), user_id.to_string()))
        else {
            return Ok(HashSet::new());
        };
        Ok(reactions
            .iter()
            .filter(|((mid, _), exp)| {
                mid.as_str() >= low && mid.as_str() <= high && !is_expired(**exp, now_ms)
            })
            .map(|(k, _)| k.clone())
            .collect())
    }
}

/// The message as it now reads and the emoji's new count, for the change feed.
fn reaction_change(stored: &StoredMessage, emoji: &str) -> (MessageRecord, u64) {
    let count = stored
        .reactions
        .iter()
        .find(|r| r.emoji == emoji)
        .map_or(0, |r| r.count);
    (stored.snapshot(), count)
}

/// Applies a `custom` patch: `Null` clears the map, a `None` value removes its key.
/// Whether a `custom` patch that takes a map from `before` to `after` keys breaks the limit: it
/// leaves more than `max` and grows the map (one that shrinks or keeps it always goes through,
/// so a lowered limit never blocks cleaning up).
pub fn too_many_custom_keys(before: usize, after: usize, max: usize) -> bool {
    after > max && after > before
}

pub fn apply_custom_patch(
    custom: &mut crate::model::Custom,
    patch: &crate::model::Patch<BTreeMap<String, Option<String>>>,
) {
    match patch {
        crate::model::Patch::Absent => {}
        crate::model::Patch::Null => custom.clear(),
        crate::model::Patch::Value(changes) => {
            for (key, value) in changes {
                match value {
                    Some(v) => {
                        custom.insert(key.clone(), v.clone());
                    }
                    None => {
                        custom.remove(key);
                    }
                }
            }
        }
    }
}
