//! The realtime store on DynamoDB, in the message table (see `super` for the item layout).
//!
//! Requests per operation: `put_connection` 1 PutItem; `get_connection` 1 GetItem;
//! `user_connections` 1 Query of `gsi1`; `put_subscription` 1 GetItem + 1 TransactWriteItems;
//! `get_subscription` 2 GetItems; `extend_window` 1 UpdateItem (+1 GetItem when the window
//! already reached further); `delete_subscription` 1 GetItem + 1 TransactWriteItems;
//! `subscribers` 1 Query (paged); `disconnect` 1 UpdateItem + 1 BatchWriteItem per 25
//! subscriptions. Keys and attribute names come from `store::schema`; every request goes through
//! the shared helpers of `store::dynamo::ops` and their one retry policy.

use std::collections::{BTreeMap, HashMap};

use crate::realtime::{
    ConnectionLister, ConnectionReader, ConnectionWriter, Disconnector, SubscriberLister,
    SubscriptionReader, SubscriptionRemover, SubscriptionWriter, WindowExtender,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, DeleteRequest, Put, ReturnValue, TransactWriteItem, Update,
    WriteRequest,
};
use aws_sdk_dynamodb::Client;

use super::{ConnectionRecord, SubscribeOutcome, SubscriptionRecord};
use crate::config::connections::{CLIENT_ID_GRACE_SECS, MAX_SUBSCRIPTIONS_PER_CONNECTION};
use crate::config::storage::REALTIME_MAX_ATTEMPTS;
use crate::store::dynamo::ops::{self, is_condition_failed, retry_conflicts, Item};
use crate::store::schema::attr::{self, CONNECTED, SUBS, WINDOW_START};
use crate::store::schema::{
    conn_pk, key, subs_pk, subs_sk, uconn_pk, CONN_PREFIX, CONN_SK, EXPIRES_AT, GSI1, GSI1_PK,
    GSI1_SK, PK, SUBS_PREFIX,
};
use crate::store::{is_expired, StoreError, StoreResult};

pub struct DynamoRealtimeStore {
    client: Client,
    table: String,
}

impl DynamoRealtimeStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoRealtimeStore {
            client,
            table: table.into(),
        }
    }

    async fn get_item(&self, key: Item) -> StoreResult<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        Ok(out.item)
    }

    async fn read_connection(&self, connection_id: &str) -> StoreResult<Option<ConnectionRecord>> {
        Ok(self
            .get_item(connection_key(connection_id))
            .await?
            .and_then(|item| connection_from_item(&item)))
    }

    async fn read_subscription(
        &self,
        cid: &str,
        connection_id: &str,
        subscription_id: &str,
    ) -> StoreResult<Option<SubscriptionRecord>> {
        Ok(self
            .get_item(subscription_key(cid, connection_id, subscription_id))
            .await?
            .and_then(|item| subscription_from_item(&item)))
    }

    async fn delete_items(&self, keys: Vec<Item>) -> StoreResult<()> {
        let mut requests: Vec<WriteRequest> = Vec::with_capacity(keys.len());
        for key in keys {
            let delete = DeleteRequest::builder()
                .set_key(Some(key))
                .build()
                .map_err(backend)?;
            requests.push(WriteRequest::builder().delete_request(delete).build());
        }
        ops::batch_write(&self.client, &self.table, requests).await
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub fn connection_key(connection_id: &str) -> Item {
    key(conn_pk(connection_id), CONN_SK)
}

pub fn subscription_key(cid: &str, connection_id: &str, subscription_id: &str) -> Item {
    key(subs_pk(cid), subs_sk(connection_id, subscription_id))
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn connection_item(c: &ConnectionRecord) -> Item {
    let mut item = connection_key(&c.connection_id);
    item.insert(attr::USER_ID.into(), s(&c.user_id));
    item.insert(attr::CONNECTED_AT.into(), n(c.connected_at));
    item.insert(CONNECTED.into(), AttributeValue::Bool(c.connected));
    item.insert(
        SUBS.into(),
        AttributeValue::M(
            c.subscriptions
                .iter()
                .map(|(k, v)| (k.clone(), s(v)))
                .collect(),
        ),
    );
    item.insert(EXPIRES_AT.into(), n(c.expires_at));
    if c.connected {
        item.insert(GSI1_PK.into(), s(&uconn_pk(&c.user_id)));
        item.insert(GSI1_SK.into(), s(&c.connection_id));
    }
    item
}

fn connection_from_item(item: &Item) -> Option<ConnectionRecord> {
    let connection_id = text(item, PK)?.strip_prefix(CONN_PREFIX)?.to_string();
    let subscriptions = match item.get(SUBS) {
        Some(AttributeValue::M(m)) => m
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_s().ok()?.clone())))
            .collect(),
        _ => BTreeMap::new(),
    };
    Some(ConnectionRecord {
        connection_id,
        user_id: text(item, attr::USER_ID)?.to_string(),
        connected_at: number(item, attr::CONNECTED_AT)?,
        connected: matches!(item.get(CONNECTED), Some(AttributeValue::Bool(true))),
        subscriptions,
        expires_at: number(item, EXPIRES_AT)?,
    })
}

fn subscription_item(sub: &SubscriptionRecord) -> Item {
    let mut item = subscription_key(
        &sub.conversation_id,
        &sub.connection_id,
        &sub.subscription_id,
    );
    item.insert(attr::CONNECTION_ID.into(), s(&sub.connection_id));
    item.insert(attr::SUBSCRIPTION_ID.into(), s(&sub.subscription_id));
    item.insert(attr::USER_ID.into(), s(&sub.user_id));
    if let Some(start) = &sub.window_start {
        item.insert(WINDOW_START.into(), s(start));
    }
    item.insert(EXPIRES_AT.into(), n(sub.expires_at));
    item
}

fn subscription_from_item(item: &Item) -> Option<SubscriptionRecord> {
    let conversation_id = text(item, PK)?.strip_prefix(SUBS_PREFIX)?.to_string();
    Some(SubscriptionRecord {
        conversation_id,
        connection_id: text(item, attr::CONNECTION_ID)?.to_string(),
        subscription_id: text(item, attr::SUBSCRIPTION_ID)?.to_string(),
        user_id: text(item, attr::USER_ID)?.to_string(),
        window_start: text(item, WINDOW_START).map(str::to_string),
        expires_at: number(item, EXPIRES_AT)?,
    })
}

fn now_secs(now_ms: i64) -> i64 {
    now_ms.div_euclid(1000)
}

#[async_trait]
impl ConnectionWriter for DynamoRealtimeStore {
    async fn put_connection(&self, connection: &ConnectionRecord) -> StoreResult<()> {
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(connection_item(connection)));
        retry_conflicts(|| request.clone().send())
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl ConnectionReader for DynamoRealtimeStore {
    async fn get_connection(
        &self,
        connection_id: &str,
        now_ms: i64,
    ) -> StoreResult<Option<ConnectionRecord>> {
        Ok(self
            .read_connection(connection_id)
            .await?
            .filter(|c| !is_expired(c.expires_at, now_ms)))
    }
}

#[async_trait]
impl ConnectionLister for DynamoRealtimeStore {
    async fn user_connections(
        &self,
        user_id: &str,
        now_ms: i64,
    ) -> StoreResult<Vec<ConnectionRecord>> {
        // A GSI is never strongly consistent.
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression(format!("{GSI1_PK} = :pk"))
            .expression_attribute_values(":pk", s(&uconn_pk(user_id)));
        Ok(ops::query_all(query)
            .await?
            .iter()
            .filter_map(connection_from_item)
            .filter(|c| c.connected && !is_expired(c.expires_at, now_ms))
            .collect())
    }
}

#[async_trait]
impl SubscriptionWriter for DynamoRealtimeStore {
    async fn put_subscription(
        &self,
        sub: &SubscriptionRecord,
        now_ms: i64,
    ) -> StoreResult<SubscribeOutcome> {
        for _ in 0..REALTIME_MAX_ATTEMPTS {
            let Some(connection) = self
                .read_connection(&sub.connection_id)
                .await?
                .filter(|c| c.connected && !is_expired(c.expires_at, now_ms))
            else {
                return Ok(SubscribeOutcome::ConnectionGone);
            };
            let replaced = connection.subscriptions.get(&sub.subscription_id).cloned();
            if replaced.is_none()
                && connection.subscriptions.len() >= MAX_SUBSCRIPTIONS_PER_CONNECTION
            {
                return Ok(SubscribeOutcome::TooMany);
            }
            // The subscription map must still read as it did, so that a racing subscribe,
            // unsubscribe or disconnect makes this attempt start over.
            let mut update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(connection_key(&sub.connection_id)))
                .update_expression(format!("SET {SUBS}.#sid = :cid"))
                .expression_attribute_names("#sid", &sub.subscription_id)
                .expression_attribute_values(":cid", s(&sub.conversation_id))
                .expression_attribute_values(":true", AttributeValue::Bool(true));
            update = match &replaced {
                Some(old) => update
                    .condition_expression(format!("{CONNECTED} = :true AND {SUBS}.#sid = :old"))
                    .expression_attribute_values(":old", s(old)),
                None => update.condition_expression(format!(
                    "{CONNECTED} = :true AND attribute_not_exists({SUBS}.#sid)"
                )),
            };
            let mut stored = sub.clone();
            stored.expires_at = connection.subscription_expiry();
            let mut items = vec![
                TransactWriteItem::builder()
                    .update(update.build().map_err(backend)?)
                    .build(),
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(&self.table)
                            .set_item(Some(subscription_item(&stored)))
                            .build()
                            .map_err(backend)?,
                    )
                    .build(),
            ];
            if let Some(old) = replaced.filter(|old| *old != sub.conversation_id) {
                items.push(
                    TransactWriteItem::builder()
                        .delete(
                            Delete::builder()
                                .table_name(&self.table)
                                .set_key(Some(subscription_key(
                                    &old,
                                    &sub.connection_id,
                                    &sub.subscription_id,
                                )))
                                .build()
                                .map_err(backend)?,
                        )
                        .build(),
                );
            }
            match ops::transact(&self.client, "subscribe", items).await? {
                Ok(()) => return Ok(SubscribeOutcome::Subscribed),
                // The connection item changed since it was read: read it again.
                Err(_) => continue,
            }
        }
        Err(StoreError::Backend(format!(
            "subscription {} kept changing under {REALTIME_MAX_ATTEMPTS} attempts",
            sub.subscription_id
        )))
    }
}

#[async_trait]
impl SubscriptionReader for DynamoRealtimeStore {
    async fn get_subscription(
        &self,
        connection_id: &str,
        subscription_id: &str,
        now_ms: i64,
    ) -> StoreResult<Option<SubscriptionRecord>> {
        let Some(cid) = self
            .get_connection(connection_id, now_ms)
            .await?
            .and_then(|c| c.subscriptions.get(subscription_id).cloned())
        else {
            return Ok(None);
        };
        Ok(self
            .read_subscription(&cid, connection_id, subscription_id)
            .await?
            .filter(|s| !is_expired(s.expires_at, now_ms)))
    }
}

#[async_trait]
impl WindowExtender for DynamoRealtimeStore {
    async fn extend_window(
        &self,
        conversation_id: &str,
        connection_id: &str,
        subscription_id: &str,
        new_start: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(subscription_key(
                conversation_id,
                connection_id,
                subscription_id,
            )))
            .expression_attribute_values(":now", n(now_secs(now_ms)));
        let request = match new_start {
            None => request
                .update_expression(format!("REMOVE {WINDOW_START}"))
                .condition_expression(format!("attribute_exists({PK}) AND {EXPIRES_AT} > :now")),
            Some(start) => request
                .update_expression(format!("SET {WINDOW_START} = :start"))
                .condition_expression(format!(
                    "attribute_exists({PK}) AND {EXPIRES_AT} > :now AND {WINDOW_START} > :start"
                ))
                .expression_attribute_values(":start", s(start)),
        };
        match retry_conflicts(|| request.clone().send()).await {
            Ok(_) => Ok(true),
            // Missing, expired, or its window already reaches further: tell those apart.
            Err(e) if is_condition_failed(&e) => Ok(self
                .read_subscription(conversation_id, connection_id, subscription_id)
                .await?
                .is_some_and(|s| !is_expired(s.expires_at, now_ms))),
            Err(e) => Err(backend(aws_sdk_dynamodb::error::DisplayErrorContext(e))),
        }
    }
}

#[async_trait]
impl SubscriptionRemover for DynamoRealtimeStore {
    async fn delete_subscription(
        &self,
        connection_id: &str,
        subscription_id: &str,
    ) -> StoreResult<Option<String>> {
        for _ in 0..REALTIME_MAX_ATTEMPTS {
            let Some(cid) = self
                .read_connection(connection_id)
                .await?
                .and_then(|c| c.subscriptions.get(subscription_id).cloned())
            else {
                return Ok(None);
            };
            let update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(connection_key(connection_id)))
                .update_expression(format!("REMOVE {SUBS}.#sid"))
                .condition_expression(format!("{SUBS}.#sid = :cid"))
                .expression_attribute_names("#sid", subscription_id)
                .expression_attribute_values(":cid", s(&cid))
                .build()
                .map_err(backend)?;
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(subscription_key(&cid, connection_id, subscription_id)))
                .build()
                .map_err(backend)?;
            let items = vec![
                TransactWriteItem::builder().update(update).build(),
                TransactWriteItem::builder().delete(delete).build(),
            ];
            match ops::transact(&self.client, "unsubscribe", items).await? {
                Ok(()) => return Ok(Some(cid)),
                // The subscription moved or went since it was read: read it again.
                Err(_) => continue,
            }
        }
        Err(StoreError::Backend(format!(
            "subscription {subscription_id} kept changing under {REALTIME_MAX_ATTEMPTS} attempts"
        )))
    }
}

#[async_trait]
impl SubscriberLister for DynamoRealtimeStore {
    async fn subscribers(
        &self,
        conversation_id: &str,
        now_ms: i64,
    ) -> StoreResult<Vec<SubscriptionRecord>> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression(format!("{PK} = :pk"))
            .expression_attribute_values(":pk", s(&subs_pk(conversation_id)))
            .consistent_read(true);
        Ok(ops::query_all(query)
            .await?
            .iter()
            .filter_map(subscription_from_item)
            .filter(|s| !is_expired(s.expires_at, now_ms))
            .collect())
    }
}

#[async_trait]
impl Disconnector for DynamoRealtimeStore {
    async fn disconnect(&self, connection_id: &str, now_ms: i64) -> StoreResult<()> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(connection_key(connection_id)))
            .update_expression(format!(
                "SET {CONNECTED} = :false, {EXPIRES_AT} = :exp, {SUBS} = :empty \
                 REMOVE {GSI1_PK}, {GSI1_SK}"
            ))
            .condition_expression(format!("{CONNECTED} = :true"))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":exp", n(now_secs(now_ms) + CLIENT_ID_GRACE_SECS))
            .expression_attribute_values(":empty", AttributeValue::M(HashMap::new()))
            .return_values(ReturnValue::AllOld);
        let old = match retry_conflicts(|| request.clone().send()).await {
            Ok(out) => out.attributes.unwrap_or_default(),
            // Missing or already closed (its subscriptions went with it).
            Err(e) if is_condition_failed(&e) => return Ok(()),
            Err(e) => return Err(backend(aws_sdk_dynamodb::error::DisplayErrorContext(e))),
        };
        let keys: Vec<Item> = match old.get(SUBS) {
            Some(AttributeValue::M(subs)) => subs
                .iter()
                .filter_map(|(sub_id, cid)| {
                    Some(subscription_key(cid.as_s().ok()?, connection_id, sub_id))
                })
                .collect(),
            _ => Vec::new(),
        };
        self.delete_items(keys).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::scripted_http::{scripted_server, sdk_config, Reply};
    use crate::store::dynamo::ops::MAX_SENDS;

    const NOW_MS: i64 = 1_700_000_000_000;

    /// A store whose client talks to `endpoint` with the SDK's own retries off.
    fn scripted_store(endpoint: &str) -> DynamoRealtimeStore {
        let config = aws_sdk_dynamodb::config::Builder::from(&sdk_config())
            .endpoint_url(endpoint)
            .build();
        DynamoRealtimeStore::new(Client::from_conf(config), "natter")
    }

    fn reply(body: Value) -> Reply {
        Reply::new(200, body.to_string())
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

    /// GetItem's answer for a live connection `A` of alice without subscriptions.
    fn connection_a() -> Reply {
        let expires = connection_expiry_secs();
        reply(json!({"Item": {
            "pk": {"S": "CONN#A"}, "sk": {"S": "#CONN"}, "userId": {"S": "alice"},
            "connectedAt": {"N": NOW_MS.to_string()}, "connected": {"BOOL": true},
            "subs": {"M": {}}, "expiresAt": {"N": expires.to_string()},
        }}))
    }

    fn connection_expiry_secs() -> i64 {
        crate::realtime::connection_expiry(NOW_MS)
    }

    fn subscription() -> SubscriptionRecord {
        SubscriptionRecord {
            conversation_id: "c1".into(),
            connection_id: "A".into(),
            subscription_id: "s1".into(),
            user_id: "alice".into(),
            window_start: None,
            expires_at: 0,
        }
    }

    #[tokio::test]
    async fn subscribe_sends_a_conflicting_transaction_again() {
        let conflict = dynamodb_error(
            "TransactionCanceledException",
            json!({"CancellationReasons": [{"Code": "TransactionConflict"}, {"Code": "None"}]}),
        );
        let (endpoint, received) = scripted_server(
            vec![connection_a(), conflict.clone(), conflict],
            reply(json!({})),
        )
        .await;
        let outcome = scripted_store(&endpoint)
            .put_subscription(&subscription(), NOW_MS)
            .await;
        assert_eq!(outcome.ok(), Some(SubscribeOutcome::Subscribed));
        // One read, then the same transaction three times (no read in between).
        assert_eq!(received.count_with("DynamoDB_20120810.GetItem"), 1);
        assert_eq!(
            received.count_with("DynamoDB_20120810.TransactWriteItems"),
            3
        );
    }

    #[tokio::test]
    async fn subscribe_reads_again_after_losing_a_race() {
        let lost = dynamodb_error(
            "TransactionCanceledException",
            json!({"CancellationReasons": [{"Code": "ConditionalCheckFailed"}, {"Code": "None"}]}),
        );
        let (endpoint, received) =
            scripted_server(vec![connection_a(), lost, connection_a()], reply(json!({}))).await;
        let outcome = scripted_store(&endpoint)
            .put_subscription(&subscription(), NOW_MS)
            .await;
        assert_eq!(outcome.ok(), Some(SubscribeOutcome::Subscribed));
        assert_eq!(received.count_with("DynamoDB_20120810.GetItem"), 2);
        assert_eq!(
            received.count_with("DynamoDB_20120810.TransactWriteItems"),
            2
        );
    }

    #[tokio::test]
    async fn disconnect_retries_conflicts_and_unprocessed_deletes_with_the_shared_policy() {
        let conflict = dynamodb_error("TransactionConflictException", json!({}));
        let closed = reply(json!({"Attributes": {
            "pk": {"S": "CONN#A"}, "sk": {"S": "#CONN"},
            "subs": {"M": {"s1": {"S": "c1"}}},
        }}));
        let unprocessed = reply(json!({"UnprocessedItems": {"natter": [
            {"DeleteRequest": {"Key": {"pk": {"S": "SUBS#c1"}, "sk": {"S": "A#s1"}}}}
        ]}}));
        let (endpoint, received) = scripted_server(vec![conflict, closed], unprocessed).await;
        let result = scripted_store(&endpoint).disconnect("A", NOW_MS).await;
        assert!(matches!(result, Err(StoreError::Backend(_))), "{result:?}");
        assert_eq!(received.count_with("DynamoDB_20120810.UpdateItem"), 2);
        assert_eq!(
            received.count_with("DynamoDB_20120810.BatchWriteItem"),
            MAX_SENDS as usize
        );
    }
}
