#![allow(dead_code)] // each test binary uses a different part of these helpers
//! The stores under test: a fresh `MemoryStore`, or a `DynamoStore` on a fresh, uniquely named
//! table of the DynamoDB (moto) at `NATTER_TEST_DYNAMODB_ENDPOINT`.

pub mod repo;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use natter::content::Content;
use natter::model::{Access, ConversationPatch, MessageRecord, MessageType, Origin};
use natter::store::dynamo::{DynamoStore, RequestCounter};
use natter::store::memory::MemoryStore;
use natter::store::{ReactionGuard, Store};

pub const ENDPOINT_VAR: &str = "NATTER_TEST_DYNAMODB_ENDPOINT";

/// The tests' clock starts here (ms); each test moves it by passing later `now_ms` values.
pub const T0: i64 = 1_700_000_000_000;
pub const HOUR: i64 = 3600;

/// `T0` in seconds plus `secs`: an `expiresAt`.
pub fn exp_in(secs: i64) -> i64 {
    T0 / 1000 + secs
}

/// The first millisecond at which an item with this `expiresAt` is expired.
pub fn at_expiry(expires_at: i64) -> i64 {
    expires_at * 1000
}

pub struct Dynamo {
    pub client: Client,
    pub table: String,
    pub counter: RequestCounter,
    /// The server is `tests/common/moto_server.py` (atomic, cheap transactions), not a stock
    /// moto_server.
    pub atomic_moto: bool,
}

pub struct Harness {
    pub store: Arc<dyn Store>,
    pub dynamo: Option<Dynamo>,
}

impl Harness {
    pub fn memory() -> Self {
        Harness {
            store: Arc::new(MemoryStore::new()),
            dynamo: None,
        }
    }

    pub async fn dynamodb(test: &str) -> Self {
        let endpoint = std::env::var(ENDPOINT_VAR).unwrap_or_else(|_| {
            panic!(
                "{ENDPOINT_VAR} is not set: set NATTER_TEST_DYNAMODB_ENDPOINT or run scripts/test, \
                 which starts moto (the DynamoDB variants of the store conformance tests never \
                 skip)"
            )
        });
        let sdk_config = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "natter-tests"))
            .load()
            .await;
        let counter = RequestCounter::new();
        let probe = MotoProbe::default();
        let config = aws_sdk_dynamodb::config::Builder::from(&sdk_config)
            .interceptor(counter.clone())
            .interceptor(probe.clone())
            .endpoint_url(&endpoint)
            .build();
        let client = Client::from_conf(config);
        let table = unique_table(test);
        DynamoStore::new(client.clone(), table.clone())
            .create_table_if_missing()
            .await
            .unwrap_or_else(|e| panic!("creating table {table} at {endpoint}: {e}"));
        let atomic_moto = probe.0.load(Ordering::SeqCst);
        counter.take();
        Harness {
            store: Arc::new(DynamoStore::new(client.clone(), table.clone())),
            dynamo: Some(Dynamo {
                client,
                table,
                counter,
                atomic_moto,
            }),
        }
    }

    /// Panics unless the store is in memory or on `tests/common/moto_server.py`: a stock
    /// moto_server runs requests concurrently without isolation (a transaction can see another
    /// half-applied, or roll it back with its own failure) and copies the whole table on every
    /// TransactWriteItems. DynamoDB serializes conflicting transactions.
    pub fn require_atomic_transactions(&self, why: &str) {
        if let Some(d) = &self.dynamo {
            assert!(
                d.atomic_moto,
                "{ENDPOINT_VAR} points at a stock moto_server, which cannot run this test: {why}. \
                 Start moto with `python shared/tests/common/moto_server.py -H 127.0.0.1 -p PORT` \
                 (moto with atomic, cheap transactions; see its header) and point {ENDPOINT_VAR} \
                 at it."
            );
        }
    }

    /// For assertion messages of concurrency tests: what to suspect on a stock moto.
    pub fn isolation_hint(&self) -> &'static str {
        match &self.dynamo {
            Some(d) if !d.atomic_moto => {
                "\n(this is not tests/common/moto_server.py: a stock moto_server serving requests \
                 on parallel threads has no transaction isolation)"
            }
            _ => "",
        }
    }

    pub fn kind(&self) -> &'static str {
        if self.dynamo.is_some() {
            "dynamodb"
        } else {
            "memory"
        }
    }

    /// Drops the test's table (best effort; moto is thrown away anyway).
    pub async fn finish(self) {
        if let Some(d) = self.dynamo {
            let _ = d.client.delete_table().table_name(&d.table).send().await;
        }
    }
}

/// Notes whether responses come from `tests/common/moto_server.py` (it marks them).
#[derive(Debug, Clone, Default)]
struct MotoProbe(Arc<AtomicBool>);

impl Intercept for MotoProbe {
    fn name(&self) -> &'static str {
        "natter-tests::MotoProbe"
    }

    fn read_after_transmit(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let marked = context.response().headers().get("x-natter-moto").is_some();
        self.0.store(marked, Ordering::SeqCst);
        Ok(())
    }
}

fn unique_table(test: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "natter-test-{}-{}-{}-{}",
        test.replace('_', "-"),
        std::process::id(),
        nanos % 1_000_000_000,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

// ---- Builders ------------------------------------------------------------------------------

pub fn text(s: &str) -> Content {
    serde_json::from_value(serde_json::json!([{ "type": "text", "children": [s] }]))
        .expect("a text block is valid content")
}

pub fn custom(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The id of the `i`th message: the same for the same `i`, and ids sort by `i`.
pub fn mid(i: i64) -> String {
    natter::ids::message_id_floor(T0 + i)
}

pub fn message(cid: &str, id: &str, sender: Option<&str>, expires_at: i64) -> MessageRecord {
    MessageRecord {
        conversation_id: cid.to_string(),
        id: id.to_string(),
        kind: if sender.is_some() {
            MessageType::UserMessage
        } else {
            MessageType::SystemMessage
        },
        sender_id: sender.map(str::to_string),
        content: text(&format!("message {id}")),
        custom: custom(&[("k", "v")]),
        created_at: T0,
        edited_at: None,
        origin: Origin::Web,
        referenced_message_id: None,
        referenced_sender_id: None,
        reactions: Vec::new(),
        expires_at,
    }
}

pub fn guard(user: &str) -> ReactionGuard {
    ReactionGuard {
        participant: user.to_string(),
        write_access: true,
        ..ReactionGuard::default()
    }
}

/// Creates a conversation with these participants (all at `expires_at`).
pub async fn conversation(
    store: &dyn Store,
    cid: &str,
    participants: &[(&str, Access)],
    expires_at: i64,
) {
    let ps: Vec<(String, Access)> = participants
        .iter()
        .map(|(u, a)| (u.to_string(), *a))
        .collect();
    store
        .upsert_conversation(
            cid,
            &ConversationPatch::default(),
            &ps,
            false,
            T0,
            expires_at,
        )
        .await
        .expect("upsert conversation");
}

// ---- Item size -----------------------------------------------------------------------------

/// An item's size by DynamoDB's rules: attribute names plus values (strings: UTF-8 bytes;
/// numbers: about one byte per two significant digits plus one; maps and lists: 3 bytes plus
/// one per element plus the elements).
pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => {
            let digits = n
                .trim_start_matches('-')
                .replace('.', "")
                .trim_start_matches('0')
                .trim_end_matches('0')
                .len()
                .max(1);
            digits.div_ceil(2) + 1
        }
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, v)| k.len() + value_size(v) + 1)
                .sum::<usize>()
        }
        AttributeValue::L(l) => 3 + l.iter().map(|v| value_size(v) + 1).sum::<usize>(),
        AttributeValue::Ss(ss) => ss.iter().map(String::len).sum(),
        AttributeValue::Ns(ns) => ns.len() * 21,
        AttributeValue::Bs(bs) => bs.iter().map(|b| b.as_ref().len()).sum(),
        _ => 0,
    }
}
