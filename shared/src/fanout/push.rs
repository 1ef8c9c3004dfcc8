//! The push port: how the fan-out sends one frame to one WebSocket connection (`Pusher`, and
//! what became of the post, `PushOutcome`), and its adapter for API Gateway's management API
//! (`ManagementApiPusher`, `POST @connections/{id}`).
//!
//! The orchestration in `fanout` knows only the trait; this is the one layer that speaks to API
//! Gateway, and the one place that reads its answers (410 gone, 429 throttled and retried with
//! backoff, anything else failed).

use std::time::Duration;

use async_trait::async_trait;

use crate::config::fanout::{PUSH_FIRST_BACKOFF, PUSH_MAX_ATTEMPTS};

/// What became of one post to a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    Delivered,
    /// The connection is gone (410): it should be forgotten.
    Gone,
    /// Anything else, after any retries; the change should be retried.
    Failed(String),
}

/// Sends one frame to one connection.
#[async_trait]
pub trait Pusher: Send + Sync {
    async fn push(&self, connection_id: &str, frame: &str) -> PushOutcome;
}

/// The real pusher: API Gateway's management API (`POST @connections/{id}`), with throttled
/// posts (429) retried with exponential backoff.
pub struct ManagementApiPusher {
    client: aws_sdk_apigatewaymanagement::Client,
    /// Sends of one post at most, the first included.
    pub max_attempts: u32,
    /// The wait before the second send; it doubles each time.
    pub first_backoff: Duration,
}

impl ManagementApiPusher {
    pub fn new(client: aws_sdk_apigatewaymanagement::Client) -> Self {
        ManagementApiPusher {
            client,
            max_attempts: PUSH_MAX_ATTEMPTS,
            first_backoff: PUSH_FIRST_BACKOFF,
        }
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

#[async_trait]
impl Pusher for ManagementApiPusher {
    async fn push(&self, connection_id: &str, frame: &str) -> PushOutcome {
        let mut backoff = self.first_backoff;
        let mut last = String::new();
        for attempt in 1..=self.max_attempts.max(1) {
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
            let status = err.raw_response().map(|r| r.status().as_u16());
            let service = err.as_service_error();
            if service.is_some_and(|e| e.is_gone_exception()) || status == Some(410) {
                return PushOutcome::Gone;
            }
            let throttled =
                status == Some(429) || service.is_some_and(|e| e.is_limit_exceeded_exception());
            last = aws_sdk_apigatewaymanagement::error::DisplayErrorContext(&err).to_string();
            if !throttled || attempt == self.max_attempts {
                break;
            }
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2);
        }
        PushOutcome::Failed(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripted_http::{Received, Reply};

    /// The management API's answer for `status`: 410 gone, 429 throttled, 400 refused, else 200.
    fn management_reply(status: u16) -> Reply {
        let (error_type, body) = match status {
            410 => ("GoneException", r#"{"message":"Gone"}"#),
            429 => ("LimitExceededException", r#"{"message":"slow down"}"#),
            400 => ("BadRequestException", r#"{"message":"no"}"#),
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
        pusher.first_backoff = Duration::from_millis(5);
        pusher
    }

    #[tokio::test]
    async fn the_management_api_pusher_reads_410_and_retries_429() {
        let (endpoint, count) = scripted_server(vec![410]).await;
        assert_eq!(
            real_pusher(&endpoint).push("c=", "{}").await,
            PushOutcome::Gone
        );
        assert_eq!(count.count(), 1);

        let (endpoint, count) = scripted_server(vec![429, 429, 429]).await;
        assert_eq!(
            real_pusher(&endpoint).push("c=", "{}").await,
            PushOutcome::Delivered
        );
        assert_eq!(count.count(), 4);

        let (endpoint, count) = scripted_server(vec![429; 20]).await;
        let outcome = real_pusher(&endpoint).push("c=", "{}").await;
        assert!(matches!(outcome, PushOutcome::Failed(_)), "{outcome:?}");
        assert_eq!(count.count(), 6, "bounded retries");

        let (endpoint, count) = scripted_server(vec![400]).await;
        let outcome = real_pusher(&endpoint).push("c=", "{}").await;
        assert!(matches!(outcome, PushOutcome::Failed(_)), "{outcome:?}");
        assert_eq!(count.count(), 1, "no retry for other errors");
    }
}
