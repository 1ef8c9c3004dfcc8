//! The Lambda batch adapter: one DynamoDB stream event in, its batch item failures out.
//!
//! In the manner of the aws-lambda-rust-runtime example `advanced-sqs-partial-batch-failures`,
//! the function that handles one record knows nothing of batches, and one generic function
//! (`run_in_order`) runs it over a batch and builds the response. A stream is ordered, so unlike
//! SQS a failed record cannot be skipped: the first failure and every record after it are
//! reported, by sequence number, and Lambda (with `ReportBatchItemFailures`, see
//! `template.yaml`) delivers the batch again from that record. A record that cannot be decoded
//! is logged and skipped: delivering it again would not make it readable.
//!
//! This layer knows nothing of changes, subscriptions or pushes; `FanOut::handle_stream_event`
//! uses it with the stream decoding (`stream`) and the per-change fan-out (`FanOut::apply`).

use std::fmt::Display;
use std::future::Future;

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};

/// Runs the records of `event` in order. Each is decoded with `decode`; a record that stands for
/// nothing (`Ok(None)`) is skipped, one that cannot be decoded (`Err`) is logged and skipped, and
/// each decoded item is handed to `handle`, one at a time. At the first `handle` that fails, the
/// run stops: that record and every record after it (decodable or not) are the response's batch
/// item failures, by sequence number; the records before it are done.
pub async fn run_in_order<T, R, E, Fut>(
    event: &Event,
    decode: impl Fn(&EventRecord) -> Result<Option<T>, String>,
    handle: impl Fn(T) -> Fut,
) -> DynamoDbEventResponse
where
    Fut: Future<Output = Result<R, E>>,
    E: Display,
{
    let mut response = DynamoDbEventResponse::default();
    for (i, record) in event.records.iter().enumerate() {
        let item = match decode(record) {
            Ok(Some(item)) => item,
            Ok(None) => continue,
            Err(why) => {
                // Retrying cannot fix a record that cannot be read: log it and go on.
                tracing::error!(event_id = record.event_id, why, "unreadable stream record");
                continue;
            }
        };
        if let Err(e) = handle(item).await {
            tracing::warn!(
                event_id = record.event_id,
                error = %e,
                "stream record failed; retrying from this record"
            );
            response.batch_item_failures = event.records[i..].iter().map(failure).collect();
            break;
        }
    }
    response
}

/// The batch item failure that names `record` (by its sequence number).
fn failure(record: &EventRecord) -> DynamoDbBatchItemFailure {
    let mut failure = DynamoDbBatchItemFailure::default();
    failure.item_identifier = record.change.sequence_number.clone();
    failure
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::json;

    use super::*;

    /// An event of records whose event names say what the fake decoder makes of them: `SKIP`
    /// stands for nothing, `BAD` cannot be decoded, anything else decodes to its sequence number.
    fn batch(records: &[(&str, &str)]) -> Event {
        let records: Vec<_> = records
            .iter()
            .map(|(seq, name)| {
                json!({
                    "eventID": format!("e{seq}"),
                    "eventName": name,
                    "awsRegion": "us-east-1",
                    "dynamodb": {"Keys": {}, "SequenceNumber": seq, "SizeBytes": 1},
                })
            })
            .collect();
        serde_json::from_value(json!({ "Records": records })).unwrap()
    }

    fn decode(record: &EventRecord) -> Result<Option<String>, String> {
        match record.event_name.as_str() {
            "SKIP" => Ok(None),
            "BAD" => Err("unreadable".into()),
            _ => Ok(record.change.sequence_number.clone()),
        }
    }

    /// Runs `event` with a per-record function that fails for the sequence numbers in `failing`;
    /// returns the sequence numbers it was called with and the ones reported as failures.
    async fn run(event: &Event, failing: &[&str]) -> (Vec<String>, Vec<Option<String>>) {
        let handled = Mutex::new(Vec::new());
        let handle = |seq: String| {
            let handled = &handled;
            async move {
                handled.lock().unwrap().push(seq.clone());
                if failing.contains(&seq.as_str()) {
                    Err(format!("{seq} failed"))
                } else {
                    Ok(())
                }
            }
        };
        let response = run_in_order(event, decode, handle).await;
        let reported = response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        (handled.into_inner().unwrap(), reported)
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn some(v: &[&str]) -> Vec<Option<String>> {
        v.iter().map(|s| Some(s.to_string())).collect()
    }

    #[tokio::test]
    async fn every_record_runs_in_order_and_none_is_reported() {
        let event = batch(&[("1", "INSERT"), ("2", "MODIFY"), ("3", "REMOVE")]);
        assert_eq!(run(&event, &[]).await, (strings(&["1", "2", "3"]), vec![]));
        assert_eq!(run(&batch(&[]), &[]).await, (vec![], vec![]));
    }

    #[tokio::test]
    async fn the_first_failure_and_everything_after_it_are_reported() {
        let event = batch(&[
            ("1", "INSERT"),
            ("2", "INSERT"),
            ("3", "INSERT"),
            ("4", "BAD"),
            ("5", "SKIP"),
            ("6", "INSERT"),
        ]);
        // Record 2 fails: 3 and 6 are not tried, and 2 to 6 are delivered again.
        assert_eq!(
            run(&event, &["2", "3"]).await,
            (strings(&["1", "2"]), some(&["2", "3", "4", "5", "6"]))
        );
        // A failing first record fails the whole batch.
        assert_eq!(
            run(&event, &["1"]).await,
            (strings(&["1"]), some(&["1", "2", "3", "4", "5", "6"]))
        );
        assert_eq!(
            run(&event, &["6"]).await,
            (strings(&["1", "2", "3", "6"]), some(&["6"]))
        );
    }

    #[tokio::test]
    async fn records_that_cannot_be_decoded_or_stand_for_nothing_are_skipped() {
        let event = batch(&[("1", "BAD"), ("2", "SKIP"), ("3", "INSERT"), ("4", "BAD")]);
        assert_eq!(run(&event, &[]).await, (strings(&["3"]), vec![]));
    }
}
