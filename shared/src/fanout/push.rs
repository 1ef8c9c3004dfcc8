//! The push port: how the fan-out sends one frame to one WebSocket connection (`Pusher`, and
//! what became of the post, `PushOutcome`), and its adapter for API Gateway's management API
//! (`ManagementApiPusher`, `POST @connections/{id}`).
//!
//! The orchestration in `fanout` knows only the trait; this is the one layer that speaks to API
//! Gateway, and the one place that reads its answers (`classify`):
//!
//! * 410 `GoneException`: the connection is gone, and the fan-out forgets it;
//! * 429, 5xx, and no answer in time (a timeout or a failed connection): it may work later, so
//!   it is sent again with jittered backoff, and if it still fails the change fails and the
//!   stream delivers it again;
//! * any other refusal (413 `PayloadTooLargeException`, 400, 403, …) will be refused again
//!   however often it is sent: the post is logged and skipped, so that one change that can never
//!   be delivered to one connection does not hold back every change after it.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_apigatewaymanagement::error::{DisplayErrorContext, SdkError};
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::config::fanout::{
    PUSH_ATTEMPT_TIMEOUT, PUSH_BACKOFF_BASE, PUSH_BACKOFF_MAX, PUSH_MAX_ATTEMPTS,
};

/// What became of one post to a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    Delivered,
    /// The connection is gone (410): it should be forgotten.
    Gone,
    /// Refused for good (413, 400, 403, …): sending it again would be refused again. The post
    /// is skipped.
    Refused(String),
    /// Failed in a way that may pass (throttled, a server error, a timeout), after the retries:
    /// the change should be delivered again.
    Failed(String),
}

/// Sends one frame to one connection.
#[async_trait]
pub trait Pusher: Send + Sync {
    async fn push(&self, connection_id: &str, frame: &str) -> PushOutcome;
}

/// The real pusher: API Gateway's management API (`POST @connections/{id}`), with posts that may
/// pass later sent again with jittered exponential backoff.
pub struct ManagementApiPusher {
    client: aws_sdk_apigatewaymanagement::Client,
    /// Sends of one post at most, the first included.
    pub max_attempts: u32,
    /// The base and the cap of the wait between sends (`retry::jittered_backoff`).
    pub backoff: (Duration, Duration),
}

impl ManagementApiPusher {
    /// A pusher over `client`, with its configuration changed in three ways: the SDK's own
    /// retries are off (this pusher's are the one retry policy; the SDK's would multiply them),
    /// one send may take at most `PUSH_ATTEMPT_TIMEOUT`, and stalled-stream protection is off.
    /// That protection watches the throughput of every request body and answer in the
    /// background; a post is at most 128 KiB and its answer empty, and the attempt timeout already
    /// ends a post that stalls. It was 4.5 % of the CPU of 5,000 posts (docs/benchmarks.md).
    pub fn new(client: aws_sdk_apigatewaymanagement::Client) -> Self {
        ManagementApiPusher {
            client,
            max_attempts: PUSH_MAX_ATTEMPTS,
            backoff: (PUSH_BACKOFF_BASE, PUSH_BACKOFF_MAX),
        }
        .with_attempt_timeout(PUSH_ATTEMPT_TIMEOUT)
    }

    /// This pusher with one send allowed `timeout` before it counts as unanswered.
    pub fn with_attempt_timeout(mut self, timeout: Duration) -> Self {
        let config = self
            .client
            .config()
            .to_builder()
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .stalled_stream_protection(
                aws_config::stalled_stream_protection::StalledStreamProtectionConfig::disabled(),
            )
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(timeout)
                    .build(),
            )
            .build();
        self.client = aws_sdk_apigatewaymanagement::Client::from_conf(config);
        self
    }

    /// A client for the management endpoint of a WebSocket API stage
    /// (`https://{api}.execute-api.{region}.amazonaws.com/{stage}`, or the local gateway).
    pub fn for_endpoint(sdk: &aws_config::SdkConfig, endpoint: &str) -> Self {
        let config = aws_sdk_apigatewaymanagement::config::Builder::from(sdk)
            .endpoint_url(endpoint)
            .build();
        Self::new(aws_sdk_apigatewaymanagement::Client::from_conf(config))
    }
}

/// What one failed send means.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Gone,
    /// May pass if sent again.
    Transient,
    /// Will be refused again.
    Refused,
}

/// Reads API Gateway's answer to one failed post: by the error type it names and the status.
fn classify(err: &SdkError<PostToConnectionError, HttpResponse>) -> Answer {
    let status = err.raw_response().map(|r| r.status().as_u16());
    let service = err.as_service_error();
    if service.is_some_and(|e| e.is_gone_exception()) || status == Some(410) {
        return Answer::Gone;
    }
    match status {
        // No HTTP answer at all: a timeout, a connection that failed or broke off.
        None => Answer::Transient,
        Some(429) => Answer::Transient,
        Some(s) if s >= 500 => Answer::Transient,
        Some(_) if service.is_some_and(|e| e.is_limit_exceeded_exception()) => Answer::Transient,
        Some(_) => Answer::Refused,
    }
}

#[async_trait]
impl Pusher for ManagementApiPusher {
    async fn push(&self, connection_id: &str, frame: &str) -> PushOutcome {
        let attempts = self.max_attempts.max(1);
        let mut last = String::new();
        for attempt in 1..=attempts {
            let sent = self
                .client
                .post_to_connection()
                .connection_id(connection_id)
                .data(aws_smithy_types::Blob::new(frame.as_bytes()))
                .send()
                .await;
            let err = match sent {
                Ok(_) => return PushOutcome::Delivered,
                Err(err) => err,
            };
            last = DisplayErrorContext(&err).to_string();
            match classify(&err) {
                Answer::Gone => return PushOutcome::Gone,
                Answer::Refused => return PushOutcome::Refused(last),
                Answer::Transient if attempt < attempts => {
                    let (base, max) = self.backoff;
                    tokio::time::sleep(crate::retry::jittered_backoff(base, max, attempt)).await;
                }
                Answer::Transient => {}
            }
        }
        PushOutcome::Failed(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripted_http::{Received, Reply};

    /// The management API's answer for `status`: the error type API Gateway names for it, or 200.
    fn management_reply(status: u16) -> Reply {
        let (error_type, body) = match status {
            410 => ("GoneException", r#"{"message":"Gone"}"#),
            429 => ("LimitExceededException", r#"{"message":"slow down"}"#),
            400 => ("BadRequestException", r#"{"message":"no"}"#),
            403 => ("ForbiddenException", r#"{"message":"Forbidden"}"#),
            413 => ("PayloadTooLargeException", r#"{"message":"too big"}"#),
            500 => ("InternalServerErrorException", r#"{"message":"oops"}"#),
            503 => ("ServiceUnavailableException", r#"{"message":"later"}"#),
            _ => return Reply::new(200, ""),
        };
        Reply::new(status, body).header(&format!("x-amzn-errortype: {error_type}"))
    }

    /// A management API answering with `statuses` in order, then 200.
    async fn scripted_server(statuses: Vec<u16>) -> (String, Received) {
        let replies = statuses.into_iter().map(management_reply).collect();
        crate::scripted_http::scripted_server(replies, management_reply(200)).await
    }

    fn real_pusher(endpoint: &str) -> ManagementApiPusher {
        let mut pusher =
            ManagementApiPusher::for_endpoint(&crate::scripted_http::sdk_config(), endpoint);
        pusher.backoff = (Duration::from_millis(2), Duration::from_millis(10));
        pusher
    }

    /// Pushes once through a management API answering `statuses` then 200; returns the outcome
    /// and how many sends the server saw.
    async fn push_through(statuses: Vec<u16>) -> (PushOutcome, usize) {
        let (endpoint, count) = scripted_server(statuses).await;
        let outcome = real_pusher(&endpoint).push("c=", "{}").await;
        (outcome, count.count())
    }

    #[test]
    fn the_pushers_client_has_no_retries_and_no_stalled_stream_protection_of_its_own() {
        let sdk = crate::scripted_http::sdk_config();
        // The shared configuration has both on, as the SDK's defaults do.
        let sdk = sdk
            .to_builder()
            .stalled_stream_protection(
                aws_config::stalled_stream_protection::StalledStreamProtectionConfig::enabled()
                    .build(),
            )
            .retry_config(aws_config::retry::RetryConfig::standard())
            .build();
        let pusher = ManagementApiPusher::for_endpoint(&sdk, "http://127.0.0.1:9");
        let config = pusher.client.config();
        let stalled = config.stalled_stream_protection().map(|c| c.is_enabled());
        assert_eq!(stalled, Some(false));
        assert_eq!(config.retry_config().map(|r| r.max_attempts()), Some(1));
        let timeout = config
            .timeout_config()
            .and_then(|t| t.operation_attempt_timeout());
        assert_eq!(timeout, Some(PUSH_ATTEMPT_TIMEOUT));
    }

    #[tokio::test]
    async fn a_gone_connection_is_reported_at_once() {
        assert_eq!(push_through(vec![410]).await, (PushOutcome::Gone, 1));
    }

    #[tokio::test]
    async fn throttling_and_server_errors_are_sent_again_until_they_pass() {
        assert_eq!(
            push_through(vec![429, 429, 429]).await,
            (PushOutcome::Delivered, 4)
        );
        assert_eq!(
            push_through(vec![500, 503, 429]).await,
            (PushOutcome::Delivered, 4)
        );
    }

    #[tokio::test]
    async fn a_post_that_keeps_failing_transiently_fails_after_bounded_sends() {
        for status in [429, 500, 503] {
            let (outcome, sends) = push_through(vec![status; 20]).await;
            assert!(matches!(outcome, PushOutcome::Failed(_)), "{outcome:?}");
            assert_eq!(sends, PUSH_MAX_ATTEMPTS as usize, "bounded retries");
        }
    }

    #[tokio::test]
    async fn a_refusal_for_good_is_not_sent_again() {
        for status in [400, 403, 413] {
            let (outcome, sends) = push_through(vec![status]).await;
            assert!(
                matches!(&outcome, PushOutcome::Refused(why) if !why.is_empty()),
                "{status}: {outcome:?}"
            );
            assert_eq!(sends, 1, "{status}: no retry of a refusal");
        }
    }

    #[tokio::test]
    async fn a_send_that_is_not_answered_in_time_is_sent_again() {
        // A management API that takes every connection and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(socket);
            }
        });
        let mut pusher = real_pusher(&endpoint).with_attempt_timeout(Duration::from_millis(100));
        pusher.max_attempts = 3;
        let outcome = pusher.push("c=", "{}").await;
        server.abort();
        assert!(matches!(outcome, PushOutcome::Failed(_)), "{outcome:?}");
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}
