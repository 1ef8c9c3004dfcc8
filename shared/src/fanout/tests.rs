//! The per-change fan-out's tests: a fake `Pusher` over the in-memory `Services`, fed the changes
//! the embedded store makes, and a stream event through `FanOut::handle_stream_event`.

use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::*;
use crate::auth::Identity;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::domain::{PutConversation, SendMessage};
use crate::realtime::ConnectionRecord;

/// Records every post; connections listed in `gone` answer 410, in `failing` fail.
#[derive(Default)]
struct FakePusher {
    posts: Mutex<Vec<(String, Value)>>,
    gone: Vec<String>,
    failing: Vec<String>,
}

#[async_trait]
impl Pusher for FakePusher {
    async fn push(&self, connection_id: &str, frame: &str) -> PushOutcome {
        if let Ok(mut posts) = self.posts.lock() {
            posts.push((
                connection_id.to_string(),
                serde_json::from_str(frame).unwrap(),
            ));
        }
        if self.gone.iter().any(|c| c == connection_id) {
            PushOutcome::Gone
        } else if self.failing.iter().any(|c| c == connection_id) {
            PushOutcome::Failed("boom".into())
        } else {
            PushOutcome::Delivered
        }
    }
}

struct Setup {
    services: Services,
    feed: crate::changes::ChangeReceiver,
}

async fn setup() -> Setup {
    let (services, feed) = Services::memory(Arc::new(SystemClock), Config::default());
    let body = serde_json::from_value(json!({"participants": ["alice", "bob"]})).unwrap();
    services
        .build::<PutConversation>()
        .run(&Identity::Secret, "c1", body)
        .await
        .unwrap();
    let realtime = services.realtime.clone();
    let now = SystemClock.now_ms();
    for (conn, user) in [("A", "alice"), ("B", "bob"), ("E", "eve")] {
        realtime
            .put_connection(&ConnectionRecord::new(conn, user, now))
            .await
            .unwrap();
        let sub = SubscriptionRecord {
            conversation_id: "c1".into(),
            connection_id: conn.into(),
            subscription_id: "s".into(),
            user_id: user.into(),
            window_start: None,
            expires_at: 0,
        };
        realtime.put_subscription(&sub, now).await.unwrap();
    }
    Setup { services, feed }
}

fn fan_out(setup: &Setup, pusher: Arc<FakePusher>) -> FanOut {
    FanOut::new(&setup.services, pusher, 4)
}

async fn send(setup: &mut Setup, user: &str, text: &str) -> Change {
    let identity = Identity::User {
        user_id: user.into(),
        role: None,
    };
    let body = serde_json::from_value(json!({ "text": text })).unwrap();
    setup
        .services
        .build::<SendMessage>()
        .run(&identity, "c1", body)
        .await
        .unwrap();
    setup.feed.recv().await.unwrap()
}

#[tokio::test]
async fn pushes_reach_participants_only_and_gone_connections_are_removed() {
    let mut setup = setup().await;
    let pusher = Arc::new(FakePusher {
        gone: vec!["B".into()],
        ..Default::default()
    });
    let change = send(&mut setup, "alice", "hi").await;
    let report = fan_out(&setup, pusher.clone())
        .apply(&change)
        .await
        .unwrap();
    // eve subscribed but is no participant: nothing for her.
    assert_eq!(
        report,
        Report {
            delivered: 1,
            gone: 1,
            failed: 0
        }
    );
    let posts = pusher.posts.lock().unwrap().clone();
    let mut to: Vec<&str> = posts.iter().map(|(c, _)| c.as_str()).collect();
    to.sort();
    assert_eq!(to, vec!["A", "B"]);
    assert_eq!(posts[0].1["type"], "message.created");
    assert_eq!(posts[0].1["subscriptionId"], "s");
    let now = SystemClock.now_ms();
    let bob = (setup.services.realtime)
        .get_connection("B", now)
        .await
        .unwrap()
        .unwrap();
    assert!(!bob.connected && bob.subscriptions.is_empty());
    assert_eq!(
        setup
            .services
            .realtime
            .subscribers("c1", now)
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn a_failed_post_fails_the_change_and_the_rest_of_the_batch() {
    let mut setup = setup().await;
    let pusher = Arc::new(FakePusher {
        failing: vec!["A".into()],
        ..Default::default()
    });
    let first = send(&mut setup, "bob", "one").await;
    let fan_out = fan_out(&setup, pusher);
    assert!(fan_out.apply(&first).await.is_err());
    let second = send(&mut setup, "bob", "two").await;
    let (failed, _) = fan_out
        .apply_all(&[
            Change::MessageDeleted {
                conversation_id: "c9".into(),
                message_id: "msg_x".into(),
            },
            second,
        ])
        .await
        .unwrap_err();
    assert_eq!(failed, 1);
}

fn remove_record(seq: &str, mid: &str, ttl: bool) -> Value {
    let mut record = json!({
        "eventID": seq,
        "eventName": "REMOVE",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "Keys": {"pk": {"S": "CONV#c1"}, "sk": {"S": format!("MSG#{mid}")}},
            "SequenceNumber": seq,
            "SizeBytes": 1,
        },
    });
    if ttl {
        record["userIdentity"] =
            json!({"type": "Service", "principalId": "dynamodb.amazonaws.com"});
    }
    record
}

#[tokio::test]
async fn stream_batches_report_failures_from_the_first_failed_record() {
    let setup = setup().await;
    let failing = Arc::new(FakePusher {
        failing: vec!["A".into()],
        ..Default::default()
    });
    let event: Event = serde_json::from_value(json!({"Records": [
        remove_record("1", "msg_1", true),
        remove_record("2", "msg_2", false),
        remove_record("3", "msg_3", false),
    ]}))
    .unwrap();
    let response = fan_out(&setup, failing.clone())
        .handle_stream_event(event.clone())
        .await;
    let failed: Vec<Option<String>> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, vec![Some("2".to_string()), Some("3".to_string())]);
    // The TTL removal pushed nothing; record 2 was tried, record 3 was not.
    let posts = failing.posts.lock().unwrap().clone();
    assert!(posts.iter().all(|(_, frame)| frame["messageId"] == "msg_2"));
    assert_eq!(posts[0].1["type"], "message.deleted");

    let fine = Arc::new(FakePusher::default());
    let response = fan_out(&setup, fine.clone())
        .handle_stream_event(event)
        .await;
    assert!(response.batch_item_failures.is_empty());
    // msg_2 and msg_3 to alice and bob (eve is no participant).
    assert_eq!(fine.posts.lock().unwrap().len(), 4);
}
