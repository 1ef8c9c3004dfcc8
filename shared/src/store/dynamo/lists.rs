//! Conversation lists and read state on DynamoDB: a user's list through the overloaded index
//! `gsi1` (`UCONV#{userId}`), read markers on participant items, unread counts by query, and the
//! per-participant activity items the fan-out keeps.
//!
//! A user's list has two kinds of entries in the index, both sorted by an activity key
//! (`schema::activity_key`):
//! * the participant item, placed at the user's joining (`joinedAt`);
//! * the activity item `ACT#{cid}`/`{userId}`, placed at the newest message's `createdAt`,
//!   written by the fan-out for every participant and expiring with that message.
//!
//! A conversation stands at the later of its two live entries; the other one is skipped. So
//! when the newest message expires, its activity item is no longer live and the conversation
//! falls back to its joining, with no write at all.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Select};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

use super::ops::{batch_get, is_condition_failed, retry_conflicts, sdk_error, Item};
use super::{n, s, DynamoStore, Expr, Reader};
use crate::config::storage::{ACTIVITY_WRITE_CONCURRENCY, UNREAD_COUNT_MAX_PAGES};
use crate::ids::message_id_floor;
use crate::store::schema::{
    self, act_pk, activity_key, activity_key_conversation, attr, conv_pk, key, msg_sk, part_sk,
    uconv_pk, ACT_PREFIX, CONV_PREFIX, EXPIRES_AT, GSI1, GSI1_PK, GSI1_SK, PK, SK,
};
use crate::store::{
    Activity, ActivityWriter, ConversationListPage, ConversationLister, ListedConversation,
    ReadMarker, StoreResult, UnreadCounter,
};

/// The live entries of one conversation in one user's list.
#[derive(Default)]
struct Entries {
    /// The participant's joining, when they are a live participant.
    joined: Option<String>,
    /// The newest live message recorded for them.
    messaged: Option<String>,
}

impl Entries {
    /// Where the conversation stands: the later entry; nowhere when the user is not a
    /// participant.
    fn position(&self) -> Option<&str> {
        Some(crate::store::list_place(
            self.joined.as_deref()?,
            self.messaged.as_deref(),
        ))
    }
}

impl DynamoStore {
    /// The live entries of these conversations in a user's list: one batch read of their
    /// participant and activity items.
    async fn entries(
        &self,
        user_id: &str,
        cids: &[&str],
        now_ms: i64,
    ) -> StoreResult<std::collections::HashMap<String, Entries>> {
        let mut keys = Vec::new();
        for cid in cids {
            keys.push(key(conv_pk(cid), part_sk(user_id)));
            keys.push(key(act_pk(cid), user_id));
        }
        let found = batch_get(&self.client, &self.table, keys).await?;
        let mut out: std::collections::HashMap<String, Entries> = cids
            .iter()
            .map(|c| (c.to_string(), Entries::default()))
            .collect();
        for item in &found {
            let r = Reader::new(item);
            if !r.is_live(now_ms)? {
                continue;
            }
            let place = r.s(GSI1_SK)?.to_string();
            let pk = r.s(PK)?;
            if let Some(cid) = pk.strip_prefix(CONV_PREFIX) {
                if let Some(entries) = out.get_mut(cid) {
                    entries.joined = Some(place);
                }
            } else if let Some(cid) = pk.strip_prefix(ACT_PREFIX) {
                if let Some(entries) = out.get_mut(cid) {
                    entries.messaged = Some(place);
                }
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl ConversationLister for DynamoStore {
    /// Pages of the index, newest first, each holding at most two entries per conversation
    /// (its activity item and its participant item; leaving deletes both), so one page of
    /// `2 × (limit + 1)` entries usually answers. The index is eventually consistent, and a
    /// message may move a conversation between the query and the reads: each conversation
    /// seen is placed where its items (one strongly consistent batch read) say it stands now.
    async fn list_conversations(
        &self,
        user_id: &str,
        before: Option<&str>,
        limit: usize,
        now_ms: i64,
    ) -> StoreResult<ConversationListPage> {
        let want = limit.saturating_add(1);
        let mut e = Expr::default();
        let pk = e.name(GSI1_PK);
        let pk_v = e.value(s(uconv_pk(user_id)));
        let key_condition = match before {
            Some(before) => {
                let sk = e.name(GSI1_SK);
                let b = e.value(s(before.to_string()));
                format!("{pk} = {pk_v} AND {sk} < {b}")
            }
            None => format!("{pk} = {pk_v}"),
        };
        let page_size = i32::try_from(want.saturating_mul(2)).unwrap_or(i32::MAX);
        // Every conversation with an entry in the part of the index read so far, at the place
        // it stands now (from the items, which may have moved since the index was read).
        let mut candidates: std::collections::BTreeMap<String, String> = Default::default();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(GSI1)
                .key_condition_expression(&key_condition)
                .set_expression_attribute_names(e.names())
                .set_expression_attribute_values(e.values())
                .scan_index_forward(false)
                .limit(page_size)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|err| sdk_error("Query (conversation list)", err))?;
            let mut cids: Vec<String> = Vec::new();
            for item in out.items() {
                let r = Reader::new(item);
                if !r.is_live(now_ms)? {
                    continue;
                }
                let place = r.s(GSI1_SK)?;
                let cid = activity_key_conversation(place)
                    .ok_or_else(|| r.malformed("gsi1sk is not an activity key"))?;
                if !candidates.contains_key(cid) && !cids.iter().any(|c| c == cid) {
                    cids.push(cid.to_string());
                }
            }
            let refs: Vec<&str> = cids.iter().map(String::as_str).collect();
            for (cid, entries) in self.entries(user_id, &refs, now_ms).await? {
                // A conversation that moved up past `before` since belongs to an earlier page.
                if let Some(position) = entries.position() {
                    if before.is_none_or(|b| position < b) {
                        candidates.insert(cid, position.to_string());
                    }
                }
            }
            // A conversation stands at or above each of its entries, so every one not read yet
            // stands below everything read: enough candidates make the page.
            if candidates.len() >= want {
                break;
            }
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        let mut listed: Vec<ListedConversation> = candidates
            .into_iter()
            .map(|(conversation_id, position)| ListedConversation {
                conversation_id,
                position,
            })
            .collect();
        listed.sort_by(|a, b| b.position.cmp(&a.position));
        let loaded_all = listed.len() < want;
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
        let entries = self.entries(user_id, &[conversation_id], now_ms).await?;
        Ok(entries
            .get(conversation_id)
            .and_then(Entries::position)
            .map(str::to_string))
    }
}

#[async_trait]
impl ReadMarker for DynamoStore {
    /// One UpdateItem; when a later `readUntil` is stored (a racing read with a later clock),
    /// a second one only clears the mark.
    async fn mark_read(
        &self,
        conversation_id: &str,
        user_id: &str,
        at_ms: i64,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let mut e = Expr::default();
        let live = e.exists_live(now_ms);
        let read = e.name(attr::READ_UNTIL);
        let at = e.value(n(at_ms));
        let marked = e.name(attr::MARKED_UNREAD);
        let no = e.value(AttributeValue::Bool(false));
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(conv_pk(conversation_id), part_sk(user_id))))
            .update_expression(format!("SET {read} = {at}, {marked} = {no}"))
            .condition_expression(format!(
                "{live} AND (attribute_not_exists({read}) OR {read} <= {at})"
            ))
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values());
        match retry_conflicts(|| request.clone().send()).await {
            Ok(_) => Ok(true),
            Err(err) if is_condition_failed(&err) => {
                self.set_marked_unread(conversation_id, user_id, false, now_ms)
                    .await
            }
            Err(err) => Err(sdk_error("UpdateItem (read)", err)),
        }
    }

    async fn mark_unread(
        &self,
        conversation_id: &str,
        user_id: &str,
        now_ms: i64,
    ) -> StoreResult<bool> {
        self.set_marked_unread(conversation_id, user_id, true, now_ms)
            .await
    }
}

impl DynamoStore {
    /// Sets a live participant's mark; `false` when there is none.
    async fn set_marked_unread(
        &self,
        conversation_id: &str,
        user_id: &str,
        marked: bool,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let mut e = Expr::default();
        let live = e.exists_live(now_ms);
        let mark = e.name(attr::MARKED_UNREAD);
        let v = e.value(AttributeValue::Bool(marked));
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(conv_pk(conversation_id), part_sk(user_id))))
            .update_expression(format!("SET {mark} = {v}"))
            .condition_expression(live)
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values());
        match retry_conflicts(|| request.clone().send()).await {
            Ok(_) => Ok(true),
            Err(err) if is_condition_failed(&err) => Ok(false),
            Err(err) => Err(sdk_error("UpdateItem (unread mark)", err)),
        }
    }
}

#[async_trait]
impl UnreadCounter for DynamoStore {
    /// A counting Query (`Select: COUNT`) of the messages after `after_ms`, newest first, in
    /// pages of `cap + 1` at most and at most `UNREAD_COUNT_MAX_PAGES` of them.
    async fn count_unread(
        &self,
        conversation_id: &str,
        user_id: &str,
        after_ms: Option<i64>,
        cap: usize,
        now_ms: i64,
    ) -> StoreResult<u64> {
        if cap == 0 {
            return Ok(0);
        }
        let mut e = Expr::default();
        let pk = e.name(PK);
        let sk = e.name(SK);
        let pk_v = e.value(s(conv_pk(conversation_id)));
        // Message ids begin with their creation time: every message created after `after_ms`
        // sorts at or above the smallest id of the next millisecond.
        let low = match after_ms {
            Some(after) => msg_sk(&message_id_floor(after.saturating_add(1))),
            None => schema::MSG_PREFIX.to_string(),
        };
        let low_v = e.value(s(low));
        let live = e.live(now_ms);
        let sender = e.name(attr::SENDER_ID);
        let me = e.value(s(user_id));
        let created = e.name(attr::CREATED_AT);
        let created_floor = e.value(n(after_ms.unwrap_or(i64::MIN)));
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression(format!("{pk} = {pk_v} AND {sk} >= {low_v}"))
            .filter_expression(format!(
                "{live} AND {created} > {created_floor} AND (attribute_not_exists({sender}) OR {sender} <> {me})"
            ))
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values())
            .select(Select::Count)
            .scan_index_forward(false)
            .consistent_read(true);
        let mut counted: usize = 0;
        let mut start: Option<Item> = None;
        for _ in 0..UNREAD_COUNT_MAX_PAGES {
            let out = query
                .clone()
                .limit(i32::try_from(cap - counted + 1).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|err| sdk_error("Query (unread count)", err))?;
            counted += usize::try_from(out.count()).unwrap_or(0);
            if counted >= cap {
                break;
            }
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(counted.min(cap) as u64)
    }
}

#[async_trait]
impl ActivityWriter for DynamoStore {
    /// One conditional UpdateItem per user (`ACTIVITY_WRITE_CONCURRENCY` at a time): written
    /// unless a newer message is recorded.
    async fn record_activity(
        &self,
        conversation_id: &str,
        user_ids: &[String],
        activity: &Activity,
    ) -> StoreResult<()> {
        let writes = user_ids.iter().map(|user_id| {
            let mut e = Expr::default();
            let set = activity_set(&mut e, conversation_id, user_id, activity);
            let last = e.name(attr::LAST_MESSAGE_ID);
            let mid = e.value(s(activity.message_id.clone()));
            let request = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(act_pk(conversation_id), user_id.clone())))
                .update_expression(set)
                .condition_expression(format!("attribute_not_exists({last}) OR {last} < {mid}"))
                .set_expression_attribute_names(e.names())
                .set_expression_attribute_values(e.values());
            async move {
                match retry_conflicts(|| request.clone().send()).await {
                    Ok(_) => Ok(()),
                    Err(err) if is_condition_failed(&err) => Ok(()),
                    Err(err) => Err(sdk_error("UpdateItem (activity)", err)),
                }
            }
            .boxed()
        });
        run_all(writes.collect()).await
    }

    /// One conditional write per user, on the condition that the item still names the removed
    /// message: an UpdateItem to the replacement, or a DeleteItem when there is none.
    async fn retract_activity(
        &self,
        conversation_id: &str,
        user_ids: &[String],
        removed_id: &str,
        replacement: Option<&Activity>,
    ) -> StoreResult<()> {
        let writes = user_ids.iter().map(|user_id| {
            let mut e = Expr::default();
            let last = e.name(attr::LAST_MESSAGE_ID);
            let removed = e.value(s(removed_id));
            let condition = format!("{last} = {removed}");
            let item_key = key(act_pk(conversation_id), user_id.clone());
            let client = self.client.clone();
            let table = self.table.clone();
            let update = replacement.map(|a| activity_set(&mut e, conversation_id, user_id, a));
            async move {
                let sent = match update {
                    Some(set) => {
                        let request = client
                            .update_item()
                            .table_name(table)
                            .set_key(Some(item_key))
                            .update_expression(set)
                            .condition_expression(condition)
                            .set_expression_attribute_names(e.names())
                            .set_expression_attribute_values(e.values());
                        retry_conflicts(|| request.clone().send())
                            .await
                            .map(|_| ())
                            .map_err(|err| {
                                (
                                    is_condition_failed(&err),
                                    sdk_error("UpdateItem (activity)", err),
                                )
                            })
                    }
                    None => {
                        let request = client
                            .delete_item()
                            .table_name(table)
                            .set_key(Some(item_key))
                            .condition_expression(condition)
                            .set_expression_attribute_names(e.names())
                            .set_expression_attribute_values(e.values());
                        retry_conflicts(|| request.clone().send())
                            .await
                            .map(|_| ())
                            .map_err(|err| {
                                (
                                    is_condition_failed(&err),
                                    sdk_error("DeleteItem (activity)", err),
                                )
                            })
                    }
                };
                match sent {
                    Ok(()) | Err((true, _)) => Ok(()),
                    Err((false, err)) => Err(err),
                }
            }
            .boxed()
        });
        run_all(writes.collect()).await
    }
}

/// `SET` of an activity item: its place in the user's list, the message, and its expiry.
fn activity_set(e: &mut Expr, conversation_id: &str, user_id: &str, activity: &Activity) -> String {
    let mut set = |name: &str, v: AttributeValue| {
        let (name, v) = (e.name(name), e.value(v));
        format!("{name} = {v}")
    };
    let parts = [
        set(GSI1_PK, s(uconv_pk(user_id))),
        set(
            GSI1_SK,
            s(activity_key(activity.created_at, conversation_id)),
        ),
        set(attr::LAST_MESSAGE_ID, s(activity.message_id.clone())),
        set(EXPIRES_AT, n(activity.expires_at)),
    ];
    format!("SET {}", parts.join(", "))
}

/// Runs writes `ACTIVITY_WRITE_CONCURRENCY` at a time; the first error wins.
async fn run_all(writes: Vec<BoxFuture<'static, StoreResult<()>>>) -> StoreResult<()> {
    let results: Vec<StoreResult<()>> = futures::stream::iter(writes)
        .buffer_unordered(ACTIVITY_WRITE_CONCURRENCY)
        .collect()
        .await;
    results.into_iter().collect::<StoreResult<Vec<()>>>()?;
    Ok(())
}
