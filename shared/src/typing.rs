//! Typing indicators: the `typing` route, the expiry check, and the timer between them.
//!
//! A `typing` frame from a `ReadWrite` participant writes (or refreshes) their typer item
//! (`store::typing`), at most once per `config::typing::THROTTLE_MS` while it is live, and
//! schedules an expiry check at its `until`. Pushes come from the fan-out, which hears of the
//! item's creation and deletion like of any other change (`fanout::typing`). A user stops
//! typing when the check finds their item not extended since (`TypingExpiry`), or when they send
//! a message in the conversation (the fan-out deletes the item).
//!
//! Lambda has no timers: on AWS the check is an SQS message with a `DelaySeconds` of the time
//! left (`SqsTypingTimer`), consumed by the `typing-expiry` function; natter-local and the tests
//! use a task that sleeps (`InProcessTimer`, run by `run_in_process_expiry`).

use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use serde::{Deserialize, Serialize};

use crate::auth::Identity;
use crate::clock::Clock;
use crate::config::aws::SQS_MAX_DELAY_SECS;
use crate::config::typing::{LIFETIME_MS, THROTTLE_MS, TTL_GRACE_SECS};
use crate::domain::Context;
use crate::error::{Error, Result};
use crate::model::Access;
use crate::operation;
use crate::ports::{ItemReader, Port, TypingRemover, TypingWriter};
use crate::protocol::{ClientFrame, IncomingFrame, ServerFrame, TypingFrame};
use crate::services::{Component, Services};
use crate::store::typing::TyperRecord;
use crate::store::ItemKey;

// ---- The rules ----

/// The typer item a `typing` frame at `now_ms` writes, given the live one read (if any); `None`
/// when the frame is throttled: the item is live and was written less than `THROTTLE_MS` ago.
/// A live spell keeps its `since`; a new one starts now.
pub fn next_typer(
    live: Option<&TyperRecord>,
    conversation_id: &str,
    user_id: &str,
    now_ms: i64,
) -> Option<TyperRecord> {
    let live = live.filter(|t| t.is_live(now_ms));
    if let Some(t) = live {
        let written_at = t.until - LIFETIME_MS;
        if now_ms < written_at + THROTTLE_MS {
            return None;
        }
    }
    let until = now_ms + LIFETIME_MS;
    Some(TyperRecord {
        conversation_id: conversation_id.to_string(),
        user_id: user_id.to_string(),
        since: live.map_or(now_ms, |t| t.since),
        until,
        expires_at: until.div_euclid(1000) + 1 + TTL_GRACE_SECS,
    })
}

/// Who is typing as `viewer` is told: the live typers in order (oldest spell first, then user
/// id), without the viewer.
pub fn typing_users(typers: &[TyperRecord], viewer: &str) -> Vec<String> {
    let mut typers: Vec<&TyperRecord> = typers.iter().filter(|t| t.user_id != viewer).collect();
    typers.sort_by(|a, b| (a.since, &a.user_id).cmp(&(b.since, &b.user_id)));
    typers.into_iter().map(|t| t.user_id.clone()).collect()
}

// ---- The timer ----

/// One scheduled expiry check: the typer item of `user_id` in `conversation_id`, written with
/// `until = at` (ms). This is also the SQS message body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Expiry {
    pub conversation_id: String,
    pub user_id: String,
    pub at: i64,
}

/// Runs `TypingExpiry` for a check at (or soon after) its time.
#[async_trait]
pub trait TypingTimer: Send + Sync {
    async fn schedule(&self, expiry: &Expiry, now_ms: i64) -> Result<()>;
}

/// A process that schedules no checks (every function but `ws-typing`); scheduling is an error.
pub struct NoTypingTimer;

#[async_trait]
impl TypingTimer for NoTypingTimer {
    async fn schedule(&self, _expiry: &Expiry, _now_ms: i64) -> Result<()> {
        Err(Error::Internal(
            "this process has no typing timer (TYPING_QUEUE_URL unset?)".into(),
        ))
    }
}

/// The seconds an SQS message waits to be delivered at or after `at_ms`: rounded up, at most
/// SQS's 900. (Typing lasts 10 s; the cap only guards the contract of SQS.)
pub fn delay_seconds(at_ms: i64, now_ms: i64) -> i32 {
    let left_ms = (at_ms - now_ms).max(0);
    let secs = (left_ms + 999) / 1000;
    secs.min(SQS_MAX_DELAY_SECS) as i32
}

/// The AWS timer: one `SendMessage` per check to the queue `typing-expiry` consumes.
pub struct SqsTypingTimer {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsTypingTimer {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: &str) -> Self {
        SqsTypingTimer {
            client,
            queue_url: queue_url.to_string(),
        }
    }

    /// A client built from the process's shared `SdkConfig`.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, queue_url: &str) -> Self {
        Self::new(aws_sdk_sqs::Client::new(sdk), queue_url)
    }
}

#[async_trait]
impl TypingTimer for SqsTypingTimer {
    async fn schedule(&self, expiry: &Expiry, now_ms: i64) -> Result<()> {
        let body = serde_json::to_string(expiry)
            .map_err(|e| Error::Internal(format!("an expiry check as JSON: {e}")))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .delay_seconds(delay_seconds(expiry.at, now_ms))
            .send()
            .await
            .map_err(|e| {
                Error::Internal(format!(
                    "could not schedule a typing expiry check: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(&e)
                ))
            })?;
        Ok(())
    }
}

/// The local timer: a task per check sleeps until its time by the process's clock, then hands
/// it to `run_in_process_expiry`.
pub struct InProcessTimer {
    clock: Arc<dyn Clock>,
    due: tokio::sync::mpsc::UnboundedSender<Expiry>,
}

/// The checks that are due, in the order they fell due.
pub type DueChecks = tokio::sync::mpsc::UnboundedReceiver<Expiry>;

impl InProcessTimer {
    pub fn new(clock: Arc<dyn Clock>) -> (Self, DueChecks) {
        let (due, checks) = tokio::sync::mpsc::unbounded_channel();
        (InProcessTimer { clock, due }, checks)
    }
}

#[async_trait]
impl TypingTimer for InProcessTimer {
    async fn schedule(&self, expiry: &Expiry, _now_ms: i64) -> Result<()> {
        let (clock, due, expiry) = (self.clock.clone(), self.due.clone(), expiry.clone());
        tokio::spawn(async move {
            // A clock that is not the system's (a test's) may move on its own: look again
            // after each sleep.
            loop {
                let left = expiry.at - clock.now_ms();
                if left < 0 {
                    break;
                }
                let wait = u64::try_from(left + 1).unwrap_or(0).min(1000);
                tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
            }
            let _ = due.send(expiry);
        });
        Ok(())
    }
}

/// Runs every due check of an `InProcessTimer` until the timer is dropped.
pub async fn run_in_process_expiry(mut checks: DueChecks, expiry: TypingExpiry) {
    while let Some(check) = checks.recv().await {
        if let Err(e) = expiry.run(&check).await {
            tracing::warn!(error = %e, ?check, "typing expiry check failed");
        }
    }
}

/// The timer as a component: taken from the services (`Services::with_typing_timer`); not a
/// storage port, but listed as one (`Port::TypingTimer`, with no DynamoDB action) so that the
/// IAM parity test can tell which functions may send to the queue.
impl Component for Arc<dyn TypingTimer> {
    fn build(services: &Services) -> Self {
        services.typing_timer.clone()
    }

    fn ports(into: &mut Vec<Port>) {
        into.push(Port::TypingTimer);
    }
}

// ---- The operations ----

operation! {
    /// `typing`: the caller is typing in a conversation. No reply.
    pub struct WsTyping {
        ctx: Context,
        items: Arc<dyn ItemReader>,
        typers: Arc<dyn TypingWriter>,
        timer: Arc<dyn TypingTimer>,
    }
}

impl WsTyping {
    /// `Ok(None)`: nothing to answer.
    pub(crate) async fn run(
        &self,
        event: &ApiGatewayWebsocketProxyRequest,
        frame: &IncomingFrame,
    ) -> Result<Option<ServerFrame>> {
        let ClientFrame::Typing(TypingFrame { conversation_id }) = frame.frame()? else {
            return Err(Error::Internal(format!(
                "a frame with action {:?} reached the typing route",
                frame.action()
            )));
        };
        let cid = conversation_id.ok_or_else(|| Error::invalid("conversationId is required"))?;
        self.ctx.check_id("conversationId", &cid)?;
        let Identity::User { user_id, .. } = crate::ws::identity(event)? else {
            return Err(Error::Unauthorized("a user token is needed".into()));
        };
        self.typing(&cid, &user_id).await?;
        Ok(None)
    }

    /// One batch read of the caller's participant and typer items; then, unless throttled, one
    /// write and one scheduled check.
    pub async fn typing(&self, cid: &str, user_id: &str) -> Result<()> {
        let now = self.ctx.now_ms();
        let keys = [
            ItemKey::Participant {
                conversation_id: cid.to_string(),
                user_id: user_id.to_string(),
            },
            ItemKey::Typer {
                conversation_id: cid.to_string(),
                user_id: user_id.to_string(),
            },
        ];
        let items = self.items.get_items(&keys, now).await?;
        match items.participant(cid, user_id) {
            None => return Err(Error::not_found(format!("conversation {cid:?} not found"))),
            Some(p) if p.access != Access::ReadWrite => {
                return Err(Error::forbidden("Read participants cannot type"))
            }
            Some(_) => {}
        }
        let Some(typer) = next_typer(items.typer(cid, user_id), cid, user_id, now) else {
            return Ok(());
        };
        self.typers.put_typer(&typer).await?;
        let check = Expiry {
            conversation_id: typer.conversation_id,
            user_id: typer.user_id,
            at: typer.until,
        };
        self.timer.schedule(&check, now).await
    }
}

operation! {
    /// The expiry check: the typer stops typing unless they typed again since it was scheduled.
    pub struct TypingExpiry {
        ctx: Context,
        items: Arc<dyn ItemReader>,
        typers: Arc<dyn TypingRemover>,
    }
}

impl TypingExpiry {
    /// One read of the typer item; when it is still the one the check was scheduled for (or
    /// already past its `until`), one delete conditioned on that `until`. `true` when deleted.
    pub async fn run(&self, check: &Expiry) -> Result<bool> {
        let now = self.ctx.now_ms();
        let key = ItemKey::Typer {
            conversation_id: check.conversation_id.clone(),
            user_id: check.user_id.clone(),
        };
        let items = self.items.get_items(&[key], now).await?;
        if items
            .typer(&check.conversation_id, &check.user_id)
            .is_some_and(|t| t.until != check.at)
        {
            // Extended, or a new spell: its write scheduled its own check.
            return Ok(false);
        }
        Ok(self
            .typers
            .delete_typer(&check.conversation_id, &check.user_id, check.at)
            .await?)
    }

    /// Serves one SQS event of the `typing-expiry` function: each message is one check; the
    /// ones that failed are reported as batch item failures, for SQS to deliver again.
    pub async fn handle_sqs_event(
        &self,
        event: aws_lambda_events::sqs::SqsEvent,
    ) -> aws_lambda_events::sqs::SqsBatchResponse {
        let mut response = aws_lambda_events::sqs::SqsBatchResponse::default();
        for message in event.records {
            let id = message.message_id.clone().unwrap_or_default();
            let outcome = match message.body.as_deref().map(serde_json::from_str::<Expiry>) {
                Some(Ok(check)) => self.run(&check).await.map(|_| ()),
                Some(Err(e)) => {
                    // Never readable: delivering it again would not help.
                    tracing::error!(error = %e, id, "an expiry check that is not one; dropped");
                    Ok(())
                }
                None => Ok(()),
            };
            if let Err(e) = outcome {
                tracing::warn!(error = %e, id, "typing expiry check failed");
                let mut failure = aws_lambda_events::sqs::BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typer(user: &str, since: i64, until: i64) -> TyperRecord {
        TyperRecord {
            conversation_id: "c".into(),
            user_id: user.into(),
            since,
            until,
            expires_at: until / 1000 + 61,
        }
    }

    #[test]
    fn a_first_frame_starts_a_spell_of_ten_seconds() {
        let t = next_typer(None, "c", "alice", 1_000_000).unwrap();
        assert_eq!((t.since, t.until), (1_000_000, 1_010_000));
        assert!(t.expires_at * 1000 > t.until, "TTL before until");
    }

    #[test]
    fn frames_within_the_throttle_write_nothing_and_later_ones_keep_the_spell() {
        let live = typer("alice", 1_000_000, 1_010_000);
        for now in [1_000_000, 1_001_000, 1_004_999] {
            assert_eq!(next_typer(Some(&live), "c", "alice", now), None, "at {now}");
        }
        let t = next_typer(Some(&live), "c", "alice", 1_005_000).unwrap();
        assert_eq!((t.since, t.until), (1_000_000, 1_015_000));
    }

    #[test]
    fn a_spell_past_its_until_is_over_and_the_next_frame_starts_a_new_one() {
        let old = typer("alice", 1_000_000, 1_010_000);
        let t = next_typer(Some(&old), "c", "alice", 1_010_000).unwrap();
        assert_eq!((t.since, t.until), (1_010_000, 1_020_000));
    }

    #[test]
    fn typers_are_listed_oldest_first_without_the_viewer() {
        let typers = [
            typer("carol", 2, 100),
            typer("bob", 1, 100),
            typer("alice", 2, 100),
        ];
        assert_eq!(typing_users(&typers, "dave"), ["bob", "alice", "carol"]);
        assert_eq!(typing_users(&typers, "bob"), ["alice", "carol"]);
        assert!(typing_users(&typers[1..2], "bob").is_empty());
    }

    #[test]
    fn sqs_delays_round_up_and_stay_within_sqs_limits() {
        assert_eq!(delay_seconds(10_000, 0), 10);
        assert_eq!(delay_seconds(10_001, 0), 11);
        assert_eq!(delay_seconds(5, 10), 0);
        assert_eq!(delay_seconds(i64::MAX / 2, 0), 900);
    }
}
