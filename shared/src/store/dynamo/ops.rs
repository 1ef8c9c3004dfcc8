//! The DynamoDB requests every store sends the same way, with one retry policy: transactions
//! (retried while cancelled only by conflicts or throttling), single-item writes (retried on
//! `TransactionConflictException`), `BatchGetItem` (unprocessed keys sent again),
//! `BatchWriteItem` (unprocessed writes sent again) and a Query read page after page.
//! `DynamoStore`, its inbox half and `DynamoRealtimeStore` all use these.
//!
//! The retry policy: at most [`MAX_SENDS`] sends of one request, the first included; before send
//! `n + 1` a jittered wait of [`backoff`]`(n)`: between half and all of
//! `min(BACKOFF_BASE · 2ⁿ, BACKOFF_MAX)`, i.e. 10–20 ms, 20–40 ms, … up to 0.5–1 s; about 5 s in
//! all. The SDK's own retries (throttling, 5xx, network errors of one attempt) come on top.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, KeysAndAttributes, TransactWriteItem, WriteRequest,
};
use aws_sdk_dynamodb::Client;

use crate::store::{StoreError, StoreResult};

/// One item (or key), attribute name → value.
pub type Item = HashMap<String, AttributeValue>;

// ---- The retry policy -----------------------------------------------------------------------

pub use crate::config::storage::{BACKOFF_BASE, BACKOFF_MAX, MAX_SENDS};

/// The wait before send `attempt + 1` (`attempt` from 1): a random duration between half of
/// and all of `min(BACKOFF_BASE · 2^attempt, BACKOFF_MAX)`.
pub fn backoff(attempt: u32) -> Duration {
    crate::retry::jittered_backoff(BACKOFF_BASE, BACKOFF_MAX, attempt)
}

// ---- API limits (`config::aws`) --------------------------------------------------------------

use crate::config::aws::{
    DYNAMODB_BATCH_GET_MAX_KEYS as MAX_BATCH_GET_KEYS,
    DYNAMODB_BATCH_WRITE_MAX_ITEMS as MAX_BATCH_WRITES,
};

// ---- Errors ---------------------------------------------------------------------------------

/// An SDK error as a `Backend` error naming the operation.
pub fn sdk_error<E, R>(operation: &str, err: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Backend(format!(
        "DynamoDB {operation} failed: {}",
        DisplayErrorContext(&err)
    ))
}

/// A request the SDK's builders refused.
pub fn build_error(err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("could not build a DynamoDB request: {err}"))
}

/// Whether a single-item request failed its condition.
pub fn is_condition_failed<E, R>(err: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    err.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

// ---- Single-item writes ---------------------------------------------------------------------

/// Sends a single-item request again while it fails with `TransactionConflictException` (the
/// item is part of a transaction in progress), which the SDK does not retry by itself.
pub async fn retry_conflicts<T, E, R, F, Fut>(mut send: F) -> Result<T, SdkError<E, R>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, SdkError<E, R>>>,
    E: ProvideErrorMetadata,
{
    let mut attempt = 0;
    loop {
        match send().await {
            Err(err)
                if attempt + 1 < MAX_SENDS
                    && err.as_service_error().and_then(|e| e.code())
                        == Some("TransactionConflictException") =>
            {
                attempt += 1;
                tokio::time::sleep(backoff(attempt)).await;
            }
            other => return other,
        }
    }
}

// ---- Transactions ---------------------------------------------------------------------------

/// How a transaction that DynamoDB cancelled because of a condition ended: one reason per
/// item, in request order.
pub struct Cancelled(pub Vec<CancellationReason>);

impl Cancelled {
    /// Whether the item at `index` failed its condition.
    pub fn failed(&self, index: usize) -> bool {
        self.0
            .get(index)
            .and_then(|r| r.code())
            .is_some_and(|c| c == "ConditionalCheckFailed")
    }

    /// The old item a failed check returned (with `ReturnValuesOnConditionCheckFailure`).
    pub fn item(&self, index: usize) -> Option<&Item> {
        self.0.get(index).and_then(|r| r.item())
    }

    fn describe(&self) -> String {
        let reasons: Vec<String> = self
            .0
            .iter()
            .map(|r| match (r.code().unwrap_or("None"), r.message()) {
                (code, Some(message)) => format!("{code}: {message}"),
                (code, None) => code.to_string(),
            })
            .collect();
        format!("[{}]", reasons.join("; "))
    }

    pub fn unexpected(&self, what: &str) -> StoreError {
        StoreError::Backend(format!(
            "{what}: transaction cancelled for unexpected reasons {}",
            self.describe()
        ))
    }
}

/// Sends a transaction; sends it again while it is cancelled only by conflicts, throttling or
/// `TransactionInProgress`. `Ok(Err(cancelled))` when a condition failed (any
/// `ConditionalCheckFailed` reason is an answer, not retried); a cancellation for any other
/// reason is an error at once.
pub async fn transact(
    client: &Client,
    what: &str,
    items: Vec<TransactWriteItem>,
) -> StoreResult<Result<(), Cancelled>> {
    let mut attempt = 0;
    loop {
        let sent = client
            .transact_write_items()
            .set_transact_items(Some(items.clone()))
            .send()
            .await;
        let err = match sent {
            Ok(_) => return Ok(Ok(())),
            Err(err) => err,
        };
        let retry = match err.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                let cancelled = Cancelled(c.cancellation_reasons().to_vec());
                if cancelled
                    .0
                    .iter()
                    .any(|r| r.code() == Some("ConditionalCheckFailed"))
                {
                    return Ok(Err(cancelled));
                }
                let transient = cancelled.0.iter().all(|r| {
                    matches!(
                        r.code(),
                        None | Some(
                            "None"
                                | "TransactionConflict"
                                | "ThrottlingError"
                                | "ProvisionedThroughputExceeded"
                        )
                    )
                });
                if !transient {
                    return Err(cancelled.unexpected(what));
                }
                true
            }
            Some(TransactWriteItemsError::TransactionInProgressException(_)) => true,
            _ => false,
        };
        attempt += 1;
        if !retry || attempt >= MAX_SENDS {
            return Err(sdk_error(&format!("TransactWriteItems ({what})"), err));
        }
        tokio::time::sleep(backoff(attempt)).await;
    }
}

// ---- Batches --------------------------------------------------------------------------------

/// Reads items by key, strongly consistent: one `BatchGetItem` per 100 keys, side by side, each
/// sending its unprocessed keys again. The keys must be distinct. Missing items are absent;
/// the order is DynamoDB's.
pub async fn batch_get(client: &Client, table: &str, keys: Vec<Item>) -> StoreResult<Vec<Item>> {
    let batches = keys
        .chunks(MAX_BATCH_GET_KEYS)
        .map(|chunk| batch_get_one(client, table, chunk.to_vec()));
    let found = futures::future::try_join_all(batches).await?;
    Ok(found.into_iter().flatten().collect())
}

/// One `BatchGetItem` of at most 100 keys, sending unprocessed keys again.
async fn batch_get_one(client: &Client, table: &str, keys: Vec<Item>) -> StoreResult<Vec<Item>> {
    let mut found = Vec::new();
    let mut pending = keys;
    let mut attempt = 0;
    while !pending.is_empty() {
        let request = KeysAndAttributes::builder()
            .set_keys(Some(pending))
            .consistent_read(true)
            .build()
            .map_err(build_error)?;
        let out = client
            .batch_get_item()
            .request_items(table, request)
            .send()
            .await
            .map_err(|e| sdk_error("BatchGetItem", e))?;
        if let Some(items) = out.responses().and_then(|r| r.get(table)) {
            found.extend(items.iter().cloned());
        }
        pending = out
            .unprocessed_keys()
            .and_then(|u| u.get(table))
            .map(|k| k.keys().to_vec())
            .unwrap_or_default();
        if !pending.is_empty() {
            attempt += 1;
            if attempt >= MAX_SENDS {
                return Err(StoreError::Backend(format!(
                    "BatchGetItem left {} keys unprocessed after {MAX_SENDS} sends",
                    pending.len()
                )));
            }
            tokio::time::sleep(backoff(attempt)).await;
        }
    }
    Ok(found)
}

/// Writes in batches of 25, one batch after the other, each sending its unprocessed writes
/// again.
pub async fn batch_write(
    client: &Client,
    table: &str,
    writes: Vec<WriteRequest>,
) -> StoreResult<()> {
    for chunk in writes.chunks(MAX_BATCH_WRITES) {
        let mut pending = chunk.to_vec();
        let mut attempt = 0;
        while !pending.is_empty() {
            let out = client
                .batch_write_item()
                .request_items(table, pending)
                .send()
                .await
                .map_err(|e| sdk_error("BatchWriteItem", e))?;
            pending = out
                .unprocessed_items
                .and_then(|mut u| u.remove(table))
                .unwrap_or_default();
            if !pending.is_empty() {
                attempt += 1;
                if attempt >= MAX_SENDS {
                    return Err(StoreError::Backend(format!(
                        "BatchWriteItem left {} writes unprocessed after {MAX_SENDS} sends",
                        pending.len()
                    )));
                }
                tokio::time::sleep(backoff(attempt)).await;
            }
        }
    }
    Ok(())
}

// ---- Queries --------------------------------------------------------------------------------

/// A Query read page by page: each page continues at the last one's `LastEvaluatedKey`.
pub struct Pages {
    query: QueryFluentBuilder,
    start: Option<Item>,
    done: bool,
}

impl Pages {
    /// `query` is complete but for `ExclusiveStartKey`.
    pub fn new(query: QueryFluentBuilder) -> Self {
        Pages {
            query,
            start: None,
            done: false,
        }
    }

    /// The next page's items, or `None` after the last page.
    pub async fn next(&mut self) -> StoreResult<Option<Vec<Item>>> {
        if self.done {
            return Ok(None);
        }
        let out = self
            .query
            .clone()
            .set_exclusive_start_key(self.start.take())
            .send()
            .await
            .map_err(|e| sdk_error("Query", e))?;
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => self.start = Some(k),
            _ => self.done = true,
        }
        Ok(Some(out.items.unwrap_or_default()))
    }
}

/// Every item a Query finds, page after page.
pub async fn query_all(query: QueryFluentBuilder) -> StoreResult<Vec<Item>> {
    let mut pages = Pages::new(query);
    let mut items = Vec::new();
    while let Some(page) = pages.next().await? {
        items.extend(page);
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::scripted_http::{scripted_server, sdk_config, Reply};
    use crate::store::schema::key;

    const TABLE: &str = "natter";

    /// A client of `endpoint` with the SDK's own retries off: every request the server sees
    /// was sent by the helper under test.
    fn scripted_client(endpoint: &str) -> Client {
        let config = aws_sdk_dynamodb::config::Builder::from(&sdk_config())
            .endpoint_url(endpoint)
            .build();
        Client::from_conf(config)
    }

    fn reply(body: Value) -> Reply {
        Reply::new(200, body.to_string())
    }

    fn key_json(pk: &str, sk: &str) -> Value {
        json!({"pk": {"S": pk}, "sk": {"S": sk}})
    }

    fn delete(pk: &str, sk: &str) -> WriteRequest {
        let delete = aws_sdk_dynamodb::types::DeleteRequest::builder()
            .set_key(Some(key(pk.to_string(), sk)))
            .build()
            .expect("a delete request");
        WriteRequest::builder().delete_request(delete).build()
    }

    /// A BatchWriteItem answer that left one delete unprocessed.
    fn unprocessed_write() -> Reply {
        reply(json!({
            "UnprocessedItems": {TABLE: [{"DeleteRequest": {"Key": key_json("a", "1")}}]}
        }))
    }

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap_with_jitter() {
        for attempt in 1..=12u32 {
            let cap = (BACKOFF_BASE * 2u32.pow(attempt)).min(BACKOFF_MAX);
            for _ in 0..50 {
                let wait = backoff(attempt);
                assert!(
                    wait >= cap / 2 && wait <= cap,
                    "attempt {attempt}: {wait:?} not in [{:?}, {cap:?}]",
                    cap / 2
                );
            }
        }
        assert_eq!(MAX_SENDS, 10);
    }

    #[tokio::test]
    async fn batch_write_sends_unprocessed_items_again() {
        let (endpoint, received) = scripted_server(
            vec![unprocessed_write(), unprocessed_write()],
            reply(json!({})),
        )
        .await;
        let writes = vec![delete("a", "1"), delete("a", "2")];
        let result = batch_write(&scripted_client(&endpoint), TABLE, writes).await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(received.count_with("DynamoDB_20120810.BatchWriteItem"), 3);
        assert_eq!(received.count(), 3);
    }

    #[tokio::test]
    async fn batch_write_gives_up_after_max_sends() {
        let (endpoint, received) = scripted_server(Vec::new(), unprocessed_write()).await;
        let result = batch_write(&scripted_client(&endpoint), TABLE, vec![delete("a", "1")]).await;
        match result {
            Err(StoreError::Backend(msg)) => assert!(msg.contains("unprocessed"), "{msg}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(received.count(), MAX_SENDS as usize);
    }

    #[tokio::test]
    async fn batch_write_sends_batches_of_25() {
        let (endpoint, received) = scripted_server(Vec::new(), reply(json!({}))).await;
        let writes = (0..60).map(|i| delete("a", &i.to_string())).collect();
        let result = batch_write(&scripted_client(&endpoint), TABLE, writes).await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(received.count(), 3);
    }

    #[tokio::test]
    async fn batch_get_sends_unprocessed_keys_again() {
        let first = reply(json!({
            "Responses": {TABLE: [key_json("a", "1")]},
            "UnprocessedKeys": {TABLE: {"Keys": [key_json("a", "2")], "ConsistentRead": true}},
        }));
        let second = reply(json!({"Responses": {TABLE: [key_json("a", "2")]}}));
        let (endpoint, received) = scripted_server(vec![first, second], reply(json!({}))).await;
        let keys = vec![key("a".into(), "1"), key("a".into(), "2")];
        let found = batch_get(&scripted_client(&endpoint), TABLE, keys)
            .await
            .expect("both items");
        assert_eq!(found.len(), 2);
        assert_eq!(received.count_with("DynamoDB_20120810.BatchGetItem"), 2);
    }

    #[tokio::test]
    async fn batch_get_gives_up_after_max_sends() {
        let unprocessed = reply(json!({
            "UnprocessedKeys": {TABLE: {"Keys": [key_json("a", "1")]}},
        }));
        let (endpoint, received) = scripted_server(Vec::new(), unprocessed).await;
        let result = batch_get(
            &scripted_client(&endpoint),
            TABLE,
            vec![key("a".into(), "1")],
        )
        .await;
        assert!(matches!(result, Err(StoreError::Backend(_))), "{result:?}");
        assert_eq!(received.count(), MAX_SENDS as usize);
    }

    #[tokio::test]
    async fn query_all_reads_every_page() {
        let page = |sk: &str, more: bool| {
            let mut body = json!({"Items": [key_json("a", sk)], "Count": 1, "ScannedCount": 1});
            if more {
                body["LastEvaluatedKey"] = key_json("a", sk);
            }
            reply(body)
        };
        let (endpoint, received) = scripted_server(
            vec![page("1", true), page("2", true), page("3", false)],
            reply(json!({"Items": []})),
        )
        .await;
        let query = scripted_client(&endpoint)
            .query()
            .table_name(TABLE)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S("a".into()));
        let items = query_all(query).await.expect("three pages");
        let sks: Vec<_> = items.iter().map(|i| i["sk"].as_s().ok().cloned()).collect();
        assert_eq!(
            sks,
            vec![Some("1".into()), Some("2".into()), Some("3".into())]
        );
        assert_eq!(received.count_with("DynamoDB_20120810.Query"), 3);
    }
}
