//! The realtime store on DynamoDB, in the message table (see `super` for the item layout).
//!
//! Requests per operation: `put_connection` 1 PutItem; `get_connection` 1 GetItem;
//! `user_connections` 1 Query of `gsi1`; `put_subscription` 1 GetItem + 1 TransactWriteItems;
//! `get_subscription` 2 GetItems; `extend_window` 1 UpdateItem (+1 GetItem when the window
//! already reached further); `delete_subscription` 1 GetItem + 1 TransactWriteItems;
//! `subscribers` 1 Query (paged); `disconnect` 1 UpdateItem + 1 BatchWriteItem per 25
//! subscriptions.

use std::collections::{BTreeMap, HashMap};

use crate::realtime::{
    ConnectionLister, ConnectionReader, ConnectionWriter, Disconnector, SubscriberLister,
    SubscriptionReader, SubscriptionRemover, SubscriptionWriter, WindowExtender,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, DeleteRequest, Put, ReturnValue, TransactWriteItem, Update,
    WriteRequest,
};
use aws_sdk_dynamodb::Client;

use super::{ConnectionRecord, SubscribeOutcome, SubscriptionRecord};
use crate::config::aws::DYNAMODB_BATCH_WRITE_MAX_ITEMS;
use crate::config::connections::{CLIENT_ID_GRACE_SECS, MAX_SUBSCRIPTIONS_PER_CONNECTION};
use crate::config::storage::{
    REALTIME_BACKOFF_BASE_MS, REALTIME_MAX_ATTEMPTS, REALTIME_MAX_QUERY_PAGES,
};
use crate::store::{is_expired, StoreError, StoreResult};

type Item = HashMap<String, AttributeValue>;

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
        for chunk in keys.chunks(DYNAMODB_BATCH_WRITE_MAX_ITEMS) {
            let mut requests: Vec<WriteRequest> = Vec::with_capacity(chunk.len());
            for key in chunk {
                let delete = DeleteRequest::builder()
                    .set_key(Some(key.clone()))
                    .build()
                    .map_err(backend)?;
                requests.push(WriteRequest::builder().delete_request(delete).build());
            }
            let mut attempt = 0;
            while !requests.is_empty() {
                attempt += 1;
                if attempt > REALTIME_MAX_ATTEMPTS {
                    return Err(StoreError::Backend(format!(
                        "{} deletes still unprocessed after {REALTIME_MAX_ATTEMPTS} attempts",
                        requests.len()
                    )));
                }
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .send()
                    .await
                    .map_err(backend)?;
                requests = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(&self.table))
                    .unwrap_or_default();
                if !requests.is_empty() {
                    tokio::time::sleep(std::time::Duration::from_millis(
                        REALTIME_BACKOFF_BASE_MS << attempt,
                    ))
                    .await;
                }
            }
        }
        Ok(())
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Whether an SDK error is a failed condition (or a transaction cancelled by one).
fn lost_race<E: ProvideErrorMetadata>(e: &aws_sdk_dynamodb::error::SdkError<E>) -> bool {
    matches!(
        e.as_service_error().and_then(|s| s.code()),
        Some("ConditionalCheckFailedException" | "TransactionCanceledException")
    )
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub fn connection_key(connection_id: &str) -> Item {
    HashMap::from([
        ("pk".to_string(), s(&format!("CONN#{connection_id}"))),
        ("sk".to_string(), s("#CONN")),
    ])
}

pub fn subscription_key(cid: &str, connection_id: &str, subscription_id: &str) -> Item {
    HashMap::from([
        ("pk".to_string(), s(&format!("SUBS#{cid}"))),
        (
            "sk".to_string(),
            s(&format!("{connection_id}#{subscription_id}")),
        ),
    ])
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
    item.insert("userId".into(), s(&c.user_id));
    item.insert("connectedAt".into(), n(c.connected_at));
    item.insert("connected".into(), AttributeValue::Bool(c.connected));
    item.insert(
        "subs".into(),
        AttributeValue::M(
            c.subscriptions
                .iter()
                .map(|(k, v)| (k.clone(), s(v)))
                .collect(),
        ),
    );
    item.insert("expiresAt".into(), n(c.expires_at));
    if c.connected {
        item.insert("gsi1pk".into(), s(&format!("UCONN#{}", c.user_id)));
        item.insert("gsi1sk".into(), s(&c.connection_id));
    }
    item
}

fn connection_from_item(item: &Item) -> Option<ConnectionRecord> {
    let connection_id = text(item, "pk")?.strip_prefix("CONN#")?.to_string();
    let subscriptions = match item.get("subs") {
        Some(AttributeValue::M(m)) => m
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_s().ok()?.clone())))
            .collect(),
        _ => BTreeMap::new(),
    };
    Some(ConnectionRecord {
        connection_id,
        user_id: text(item, "userId")?.to_string(),
        connected_at: number(item, "connectedAt")?,
        connected: matches!(item.get("connected"), Some(AttributeValue::Bool(true))),
        subscriptions,
        expires_at: number(item, "expiresAt")?,
    })
}

fn subscription_item(sub: &SubscriptionRecord) -> Item {
    let mut item = subscription_key(
        &sub.conversation_id,
        &sub.connection_id,
        &sub.subscription_id,
    );
    item.insert("connectionId".into(), s(&sub.connection_id));
    item.insert("subscriptionId".into(), s(&sub.subscription_id));
    item.insert("userId".into(), s(&sub.user_id));
    if let Some(start) = &sub.window_start {
        item.insert("windowStart".into(), s(start));
    }
    item.insert("expiresAt".into(), n(sub.expires_at));
    item
}

fn subscription_from_item(item: &Item) -> Option<SubscriptionRecord> {
    let conversation_id = text(item, "pk")?.strip_prefix("SUBS#")?.to_string();
    Some(SubscriptionRecord {
        conversation_id,
        connection_id: text(item, "connectionId")?.to_string(),
        subscription_id: text(item, "subscriptionId")?.to_string(),
        user_id: text(item, "userId")?.to_string(),
        window_start: text(item, "windowStart").map(str::to_string),
        expires_at: number(item, "expiresAt")?,
    })
}

fn now_secs(now_ms: i64) -> i64 {
    now_ms.div_euclid(1000)
}

#[async_trait]
impl ConnectionWriter for DynamoRealtimeStore {
    async fn put_connection(&self, connection: &ConnectionRecord) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(connection_item(connection)))
            .send()
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
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        for _ in 0..REALTIME_MAX_QUERY_PAGES {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("gsi1")
                .key_condition_expression("gsi1pk = :pk")
                .expression_attribute_values(":pk", s(&format!("UCONN#{user_id}")))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(backend)?;
            found.extend(
                out.items()
                    .iter()
                    .filter_map(connection_from_item)
                    .filter(|c| c.connected && !is_expired(c.expires_at, now_ms)),
            );
            match out.last_evaluated_key {
                Some(key) => start = Some(key),
                None => break,
            }
        }
        Ok(found)
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
                .update_expression("SET subs.#sid = :cid")
                .expression_attribute_names("#sid", &sub.subscription_id)
                .expression_attribute_values(":cid", s(&sub.conversation_id))
                .expression_attribute_values(":true", AttributeValue::Bool(true));
            update = match &replaced {
                Some(old) => update
                    .condition_expression("connected = :true AND subs.#sid = :old")
                    .expression_attribute_values(":old", s(old)),
                None => update
                    .condition_expression("connected = :true AND attribute_not_exists(subs.#sid)"),
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
            match self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await
            {
                Ok(_) => return Ok(SubscribeOutcome::Subscribed),
                Err(e) if lost_race(&e) => continue,
                Err(e) => return Err(backend(aws_sdk_dynamodb::error::DisplayErrorContext(e))),
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
                .update_expression("REMOVE windowStart")
                .condition_expression("attribute_exists(pk) AND expiresAt > :now"),
            Some(start) => request
                .update_expression("SET windowStart = :start")
                .condition_expression(
                    "attribute_exists(pk) AND expiresAt > :now AND windowStart > :start",
                )
                .expression_attribute_values(":start", s(start)),
        };
        match request.send().await {
            Ok(_) => Ok(true),
            // Missing, expired, or its window already reaches further: tell those apart.
            Err(e) if lost_race(&e) => Ok(self
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
                .update_expression("REMOVE subs.#sid")
                .condition_expression("subs.#sid = :cid")
                .expression_attribute_names("#sid", subscription_id)
                .expression_attribute_values(":cid", s(&cid))
                .build()
                .map_err(backend)?;
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(subscription_key(&cid, connection_id, subscription_id)))
                .build()
                .map_err(backend)?;
            match self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().update(update).build())
                .transact_items(TransactWriteItem::builder().delete(delete).build())
                .send()
                .await
            {
                Ok(_) => return Ok(Some(cid)),
                Err(e) if lost_race(&e) => continue,
                Err(e) => return Err(backend(aws_sdk_dynamodb::error::DisplayErrorContext(e))),
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
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        for _ in 0..REALTIME_MAX_QUERY_PAGES {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(&format!("SUBS#{conversation_id}")))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(backend)?;
            found.extend(
                out.items()
                    .iter()
                    .filter_map(subscription_from_item)
                    .filter(|s| !is_expired(s.expires_at, now_ms)),
            );
            match out.last_evaluated_key {
                Some(key) => start = Some(key),
                None => break,
            }
        }
        Ok(found)
    }
}

#[async_trait]
impl Disconnector for DynamoRealtimeStore {
    async fn disconnect(&self, connection_id: &str, now_ms: i64) -> StoreResult<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(connection_key(connection_id)))
            .update_expression(
                "SET connected = :false, expiresAt = :exp, subs = :empty REMOVE gsi1pk, gsi1sk",
            )
            .condition_expression("connected = :true")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":exp", n(now_secs(now_ms) + CLIENT_ID_GRACE_SECS))
            .expression_attribute_values(":empty", AttributeValue::M(HashMap::new()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        let old = match result {
            Ok(out) => out.attributes.unwrap_or_default(),
            // Missing or already closed (its subscriptions went with it).
            Err(e) if lost_race(&e) => return Ok(()),
            Err(e) => return Err(backend(aws_sdk_dynamodb::error::DisplayErrorContext(e))),
        };
        let keys: Vec<Item> = match old.get("subs") {
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
