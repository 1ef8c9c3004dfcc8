//! Inbox messages in the DynamoDB table: pk `INBOX#{userId}`, sk the message id (`inb_` + ULID,
//! so a Query in key order is arrival order), with `message` (the JSON value as text),
//! `senderId`, `createdAt` and `expiresAt`.

use std::collections::HashMap;

use crate::store::inbox::{InboxClearer, InboxDeleter, InboxReader, InboxWriter};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};

use super::ops::{self, build_error, retry_conflicts, sdk_error, Item};
use super::{is_expired, n, s, DynamoStore, Reader};
use crate::store::inbox::InboxRecord;
use crate::store::schema::{attr, inbox_pk, key, EXPIRES_AT, INBOX_PREFIX, PK, SK};
use crate::store::StoreResult;

fn inbox_item(r: &InboxRecord) -> Item {
    let mut item = key(inbox_pk(&r.user_id), r.message_id.clone());
    item.insert(attr::MESSAGE.into(), s(r.message.to_string()));
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
        message: serde_json::from_str(text)
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
    async fn list_inbox(&self, user_id: &str, now_ms: i64) -> StoreResult<Vec<InboxRecord>> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":pk", s(inbox_pk(user_id)));
        let mut out = Vec::new();
        for item in ops::query_all(query).await? {
            let record = read_inbox(&item)?;
            if !is_expired(record.expires_at, now_ms) {
                out.push(record);
            }
        }
        Ok(out)
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
