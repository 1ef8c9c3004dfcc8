//! The stream wiring: what drives the fan-out locally.
//!
//! * Embedded store: its change feed, in write order, in batches of up to `BATCH_SIZE` (as many
//!   as are waiting, up to that). The feed is lossless: while the fan-out is behind, the
//!   writers wait (`natter::changes::feed`).
//! * DynamoDB: the table's stream, read the way Lambda's event source mapping reads it
//!   (DescribeStream, GetShardIterator at LATEST when the gateway starts, GetRecords every
//!   `STREAM_POLL_INTERVAL`), turned into the Lambda DynamoDB event JSON and handed to the
//!   fan-out's stream handler. When the handler reports batch item failures, the batch is retried
//!   from the first failed record, at most `MAX_DELIVERIES` times (with backoff); after that the
//!   records are dropped with an error log, as the deployed function's on-failure destination
//!   would get them. The numbers are in `natter::config` (`stream`, `local`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::dynamodb::Event;
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use base64::Engine;
use natter::changes::{Change, ChangeReceiver};
use natter::config::local::{SHARD_REFRESH, STREAM_BACKOFF_BASE_MS, STREAM_POLL_INTERVAL};
use natter::config::stream::{BATCH_SIZE, MAX_DELIVERIES};
use natter::fanout::FanOut;
use serde_json::{json, Map, Value};

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(STREAM_BACKOFF_BASE_MS << attempt.min(6))
}

// ---- The embedded store's change feed ----

/// Feeds every change of the embedded store to the fan-out until the feed closes (every store
/// writing into it is gone).
pub async fn run_change_feed(mut feed: ChangeReceiver, fan_out: Arc<FanOut>) {
    let mut batch = Vec::with_capacity(BATCH_SIZE);
    // Waits for the first change, then takes those already queued behind it.
    while feed.recv_many(&mut batch, BATCH_SIZE).await > 0 {
        deliver_changes(&fan_out, std::mem::take(&mut batch)).await;
    }
}

async fn deliver_changes(fan_out: &FanOut, mut batch: Vec<Change>) {
    for attempt in 1..=MAX_DELIVERIES {
        match fan_out.apply_all(&batch).await {
            Ok(_) => return,
            Err((failed, error)) => {
                batch.drain(..failed);
                if attempt == MAX_DELIVERIES {
                    tracing::error!(
                        dropped = batch.len(),
                        %error,
                        "fan-out kept failing; changes dropped (the on-failure destination on AWS)"
                    );
                    return;
                }
                tracing::warn!(%error, attempt, "fan-out failed; retrying from the failed change");
                tokio::time::sleep(backoff(attempt)).await;
            }
        }
    }
}

// ---- A DynamoDB stream ----

/// A reader of one table's stream, positioned at its end when made.
pub struct StreamReader {
    client: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
    region: String,
    /// Open shard id → its next iterator.
    iterators: HashMap<String, String>,
    /// Shards already started (so that a refreshed list adds only new ones).
    known: std::collections::HashSet<String>,
}

fn error_text(e: impl std::error::Error) -> String {
    aws_sdk_dynamodbstreams::error::DisplayErrorContext(e).to_string()
}

impl StreamReader {
    /// Finds the table's stream (enabling one with new and old images if the table has none)
    /// and takes an iterator at LATEST for every open shard, so that everything written from
    /// now on is read.
    pub async fn start(
        dynamodb: &aws_sdk_dynamodb::Client,
        client: aws_sdk_dynamodbstreams::Client,
        table: &str,
        region: &str,
    ) -> Result<StreamReader, String> {
        let described = dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| format!("DescribeTable {table}: {}", error_text(e)))?;
        let mut stream_arn = described
            .table()
            .and_then(|t| t.latest_stream_arn())
            .map(str::to_string);
        let enabled = described
            .table()
            .and_then(|t| t.stream_specification())
            .is_some_and(|s| s.stream_enabled());
        if !enabled || stream_arn.is_none() {
            let spec = aws_sdk_dynamodb::types::StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(aws_sdk_dynamodb::types::StreamViewType::NewAndOldImages)
                .build()
                .map_err(|e| e.to_string())?;
            let updated = dynamodb
                .update_table()
                .table_name(table)
                .stream_specification(spec)
                .send()
                .await
                .map_err(|e| format!("enabling the stream of {table}: {}", error_text(e)))?;
            stream_arn = updated
                .table_description()
                .and_then(|t| t.latest_stream_arn())
                .map(str::to_string);
        }
        let stream_arn = stream_arn.ok_or_else(|| format!("table {table} has no stream"))?;
        let mut reader = StreamReader {
            client,
            stream_arn,
            region: region.to_string(),
            iterators: HashMap::new(),
            known: Default::default(),
        };
        reader.refresh_shards(ShardIteratorType::Latest).await?;
        Ok(reader)
    }

    /// Lists the stream's shards and starts reading the open ones not seen yet: at `position`
    /// (LATEST at start; TRIM_HORIZON for shards that appear later, which hold only new records).
    async fn refresh_shards(&mut self, position: ShardIteratorType) -> Result<(), String> {
        let mut start: Option<String> = None;
        for _ in 0..100 {
            let out = self
                .client
                .describe_stream()
                .stream_arn(&self.stream_arn)
                .set_exclusive_start_shard_id(start.take())
                .send()
                .await
                .map_err(|e| format!("DescribeStream: {}", error_text(e)))?;
            let Some(description) = out.stream_description() else {
                break;
            };
            for shard in description.shards() {
                let Some(id) = shard.shard_id() else { continue };
                let open = shard
                    .sequence_number_range()
                    .is_none_or(|r| r.ending_sequence_number().is_none());
                if self.known.contains(id) {
                    continue;
                }
                self.known.insert(id.to_string());
                if !open && position == ShardIteratorType::Latest {
                    continue;
                }
                let iterator = self
                    .client
                    .get_shard_iterator()
                    .stream_arn(&self.stream_arn)
                    .shard_id(id)
                    .shard_iterator_type(position.clone())
                    .send()
                    .await
                    .map_err(|e| format!("GetShardIterator: {}", error_text(e)))?;
                if let Some(it) = iterator.shard_iterator() {
                    self.iterators.insert(id.to_string(), it.to_string());
                }
            }
            match description.last_evaluated_shard_id() {
                Some(last) => start = Some(last.to_string()),
                None => break,
            }
        }
        Ok(())
    }

    /// Reads the stream and feeds the fan-out until the process stops.
    pub async fn run(mut self, fan_out: Arc<FanOut>) {
        let mut last_refresh = tokio::time::Instant::now();
        loop {
            let mut got_any = false;
            let shards: Vec<(String, String)> = self
                .iterators
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for (shard, iterator) in shards {
                match self
                    .client
                    .get_records()
                    .shard_iterator(iterator)
                    .limit(BATCH_SIZE as i32)
                    .send()
                    .await
                {
                    Ok(out) => {
                        if !out.records().is_empty() {
                            got_any = true;
                            self.deliver(&fan_out, out.records()).await;
                        }
                        match out.next_shard_iterator() {
                            Some(next) => {
                                self.iterators.insert(shard, next.to_string());
                            }
                            // The shard is closed and read to its end.
                            None => {
                                self.iterators.remove(&shard);
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(shard, error = error_text(e), "GetRecords failed");
                        // An expired iterator (or a vanished shard) is replaced on the next
                        // refresh; forget it now.
                        self.iterators.remove(&shard);
                        self.known.remove(&shard);
                    }
                }
            }
            if last_refresh.elapsed() >= SHARD_REFRESH || self.iterators.is_empty() {
                last_refresh = tokio::time::Instant::now();
                if let Err(e) = self.refresh_shards(ShardIteratorType::TrimHorizon).await {
                    tracing::warn!(error = e, "refreshing the stream's shards failed");
                }
            }
            if !got_any {
                tokio::time::sleep(STREAM_POLL_INTERVAL).await;
            }
        }
    }

    /// Invokes the fan-out with these records as Lambda would, retrying from the first
    /// reported failure.
    async fn deliver(&self, fan_out: &FanOut, records: &[Record]) {
        let mut records: Vec<Value> = records.iter().map(|r| self.record_json(r)).collect();
        for attempt in 1..=MAX_DELIVERIES {
            let event: Event = match serde_json::from_value(json!({ "Records": records })) {
                Ok(event) => event,
                Err(e) => {
                    tracing::error!(error = %e, "could not build the DynamoDB stream event");
                    return;
                }
            };
            let response = fan_out.handle_stream_event(event).await;
            let Some(first) = response
                .batch_item_failures
                .iter()
                .filter_map(|f| f.item_identifier.as_deref())
                .find_map(|seq| {
                    records
                        .iter()
                        .position(|r| r["dynamodb"]["SequenceNumber"].as_str() == Some(seq))
                })
            else {
                return;
            };
            records.drain(..first);
            if attempt == MAX_DELIVERIES {
                tracing::error!(
                    dropped = records.len(),
                    "fan-out kept failing; stream records dropped (the on-failure destination \
                     on AWS)"
                );
                return;
            }
            tokio::time::sleep(backoff(attempt)).await;
        }
    }

    /// One stream record as the Lambda event carries it.
    fn record_json(&self, record: &Record) -> Value {
        let change = record.dynamodb();
        let image = |m: Option<&HashMap<String, AttributeValue>>| -> Value {
            Value::Object(
                m.map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), attribute_json(v)))
                        .collect::<Map<String, Value>>()
                })
                .unwrap_or_default(),
            )
        };
        let mut dynamodb = json!({
            "ApproximateCreationDateTime": change
                .and_then(|c| c.approximate_creation_date_time())
                .map(|t| t.as_secs_f64())
                .unwrap_or(0.0),
            "Keys": image(change.and_then(|c| c.keys())),
            "SequenceNumber": change.and_then(|c| c.sequence_number()),
            "SizeBytes": change.and_then(|c| c.size_bytes()).unwrap_or(0),
            "StreamViewType": change
                .and_then(|c| c.stream_view_type())
                .map(|v| v.as_str().to_string())
                .unwrap_or_else(|| "NEW_AND_OLD_IMAGES".to_string()),
        });
        if let Some(new) = change.and_then(|c| c.new_image()) {
            dynamodb["NewImage"] = image(Some(new));
        }
        if let Some(old) = change.and_then(|c| c.old_image()) {
            dynamodb["OldImage"] = image(Some(old));
        }
        let mut out = json!({
            "eventID": record.event_id().unwrap_or_default(),
            "eventName": record.event_name().map(|n| n.as_str()).unwrap_or_default(),
            "eventVersion": record.event_version().unwrap_or("1.1"),
            "eventSource": record.event_source().unwrap_or("aws:dynamodb"),
            "awsRegion": record.aws_region().unwrap_or(&self.region),
            "dynamodb": dynamodb,
            "eventSourceARN": self.stream_arn,
        });
        if let Some(identity) = record.user_identity() {
            out["userIdentity"] = json!({
                "type": identity.r#type().unwrap_or_default(),
                "principalId": identity.principal_id().unwrap_or_default(),
            });
        }
        out
    }
}

/// One attribute value in DynamoDB JSON (`{"S": "x"}`).
fn attribute_json(value: &AttributeValue) -> Value {
    let b64 = |b: &aws_smithy_types::Blob| {
        Value::String(base64::engine::general_purpose::STANDARD.encode(b.as_ref()))
    };
    match value {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(b) => json!({ "NULL": b }),
        AttributeValue::B(b) => json!({ "B": b64(b) }),
        AttributeValue::Ss(v) => json!({ "SS": v }),
        AttributeValue::Ns(v) => json!({ "NS": v }),
        AttributeValue::Bs(v) => json!({ "BS": v.iter().map(b64).collect::<Vec<_>>() }),
        AttributeValue::L(v) => json!({ "L": v.iter().map(attribute_json).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({
            "M": m
                .iter()
                .map(|(k, v)| (k.clone(), attribute_json(v)))
                .collect::<Map<String, Value>>()
        }),
        _ => json!({ "NULL": true }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_become_lambda_events_the_fan_out_reads() {
        let record = json!({
            "eventID": "1",
            "eventName": "REMOVE",
            "awsRegion": "us-east-1",
            "eventSource": "aws:dynamodb",
            "dynamodb": {
                "ApproximateCreationDateTime": 1_700_000_000.0,
                "Keys": {"pk": attribute_json(&AttributeValue::S("CONV#c1".into())),
                         "sk": attribute_json(&AttributeValue::S("MSG#msg_1".into()))},
                "SequenceNumber": "100",
                "SizeBytes": 10,
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            },
            "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
        });
        let event: Event = serde_json::from_value(json!({ "Records": [record] })).unwrap();
        // A TTL removal: nothing to push.
        assert_eq!(
            natter::fanout::change_from_record(&event.records[0]),
            Ok(None)
        );
        let mut user = event.records[0].clone();
        user.user_identity = None;
        assert_eq!(
            natter::fanout::change_from_record(&user),
            Ok(Some(Change::MessageDeleted {
                conversation_id: "c1".into(),
                message_id: "msg_1".into()
            }))
        );
    }
}
