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

/// Records every post; connections listed in `gone` answer 410, in `failing` fail; a frame
/// that contains `refused_text` is refused for good, whatever its connection.
#[derive(Default)]
struct FakePusher {
    posts: Mutex<Vec<(String, Value)>>,
    gone: Vec<String>,
    failing: Vec<String>,
    refused_text: Option<String>,
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
        if self
            .refused_text
            .as_deref()
            .is_some_and(|t| frame.contains(t))
        {
            PushOutcome::Refused("413 PayloadTooLargeException".into())
        } else if self.gone.iter().any(|c| c == connection_id) {
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
    send_body(setup, user, json!({ "text": text })).await
}

async fn send_body(setup: &mut Setup, user: &str, body: Value) -> Change {
    let identity = Identity::User {
        user_id: user.into(),
        role: None,
    };
    let body = serde_json::from_value(body).unwrap();
    setup
        .services
        .build::<SendMessage>()
        .run(&identity, "c1", body)
        .await
        .unwrap();
    // The conversation's creation came first (its participants joining): skip to the message.
    loop {
        let change = setup.feed.recv().await.unwrap();
        if change.message_id().is_some() {
            return change;
        }
    }
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
            refused: 0,
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

#[tokio::test]
async fn a_change_refused_for_good_is_skipped_and_the_changes_after_it_go_out() {
    let mut setup = setup().await;
    let pusher = Arc::new(FakePusher {
        refused_text: Some("poison".into()),
        ..Default::default()
    });
    let refused = send(&mut setup, "bob", "poison").await;
    let after = send(&mut setup, "alice", "after").await;
    let report = fan_out(&setup, pusher.clone())
        .apply_all(&[refused, after])
        .await
        .expect("a refusal does not fail the change");
    // Both posts of the first change (to alice and bob) refused, both of the second delivered.
    assert_eq!(
        report,
        Report {
            delivered: 2,
            gone: 0,
            refused: 2,
            failed: 0
        }
    );
    let posts = pusher.posts.lock().unwrap().clone();
    let texts: Vec<&str> = posts
        .iter()
        .map(|(_, f)| match f.to_string() {
            t if t.contains("poison") => "poison",
            t if t.contains("after") => "after",
            _ => "other",
        })
        .collect();
    assert_eq!(texts, vec!["poison", "poison", "after", "after"]);
    // Nothing was forgotten: a refused connection is still connected.
    let now = SystemClock.now_ms();
    let alice = (setup.services.realtime)
        .get_connection("A", now)
        .await
        .unwrap()
        .unwrap();
    assert!(alice.connected && !alice.subscriptions.is_empty());
}

#[tokio::test]
async fn a_record_refused_for_good_does_not_fail_its_batch() {
    let setup = setup().await;
    let pusher = Arc::new(FakePusher {
        refused_text: Some("msg_poison".into()),
        ..Default::default()
    });
    let event: Event = serde_json::from_value(json!({"Records": [
        remove_record("1", "msg_poison", false),
        remove_record("2", "msg_2", false),
        remove_record("3", "msg_3", false),
    ]}))
    .unwrap();
    let response = fan_out(&setup, pusher.clone())
        .handle_stream_event(event)
        .await;
    assert!(
        response.batch_item_failures.is_empty(),
        "{:?}",
        response.batch_item_failures
    );
    let posts = pusher.posts.lock().unwrap().clone();
    let ids: Vec<&Value> = posts.iter().map(|(_, f)| &f["messageId"]).collect();
    // Each record tried once, in order, to alice and bob: the refused one did not hold back the
    // two after it.
    assert_eq!(
        ids,
        vec![
            "msg_poison",
            "msg_poison",
            "msg_2",
            "msg_2",
            "msg_3",
            "msg_3"
        ]
    );
}

#[tokio::test]
async fn a_message_too_big_for_a_frame_is_pushed_in_its_short_form() {
    use crate::config::sizes::{FRAME_MAX_BYTES, FRAME_MESSAGE_MAX_BYTES};
    let mut setup = setup().await;
    let limits = Config::default().limits;
    // The widest `custom` the limits allow: its snapshot alone is over a frame.
    let custom: serde_json::Map<String, Value> = (0..limits.max_custom_keys)
        .map(|i| {
            let key = format!("{i:0>width$}", width = limits.max_custom_key_chars);
            (key, json!("x".repeat(limits.max_custom_value_bytes)))
        })
        .collect();
    let change = send_body(
        &mut setup,
        "alice",
        json!({"text": "big", "custom": custom}),
    )
    .await;
    let Change::MessageCreated(record) = &change else {
        panic!("not a creation: {change:?}");
    };
    assert!(crate::sizes::json_len(&record.custom).unwrap() > FRAME_MESSAGE_MAX_BYTES);
    let pusher = Arc::new(FakePusher::default());
    let report = fan_out(&setup, pusher.clone())
        .apply(&change)
        .await
        .unwrap();
    assert_eq!(report.delivered, 2);
    for (_, frame) in pusher.posts.lock().unwrap().iter() {
        assert!(serde_json::to_string(frame).unwrap().len() <= FRAME_MAX_BYTES);
        assert_eq!(frame["type"], "message.created");
        assert_eq!(
            frame["message"],
            json!({"id": record.id, "conversationId": "c1", "truncated": true})
        );
        assert_eq!(frame["subscriptionId"], "s");
    }
}
