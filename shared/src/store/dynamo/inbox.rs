//! Inbox messages in the DynamoDB table: pk `INBOX#{userId}`, sk the message id (`inb_` + ULID,
//! so a Query in key order is arrival order), with `message` (the JSON value as text),
//! `senderId`, `createdAt` and `expiresAt`.

use std::collections::HashMap;

use crate::store::inbox::{InboxClearer, InboxDeleter, InboxReader, InboxWriter};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};

use super::{backoff, build_error, is_expired, key, n, s, sdk_error, DynamoStore, Item, Reader};
use super::{PK, SK};
use crate::config::aws::DYNAMODB_BATCH_WRITE_MAX_ITEMS;
use crate::config::storage::INBOX_BATCH_WRITE_ATTEMPTS;
use crate::store::inbox::InboxRecord;
use crate::store::{StoreError, StoreResult};

pub const INBOX_PREFIX: &str = "INBOX#";

fn inbox_pk(user_id: &str) -> String {
    format!("{INBOX_PREFIX}{user_id}")
}

fn inbox_item(r: &InboxRecord) -> Item {
    let mut item = key(inbox_pk(&r.user_id), r.message_id.clone());
    item.insert("message".into(), s(r.message.to_string()));
    item.insert("senderId".into(), s(r.sender_id.clone()));
    item.insert("createdAt".into(), n(r.created_at));
    item.insert("expiresAt".into(), n(r.expires_at));
    item
}

/// An inbox item as a record (also used for the stream's images).
pub fn read_inbox(item: &Item) -> StoreResult<InboxRecord> {
    let r = Reader::new(item);
    let text = r.s("message")?;
    Ok(InboxRecord {
        user_id: r.key_suffix(PK, INBOX_PREFIX)?.to_string(),
        message_id: r.s(SK)?.to_string(),
        sender_id: r.s("senderId")?.to_string(),
        message: serde_json::from_str(text)
            .map_err(|e| r.malformed(format!("message is not JSON: {e}")))?,
        created_at: r.i64("createdAt")?,
        expires_at: r.expires_at()?,
    })
}

impl DynamoStore {
    /// Sends writes in batches of 25, sending unprocessed ones again with backoff.
    async fn batch_write(&self, writes: Vec<WriteRequest>) -> StoreResult<()> {
        for chunk in writes.chunks(DYNAMODB_BATCH_WRITE_MAX_ITEMS) {
            let mut pending = chunk.to_vec();
            let mut attempt = 0;
            while !pending.is_empty() {
                if attempt == INBOX_BATCH_WRITE_ATTEMPTS {
                    return Err(StoreError::Backend(format!(
                        "BatchWriteItem left {} writes unprocessed after {attempt} attempts",
                        pending.len()
                    )));
                }
                if attempt > 0 {
                    tokio::time::sleep(backoff(attempt)).await;
                }
                attempt += 1;
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(|e| sdk_error("BatchWriteItem", e))?;
                pending = out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.table))
                    .unwrap_or_default();
            }
        }
        Ok(())
    }
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
        self.batch_write(writes).await
    }
}

#[async_trait]
impl InboxReader for DynamoStore {
    async fn list_inbox(&self, user_id: &str, now_ms: i64) -> StoreResult<Vec<InboxRecord>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":pk", s(inbox_pk(user_id)))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_error("Query", e))?;
            for item in page.items() {
                let record = read_inbox(item)?;
                if !is_expired(record.expires_at, now_ms) {
                    out.push(record);
                }
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(out);
            }
        }
    }
}

#[async_trait]
impl InboxDeleter for DynamoStore {
    async fn delete_inbox_message(&self, user_id: &str, message_id: &str) -> StoreResult<bool> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(inbox_pk(user_id), message_id)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| sdk_error("DeleteItem", e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }
}

#[async_trait]
impl InboxClearer for DynamoStore {
    async fn clear_inbox(&self, user_id: &str) -> StoreResult<usize> {
        let mut deleted = 0;
        let mut start: Option<Item> = None;
        loop {
            // Keys only: a page of up to 1 MB of keys, then its deletes, then the next page.
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("#pk = :pk")
                .projection_expression("#pk, #sk")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", s(inbox_pk(user_id)))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_error("Query", e))?;
            let writes = page
                .items()
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
            self.batch_write(writes).await?;
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(deleted);
            }
        }
    }
}
