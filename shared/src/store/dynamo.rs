//! The DynamoDB store: one table, every access pattern of `Store` as one request (or one
//! transaction) with its conditions. The table design, the item layouts and the request count
//! of each method are documented in `docs/storage.md`; `MemoryStore` is the reference for the
//! behaviour, and `tests/store_conformance.rs` runs the same suite against both.
//!
//! Conventions:
//! * Every item carries `expiresAt` (seconds, the TTL attribute). DynamoDB deletes expired items
//!   late, so every read drops items with `expiresAt * 1000 <= now_ms` and every condition that
//!   asks "does it exist" also asks `expiresAt > :nowSecs` (`nowSecs` = `now_ms` div 1000, which
//!   makes the two tests agree exactly).
//! * Reads are strongly consistent: the domain reads, then writes with conditions, and a client
//!   expects to see what it has just written.
//! * A transaction cancelled only because it collided with another one (`TransactionConflict`)
//!   or was throttled is sent again, a few times, with a jittered backoff (the one retry policy
//!   of `ops`); every other cancellation is mapped, by item position, to the outcome the caller
//!   expects.
//! * Keys and attribute names come from `store::schema`, the one home of the table schema.

pub mod inbox;
mod lists;
pub mod ops;
pub mod typing;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::store::{
    ConversationReader, ConversationWriter, ItemReader, MessageCreator, MessageDeleter,
    MessageEditor, MessageImporter, MessageLister, ParticipantRemover, ParticipantWriter,
    ReactionAdder, ReactionReader, ReactionRemover, UserWriter,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, ConditionCheck, Delete, GlobalSecondaryIndex,
    KeySchemaElement, Projection, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    StreamSpecification, TableStatus, TimeToLiveSpecification, TimeToLiveStatus, TransactWriteItem,
    Update,
};
use aws_sdk_dynamodb::Client;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::{Intercept, SharedInterceptor};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use self::ops::{build_error, is_condition_failed, retry_conflicts, sdk_error, Cancelled, Item};
use super::memory::{apply_custom_patch, too_many_custom_keys, visible_reactions};
use super::schema::{
    self, attr, chg, conv_pk, idem_pk, idem_sk, key, msg_sk, part_sk, rxu_pk, rxu_sk, split_rxu_sk,
    user_pk, CONV_OWN_SK_PREFIX, CONV_PREFIX, CONV_SK, EXPIRES_AT, MSG_PREFIX, PART_PREFIX, PK, SK,
    USER_PREFIX, USER_SK,
};
use super::{
    is_expired, CreateConditions, CreateOutcome, Failed, ItemKey, Items, MessagePage,
    ReactionGuard, ReactionOutcome, StoreError, StoreResult,
};
use crate::config::aws::{DYNAMODB_IN_MAX_OPERANDS, DYNAMODB_TRANSACTION_MAX_ITEMS};
use crate::config::storage::{EXPIRED_READ_AHEAD, TABLE_ACTIVE_MAX_POLLS, TABLE_ACTIVE_POLL};
use crate::content::Content;
use crate::model::{
    Access, ConversationPatch, ConversationRecord, Custom, MessageEdit, MessageRecord, MessageType,
    Origin, ParticipantRecord, Patch, ReactionCount, UserPatch, UserRecord,
};

// ---- Keys ----------------------------------------------------------------------------------

/// Sends of `add_reaction`'s transaction: the first, one after sweeping zero counts, and one
/// more when a concurrent change made the first answer stale.
const MAX_REACTION_SENDS: usize = 3;

/// Sends of `edit_message`'s update at most: the first, and more while racing edits change the
/// `custom` keys it names (each send after the first knows the stored keys exactly).
const MAX_EDIT_SENDS: usize = 5;

fn item_key(k: &ItemKey) -> (String, String) {
    match k {
        ItemKey::User(id) => (user_pk(id), USER_SK.to_string()),
        ItemKey::Conversation(id) => (conv_pk(id), CONV_SK.to_string()),
        ItemKey::Participant {
            conversation_id,
            user_id,
        } => (conv_pk(conversation_id), part_sk(user_id)),
        ItemKey::Message {
            conversation_id,
            message_id,
        } => (conv_pk(conversation_id), msg_sk(message_id)),
        ItemKey::Typer {
            conversation_id,
            user_id,
        } => (schema::typing_pk(conversation_id), user_id.clone()),
    }
}

/// `now_ms` in whole seconds, rounded down: `expiresAt > nowSecs` ⇔ `!is_expired(expiresAt, now_ms)`.
fn now_secs(now_ms: i64) -> i64 {
    now_ms.div_euclid(1000)
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn string_map(m: &Custom) -> AttributeValue {
    AttributeValue::M(m.iter().map(|(k, v)| (k.clone(), s(v.clone()))).collect())
}

fn empty_map() -> AttributeValue {
    AttributeValue::M(HashMap::new())
}

/// The message's last change, which the stream fan-out reads from the new image.
fn change(kind: &str, emoji: Option<&str>, user_id: Option<&str>, at_ms: i64) -> AttributeValue {
    let mut m = HashMap::from([
        (chg::KIND.to_string(), s(kind)),
        (chg::AT.to_string(), n(at_ms)),
    ]);
    if let Some(e) = emoji {
        m.insert(chg::EMOJI.to_string(), s(e));
    }
    if let Some(u) = user_id {
        m.insert(chg::USER_ID.to_string(), s(u));
    }
    AttributeValue::M(m)
}

// ---- Expressions ---------------------------------------------------------------------------

/// Placeholders of one expression set (`#n0` for names, `:v0` for values). Every attribute
/// name goes through a placeholder, so reserved words (`name`, `type`, `role`, …) and emoji
/// map keys need no special care.
#[derive(Default)]
struct Expr {
    names: HashMap<String, String>,
    by_name: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expr {
    fn name(&mut self, attribute: &str) -> String {
        if let Some(p) = self.by_name.get(attribute) {
            return p.clone();
        }
        let p = format!("#n{}", self.names.len());
        self.names.insert(p.clone(), attribute.to_string());
        self.by_name.insert(attribute.to_string(), p.clone());
        p
    }

    fn value(&mut self, v: AttributeValue) -> String {
        let p = format!(":v{}", self.values.len());
        self.values.insert(p.clone(), v);
        p
    }

    /// `#expiresAt > :nowSecs`: the item is live.
    fn live(&mut self, now_ms: i64) -> String {
        let e = self.name(EXPIRES_AT);
        let now = self.value(n(now_secs(now_ms)));
        format!("{e} > {now}")
    }

    /// The item exists and is live.
    fn exists_live(&mut self, now_ms: i64) -> String {
        let pk = self.name(PK);
        let live = self.live(now_ms);
        format!("attribute_exists({pk}) AND {live}")
    }

    /// The item is missing or expired (so a Put may replace it).
    fn missing_or_expired(&mut self, now_ms: i64) -> String {
        let pk = self.name(PK);
        let e = self.name(EXPIRES_AT);
        let now = self.value(n(now_secs(now_ms)));
        format!("attribute_not_exists({pk}) OR {e} <= {now}")
    }

    fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

/// An update expression under construction.
#[derive(Default)]
struct UpdateExpr {
    set: Vec<String>,
    remove: Vec<String>,
}

impl UpdateExpr {
    fn render(&self) -> String {
        let mut parts = Vec::new();
        if !self.set.is_empty() {
            parts.push(format!("SET {}", self.set.join(", ")));
        }
        if !self.remove.is_empty() {
            parts.push(format!("REMOVE {}", self.remove.join(", ")));
        }
        parts.join(" ")
    }

    /// Applies a three-state patch to a string attribute.
    fn patch(&mut self, e: &mut Expr, attribute: &str, patch: &Patch<String>) {
        match patch {
            Patch::Absent => {}
            Patch::Null => self.remove.push(e.name(attribute)),
            Patch::Value(v) => {
                let a = e.name(attribute);
                let v = e.value(s(v.clone()));
                self.set.push(format!("{a} = {v}"));
            }
        }
    }

    /// Applies a patch that replaces the whole `custom` map; the map always exists afterwards.
    fn patch_custom(&mut self, e: &mut Expr, patch: &Patch<Custom>) {
        let c = e.name(attr::CUSTOM);
        match patch {
            Patch::Absent => {
                let empty = e.value(empty_map());
                self.set.push(format!("{c} = if_not_exists({c}, {empty})"));
            }
            Patch::Null => {
                let empty = e.value(empty_map());
                self.set.push(format!("{c} = {empty}"));
            }
            Patch::Value(m) => {
                let v = e.value(string_map(m));
                self.set.push(format!("{c} = {v}"));
            }
        }
    }
}

// ---- Reading items -------------------------------------------------------------------------

/// Typed access to an item's attributes; a missing or mistyped attribute is a `Backend` error
/// naming the item's key.
struct Reader<'a> {
    item: &'a Item,
}

impl<'a> Reader<'a> {
    fn new(item: &'a Item) -> Self {
        Reader { item }
    }

    fn describe(&self) -> String {
        let part = |k: &str| match self.item.get(k) {
            Some(AttributeValue::S(v)) => v.clone(),
            Some(other) => format!("{other:?}"),
            None => "?".to_string(),
        };
        format!("pk={:?} sk={:?}", part(PK), part(SK))
    }

    fn malformed(&self, what: impl std::fmt::Display) -> StoreError {
        StoreError::Backend(format!("malformed item {}: {what}", self.describe()))
    }

    fn opt_s(&self, name: &str) -> StoreResult<Option<&'a str>> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(v)) => Ok(Some(v.as_str())),
            Some(_) => Err(self.malformed(format!("{name} is not a string"))),
        }
    }

    fn s(&self, name: &str) -> StoreResult<&'a str> {
        self.opt_s(name)?
            .ok_or_else(|| self.malformed(format!("{name} is missing")))
    }

    fn opt_i64(&self, name: &str) -> StoreResult<Option<i64>> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(v)) => v
                .parse()
                .map(Some)
                .map_err(|_| self.malformed(format!("{name} is not an integer: {v:?}"))),
            Some(_) => Err(self.malformed(format!("{name} is not a number"))),
        }
    }

    fn opt_bool(&self, name: &str) -> StoreResult<Option<bool>> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.malformed(format!("{name} is not a boolean"))),
        }
    }

    fn i64(&self, name: &str) -> StoreResult<i64> {
        self.opt_i64(name)?
            .ok_or_else(|| self.malformed(format!("{name} is missing")))
    }

    fn expires_at(&self) -> StoreResult<i64> {
        self.i64(EXPIRES_AT)
    }

    fn is_live(&self, now_ms: i64) -> StoreResult<bool> {
        Ok(!is_expired(self.expires_at()?, now_ms))
    }

    /// The part of a key attribute after its prefix.
    fn key_suffix(&self, name: &str, prefix: &str) -> StoreResult<&'a str> {
        let v = self.s(name)?;
        v.strip_prefix(prefix)
            .ok_or_else(|| self.malformed(format!("{name} does not start with {prefix:?}")))
    }

    fn map(&self, name: &str) -> StoreResult<Option<&'a HashMap<String, AttributeValue>>> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::M(m)) => Ok(Some(m)),
            Some(_) => Err(self.malformed(format!("{name} is not a map"))),
        }
    }

    /// A map of strings; a missing map is empty.
    fn custom(&self, name: &str) -> StoreResult<Custom> {
        let mut out = Custom::new();
        for (k, v) in self.map(name)?.into_iter().flatten() {
            match v {
                AttributeValue::S(v) => {
                    out.insert(k.clone(), v.clone());
                }
                _ => return Err(self.malformed(format!("{name}.{k} is not a string"))),
            }
        }
        Ok(out)
    }

    /// A map of integers; a missing map is empty.
    fn counters(&self, name: &str) -> StoreResult<BTreeMap<String, i64>> {
        let mut out = BTreeMap::new();
        for (k, v) in self.map(name)?.into_iter().flatten() {
            match v {
                AttributeValue::N(num) => {
                    let parsed = num.parse().map_err(|_| {
                        self.malformed(format!("{name}.{k} is not an integer: {num:?}"))
                    })?;
                    out.insert(k.clone(), parsed);
                }
                _ => return Err(self.malformed(format!("{name}.{k} is not a number"))),
            }
        }
        Ok(out)
    }
}

fn read_user(item: &Item) -> StoreResult<UserRecord> {
    let r = Reader::new(item);
    Ok(UserRecord {
        id: r.key_suffix(PK, USER_PREFIX)?.to_string(),
        name: r.opt_s(attr::NAME)?.map(str::to_string),
        photo_url: r.opt_s(attr::PHOTO_URL)?.map(str::to_string),
        role: r.opt_s(attr::ROLE)?.map(str::to_string),
        custom: r.custom(attr::CUSTOM)?,
        expires_at: r.expires_at()?,
    })
}

fn read_conversation(item: &Item) -> StoreResult<ConversationRecord> {
    let r = Reader::new(item);
    Ok(ConversationRecord {
        id: r.key_suffix(PK, CONV_PREFIX)?.to_string(),
        subject: r.opt_s(attr::SUBJECT)?.map(str::to_string),
        photo_url: r.opt_s(attr::PHOTO_URL)?.map(str::to_string),
        custom: r.custom(attr::CUSTOM)?,
        created_at: r.i64(attr::CREATED_AT)?,
        expires_at: r.expires_at()?,
    })
}

pub fn read_participant(item: &Item) -> StoreResult<ParticipantRecord> {
    let r = Reader::new(item);
    let access = r.s(attr::ACCESS)?;
    Ok(ParticipantRecord {
        conversation_id: r.key_suffix(PK, CONV_PREFIX)?.to_string(),
        user_id: r.key_suffix(SK, PART_PREFIX)?.to_string(),
        access: Access::parse(access)
            .ok_or_else(|| r.malformed(format!("unknown access {access:?}")))?,
        joined_at: r.i64(attr::JOINED_AT)?,
        read_until: r.opt_i64(attr::READ_UNTIL)?,
        marked_unread: r.opt_bool(attr::MARKED_UNREAD)?.unwrap_or(false),
        expires_at: r.expires_at()?,
    })
}

/// Every reaction counter of a message item, zero counts included, in the order the emoji were
/// (first) added.
fn read_reaction_counts(r: &Reader<'_>) -> StoreResult<Vec<ReactionCount>> {
    let counts = r.counters(attr::RXN)?;
    let first_added = r.counters(attr::RXT)?;
    let order = r.counters(attr::RXO)?;
    let mut all = counts
        .into_iter()
        .map(|(emoji, count)| {
            let first_added_at = *first_added
                .get(&emoji)
                .ok_or_else(|| r.malformed(format!("rxt has no first-added time for {emoji:?}")))?;
            let added = *order
                .get(&emoji)
                .ok_or_else(|| r.malformed(format!("rxo has no place for {emoji:?}")))?;
            let reaction = ReactionCount {
                emoji,
                count: u64::try_from(count).unwrap_or(0),
                first_added_at,
            };
            Ok((added, reaction))
        })
        .collect::<StoreResult<Vec<_>>>()?;
    all.sort_by_key(|(added, _)| *added);
    Ok(all.into_iter().map(|(_, r)| r).collect())
}

pub fn read_message(item: &Item) -> StoreResult<MessageRecord> {
    let r = Reader::new(item);
    let kind = r.s(attr::TYPE)?;
    let origin = r.s(attr::ORIGIN)?;
    let content = r.s(attr::CONTENT)?;
    Ok(MessageRecord {
        conversation_id: r.key_suffix(PK, CONV_PREFIX)?.to_string(),
        id: r.key_suffix(SK, MSG_PREFIX)?.to_string(),
        kind: MessageType::parse(kind)
            .ok_or_else(|| r.malformed(format!("unknown type {kind:?}")))?,
        sender_id: r.opt_s(attr::SENDER_ID)?.map(str::to_string),
        content: serde_json::from_str::<Content>(content)
            .map_err(|e| r.malformed(format!("content is not valid: {e}")))?,
        custom: r.custom(attr::CUSTOM)?,
        created_at: r.i64(attr::CREATED_AT)?,
        edited_at: r.opt_i64(attr::EDITED_AT)?,
        origin: Origin::parse(origin)
            .ok_or_else(|| r.malformed(format!("unknown origin {origin:?}")))?,
        referenced_message_id: r.opt_s(attr::REF_ID)?.map(str::to_string),
        referenced_sender_id: r.opt_s(attr::REF_SENDER_ID)?.map(str::to_string),
        // A stable sort by first-added time: emoji added in one millisecond keep their order.
        reactions: visible_reactions(&read_reaction_counts(&r)?),
        expires_at: r.expires_at()?,
    })
}

// ---- Writing items -------------------------------------------------------------------------

fn message_item(m: &MessageRecord, now_ms: i64) -> StoreResult<Item> {
    let content = serde_json::to_string(&m.content)
        .map_err(|e| StoreError::Backend(format!("could not serialize content: {e}")))?;
    let mut item = key(conv_pk(&m.conversation_id), msg_sk(&m.id));
    item.insert(attr::TYPE.into(), s(m.kind.as_str()));
    if let Some(sender) = &m.sender_id {
        item.insert(attr::SENDER_ID.into(), s(sender.clone()));
    }
    item.insert(attr::CONTENT.into(), s(content));
    item.insert(attr::CUSTOM.into(), string_map(&m.custom));
    item.insert(attr::CREATED_AT.into(), n(m.created_at));
    if let Some(edited) = m.edited_at {
        item.insert(attr::EDITED_AT.into(), n(edited));
    }
    item.insert(attr::ORIGIN.into(), s(m.origin.as_str()));
    if let Some(r) = &m.referenced_message_id {
        item.insert(attr::REF_ID.into(), s(r.clone()));
    }
    if let Some(r) = &m.referenced_sender_id {
        item.insert(attr::REF_SENDER_ID.into(), s(r.clone()));
    }
    item.insert(attr::RXN.into(), empty_map());
    item.insert(attr::RXT.into(), empty_map());
    item.insert(attr::RXO.into(), empty_map());
    item.insert(attr::RXQ.into(), n(0));
    item.insert(chg::ATTR.into(), change(chg::CREATED, None, None, now_ms));
    item.insert(EXPIRES_AT.into(), n(m.expires_at));
    Ok(item)
}

/// Adds a participant or changes their access: a participant already there keeps their
/// `joinedAt`, their place in their conversation list and their read state.
fn participant_upsert(
    table: &str,
    conversation_id: &str,
    user_id: &str,
    access: Access,
    now_ms: i64,
    expires_at: i64,
) -> StoreResult<TransactWriteItem> {
    let mut e = Expr::default();
    let set = |e: &mut Expr, name: &str, v: AttributeValue| {
        let (name, v) = (e.name(name), e.value(v));
        format!("{name} = {v}")
    };
    let keep = |e: &mut Expr, name: &str, v: AttributeValue| {
        let (name, v) = (e.name(name), e.value(v));
        format!("{name} = if_not_exists({name}, {v})")
    };
    let parts = [
        set(&mut e, attr::ACCESS, s(access.as_str())),
        set(&mut e, EXPIRES_AT, n(expires_at)),
        set(&mut e, schema::GSI1_PK, s(schema::uconv_pk(user_id))),
        keep(&mut e, attr::JOINED_AT, n(now_ms)),
        keep(
            &mut e,
            schema::GSI1_SK,
            s(schema::activity_key(now_ms, conversation_id)),
        ),
    ];
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(key(conv_pk(conversation_id), part_sk(user_id))))
        .update_expression(format!("SET {}", parts.join(", ")))
        .set_expression_attribute_names(e.names())
        .set_expression_attribute_values(e.values())
        .build()
        .map_err(build_error)?;
    Ok(TransactWriteItem::builder().update(update).build())
}

// ---- Transactions --------------------------------------------------------------------------

fn condition_check(
    table: &str,
    key: Item,
    e: Expr,
    condition: String,
) -> StoreResult<TransactWriteItem> {
    let check = ConditionCheck::builder()
        .table_name(table)
        .set_key(Some(key))
        .condition_expression(condition)
        .set_expression_attribute_names(e.names())
        .set_expression_attribute_values(e.values())
        .build()
        .map_err(build_error)?;
    Ok(TransactWriteItem::builder().condition_check(check).build())
}

fn put(
    table: &str,
    item: Item,
    condition: Option<(Expr, String)>,
) -> StoreResult<TransactWriteItem> {
    let mut b = Put::builder().table_name(table).set_item(Some(item));
    if let Some((e, c)) = condition {
        b = b
            .condition_expression(c)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values());
    }
    Ok(TransactWriteItem::builder()
        .put(b.build().map_err(build_error)?)
        .build())
}

// ---- Request counting ----------------------------------------------------------------------

/// Records the DynamoDB operations a client sends, for tests and for documenting request
/// counts. Install it with `aws_sdk_dynamodb::config::Builder::interceptor(counter.clone())`.
///
/// `take` lists one entry per *operation* (an SDK call such as `TransactWriteItems` or `Query`,
/// recorded before serialization), so the SDK's own retries of an attempt are not counted
/// there; they show up in `attempts`, which counts every HTTP attempt. The store's own retries
/// (transaction conflicts, unprocessed batch keys, the sweep at the reaction limit) are new
/// operations and are counted.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    inner: Arc<Mutex<CounterState>>,
}

#[derive(Debug, Default)]
struct CounterState {
    operations: Vec<String>,
    attempts: usize,
}

impl RequestCounter {
    pub fn new() -> Self {
        Self::default()
    }

    /// The operations recorded since the last `take`, in order; clears the record.
    pub fn take(&self) -> Vec<String> {
        match self.inner.lock() {
            Ok(mut state) => {
                state.attempts = 0;
                std::mem::take(&mut state.operations)
            }
            Err(_) => Vec::new(),
        }
    }

    /// HTTP attempts (including the SDK's retries) since the last `take`.
    pub fn attempts(&self) -> usize {
        self.inner.lock().map(|s| s.attempts).unwrap_or(0)
    }

    /// This counter as an interceptor for an SDK config builder.
    pub fn interceptor(&self) -> SharedInterceptor {
        SharedInterceptor::new(self.clone())
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "natter::RequestCounter"
    }

    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let name = cfg
            .load::<Metadata>()
            .map(|m| m.name().to_string())
            .unwrap_or_else(|| "unknown".to_string());
        if let Ok(mut state) = self.inner.lock() {
            state.operations.push(name);
        }
        Ok(())
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Ok(mut state) = self.inner.lock() {
            state.attempts += 1;
        }
        Ok(())
    }
}

// ---- The table definition as a CreateTable request ------------------------------------------

fn key_schema(elements: &[schema::KeyElement]) -> StoreResult<Vec<KeySchemaElement>> {
    elements
        .iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(k.attribute_name)
                .key_type(k.key_type.clone())
                .build()
                .map_err(build_error)
        })
        .collect()
}

fn attribute_definitions(table: &schema::TableDefinition) -> StoreResult<Vec<AttributeDefinition>> {
    table
        .attribute_definitions
        .iter()
        .map(|a| {
            AttributeDefinition::builder()
                .attribute_name(a.attribute_name)
                .attribute_type(a.attribute_type.clone())
                .build()
                .map_err(build_error)
        })
        .collect()
}

fn global_secondary_indexes(
    table: &schema::TableDefinition,
) -> StoreResult<Vec<GlobalSecondaryIndex>> {
    table
        .global_secondary_indexes
        .iter()
        .map(|index| {
            GlobalSecondaryIndex::builder()
                .index_name(index.index_name)
                .set_key_schema(Some(key_schema(&index.key_schema)?))
                .projection(
                    Projection::builder()
                        .projection_type(index.projection_type.clone())
                        .build(),
                )
                .build()
                .map_err(build_error)
        })
        .collect()
}

// ---- The store -----------------------------------------------------------------------------

/// `Store` on one DynamoDB table (see `docs/storage.md`).
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

/// Which condition an item of a transaction stands for, to map cancellation reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Message,
    Writer,
    Conversation,
    Referenced,
    Idempotency,
}

/// What a function logs once its warm-up is done, with `elapsed_us` (the cold-init bench reads
/// it to show the warm-up's share of init).
pub const WARM_UP_LOG: &str = "DynamoDB connection opened";

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Opens the connection to DynamoDB and does the SDK's first-request work (credentials,
    /// endpoint, TLS) at a function's init, so that its first invocation costs what a warm one
    /// does: one eventually consistent `GetItem` of the warm-up key (`schema::WARM_UP_PK`),
    /// where no item ever is. The functions' IAM policies allow `GetItem` on that partition
    /// only (`WarmUpPolicy` in `template.yaml`).
    pub async fn warm_up(&self) -> StoreResult<()> {
        self.client
            .get_item()
            .table_name(&self.table)
            .key(
                schema::PK,
                AttributeValue::S(schema::WARM_UP_PK.to_string()),
            )
            .key(
                schema::SK,
                AttributeValue::S(schema::WARM_UP_PK.to_string()),
            )
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        Ok(())
    }

    /// Creates the table as `schema::TABLE` defines it (keys, `gsi1`, on-demand billing, a
    /// NEW_AND_OLD_IMAGES stream) when it does not exist, waits until it is ACTIVE and makes sure
    /// TTL is enabled on its TTL attribute (`expiresAt`).
    pub async fn create_table_if_missing(&self) -> StoreResult<()> {
        let exists = match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(_) => true,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                false
            }
            Err(e) => return Err(sdk_error("DescribeTable", e)),
        };
        if !exists {
            let created = self
                .client
                .create_table()
                .table_name(&self.table)
                .set_attribute_definitions(Some(attribute_definitions(&schema::TABLE)?))
                .set_key_schema(Some(key_schema(&schema::TABLE.key_schema)?))
                .set_global_secondary_indexes(Some(global_secondary_indexes(&schema::TABLE)?))
                .billing_mode(schema::TABLE.billing_mode)
                .stream_specification(
                    StreamSpecification::builder()
                        .stream_enabled(true)
                        .stream_view_type(schema::TABLE.stream_view_type)
                        .build()
                        .map_err(build_error)?,
                )
                .send()
                .await;
            match created {
                Ok(_) => {}
                // Someone else created it a moment ago.
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_resource_in_use_exception()) => {}
                Err(e) => return Err(sdk_error("CreateTable", e)),
            }
        }
        self.wait_until_active().await?;
        self.enable_ttl().await
    }

    async fn wait_until_active(&self) -> StoreResult<()> {
        for _ in 0..TABLE_ACTIVE_MAX_POLLS {
            let out = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| sdk_error("DescribeTable", e))?;
            if out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(TABLE_ACTIVE_POLL).await;
        }
        Err(StoreError::Backend(format!(
            "table {} did not become ACTIVE within 2 minutes",
            self.table
        )))
    }

    async fn enable_ttl(&self) -> StoreResult<()> {
        let ttl_attribute = schema::TABLE.ttl_attribute;
        let out = self
            .client
            .describe_time_to_live()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeTimeToLive", e))?;
        let status = out.time_to_live_description().and_then(|d| {
            d.time_to_live_status()
                .cloned()
                .map(|s| (s, d.attribute_name().map(str::to_string)))
        });
        match status {
            Some((TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling, Some(attr)))
                if attr == ttl_attribute =>
            {
                return Ok(())
            }
            Some((TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling, attr)) => {
                return Err(StoreError::Backend(format!(
                    "table {} has TTL on {attr:?}, not {ttl_attribute}",
                    self.table
                )))
            }
            _ => {}
        }
        let spec = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(ttl_attribute)
            .build()
            .map_err(build_error)?;
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(spec)
            .send()
            .await
            .map_err(|e| sdk_error("UpdateTimeToLive", e))?;
        Ok(())
    }

    /// Sends a transaction with the helpers' retry policy (`ops::transact`).
    async fn transact(
        &self,
        what: &str,
        items: Vec<TransactWriteItem>,
    ) -> StoreResult<Result<(), Cancelled>> {
        ops::transact(&self.client, what, items).await
    }

    fn update(
        &self,
        key: Item,
        update: &UpdateExpr,
        e: Expr,
        condition: String,
        return_old_on_failure: bool,
    ) -> StoreResult<TransactWriteItem> {
        let mut b = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .update_expression(update.render())
            .condition_expression(condition)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values());
        if return_old_on_failure {
            b = b.return_values_on_condition_check_failure(
                ReturnValuesOnConditionCheckFailure::AllOld,
            );
        }
        Ok(TransactWriteItem::builder()
            .update(b.build().map_err(build_error)?)
            .build())
    }

    /// Deletes an item only if it is expired (so that a record that expired is never revived by
    /// an update); a missing or live item is left alone.
    async fn delete_if_expired(&self, key: Item, now_ms: i64) -> StoreResult<()> {
        let mut e = Expr::default();
        let ex = e.name(EXPIRES_AT);
        let now = e.value(n(now_secs(now_ms)));
        let request = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .condition_expression(format!("{ex} <= {now}"))
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values());
        let result = retry_conflicts(|| request.clone().send()).await;
        match result {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(err) => Err(sdk_error("DeleteItem", err)),
        }
    }

    /// A participant check: an unexpired participant, with `ReadWrite` access when asked.
    fn participant_check(
        &self,
        conversation_id: &str,
        user_id: &str,
        write_access: bool,
        now_ms: i64,
    ) -> StoreResult<TransactWriteItem> {
        let mut e = Expr::default();
        let mut condition = e.exists_live(now_ms);
        if write_access {
            let a = e.name(attr::ACCESS);
            let rw = e.value(s(Access::ReadWrite.as_str()));
            condition = format!("{condition} AND {a} = {rw}");
        }
        condition_check(
            &self.table,
            key(conv_pk(conversation_id), part_sk(user_id)),
            e,
            condition,
        )
    }

    /// The role check of a reaction guard, when it denies anything: passes when the user's
    /// stored role (none when the user item is missing or expired) may react.
    fn role_check(
        &self,
        guard: &ReactionGuard,
        now_ms: i64,
    ) -> StoreResult<Option<TransactWriteItem>> {
        if guard.denied_roles.is_empty() && !guard.deny_default_role {
            return Ok(None);
        }
        let mut e = Expr::default();
        let pk = e.name(PK);
        let ex = e.name(EXPIRES_AT);
        let role = e.name(attr::ROLE);
        let now = e.value(n(now_secs(now_ms)));
        let has_role =
            format!("(attribute_exists({pk}) AND {ex} > {now} AND attribute_exists({role}))");
        // `IN` takes at most 100 operands.
        let not_denied: Vec<String> = guard
            .denied_roles
            .chunks(DYNAMODB_IN_MAX_OPERANDS)
            .map(|chunk| {
                let list: Vec<String> = chunk.iter().map(|r| e.value(s(r.clone()))).collect();
                format!("NOT ({role} IN ({}))", list.join(", "))
            })
            .collect();
        let condition = match (guard.deny_default_role, not_denied.is_empty()) {
            (true, true) => has_role,
            (true, false) => format!("{has_role} AND {}", not_denied.join(" AND ")),
            (false, _) => format!("(NOT {has_role}) OR ({})", not_denied.join(" AND ")),
        };
        condition_check(
            &self.table,
            key(user_pk(&guard.participant), USER_SK),
            e,
            condition,
        )
        .map(Some)
    }

    /// Removes the given zero-count emoji from a message, only if all of them are still zero.
    /// Returns whether it did.
    async fn sweep_zero_reactions(
        &self,
        conversation_id: &str,
        message_id: &str,
        zeros: &[String],
    ) -> StoreResult<bool> {
        let mut e = Expr::default();
        let rxn = e.name(attr::RXN);
        let rxt = e.name(attr::RXT);
        let rxo = e.name(attr::RXO);
        let zero = e.value(n(0));
        let mut removes = Vec::new();
        let mut conditions = Vec::new();
        for emoji in zeros {
            let z = e.name(emoji);
            removes.push(format!("{rxn}.{z}, {rxt}.{z}, {rxo}.{z}"));
            conditions.push(format!("{rxn}.{z} = {zero}"));
        }
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(conv_pk(conversation_id), msg_sk(message_id))))
            .update_expression(format!("REMOVE {}", removes.join(", ")))
            .condition_expression(conditions.join(" AND "))
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values());
        let result = retry_conflicts(|| request.clone().send()).await;
        match result {
            Ok(_) => Ok(true),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(err) => Err(sdk_error("UpdateItem (sweep)", err)),
        }
    }

    /// Queries every item of a key condition (strongly consistent), page after page.
    async fn query_all(
        &self,
        e: &Expr,
        key_condition: &str,
        filter: Option<&str>,
    ) -> StoreResult<Vec<Item>> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression(key_condition)
            .set_filter_expression(filter.map(str::to_string))
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .consistent_read(true);
        ops::query_all(query).await
    }
}

#[async_trait]
impl ItemReader for DynamoStore {
    async fn get_items(&self, keys: &[ItemKey], now_ms: i64) -> StoreResult<Items> {
        let mut seen = HashSet::new();
        let unique: Vec<Item> = keys
            .iter()
            .map(item_key)
            .filter(|k| seen.insert(k.clone()))
            .map(|(pk, sk)| key(pk, sk))
            .collect();
        let found = ops::batch_get(&self.client, &self.table, unique).await?;
        let mut items = Items::default();
        for item in &found {
            let r = Reader::new(item);
            if !r.is_live(now_ms)? {
                continue;
            }
            if r.s(PK)?.starts_with(schema::TYPING_PREFIX) {
                let t = typing::read_typer(item)?;
                if t.is_live(now_ms) {
                    items
                        .typers
                        .insert((t.conversation_id.clone(), t.user_id.clone()), t);
                }
                continue;
            }
            let sk = r.s(SK)?;
            if sk == USER_SK {
                let u = read_user(item)?;
                items.users.insert(u.id.clone(), u);
            } else if sk == CONV_SK {
                let c = read_conversation(item)?;
                items.conversations.insert(c.id.clone(), c);
            } else if sk.starts_with(PART_PREFIX) {
                let p = read_participant(item)?;
                items
                    .participants
                    .insert((p.conversation_id.clone(), p.user_id.clone()), p);
            } else if sk.starts_with(MSG_PREFIX) {
                let m = read_message(item)?;
                items
                    .messages
                    .insert((m.conversation_id.clone(), m.id.clone()), m);
            } else {
                return Err(r.malformed("unexpected sort key"));
            }
        }
        Ok(items)
    }
}

#[async_trait]
impl UserWriter for DynamoStore {
    async fn upsert_user(
        &self,
        user_id: &str,
        patch: &UserPatch,
        now_ms: i64,
        expires_at: i64,
    ) -> StoreResult<UserRecord> {
        for attempt in 0..2 {
            let mut e = Expr::default();
            let mut u = UpdateExpr::default();
            u.patch(&mut e, attr::NAME, &patch.name);
            u.patch(&mut e, attr::PHOTO_URL, &patch.photo_url);
            u.patch(&mut e, attr::ROLE, &patch.role);
            u.patch_custom(&mut e, &patch.custom);
            let ex = e.name(EXPIRES_AT);
            let exp = e.value(n(expires_at));
            u.set.push(format!("{ex} = {exp}"));
            let pk = e.name(PK);
            let now = e.value(n(now_secs(now_ms)));
            let request = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(user_pk(user_id), USER_SK)))
                .update_expression(u.render())
                .condition_expression(format!("attribute_not_exists({pk}) OR {ex} > {now}"))
                .set_expression_attribute_names(e.names())
                .set_expression_attribute_values(e.values())
                .return_values(ReturnValue::AllNew);
            let result = retry_conflicts(|| request.clone().send()).await;
            match result {
                Ok(out) => {
                    let item = out.attributes().ok_or_else(|| {
                        StoreError::Backend("UpdateItem returned no attributes".into())
                    })?;
                    return read_user(item);
                }
                // An expired record is still there: delete it so none of its fields survive,
                // then apply the patch to nothing.
                Err(err) if attempt == 0 && is_condition_failed(&err) => {
                    self.delete_if_expired(key(user_pk(user_id), USER_SK), now_ms)
                        .await?;
                }
                Err(err) => return Err(sdk_error("UpdateItem (user)", err)),
            }
        }
        Err(StoreError::Backend(format!(
            "user {user_id}: the expired record could not be replaced"
        )))
    }
}

#[async_trait]
impl ConversationWriter for DynamoStore {
    async fn upsert_conversation(
        &self,
        conversation_id: &str,
        patch: &ConversationPatch,
        participants: &[(String, Access)],
        only_if_new: bool,
        now_ms: i64,
        expires_at: i64,
    ) -> StoreResult<()> {
        // Later entries for the same user win, as in the memory store; a transaction may not
        // touch one item twice.
        let mut unique: BTreeMap<&str, Access> = BTreeMap::new();
        for (user_id, access) in participants {
            unique.insert(user_id.as_str(), *access);
        }
        if unique.len() + 1 > DYNAMODB_TRANSACTION_MAX_ITEMS {
            return Err(StoreError::Backend(format!(
                "a conversation upsert takes at most {} participants",
                DYNAMODB_TRANSACTION_MAX_ITEMS - 1
            )));
        }
        for attempt in 0..2 {
            let mut e = Expr::default();
            let mut u = UpdateExpr::default();
            let created = e.name(attr::CREATED_AT);
            let now_v = e.value(n(now_ms));
            u.set
                .push(format!("{created} = if_not_exists({created}, {now_v})"));
            u.patch(&mut e, attr::SUBJECT, &patch.subject);
            u.patch(&mut e, attr::PHOTO_URL, &patch.photo_url);
            u.patch_custom(&mut e, &patch.custom);
            let ex = e.name(EXPIRES_AT);
            let exp = e.value(n(expires_at));
            u.set.push(format!("{ex} = {exp}"));
            let pk = e.name(PK);
            let condition = if only_if_new {
                // Only its creator writes a new conversation (an expired one is deleted first).
                format!("attribute_not_exists({pk})")
            } else {
                let now = e.value(n(now_secs(now_ms)));
                format!("attribute_not_exists({pk}) OR {ex} > {now}")
            };
            let mut items = vec![self.update(
                key(conv_pk(conversation_id), CONV_SK),
                &u,
                e,
                condition,
                only_if_new,
            )?];
            for (user_id, access) in &unique {
                items.push(participant_upsert(
                    &self.table,
                    conversation_id,
                    user_id,
                    *access,
                    now_ms,
                    expires_at,
                )?);
            }
            match self.transact("upsert conversation", items).await? {
                Ok(()) => return Ok(()),
                Err(c) if only_if_new && c.failed(0) => {
                    let live = match c.item(0) {
                        Some(item) => Reader::new(item).is_live(now_ms)?,
                        // Not told: a live one stays after `delete_if_expired`, and fails again.
                        None => attempt > 0,
                    };
                    if live || attempt > 0 {
                        return Err(StoreError::ConditionFailed(Failed::ConversationExists));
                    }
                    self.delete_if_expired(key(conv_pk(conversation_id), CONV_SK), now_ms)
                        .await?;
                }
                Err(c) if attempt == 0 && c.failed(0) => {
                    // An expired conversation is still there: start over.
                    self.delete_if_expired(key(conv_pk(conversation_id), CONV_SK), now_ms)
                        .await?;
                }
                Err(c) => return Err(c.unexpected("upsert conversation")),
            }
        }
        Err(StoreError::Backend(format!(
            "conversation {conversation_id}: the expired record could not be replaced"
        )))
    }
}

#[async_trait]
impl ConversationReader for DynamoStore {
    async fn get_conversation(
        &self,
        conversation_id: &str,
        now_ms: i64,
    ) -> StoreResult<Option<(ConversationRecord, Vec<ParticipantRecord>)>> {
        let mut e = Expr::default();
        let pk = e.name(PK);
        let sk = e.name(SK);
        let pk_v = e.value(s(conv_pk(conversation_id)));
        let hash = e.value(s(CONV_OWN_SK_PREFIX));
        let items = self
            .query_all(
                &e,
                &format!("{pk} = {pk_v} AND begins_with({sk}, {hash})"),
                None,
            )
            .await?;
        let mut conversation = None;
        let mut participants = Vec::new();
        for item in &items {
            let r = Reader::new(item);
            if !r.is_live(now_ms)? {
                continue;
            }
            let sk = r.s(SK)?;
            if sk == CONV_SK {
                conversation = Some(read_conversation(item)?);
            } else if sk.starts_with(PART_PREFIX) {
                participants.push(read_participant(item)?);
            }
        }
        Ok(conversation.map(|c| (c, participants)))
    }
}

#[async_trait]
impl ParticipantWriter for DynamoStore {
    async fn put_participant(
        &self,
        participant: &ParticipantRecord,
        now_ms: i64,
    ) -> StoreResult<()> {
        let cid = &participant.conversation_id;
        let mut e = Expr::default();
        let condition = e.exists_live(now_ms);
        let items = vec![
            condition_check(&self.table, key(conv_pk(cid), CONV_SK), e, condition)?,
            participant_upsert(
                &self.table,
                cid,
                &participant.user_id,
                participant.access,
                now_ms,
                participant.expires_at,
            )?,
        ];
        match self.transact("put participant", items).await? {
            Ok(()) => Ok(()),
            Err(c) if c.failed(0) => Err(StoreError::ConditionFailed(Failed::ConversationMissing)),
            Err(c) => Err(c.unexpected("put participant")),
        }
    }
}

#[async_trait]
impl ParticipantRemover for DynamoStore {
    /// Two deletes side by side: the participant and their activity item, so that nothing of
    /// the conversation is left in the user's conversation list.
    async fn delete_participant(&self, conversation_id: &str, user_id: &str) -> StoreResult<()> {
        let delete = |key: Item| {
            let request = self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key));
            async move {
                retry_conflicts(|| request.clone().send())
                    .await
                    .map_err(|e| sdk_error("DeleteItem (participant)", e))
            }
        };
        futures::future::try_join(
            delete(key(conv_pk(conversation_id), part_sk(user_id))),
            delete(key(schema::act_pk(conversation_id), user_id)),
        )
        .await?;
        Ok(())
    }
}

#[async_trait]
impl MessageCreator for DynamoStore {
    async fn create_message(
        &self,
        message: &MessageRecord,
        conditions: &CreateConditions,
        now_ms: i64,
    ) -> StoreResult<CreateOutcome> {
        let cid = message.conversation_id.as_str();
        let mut slots = Vec::new();
        let mut items = Vec::new();

        let mut e = Expr::default();
        let pk = e.name(PK);
        items.push(put(
            &self.table,
            message_item(message, now_ms)?,
            Some((e, format!("attribute_not_exists({pk})"))),
        )?);
        slots.push(Slot::Message);

        if let Some(writer) = &conditions.writer {
            items.push(self.participant_check(cid, writer, true, now_ms)?);
            slots.push(Slot::Writer);
        }
        if conditions.conversation_exists {
            let mut e = Expr::default();
            let condition = e.exists_live(now_ms);
            items.push(condition_check(
                &self.table,
                key(conv_pk(cid), CONV_SK),
                e,
                condition,
            )?);
            slots.push(Slot::Conversation);
        }
        if let Some(referenced) = &conditions.referenced_message_id {
            let mut e = Expr::default();
            let condition = e.exists_live(now_ms);
            items.push(condition_check(
                &self.table,
                key(conv_pk(cid), msg_sk(referenced)),
                e,
                condition,
            )?);
            slots.push(Slot::Referenced);
        }
        if let Some(idem) = &conditions.idempotency_key {
            let mut item = key(idem_pk(cid, idem.sender.as_deref()), idem_sk(&idem.key));
            item.insert(attr::MESSAGE_ID.into(), s(message.id.clone()));
            item.insert(EXPIRES_AT.into(), n(message.expires_at));
            let mut e = Expr::default();
            let condition = e.missing_or_expired(now_ms);
            // On failure the stored item comes back in the cancellation reason: the duplicate's
            // message id without another read.
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(condition)
                .set_expression_attribute_names(e.names())
                .set_expression_attribute_values(e.values())
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(build_error)?;
            items.push(TransactWriteItem::builder().put(put).build());
            slots.push(Slot::Idempotency);
        }

        let cancelled = match self.transact("create message", items).await? {
            Ok(()) => return Ok(CreateOutcome::Created),
            Err(c) => c,
        };
        let failed = |slot: Slot| {
            slots
                .iter()
                .position(|s| *s == slot)
                .filter(|i| cancelled.failed(*i))
        };
        if let Some(i) = failed(Slot::Idempotency) {
            let item = cancelled.item(i).ok_or_else(|| {
                StoreError::Backend(
                    "the idempotency check failed without returning the item".into(),
                )
            })?;
            let message_id = Reader::new(item).s(attr::MESSAGE_ID)?.to_string();
            return Ok(CreateOutcome::Duplicate { message_id });
        }
        if failed(Slot::Writer).is_some() {
            return Err(StoreError::ConditionFailed(Failed::NotParticipant));
        }
        if failed(Slot::Conversation).is_some() {
            return Err(StoreError::ConditionFailed(Failed::ConversationMissing));
        }
        if failed(Slot::Referenced).is_some() {
            return Err(StoreError::ConditionFailed(Failed::ReferencedMissing));
        }
        if failed(Slot::Message).is_some() {
            return Err(StoreError::Backend(format!(
                "message {} already exists in conversation {cid}",
                message.id
            )));
        }
        Err(cancelled.unexpected("create message"))
    }
}

#[async_trait]
impl MessageImporter for DynamoStore {
    async fn import_messages(&self, messages: &[MessageRecord], now_ms: i64) -> StoreResult<()> {
        // The last of several messages with one key wins, as in the memory store.
        let mut unique: BTreeMap<(&str, &str), &MessageRecord> = BTreeMap::new();
        for m in messages {
            unique.insert((m.conversation_id.as_str(), m.id.as_str()), m);
        }
        if unique.is_empty() {
            return Ok(());
        }
        if unique.len() > DYNAMODB_TRANSACTION_MAX_ITEMS {
            return Err(StoreError::Backend(format!(
                "an import takes at most {DYNAMODB_TRANSACTION_MAX_ITEMS} messages"
            )));
        }
        let items = unique
            .values()
            .map(|m| put(&self.table, message_item(m, now_ms)?, None))
            .collect::<StoreResult<Vec<_>>>()?;
        match self.transact("import messages", items).await? {
            Ok(()) => Ok(()),
            Err(c) => Err(c.unexpected("import messages")),
        }
    }
}

#[async_trait]
impl MessageLister for DynamoStore {
    async fn list_messages(
        &self,
        conversation_id: &str,
        before: Option<&str>,
        limit: usize,
        now_ms: i64,
    ) -> StoreResult<MessagePage> {
        let want = limit.saturating_add(1);
        let mut e = Expr::default();
        let pk = e.name(PK);
        let sk = e.name(SK);
        let pk_v = e.value(s(conv_pk(conversation_id)));
        let low = e.value(s(MSG_PREFIX));
        // `before` is exclusive; a key condition bound is inclusive, so the `before` item (the
        // first one in descending order) is read and skipped: one more in the first page's Limit.
        let upper = before.map(msg_sk);
        let key_condition = match &upper {
            Some(upper) => {
                let hi = e.value(s(upper.clone()));
                format!("{pk} = {pk_v} AND {sk} BETWEEN {low} AND {hi}")
            }
            None => format!("{pk} = {pk_v} AND begins_with({sk}, {low})"),
        };
        let filter = e.live(now_ms);
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        let mut first = true;
        let mut skipped_expired = false;
        loop {
            let remaining = want - found.len();
            // A later page means the last one ended early: at the 1 MB page size, or because
            // expired items were filtered out; then more are likely, so read more at once.
            let page = if first {
                remaining + usize::from(upper.is_some())
            } else if skipped_expired {
                remaining.max(EXPIRED_READ_AHEAD)
            } else {
                remaining
            };
            first = false;
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(&key_condition)
                .filter_expression(&filter)
                .set_expression_attribute_names(e.names())
                .set_expression_attribute_values(e.values())
                .scan_index_forward(false)
                .consistent_read(true)
                .limit(i32::try_from(page).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|err| sdk_error("Query (messages)", err))?;
            skipped_expired = out.scanned_count() > out.count();
            for item in out.items() {
                let r = Reader::new(item);
                if upper.as_deref() == Some(r.s(SK)?) || !r.is_live(now_ms)? {
                    continue;
                }
                if found.len() < want {
                    found.push(read_message(item)?);
                }
            }
            if found.len() >= want {
                break;
            }
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        let loaded_all = found.len() < want;
        found.truncate(limit);
        Ok(MessagePage {
            messages: found,
            loaded_all,
        })
    }
}

#[async_trait]
impl MessageEditor for DynamoStore {
    /// One UpdateItem. A `custom` patch that adds keys carries a condition that keeps the map
    /// within `max_custom_keys` however many edits race: the first send assumes every key it
    /// sets is new (`size(custom) <= max - set`); if that fails, the stored item (returned with
    /// the failure, or read) says exactly which keys exist, and either the limit is truly passed
    /// or the edit is sent again with that knowledge as its condition (each named key
    /// `attribute_exists` or `attribute_not_exists`, and `size(custom)` bounded by the exact
    /// count), until it applies, is refused, or `MAX_EDIT_SENDS` pass. The old item comes with
    /// the failure (`ReturnValuesOnConditionCheckFailure`): no extra read.
    async fn edit_message(
        &self,
        conversation_id: &str,
        message_id: &str,
        edit: &MessageEdit,
        required_sender: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<Option<MessageRecord>> {
        let item_key = key(conv_pk(conversation_id), msg_sk(message_id));
        let content = match &edit.content {
            Some(content) => Some(serde_json::to_string(content).map_err(|err| {
                StoreError::Backend(format!("could not serialize content: {err}"))
            })?),
            None => None,
        };
        // The patch's keys that the stored map holds, once known.
        let mut present: Option<HashSet<String>> = None;
        for _ in 0..MAX_EDIT_SENDS {
            let mut e = Expr::default();
            let mut u = UpdateExpr::default();
            if let Some(json) = &content {
                let c = e.name(attr::CONTENT);
                let v = e.value(s(json.clone()));
                u.set.push(format!("{c} = {v}"));
            }
            let mut custom_condition = Vec::new();
            match &edit.custom {
                Patch::Absent => {}
                Patch::Null => {
                    let custom = e.name(attr::CUSTOM);
                    let empty = e.value(empty_map());
                    u.set.push(format!("{custom} = {empty}"));
                }
                Patch::Value(changes) => {
                    let custom = e.name(attr::CUSTOM);
                    let (mut added, mut removed) = (0i64, 0i64);
                    for (k, v) in changes {
                        let path = format!("{custom}.{}", e.name(k));
                        let exists = present.as_ref().map(|p| p.contains(k));
                        match (v, exists) {
                            (Some(_), None | Some(false)) => added += 1,
                            (None, Some(true)) => removed += 1,
                            _ => {}
                        }
                        if let Some(exists) = exists {
                            custom_condition.push(if exists {
                                format!("attribute_exists({path})")
                            } else {
                                format!("attribute_not_exists({path})")
                            });
                        }
                        match v {
                            Some(v) => {
                                let v = e.value(s(v.clone()));
                                u.set.push(format!("{path} = {v}"));
                            }
                            None => u.remove.push(path),
                        }
                    }
                    // The map grows by `added - removed`; it may not pass the limit doing so.
                    if added > removed {
                        let max = i64::try_from(edit.max_custom_keys).unwrap_or(i64::MAX);
                        let bound = e.value(n(max.saturating_sub(added - removed)));
                        custom_condition.push(format!("size({custom}) <= {bound}"));
                    }
                }
            }
            let edited = e.name(attr::EDITED_AT);
            let edited_v = e.value(n(edit.edited_at));
            u.set.push(format!("{edited} = {edited_v}"));
            let chg = e.name(chg::ATTR);
            let chg_v = e.value(change(chg::EDITED, None, None, now_ms));
            u.set.push(format!("{chg} = {chg_v}"));
            let mut condition = e.exists_live(now_ms);
            if let Some(sender) = required_sender {
                let sid = e.name(attr::SENDER_ID);
                let v = e.value(s(sender));
                condition = format!("{condition} AND {sid} = {v}");
            }
            let limited = !custom_condition.is_empty();
            for c in custom_condition {
                condition = format!("{condition} AND {c}");
            }
            let request = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(item_key.clone()))
                .update_expression(u.render())
                .condition_expression(condition)
                .set_expression_attribute_names(e.names())
                .set_expression_attribute_values(e.values())
                .return_values(ReturnValue::AllNew)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
            let err = match retry_conflicts(|| request.clone().send()).await {
                Ok(out) => {
                    let item = out.attributes().ok_or_else(|| {
                        StoreError::Backend("UpdateItem returned no attributes".into())
                    })?;
                    return read_message(item).map(Some);
                }
                Err(err) if is_condition_failed(&err) => err,
                Err(err) => return Err(sdk_error("UpdateItem (edit message)", err)),
            };
            // Without a `custom` condition, only the message's existence or sender failed.
            if !limited {
                return Ok(None);
            }
            let returned = match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    failed.item().cloned()
                }
                _ => None,
            };
            // DynamoDB returns the old item unless there is none (IAM grants this function no
            // read of its own to ask with).
            let Some(stored) = returned else {
                return Ok(None);
            };
            let r = Reader::new(&stored);
            if !r.is_live(now_ms)? {
                return Ok(None);
            }
            if required_sender.is_some() && r.opt_s(attr::SENDER_ID)? != required_sender {
                return Ok(None);
            }
            let before = r.custom(attr::CUSTOM)?;
            let mut after = before.clone();
            apply_custom_patch(&mut after, &edit.custom);
            if too_many_custom_keys(before.len(), after.len(), edit.max_custom_keys) {
                return Err(StoreError::ConditionFailed(Failed::TooManyCustomKeys));
            }
            if let Patch::Value(changes) = &edit.custom {
                present = Some(
                    changes
                        .keys()
                        .filter(|k| before.contains_key(*k))
                        .cloned()
                        .collect(),
                );
            }
        }
        Err(StoreError::Backend(format!(
            "message {message_id}: its custom kept changing under {MAX_EDIT_SENDS} edits"
        )))
    }
}

#[async_trait]
impl MessageDeleter for DynamoStore {
    async fn delete_message(
        &self,
        conversation_id: &str,
        message_id: &str,
        required_sender: Option<&str>,
    ) -> StoreResult<bool> {
        let mut request = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(conv_pk(conversation_id), msg_sk(message_id))))
            .return_values(ReturnValue::AllOld);
        if let Some(sender) = required_sender {
            let mut e = Expr::default();
            let pk = e.name(PK);
            let sid = e.name(attr::SENDER_ID);
            let v = e.value(s(sender));
            request = request
                .condition_expression(format!("attribute_not_exists({pk}) OR {sid} = {v}"))
                .set_expression_attribute_names(e.names())
                .set_expression_attribute_values(e.values());
        }
        match retry_conflicts(|| request.clone().send()).await {
            Ok(out) => Ok(out.attributes().is_some_and(|a| !a.is_empty())),
            Err(err) if is_condition_failed(&err) => {
                Err(StoreError::ConditionFailed(Failed::MessageMissing))
            }
            Err(err) => Err(sdk_error("DeleteItem (message)", err)),
        }
    }
}

#[async_trait]
impl ReactionAdder for DynamoStore {
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
        let uid = guard.participant.as_str();
        for _ in 0..MAX_REACTION_SENDS {
            let mut items =
                vec![self.participant_check(conversation_id, uid, guard.write_access, now_ms)?];
            let role = self.role_check(guard, now_ms)?;
            let has_role = role.is_some();
            items.extend(role);
            let reaction_at = items.len();
            let mut reaction = key(rxu_pk(conversation_id, uid), rxu_sk(message_id, emoji));
            reaction.insert(EXPIRES_AT.into(), n(reaction_expires_at));
            let mut e = Expr::default();
            let condition = e.missing_or_expired(now_ms);
            items.push(put(&self.table, reaction, Some((e, condition)))?);

            let message_at = items.len();
            let mut e = Expr::default();
            let mut u = UpdateExpr::default();
            let rxn = e.name(attr::RXN);
            let rxt = e.name(attr::RXT);
            let em = e.name(emoji);
            let zero = e.value(n(0));
            let one = e.value(n(1));
            let now_v = e.value(n(now_ms));
            u.set.push(format!(
                "{rxn}.{em} = if_not_exists({rxn}.{em}, {zero}) + {one}"
            ));
            u.set
                .push(format!("{rxt}.{em} = if_not_exists({rxt}.{em}, {now_v})"));
            // The emoji's place among those added in the same millisecond: the message's
            // sequence before this update (operands read the item as it was).
            let rxo = e.name(attr::RXO);
            let rxq = e.name(attr::RXQ);
            u.set
                .push(format!("{rxo}.{em} = if_not_exists({rxo}.{em}, {rxq})"));
            u.set.push(format!("{rxq} = {rxq} + {one}"));
            let chg = e.name(chg::ATTR);
            let chg_v = e.value(change(chg::REACTION_ADDED, Some(emoji), Some(uid), now_ms));
            u.set.push(format!("{chg} = {chg_v}"));
            let live = e.exists_live(now_ms);
            let max = e.value(n(i64::try_from(max_distinct).unwrap_or(i64::MAX)));
            let condition =
                format!("{live} AND (attribute_exists({rxn}.{em}) OR size({rxn}) < {max})");
            items.push(self.update(
                key(conv_pk(conversation_id), msg_sk(message_id)),
                &u,
                e,
                condition,
                true,
            )?);

            let cancelled = match self.transact("add reaction", items).await? {
                Ok(()) => return Ok(ReactionOutcome::Changed),
                Err(c) => c,
            };
            if cancelled.failed(0) {
                return Ok(ReactionOutcome::NotParticipant);
            }
            if has_role && cancelled.failed(1) {
                return Ok(ReactionOutcome::RoleDenied);
            }
            if cancelled.failed(message_at) {
                // The message came back with the failure (ReturnValuesOnConditionCheckFailure).
                let Some(old) = cancelled.item(message_at) else {
                    return Ok(ReactionOutcome::MessageMissing);
                };
                let r = Reader::new(old);
                if !r.is_live(now_ms)? {
                    return Ok(ReactionOutcome::MessageMissing);
                }
                let counts = r.counters(attr::RXN)?;
                if counts.contains_key(emoji) || counts.len() < max_distinct {
                    // A concurrent change moved the message since: try again.
                    continue;
                }
                // At the limit: emoji whose count fell to zero still hold slots. Sweep them.
                let zeros: Vec<String> = counts
                    .into_iter()
                    .filter(|(_, c)| *c <= 0)
                    .map(|(e, _)| e)
                    .collect();
                if zeros.is_empty() {
                    return Ok(ReactionOutcome::TooManyReactions);
                }
                self.sweep_zero_reactions(conversation_id, message_id, &zeros)
                    .await?;
                continue;
            }
            if cancelled.failed(reaction_at) {
                return Ok(ReactionOutcome::Unchanged);
            }
            return Err(cancelled.unexpected("add reaction"));
        }
        Ok(ReactionOutcome::TooManyReactions)
    }
}

#[async_trait]
impl ReactionRemover for DynamoStore {
    async fn remove_reaction(
        &self,
        conversation_id: &str,
        message_id: &str,
        emoji: &str,
        guard: &ReactionGuard,
        now_ms: i64,
    ) -> StoreResult<ReactionOutcome> {
        let uid = guard.participant.as_str();
        let mut items =
            vec![self.participant_check(conversation_id, uid, guard.write_access, now_ms)?];
        let role = self.role_check(guard, now_ms)?;
        let has_role = role.is_some();
        items.extend(role);

        let reaction_at = items.len();
        let mut e = Expr::default();
        let condition = e.exists_live(now_ms);
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(
                rxu_pk(conversation_id, uid),
                rxu_sk(message_id, emoji),
            )))
            .condition_expression(condition)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .build()
            .map_err(build_error)?;
        items.push(TransactWriteItem::builder().delete(delete).build());

        let message_at = items.len();
        let mut e = Expr::default();
        let mut u = UpdateExpr::default();
        let rxn = e.name(attr::RXN);
        let em = e.name(emoji);
        let one = e.value(n(1));
        u.set.push(format!("{rxn}.{em} = {rxn}.{em} - {one}"));
        let chg = e.name(chg::ATTR);
        let chg_v = e.value(change(
            chg::REACTION_REMOVED,
            Some(emoji),
            Some(uid),
            now_ms,
        ));
        u.set.push(format!("{chg} = {chg_v}"));
        let live = e.exists_live(now_ms);
        let condition = format!("{live} AND attribute_exists({rxn}.{em})");
        items.push(self.update(
            key(conv_pk(conversation_id), msg_sk(message_id)),
            &u,
            e,
            condition,
            true,
        )?);

        let cancelled = match self.transact("remove reaction", items).await? {
            Ok(()) => return Ok(ReactionOutcome::Changed),
            Err(c) => c,
        };
        if cancelled.failed(0) {
            return Ok(ReactionOutcome::NotParticipant);
        }
        if has_role && cancelled.failed(1) {
            return Ok(ReactionOutcome::RoleDenied);
        }
        if cancelled.failed(message_at) {
            // Missing or expired, or live without this emoji (then nobody has it: unchanged).
            let live = match cancelled.item(message_at) {
                Some(old) => Reader::new(old).is_live(now_ms)?,
                None => false,
            };
            return Ok(if live {
                ReactionOutcome::Unchanged
            } else {
                ReactionOutcome::MessageMissing
            });
        }
        if cancelled.failed(reaction_at) {
            return Ok(ReactionOutcome::Unchanged);
        }
        Err(cancelled.unexpected("remove reaction"))
    }
}

#[async_trait]
impl ReactionReader for DynamoStore {
    async fn user_reactions(
        &self,
        conversation_id: &str,
        user_id: &str,
        low: &str,
        high: &str,
        now_ms: i64,
    ) -> StoreResult<HashSet<(String, String)>> {
        if low > high {
            return Ok(HashSet::new());
        }
        let mut e = Expr::default();
        let pk = e.name(PK);
        let sk = e.name(SK);
        let pk_v = e.value(s(rxu_pk(conversation_id, user_id)));
        let lo = e.value(s(low));
        let hi = e.value(s(reaction_range_end(high)));
        let filter = e.live(now_ms);
        let items = self
            .query_all(
                &e,
                &format!("{pk} = {pk_v} AND {sk} BETWEEN {lo} AND {hi}"),
                Some(&filter),
            )
            .await?;
        let mut out = HashSet::new();
        for item in &items {
            let r = Reader::new(item);
            if !r.is_live(now_ms)? {
                continue;
            }
            let sk = r.s(SK)?;
            let (mid, emoji) =
                split_rxu_sk(sk).ok_or_else(|| r.malformed("reaction sort key has no '#'"))?;
            if mid >= low && mid <= high {
                out.insert((mid.to_string(), emoji.to_string()));
            }
        }
        Ok(out)
    }
}

/// An upper bound for the sort keys `{mid}#{emoji}` of every `mid <= high`.
///
/// `{high}$` works ('$' sorts right after '#') unless `high` holds a character that sorts
/// before '#' (space, '!' or '"'): then a shorter id that is a prefix of `high` would sort
/// after it once '#' is appended, so the bound is cut at the first such character. The
/// results are filtered exactly afterwards.
fn reaction_range_end(high: &str) -> String {
    let cut = high.bytes().position(|b| b < b'#').unwrap_or(high.len());
    format!("{}$", &high[..cut])
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::scripted_http::{scripted_server, sdk_config, Reply};
    use crate::store::ReadMarker;

    #[test]
    fn now_secs_agrees_with_is_expired() {
        for now_ms in [0, 999, 1000, 1001, 1_700_000_000_999, -1, -1000, -1001] {
            for expires_at in [-2, -1, 0, 1, 2, 1_700_000_000, 1_700_000_001] {
                assert_eq!(
                    expires_at > now_secs(now_ms),
                    !is_expired(expires_at, now_ms),
                    "expires_at {expires_at}, now_ms {now_ms}"
                );
            }
        }
    }

    #[test]
    fn reaction_range_covers_every_id_up_to_high() {
        let ids = [
            "a", "ab", "ab!", "ab!c", "ab c", "abc", "ab\"", "b", "msg_01", "é",
        ];
        for low in ids {
            for high in ids {
                let end = reaction_range_end(high);
                for mid in ids {
                    let sk = rxu_sk(mid, "👍");
                    if mid >= low && mid <= high {
                        assert!(
                            sk.as_str() >= low && sk <= end,
                            "{mid} in [{low}, {high}] but {sk} outside [{low}, {end}]"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn malformed_items_are_backend_errors() {
        let mut item = key(conv_pk("c"), msg_sk("m"));
        item.insert(EXPIRES_AT.into(), s("soon"));
        match read_message(&item) {
            Err(StoreError::Backend(msg)) => assert!(msg.contains("MSG#m"), "{msg}"),
            other => panic!("{other:?}"),
        }
    }

    // ---- Retries against a scripted endpoint: moto never reports conflicts or throttling. ----

    /// A store whose client talks to `endpoint` with the SDK's own retries off, so every
    /// request the server sees was sent by the store.
    fn scripted_store(endpoint: &str) -> DynamoStore {
        let config = aws_sdk_dynamodb::config::Builder::from(&sdk_config())
            .endpoint_url(endpoint)
            .build();
        DynamoStore::new(Client::from_conf(config), "natter")
    }

    fn dynamodb_error(error_type: &str, extra: Value) -> Reply {
        let mut body = json!({
            "__type": format!("com.amazonaws.dynamodb.v20120810#{error_type}"),
            "message": error_type,
        });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        Reply::new(400, body.to_string())
    }

    /// A cancelled transaction with one reason per item.
    fn cancelled(codes: &[&str]) -> Reply {
        let reasons: Vec<Value> = codes.iter().map(|c| json!({ "Code": c })).collect();
        dynamodb_error(
            "TransactionCanceledException",
            json!({ "CancellationReasons": reasons }),
        )
    }

    fn ok() -> Reply {
        Reply::new(200, "{}")
    }

    fn guard() -> ReactionGuard {
        ReactionGuard {
            participant: "alice".into(),
            write_access: true,
            denied_roles: Vec::new(),
            deny_default_role: false,
        }
    }

    async fn add_thumbs_up(store: &DynamoStore) -> StoreResult<ReactionOutcome> {
        let now_ms = 1_700_000_000_000;
        store
            .add_reaction("c", "msg_1", "👍", &guard(), 50, 1_800_000_000, now_ms)
            .await
    }

    #[tokio::test]
    async fn transactions_cancelled_by_conflicts_are_sent_again() {
        // Participant check, reaction item, message update: the middle one collided.
        let conflict = cancelled(&["None", "TransactionConflict", "None"]);
        let in_progress = dynamodb_error("TransactionInProgressException", json!({}));
        let (endpoint, received) =
            scripted_server(vec![conflict.clone(), in_progress, conflict], ok()).await;
        let outcome = add_thumbs_up(&scripted_store(&endpoint)).await;
        assert_eq!(outcome.ok(), Some(ReactionOutcome::Changed));
        assert_eq!(received.count(), 4);
        assert_eq!(
            received.count_with("DynamoDB_20120810.TransactWriteItems"),
            4
        );
    }

    #[tokio::test]
    async fn a_failed_condition_is_an_answer_not_a_retry() {
        let not_participant = cancelled(&["ConditionalCheckFailed", "None", "None"]);
        let (endpoint, received) = scripted_server(vec![not_participant], ok()).await;
        let outcome = add_thumbs_up(&scripted_store(&endpoint)).await;
        assert_eq!(outcome.ok(), Some(ReactionOutcome::NotParticipant));
        assert_eq!(received.count(), 1);
    }

    #[tokio::test]
    async fn conflict_retries_are_bounded() {
        let conflict = cancelled(&["TransactionConflict", "None", "None"]);
        let (endpoint, received) = scripted_server(Vec::new(), conflict).await;
        match add_thumbs_up(&scripted_store(&endpoint)).await {
            Err(StoreError::Backend(msg)) => assert!(msg.contains("TransactWriteItems"), "{msg}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(received.count(), ops::MAX_SENDS as usize);
    }

    #[tokio::test]
    async fn other_cancellations_are_errors_at_once() {
        let invalid = cancelled(&["None", "ValidationError", "None"]);
        let (endpoint, received) = scripted_server(vec![invalid], ok()).await;
        assert!(matches!(
            add_thumbs_up(&scripted_store(&endpoint)).await,
            Err(StoreError::Backend(_))
        ));
        assert_eq!(received.count(), 1);
    }

    #[tokio::test]
    async fn single_item_writes_retry_transaction_conflicts() {
        let conflict = dynamodb_error("TransactionConflictException", json!({}));
        let (endpoint, received) = scripted_server(vec![conflict.clone(), conflict], ok()).await;
        let store = scripted_store(&endpoint);
        assert_eq!(store.mark_unread("c", "alice", 0).await.ok(), Some(true));
        assert_eq!(received.count_with("DynamoDB_20120810.UpdateItem"), 3);

        let invalid = dynamodb_error("ValidationException", json!({}));
        let (endpoint, received) = scripted_server(vec![invalid], ok()).await;
        let store = scripted_store(&endpoint);
        assert!(store.mark_unread("c", "alice", 0).await.is_err());
        assert_eq!(received.count(), 1, "no retry for other errors");
    }
}
