//! Inbox messages in the DynamoDB table: pk `INBOX#{userId}`, sk the message id (`inb_` + ULID,
//! so a Query in key order is arrival order), with `message` (the JSON value as text),
//! `senderId`, `createdAt` and `expiresAt`.

use std::collections::HashMap;

use crate::store::inbox::{InboxClearer, InboxDeleter, InboxReader, InboxWriter};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};

use super::ops::{self, build_error, retry_conflicts, sdk_error, Item};
use super::{is_expired, n, s, DynamoStore, Expr, Reader};
use crate::config::storage::EXPIRED_READ_AHEAD;
use crate::store::inbox::{InboxPage, InboxRecord};
use crate::store::schema::{attr, inbox_pk, key, EXPIRES_AT, INBOX_PREFIX, PK, SK};
use crate::store::StoreResult;

fn inbox_item(r: &InboxRecord) -> Item {
    let mut item = key(inbox_pk(&r.user_id), r.message_id.clone());
    item.insert(attr::MESSAGE.into(), s(r.message.get().to_string()));
    item.insert(attr::SENDER_ID.into(), s(r.sender_id.clone()));
    item.insert(attr::CREATED_AT.into(), n(r.created_at));
    item.insert(EXPIRES_AT.into(), n(r.expires_at));
    item
}

/// An inbox item as a record (also used for the stream's images).
pub fn read_inbox(item: &Item) -> StoreResult<InboxRecord> {
    let r = Reader::new(item);
    let text = r.s(attr::MESSAGE)?;
    Ok(InboxRecord {
        user_id: r.key_suffix(PK, INBOX_PREFIX)?.to_string(),
        message_id: r.s(SK)?.to_string(),
        sender_id: r.s(attr::SENDER_ID)?.to_string(),
        message: crate::json::RawJson::from_text(text)
            .map_err(|e| r.malformed(format!("message is not JSON: {e}")))?,
        created_at: r.i64(attr::CREATED_AT)?,
        expires_at: r.expires_at()?,
    })
}

#[async_trait]
impl InboxWriter for DynamoStore {
    async fn put_inbox_messages(&self, messages: &[InboxRecord]) -> StoreResult<()> {
        let writes = messages
            .iter()
            .map(|m| {
                let put = PutRequest::builder()
                    .set_item(Some(inbox_item(m)))
                    .build()
                    .map_err(build_error)?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<StoreResult<Vec<_>>>()?;
        ops::batch_write(&self.client, &self.table, writes).await
    }
}

#[async_trait]
impl InboxReader for DynamoStore {
    /// One Query on the user's partition in key (arrival) order, starting after `after` by its
    /// key condition and reading `limit + 1` live items (`Limit`, the expired ones filtered out),
    /// so a page costs what it returns; a later page is read only when DynamoDB's page ended
    /// early (expired items skipped, or 1 MB read).
    async fn list_inbox(
        &self,
        user_id: &str,
        after: Option<&str>,
        limit: usize,
        now_ms: i64,
    ) -> StoreResult<InboxPage> {
        let want = limit.saturating_add(1);
        let mut e = Expr::default();
        let pk = e.name(PK);
        let pk_v = e.value(s(inbox_pk(user_id)));
        let key_condition = match after {
            Some(after) => {
                let sk = e.name(SK);
                let after = e.value(s(after.to_string()));
                format!("{pk} = {pk_v} AND {sk} > {after}")
            }
            None => format!("{pk} = {pk_v}"),
        };
        let filter = e.live(now_ms);
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        let mut skipped_expired = false;
        loop {
            let remaining = want - found.len();
            let page = if skipped_expired {
                remaining.max(EXPIRED_READ_AHEAD)
            } else {
                remaining
            };
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression(&key_condition)
                .filter_expression(&filter)
                .set_expression_attribute_names(e.names())
                .set_expression_attribute_values(e.values())
                .limit(i32::try_from(page).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|err| sdk_error("Query (inbox)", err))?;
            skipped_expired = out.scanned_count() > out.count();
            for item in out.items() {
                let record = read_inbox(item)?;
                if !is_expired(record.expires_at, now_ms) && found.len() < want {
                    found.push(record);
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
        let has_more = found.len() > limit;
        found.truncate(limit);
        Ok(InboxPage {
            messages: found,
            has_more,
        })
    }
}

#[async_trait]
impl InboxDeleter for DynamoStore {
    async fn delete_inbox_message(&self, user_id: &str, message_id: &str) -> StoreResult<bool> {
        let request = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(inbox_pk(user_id), message_id)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld);
        let out = retry_conflicts(|| request.clone().send())
            .await
            .map_err(|e| sdk_error("DeleteItem", e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }
}

#[async_trait]
impl InboxClearer for DynamoStore {
    async fn clear_inbox(&self, user_id: &str) -> StoreResult<usize> {
        // Keys only: a page of up to 1 MB of keys, then its deletes, then the next page.
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("#pk = :pk")
            .projection_expression("#pk, #sk")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(inbox_pk(user_id)));
        let mut pages = ops::Pages::new(query);
        let mut deleted = 0;
        while let Some(page) = pages.next().await? {
            let writes = page
                .iter()
                .map(|item| {
                    let k: HashMap<String, AttributeValue> = item
                        .iter()
                        .filter(|(name, _)| *name == PK || *name == SK)
                        .map(|(name, v)| (name.clone(), v.clone()))
                        .collect();
                    let delete = DeleteRequest::builder()
                        .set_key(Some(k))
                        .build()
                        .map_err(build_error)?;
                    Ok(WriteRequest::builder().delete_request(delete).build())
                })
                .collect::<StoreResult<Vec<_>>>()?;
            deleted += writes.len();
            ops::batch_write(&self.client, &self.table, writes).await?;
        }
        Ok(deleted)
    }
}
