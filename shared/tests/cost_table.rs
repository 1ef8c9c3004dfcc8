//! `docs/cost.md`'s table, recomputed from the requests the operations really send.
//!
//! The test runs the three operations the table prices (a send to a five-person conversation
//! with two subscribers online, a reaction, a page of 30 messages) through the functions' own
//! services on DynamoDB (moto), with the SDK interceptor counting every DynamoDB request, and
//! runs the fan-out over the changes they make (its DynamoDB requests counted the same way, its
//! `@connections` posts by a counting pusher). It turns the counts into money with the prices
//! below and fails when the table in `docs/cost.md` differs; `NATTER_WRITE_COST_DOC=1` writes
//! it instead.
//!
//! What the counts cannot say is stated as an assumption next to its number: item sizes (and so
//! capacity units per item), items per request, and Lambda durations.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use natter::auth::Identity;
use natter::changes::Change;
use natter::clock::{Clock, ManualClock, SystemClock};
use natter::config::Config;
use natter::domain::{AddReaction, ListMessages, PutConversation, SendMessage};
use natter::fanout::{FanOut, PushOutcome, Pusher};
use natter::ports::ItemReader;
use natter::services::Services;
use natter::store::ItemKey;
use natter::ws::{WsConnect, WsService, WsSubscribe};
use serde_json::{json, Value};

// ---- Prices: AWS us-east-1, on-demand, published list prices -------------------------------
//
// As published on aws.amazon.com/{lambda,dynamodb,api-gateway}/pricing for US East (N.
// Virginia), as of 2025-11 (the DynamoDB on-demand prices are those of the 2024-11-01 cut);
// not re-read live from this machine. Free tiers are left out.

/// The date the prices below are from.
const PRICES_AS_OF: &str = "2025-11";
/// Lambda: per request (invocation).
const LAMBDA_PER_REQUEST: f64 = 0.20 / 1e6;
/// Lambda on arm64 (`template.yaml`'s `Architectures`): per GB-second, first 7.5 billion a month.
const LAMBDA_PER_GB_SECOND_ARM: f64 = 0.000_013_333_4;
/// DynamoDB on-demand, Standard table class: per write request unit (1 KB; a transactional
/// write takes 2 per KB).
const DYNAMODB_PER_WRU: f64 = 0.625 / 1e6;
/// DynamoDB on-demand: per read request unit (a strongly consistent read of 4 KB; natter reads
/// strongly consistent; a transactional read takes 2).
const DYNAMODB_PER_RRU: f64 = 0.125 / 1e6;
/// DynamoDB Streams: per 100,000 `GetRecords` read request units, except that reads by a
/// Lambda event source mapping (natter's only reader) are free: so 0 in the table.
const STREAMS_PER_READ_UNIT_BY_LAMBDA: f64 = 0.0;
/// API Gateway HTTP API: per request of up to 512 KB, first 300 million a month.
const HTTP_API_PER_REQUEST: f64 = 1.00 / 1e6;
/// API Gateway WebSocket API: per message of up to 32 KB (either way; `@connections` posts
/// count), first 1 billion a month.
const WS_PER_MESSAGE: f64 = 1.00 / 1e6;
/// API Gateway WebSocket API: per connection minute.
const WS_PER_CONNECTION_MINUTE: f64 = 0.25 / 1e6;

// ---- Assumptions the counts cannot measure --------------------------------------------------

/// Every item natter writes here is at most 1 KB (a short text message is about 0.6 KB, a
/// participant, reaction or activity item well under): 1 WRU per plain write, 2 per action of a
/// transaction (condition checks included, as DynamoDB bills them).
const WRU_PER_ITEM: f64 = 1.0;
/// Every item read is at most 4 KB: 1 RRU per item of a `BatchGetItem`; a `Query` of a page of
/// 30 short messages (about 18 KB) reads 5 RRU, and of a handful of small items 1.
const PAGE_QUERY_RRU: f64 = 5.0;
const SMALL_QUERY_RRU: f64 = 1.0;
/// A route function's memory (`template.yaml`'s `Globals.Function.MemorySize`) and the
/// fan-out's (`FanOutMemorySize`, whose default `limits_parity.rs` holds to the config's), in GB.
fn memory_gb() -> (f64, f64) {
    let template = common::repo::load_template();
    let function_mb = template["Globals"]["Function"]["MemorySize"]
        .as_f64()
        .expect("Globals.Function.MemorySize");
    let fan_out_mb = f64::from(natter::config::fanout::DEFAULT_MEMORY_MB);
    (function_mb / 1024.0, fan_out_mb / 1024.0)
}
/// Billed milliseconds per sequential DynamoDB round trip of a function (network and
/// DynamoDB's own latency), and of compute per invocation.
const MS_PER_ROUND_TRIP: f64 = 8.0;
const MS_COMPUTE: f64 = 2.0;
/// Billed milliseconds of one round of `@connections` posts (AWS's network round trip).
const MS_PER_POST_ROUND: f64 = 20.0;
/// An average WebSocket frame of a push (a message snapshot) fits one 32 KB message unit.
const WS_UNITS_PER_POST: f64 = 1.0;

/// A pusher that counts the posts and delivers them.
#[derive(Default)]
struct CountingPusher(AtomicUsize);

#[async_trait]
impl Pusher for CountingPusher {
    async fn push(&self, _connection_id: &str, _frame: &str) -> PushOutcome {
        self.0.fetch_add(1, Ordering::SeqCst);
        PushOutcome::Delivered
    }
}

fn ws_event(
    route_key: &str,
    connection: &str,
    user: &str,
    frame: Option<Value>,
) -> ApiGatewayWebsocketProxyRequest {
    let event = json!({
        "requestContext": {
            "routeKey": route_key,
            "eventType": if route_key == "$connect" { "CONNECT" } else { "MESSAGE" },
            "connectionId": connection,
            "connectedAt": SystemClock.now_ms(),
            "requestTimeEpoch": SystemClock.now_ms(),
            "identity": {"sourceIp": "127.0.0.1"},
            "requestId": "r",
            "apiId": "local",
            "stage": "local",
            "authorizer": {"userId": user},
        },
        "body": frame.map(|f| f.to_string()),
        "isBase64Encoded": false,
    });
    serde_json::from_value(event).expect("a WebSocket event")
}

fn user(id: &str) -> Identity {
    Identity::User {
        user_id: id.to_string(),
        role: None,
    }
}

/// What one operation cost, counted.
#[derive(Debug, Default, Clone)]
struct Measured {
    /// DynamoDB requests by name, from the function serving the request.
    function_requests: Vec<String>,
    /// DynamoDB requests of the fan-out over the change(s) the operation made.
    fanout_requests: Vec<String>,
    /// `@connections` posts of the fan-out.
    posts: usize,
}

fn count(requests: &[String]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in requests {
        *out.entry(r.clone()).or_insert(0) += 1;
    }
    out
}

async fn measure() -> BTreeMap<&'static str, Measured> {
    let harness = common::Harness::dynamodb("cost-table").await;
    let d = harness.dynamo.as_ref().expect("DynamoDB");
    let clock = ManualClock::new(SystemClock.now_ms());
    let services = Services::dynamodb(
        d.client.clone(),
        &d.table,
        Arc::new(clock.clone()),
        Config::default(),
    );
    let people = ["alice", "bob", "carol", "dave", "erin"];
    services
        .build::<PutConversation>()
        .run(
            &Identity::Secret,
            "c",
            serde_json::from_value(json!({ "participants": people })).unwrap(),
        )
        .await
        .unwrap();
    // Two subscribers online: alice and bob, each with one connection subscribed to c.
    let connect = WsService::new::<WsConnect>(&services);
    let subscribe = WsService::new::<WsSubscribe>(&services);
    for (conn, who) in [("A", "alice"), ("B", "bob")] {
        let r = connect.handle(ws_event("$connect", conn, who, None)).await;
        assert_eq!(r.status_code, 200);
        let frame = json!({"action": "subscribe", "subscriptionId": "s", "conversationId": "c"});
        subscribe
            .handle(ws_event("subscribe", conn, who, Some(frame)))
            .await;
    }
    // 30 messages for the page (each a short text from alice).
    let send = services.build::<SendMessage>();
    for i in 0..30 {
        clock.advance_ms(1);
        send.run(
            &user("alice"),
            "c",
            serde_json::from_value(json!({ "text": format!("message {i}") })).unwrap(),
        )
        .await
        .unwrap();
    }
    let pusher = Arc::new(CountingPusher::default());
    let fan_out = FanOut::new(&services, pusher.clone(), 32);
    let reader = services.build::<Arc<dyn ItemReader>>();
    let record = |id: String| {
        let reader = reader.clone();
        let now = clock.now_ms();
        async move {
            let key = ItemKey::Message {
                conversation_id: "c".into(),
                message_id: id,
            };
            reader
                .get_items(&[key], now)
                .await
                .unwrap()
                .messages
                .into_values()
                .next()
                .expect("the message")
        }
    };
    let mut out = BTreeMap::new();

    // A send, and the fan-out of its stream record.
    clock.advance_ms(1);
    d.counter.take();
    let sent = send
        .run(
            &user("alice"),
            "c",
            serde_json::from_value(json!({ "text": "lunch?" })).unwrap(),
        )
        .await
        .unwrap();
    let function_requests = d.counter.take();
    let message = record(sent.id.clone()).await;
    d.counter.take();
    pusher.0.store(0, Ordering::SeqCst);
    fan_out
        .apply(&Change::MessageCreated(message))
        .await
        .unwrap();
    out.insert(
        "send",
        Measured {
            function_requests,
            fanout_requests: d.counter.take(),
            posts: pusher.0.swap(0, Ordering::SeqCst),
        },
    );

    // A reaction to it, and the fan-out of the message's counter change.
    clock.advance_ms(1);
    d.counter.take();
    services
        .build::<AddReaction>()
        .run(&user("bob"), "c", &sent.id, "👍")
        .await
        .unwrap();
    let function_requests = d.counter.take();
    let message = record(sent.id.clone()).await;
    d.counter.take();
    fan_out
        .apply(&Change::ReactionAdded {
            message,
            emoji: "👍".into(),
            user_id: "bob".into(),
            count: 1,
        })
        .await
        .unwrap();
    out.insert(
        "reaction",
        Measured {
            function_requests,
            fanout_requests: d.counter.take(),
            posts: pusher.0.swap(0, Ordering::SeqCst),
        },
    );

    // A page of 30 (reads change nothing: no fan-out).
    d.counter.take();
    let page = services
        .build::<ListMessages>()
        .run(&user("carol"), "c", Some(30), None)
        .await
        .unwrap();
    assert_eq!(page.data.len(), 30);
    out.insert(
        "page",
        Measured {
            function_requests: d.counter.take(),
            ..Measured::default()
        },
    );
    harness.finish().await;
    out
}

/// Capacity units of one operation's requests, by the assumptions above: (RRU, WRU).
fn capacity(op: &str, requests: &BTreeMap<String, usize>, fanout: bool) -> (f64, f64) {
    let mut rru = 0.0;
    let mut wru = 0.0;
    for (name, n) in requests {
        let n = *n as f64;
        match (op, fanout, name.as_str()) {
            // send: the sender's participant item and user record (2 items); the message put
            // and the writer's participant check, transactional (2 actions × 2).
            ("send", false, "BatchGetItem") => rru += n * 2.0,
            ("send", false, "TransactWriteItems") => wru += n * 2.0 * 2.0 * WRU_PER_ITEM,
            // reaction: participant check, the user's reaction item, the message's counter.
            ("reaction", false, "TransactWriteItems") => wru += n * 3.0 * 2.0 * WRU_PER_ITEM,
            // page: access (participant) beside the page query, then senders and references.
            ("page", false, "BatchGetItem") => rru += n * 2.0,
            // The page's query, then the viewer's reactions on it (small items).
            ("page", false, "Query") => rru += PAGE_QUERY_RRU + (n - 1.0) * SMALL_QUERY_RRU,
            // fan-out: subscription and participant queries of small items; batch reads of a
            // few small items (count 2); activity writes: the item and its moved gsi1 entry
            // (a delete and a put in the index).
            (_, true, "Query") => rru += n * SMALL_QUERY_RRU,
            (_, true, "BatchGetItem") => rru += n * 2.0,
            (_, true, "GetItem") => rru += n,
            (_, true, "UpdateItem") => wru += n * 3.0 * WRU_PER_ITEM,
            (_, true, "PutItem" | "DeleteItem") => wru += n * WRU_PER_ITEM,
            // Anything else is a request this model does not know: the test fails on it.
            _ => panic!("no capacity assumption for {op} {name} (fan-out: {fanout})"),
        }
    }
    (rru, wru)
}

/// Lambda round trips of each function (sequential waits on storage), as
/// `shared/tests/domain_costs.rs` measures them for the HTTP operations; the fan-out's are its
/// query of the subscriptions, its reads, then the activity writes and list lookups side by side.
fn round_trips(op: &str, fanout: bool) -> f64 {
    match (op, fanout) {
        ("send", false) => 2.0,
        ("reaction", false) => 1.0,
        ("page", false) => 2.0,
        (_, true) => 3.0,
        _ => 0.0,
    }
}

struct Row {
    what: &'static str,
    unit: String,
    count: f64,
    usd: f64,
}

fn rows(op: &str, m: &Measured) -> Vec<Row> {
    let mut rows = Vec::new();
    let function = count(&m.function_requests);
    let fanout = count(&m.fanout_requests);
    let fanout_runs = if m.fanout_requests.is_empty() && m.posts == 0 {
        0.0
    } else {
        1.0
    };
    // Lambda: the route's function (the authorizer's verdict cached), and the fan-out.
    let invocations = 1.0 + fanout_runs;
    rows.push(Row {
        what: "Lambda requests",
        unit: format!(
            "{invocations} (function{})",
            if fanout_runs > 0.0 { " + fan-out" } else { "" }
        ),
        count: invocations,
        usd: invocations * LAMBDA_PER_REQUEST,
    });
    let ms = |fan: bool| round_trips(op, fan) * MS_PER_ROUND_TRIP + MS_COMPUTE;
    let post_rounds = if m.posts > 0 { 1.0 } else { 0.0 };
    let (function_gb, fan_out_gb) = memory_gb();
    let function_ms = ms(false);
    let fan_out_ms = fanout_runs * (ms(true) + post_rounds * MS_PER_POST_ROUND);
    let gb_s = (function_ms * function_gb + fan_out_ms * fan_out_gb) / 1000.0;
    rows.push(Row {
        what: "Lambda GB-seconds",
        unit: if fan_out_ms > 0.0 {
            format!(
                "{function_ms} ms × {function_gb} GB + {fan_out_ms} ms × {fan_out_gb} GB (fan-out)"
            )
        } else {
            format!("{function_ms} ms × {function_gb} GB")
        },
        count: gb_s,
        usd: gb_s * LAMBDA_PER_GB_SECOND_ARM,
    });
    let (r1, w1) = capacity(op, &function, false);
    let (r2, w2) = capacity(op, &fanout, true);
    let describe = |map: &BTreeMap<String, usize>| {
        map.iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    rows.push(Row {
        what: "DynamoDB reads (RRU)",
        unit: if fanout.is_empty() {
            format!("requests: {}", describe(&function))
        } else {
            format!(
                "requests: {} (function); {} (fan-out)",
                describe(&function),
                describe(&fanout)
            )
        },
        count: r1 + r2,
        usd: (r1 + r2) * DYNAMODB_PER_RRU,
    });
    rows.push(Row {
        what: "DynamoDB writes (WRU)",
        unit: "as above".into(),
        count: w1 + w2,
        usd: (w1 + w2) * DYNAMODB_PER_WRU,
    });
    rows.push(Row {
        what: "DynamoDB Streams reads",
        unit: "by the Lambda trigger: free".into(),
        count: fanout_runs,
        usd: fanout_runs * STREAMS_PER_READ_UNIT_BY_LAMBDA,
    });
    rows.push(Row {
        what: "API Gateway HTTP requests",
        unit: "1".into(),
        count: 1.0,
        usd: HTTP_API_PER_REQUEST,
    });
    let ws_units = m.posts as f64 * WS_UNITS_PER_POST;
    rows.push(Row {
        what: "WebSocket messages",
        unit: format!("{} `@connections` posts", m.posts),
        count: ws_units,
        usd: ws_units * WS_PER_MESSAGE,
    });
    rows
}

fn money(usd: f64) -> String {
    format!("${usd:.4}")
}

/// A count per million: whole numbers with thousands separators, else one decimal.
fn units(n: f64) -> String {
    if n.fract() != 0.0 {
        return format!("{n:.1}");
    }
    let digits = format!("{}", n as u64);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn render(measured: &BTreeMap<&'static str, Measured>) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "Prices: us-east-1, as of {PRICES_AS_OF}. Per million operations:\n\n"
    ));
    let titles = [
        (
            "send",
            "One million sends to a five-person conversation, two subscribers online",
        ),
        (
            "reaction",
            "One million reactions (same conversation and subscribers)",
        ),
        (
            "page",
            "One million page reads (30 messages with senders and reactions)",
        ),
    ];
    let mut totals = Vec::new();
    for (op, title) in titles {
        let m = &measured[op];
        out.push_str(&format!("### {title}\n\n"));
        out.push_str("| item | per operation | units per million | USD per million |\n");
        out.push_str("|---|---|---:|---:|\n");
        let mut total = 0.0;
        for row in rows(op, m) {
            total += row.usd * 1e6;
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                row.what,
                row.unit,
                units((row.count * 1e6 * 10.0).round() / 10.0),
                money(row.usd * 1e6)
            ));
        }
        out.push_str(&format!("| **total** | | | **{}** |\n\n", money(total)));
        totals.push((op, total));
    }
    out.push_str("| per million | USD |\n|---|---:|\n");
    for (op, total) in totals {
        out.push_str(&format!("| {op} | {} |\n", money(total)));
    }
    let month_minutes = 30.0 * 24.0 * 60.0;
    out.push_str(&format!(
        "\nConnection minutes are paid by the time connected, not per operation: one client \
         online for a 30-day month is {month_minutes} minutes, {} (the two subscribers: {}).\n",
        money(month_minutes * WS_PER_CONNECTION_MINUTE),
        money(2.0 * month_minutes * WS_PER_CONNECTION_MINUTE),
    ));
    out
}

const BEGIN: &str = "<!-- cost-table: generated by shared/tests/cost_table.rs -->\n";
const END: &str = "<!-- /cost-table -->";

#[tokio::test]
async fn the_cost_table_in_docs_matches_the_measured_requests() {
    let measured = measure().await;
    for (op, m) in &measured {
        eprintln!("{op}: {m:?}");
    }
    // What the counts must show for the table to mean what it says.
    let send = &measured["send"];
    assert_eq!(
        count(&send.function_requests),
        count(&["BatchGetItem".into(), "TransactWriteItems".into()])
    );
    assert_eq!(send.posts, 2, "two subscribers online");
    assert_eq!(
        count(&send.fanout_requests)["UpdateItem"],
        5,
        "one activity write per participant"
    );
    let table = render(&measured);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/cost.md");
    let doc = std::fs::read_to_string(&path).expect("docs/cost.md");
    let start = doc.find(BEGIN).expect("docs/cost.md has the begin marker") + BEGIN.len();
    let end = doc[start..]
        .find(END)
        .expect("docs/cost.md has the end marker")
        + start;
    if std::env::var_os("NATTER_WRITE_COST_DOC").is_some() {
        let updated = format!("{}{}{}", &doc[..start], table, &doc[end..]);
        std::fs::write(&path, updated).expect("write docs/cost.md");
        return;
    }
    assert_eq!(
        &doc[start..end],
        table,
        "docs/cost.md is stale: run `NATTER_WRITE_COST_DOC=1 scripts/moto cargo test -p \
         natter-shared --test cost_table` and commit it"
    );
}
