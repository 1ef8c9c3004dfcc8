//! IAM parity: what each function may do on the table (`template.yaml`) is exactly what its
//! operation's ports can do (`natter::ports`), and what it really does on DynamoDB is within that.
//!
//! Two checks, because moto does not enforce IAM:
//! - **Declared**: for every function, the DynamoDB actions its policy grants (on the table and on
//!   its indexes) equal the union of the actions of the ports its operation holds. Removing any
//!   action from a policy, or giving an operation a port it does not have a grant for, fails.
//! - **Measured**: every operation runs against DynamoDB (moto) through its own SDK client, whose
//!   interceptor records each request as the IAM actions it needs (each part of a
//!   `TransactWriteItems` as its own action, a `Query` with an index name as an index query).
//!   Every recorded action must be granted to that function, and every action a port declares
//!   must have been performed by some function that holds the port, so the catalogue claims
//!   nothing that the code does not do.
//!
//! And for the secrets (`natter::secrets`): exactly the authorizers hold
//! `secretsmanager:GetSecretValue`, on the two secrets only, and no other function holds any
//! secretsmanager action; the secrets are generated and reach the authorizers as ARNs. That the
//! loader sends nothing else is measured against moto in `functions/tests/secrets.rs`.

mod common;
use common::repo::load_template;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region};
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::operation::get_item::GetItemInput;
use aws_sdk_dynamodb::operation::query::QueryInput;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
use aws_sdk_dynamodb::Client;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use natter::auth::Identity;
use natter::changes::Change;
use natter::clock::{Clock, ManualClock, SystemClock};
use natter::config::Config;
use natter::domain::*;
use natter::fanout::{FanOut, PushOutcome, Pusher};
use natter::http::HttpOperation;
use natter::ports::{Action, ItemReader, Port};
use natter::routes::{HTTP_ROUTES, WS_ROUTES};
use natter::services::Services;
use natter::store::dynamo::DynamoStore;
use natter::store::ItemKey;
use natter::typing::{Expiry, TypingExpiry, TypingTimer};
use natter::ws::{
    WsConnect, WsDefault, WsDisconnect, WsHello, WsInboxMore, WsLoadMore, WsOperation, WsPing,
    WsService, WsSubscribe, WsSubscribeConversations, WsTyping, WsUnsubscribe,
};
use serde_json::{json, Value};

// ---- What the template grants ----------------------------------------------------------------

/// Every function of the template, by the name of its binary, with its resource.
fn functions(template: &serde_yaml::Value) -> Vec<(String, &serde_yaml::Value)> {
    let resources = template["Resources"].as_mapping().expect("Resources");
    resources
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|r| {
            let binary = r["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .expect("every function names its binary");
            (binary.to_string(), r)
        })
        .collect()
}

/// A function's policies: inline documents, SAM policy templates or the names of policies.
fn policies(function: &serde_yaml::Value) -> impl Iterator<Item = &serde_yaml::Value> {
    function["Properties"]["Policies"]
        .as_sequence()
        .into_iter()
        .flatten()
}

/// A policy statement's resource, as text (`!GetAtt Table.Arn`, `!Sub "${Table.Arn}/index/*"`).
fn resource_text(value: &serde_yaml::Value) -> String {
    match value {
        serde_yaml::Value::Tagged(tagged) => resource_text(&tagged.value),
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Sequence(items) => items.iter().map(resource_text).collect(),
        other => format!("{other:?}"),
    }
}

fn action_named(name: &str, on_index: bool) -> Action {
    let found = [
        Action::GetItem,
        Action::BatchGetItem,
        Action::Query,
        Action::PutItem,
        Action::UpdateItem,
        Action::DeleteItem,
        Action::ConditionCheckItem,
        Action::BatchWriteItem,
    ]
    .into_iter()
    .find(|a| a.iam_name() == name)
    .unwrap_or_else(|| panic!("template.yaml grants {name}, which no port performs"));
    match (found, on_index) {
        (Action::Query, true) => Action::QueryIndex,
        (action, false) => action,
        (action, true) => panic!("template.yaml grants {action:?} on the indexes"),
    }
}

/// Binary name → the DynamoDB actions its policy grants.
fn granted() -> BTreeMap<String, BTreeSet<Action>> {
    let template = load_template();
    let mut out = BTreeMap::new();
    for (binary, resource) in functions(&template) {
        let mut actions = BTreeSet::new();
        for policy in policies(resource) {
            for statement in policy["Statement"].as_sequence().into_iter().flatten() {
                let resource = resource_text(&statement["Resource"]);
                if !resource.contains("Table.Arn") {
                    continue;
                }
                let on_index = resource.contains("/index/");
                for action in statement["Action"].as_sequence().into_iter().flatten() {
                    let name = action.as_str().expect("actions are strings");
                    if name.starts_with("dynamodb:") {
                        actions.insert(action_named(name, on_index));
                    }
                }
            }
        }
        out.insert(binary, actions);
    }
    out
}

/// Binary name → the ports of its operation (authorizers hold none).
fn ports_by_function() -> BTreeMap<String, Vec<Port>> {
    let mut out: BTreeMap<String, Vec<Port>> = BTreeMap::new();
    for route in HTTP_ROUTES {
        out.insert(route.function.to_string(), (route.ports)());
    }
    for route in WS_ROUTES {
        out.insert(route.function.to_string(), (route.ports)());
    }
    out.insert("fan-out".to_string(), FanOut::ports());
    out.insert(
        "typing-expiry".to_string(),
        natter::services::ports_of::<TypingExpiry>(),
    );
    out.insert("authorizer".to_string(), Vec::new());
    out.insert("ws-authorizer".to_string(), Vec::new());
    out
}

fn declared(ports: &[Port]) -> BTreeSet<Action> {
    ports
        .iter()
        .flat_map(|p| p.actions().iter().copied())
        .collect()
}

#[test]
fn every_policy_grants_exactly_what_its_ports_can_do() {
    let granted = granted();
    let ports = ports_by_function();
    assert_eq!(
        granted.keys().collect::<Vec<_>>(),
        ports.keys().collect::<Vec<_>>(),
        "template.yaml's functions and the operations differ"
    );
    let mut wrong = Vec::new();
    for (function, ports) in &ports {
        let want = declared(ports);
        let have = &granted[function];
        if &want != have {
            wrong.push(format!(
                "{function}: ports {ports:?} need {want:?}, template.yaml grants {have:?}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "IAM policies differ:\n{}",
        wrong.join("\n")
    );
}

/// The functions that use the table also hold `WarmUpPolicy`, and it allows one thing: `GetItem`
/// on the warm-up partition, where nothing is stored. So the warm-up read every such function
/// sends at init (`DynamoStore::warm_up`) is granted, and grants nothing else.
#[test]
fn the_table_functions_may_read_the_warm_up_key_and_nothing_more() {
    let template = load_template();
    let policy = &template["Resources"]["WarmUpPolicy"];
    assert_eq!(policy["Type"].as_str(), Some("AWS::IAM::ManagedPolicy"));
    let statements = policy["Properties"]["PolicyDocument"]["Statement"]
        .as_sequence()
        .expect("WarmUpPolicy has statements");
    assert_eq!(statements.len(), 1, "WarmUpPolicy has one statement");
    let statement = &statements[0];
    assert_eq!(statement["Effect"].as_str(), Some("Allow"));
    let actions: Vec<&str> = statement["Action"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str())
        .collect();
    assert_eq!(actions, [Action::GetItem.iam_name()]);
    assert_eq!(resource_text(&statement["Resource"]), "Table.Arn");
    let leading_keys: Vec<&str> = statement["Condition"]["ForAllValues:StringEquals"]
        ["dynamodb:LeadingKeys"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|k| k.as_str())
        .collect();
    assert_eq!(leading_keys, [natter::store::schema::WARM_UP_PK]);
    assert_eq!(
        statement.as_mapping().map(|m| m.len()),
        Some(4),
        "nothing but Effect, Action, Resource and Condition"
    );

    let ports = ports_by_function();
    let mut wrong = Vec::new();
    for (binary, resource) in functions(&template) {
        let binary = binary.as_str();
        let holds = policies(resource).any(|p| resource_text(p) == "WarmUpPolicy");
        let uses_table = natter::ports::uses_table(&ports[binary]);
        if holds != uses_table {
            wrong.push(format!(
                "{binary}: uses the table {uses_table}, holds WarmUpPolicy {holds}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The warm-up sends one `GetItem`, of the warm-up key, and finds nothing there.
#[tokio::test]
async fn the_warm_up_reads_the_warm_up_key_once() {
    let bench = Bench::new().await;
    let keys = Arc::new(Mutex::new(Vec::new()));
    let client = Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&bench.sdk)
            .endpoint_url(&bench.endpoint)
            .interceptor(Tag {
                function: "warm-up".into(),
                recorder: bench.recorder.0.clone(),
            })
            .interceptor(GetItemKeys(keys.clone()))
            .build(),
    );
    DynamoStore::new(client, &bench.table)
        .warm_up()
        .await
        .expect("the warm-up read succeeds");
    assert_eq!(
        bench.recorded().get("warm-up"),
        Some(&BTreeSet::from([Action::GetItem]))
    );
    let warm_up = natter::store::schema::WARM_UP_PK.to_string();
    assert_eq!(
        *keys.lock().expect("keys"),
        vec![(warm_up.clone(), warm_up)],
        "one GetItem, of the warm-up key"
    );
}

/// Records the key (`pk`, `sk`) of every `GetItem`.
#[derive(Debug)]
struct GetItemKeys(Arc<Mutex<Vec<(String, String)>>>);

impl Intercept for GetItemKeys {
    fn name(&self) -> &'static str {
        "iam_parity::GetItemKeys"
    }

    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(input) = context.input().downcast_ref::<GetItemInput>() {
            let text = |name: &str| {
                input
                    .key()
                    .and_then(|k| k.get(name))
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default()
            };
            let key = (
                text(natter::store::schema::PK),
                text(natter::store::schema::SK),
            );
            if let Ok(mut keys) = self.0.lock() {
                keys.push(key);
            }
        }
        Ok(())
    }
}

// ---- What the functions really do ------------------------------------------------------------

/// Every function's recorded actions.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<BTreeMap<String, BTreeSet<Action>>>>);

/// The interceptor of one function's client: records each request as IAM actions.
#[derive(Debug, Clone)]
struct Tag {
    function: String,
    recorder: Arc<Mutex<BTreeMap<String, BTreeSet<Action>>>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recorder")
    }
}

impl Intercept for Tag {
    fn name(&self) -> &'static str {
        "iam_parity::Tag"
    }

    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg
            .load::<Metadata>()
            .map(|m| m.name().to_string())
            .unwrap_or_default();
        let input = context.input();
        let mut actions = Vec::new();
        match operation.as_str() {
            "TransactWriteItems" => {
                let parts = input
                    .downcast_ref::<TransactWriteItemsInput>()
                    .map(|i| i.transact_items().to_vec())
                    .unwrap_or_default();
                for part in parts {
                    if part.put().is_some() {
                        actions.push(Action::PutItem);
                    }
                    if part.update().is_some() {
                        actions.push(Action::UpdateItem);
                    }
                    if part.delete().is_some() {
                        actions.push(Action::DeleteItem);
                    }
                    if part.condition_check().is_some() {
                        actions.push(Action::ConditionCheckItem);
                    }
                }
            }
            "Query" => {
                let on_index = input
                    .downcast_ref::<QueryInput>()
                    .is_some_and(|q| q.index_name().is_some());
                actions.push(if on_index {
                    Action::QueryIndex
                } else {
                    Action::Query
                });
            }
            "GetItem" => actions.push(Action::GetItem),
            "BatchGetItem" => actions.push(Action::BatchGetItem),
            "PutItem" => actions.push(Action::PutItem),
            "UpdateItem" => actions.push(Action::UpdateItem),
            "DeleteItem" => actions.push(Action::DeleteItem),
            "BatchWriteItem" => actions.push(Action::BatchWriteItem),
            other => panic!("{} sent {other}, which no port may send", self.function),
        }
        if let Ok(mut recorded) = self.recorder.lock() {
            recorded
                .entry(self.function.clone())
                .or_default()
                .extend(actions);
        }
        Ok(())
    }
}

/// One table, one clock, and a client per function that records what that function sends.
struct Bench {
    sdk: aws_config::SdkConfig,
    endpoint: String,
    table: String,
    clock: ManualClock,
    config: Config,
    recorder: Recorder,
    /// Unrecorded: for setting things up and looking at them.
    setup: Services,
}

impl Bench {
    async fn new() -> Self {
        let endpoint = std::env::var(common::ENDPOINT_VAR).unwrap_or_else(|_| {
            panic!(
                "{} is not set: run scripts/test, which starts moto (this test never skips)",
                common::ENDPOINT_VAR
            )
        });
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "iam-parity"))
            .load()
            .await;
        let table = format!("iam-parity-{}", SystemClock.now_ms());
        let plain = Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&sdk)
                .endpoint_url(&endpoint)
                .build(),
        );
        DynamoStore::new(plain.clone(), &table)
            .create_table_if_missing()
            .await
            .expect("the table is created");
        // Short lives, so that the expiry paths (rewriting an expired record) can be reached by
        // moving the clock.
        let config = Config {
            retention_secs: 600,
            record_retention_secs: 1200,
            ..Config::default()
        };
        let clock = ManualClock::new(SystemClock.now_ms());
        let setup = Services::dynamodb(plain, &table, Arc::new(clock.clone()), config.clone());
        Bench {
            sdk,
            endpoint,
            table,
            clock,
            config,
            recorder: Recorder::default(),
            setup,
        }
    }

    /// The services as function `function` would build them, with its requests recorded.
    fn services(&self, function: &str) -> Services {
        let tag = Tag {
            function: function.to_string(),
            recorder: self.recorder.0.clone(),
        };
        let client = Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&self.sdk)
                .endpoint_url(&self.endpoint)
                .interceptor(tag)
                .build(),
        );
        Services::dynamodb(
            client,
            &self.table,
            Arc::new(self.clock.clone()),
            self.config.clone(),
        )
    }

    /// HTTP operation `O`, built as its function builds it.
    fn http<O: HttpOperation>(&self) -> O {
        self.services(O::ROUTE.function).build()
    }

    /// WebSocket route operation `O`, built as its function builds it.
    fn ws<O: WsOperation>(&self) -> WsService {
        WsService::new::<O>(&self.services(O::ROUTE.function))
    }

    fn recorded(&self) -> BTreeMap<String, BTreeSet<Action>> {
        self.recorder.0.lock().expect("recorder").clone()
    }
}

fn user(id: &str) -> Identity {
    Identity::User {
        user_id: id.to_string(),
        role: None,
    }
}

fn body<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("a valid body")
}

/// A WebSocket API event for a route, as API Gateway sends it.
fn ws_event(
    route_key: &str,
    connection: &str,
    user: &str,
    frame: Option<Value>,
) -> ApiGatewayWebsocketProxyRequest {
    let event = json!({
        "requestContext": {
            "routeKey": route_key,
            "eventType": "MESSAGE",
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

fn reply(response: &ApiGatewayProxyResponse) -> Value {
    let text = natter::ws::reply_body(response).unwrap_or_default();
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Keeps the expiry checks it is asked to schedule.
#[derive(Default)]
struct Checks(Mutex<Vec<Expiry>>);

#[async_trait]
impl TypingTimer for Checks {
    async fn schedule(&self, expiry: &Expiry, _now_ms: i64) -> natter::error::Result<()> {
        self.0.lock().unwrap().push(expiry.clone());
        Ok(())
    }
}

/// Posts succeed, except to connection `gone`.
struct Pushes;

#[async_trait]
impl Pusher for Pushes {
    async fn push(&self, connection_id: &str, _frame: &str) -> PushOutcome {
        if connection_id == "gone" {
            PushOutcome::Gone
        } else {
            PushOutcome::Delivered
        }
    }
}

#[tokio::test]
async fn every_request_a_function_sends_is_granted_to_it() {
    let b = Bench::new().await;
    let (alice, bob) = (user("alice"), user("bob"));

    // Users, conversations and participants, also over records that have expired.
    b.http::<PutUser>()
        .run(&alice, "alice", body(json!({"name": "Alice"})))
        .await
        .unwrap();
    b.http::<PutUser>()
        .run(
            &Identity::Secret,
            "bob",
            body(json!({"name": "Bob", "role": "moderator"})),
        )
        .await
        .unwrap();
    b.http::<GetUser>().run(&alice, "alice").await.unwrap();
    b.http::<PutConversation>()
        .run(
            &alice,
            "c1",
            body(json!({"subject": "Lunch", "participants": ["bob"]})),
        )
        .await
        .unwrap();
    b.http::<PutConversation>()
        .run(&alice, "c1", body(json!({"subject": "Lunch?"})))
        .await
        .unwrap();
    b.http::<GetConversation>().run(&bob, "c1").await.unwrap();
    b.http::<PutParticipant>()
        .run(&alice, "c1", "carol", ParticipantBody { access: None })
        .await
        .unwrap();
    b.http::<DeleteParticipant>()
        .run(&user("carol"), "c1", "carol")
        .await
        .unwrap();
    b.http::<DeleteParticipant>()
        .run(&alice, "c1", "dave")
        .await
        .unwrap();

    // Messages.
    let send = b.http::<SendMessage>();
    let first = send
        .run(
            &alice,
            "c1",
            body(json!({"text": "hi", "idempotencyKey": "k1"})),
        )
        .await
        .unwrap();
    send.run(
        &alice,
        "c1",
        body(json!({"text": "hi", "idempotencyKey": "k1"})),
    )
    .await
    .unwrap();
    let reply_to = send
        .run(
            &bob,
            "c1",
            body(json!({"text": "yes", "referencedMessageId": first.id})),
        )
        .await
        .unwrap();
    send.run(
        &Identity::Secret,
        "c1",
        body(json!({"type": "SystemMessage", "text": "note"})),
    )
    .await
    .unwrap();
    b.http::<ImportMessages>()
        .run(
            &Identity::Secret,
            "c1",
            body(json!([{"sender": "alice", "text": "old", "createdAt": b.clock.now_ms() - 1000}])),
        )
        .await
        .unwrap();
    b.http::<AddReaction>()
        .run(&bob, "c1", &first.id, "👍")
        .await
        .unwrap();
    b.http::<ListMessages>()
        .run(&alice, "c1", Some(10), None)
        .await
        .unwrap();
    b.http::<GetMessage>()
        .run(&alice, "c1", &reply_to.id)
        .await
        .unwrap();
    b.http::<EditMessage>()
        .run(&alice, "c1", &first.id, body(json!({"text": "hello"})))
        .await
        .unwrap();
    b.http::<RemoveReaction>()
        .run(&bob, "c1", &first.id, "👍")
        .await
        .unwrap();
    // At the limit of distinct reactions, counts that fell to zero are swept.
    let mut limited = b.config.clone();
    limited.limits.max_distinct_reactions = 2;
    let add_limited: AddReaction = b
        .services(AddReaction::ROUTE.function)
        .with_config(limited)
        .build();
    add_limited.run(&bob, "c1", &first.id, "🎉").await.unwrap();
    add_limited.run(&bob, "c1", &first.id, "🚀").await.unwrap();
    // Refused: a Read participant, or a stranger, reacting (the failure path reads the caller).
    assert!(b
        .http::<AddReaction>()
        .run(&user("eve"), "c1", &first.id, "👍")
        .await
        .is_err());
    b.http::<DeleteMessage>()
        .run(&bob, "c1", &reply_to.id)
        .await
        .unwrap();

    // WebSocket routes.
    let connect = b.ws::<WsConnect>();
    for (conn, who) in [("A", "alice"), ("B", "bob"), ("gone", "bob")] {
        let response = connect.handle(ws_event("$connect", conn, who, None)).await;
        assert_eq!(response.status_code, 200, "$connect {conn}");
    }
    let hello = reply(
        &b.ws::<WsHello>()
            .handle(ws_event(
                "hello",
                "A",
                "alice",
                Some(json!({"action": "hello"})),
            ))
            .await,
    );
    assert_eq!(hello["type"], "hello", "{hello}");
    let frame = json!({"action": "inboxMore", "after": "inb_0"});
    let more = reply(
        &b.ws::<WsInboxMore>()
            .handle(ws_event("inboxMore", "A", "alice", Some(frame)))
            .await,
    );
    assert_eq!(more["type"], "inbox", "{more}");
    let pong = reply(
        &b.ws::<WsPing>()
            .handle(ws_event(
                "ping",
                "A",
                "alice",
                Some(json!({"action": "ping"})),
            ))
            .await,
    );
    assert_eq!(pong["type"], "pong", "{pong}");
    let subscribe = b.ws::<WsSubscribe>();
    for (conn, who) in [("A", "alice"), ("B", "bob"), ("gone", "bob")] {
        let frame = json!({"action": "subscribe", "subscriptionId": "s1", "conversationId": "c1", "limit": 1});
        let answer = reply(
            &subscribe
                .handle(ws_event("subscribe", conn, who, Some(frame)))
                .await,
        );
        assert_eq!(answer["state"], "active", "{answer}");
    }
    // A stranger's subscription is stored, then removed when the read is refused.
    let frame = json!({"action": "subscribe", "subscriptionId": "s2", "conversationId": "c1"});
    let answer = reply(
        &subscribe
            .handle(ws_event("subscribe", "A", "eve", Some(frame)))
            .await,
    );
    assert_eq!(answer["state"], "error", "{answer}");
    // The same subscription id moved to another conversation replaces the old one.
    b.setup
        .build::<PutConversation>()
        .run(&alice, "c2", body(json!({})))
        .await
        .unwrap();
    let frame = json!({"action": "subscribe", "subscriptionId": "s1", "conversationId": "c2"});
    subscribe
        .handle(ws_event("subscribe", "A", "alice", Some(frame)))
        .await;
    let frame =
        json!({"action": "subscribe", "subscriptionId": "s1", "conversationId": "c1", "limit": 1});
    subscribe
        .handle(ws_event("subscribe", "A", "alice", Some(frame)))
        .await;
    let frame = json!({"action": "loadMore", "subscriptionId": "s1", "count": 100});
    let answer = reply(
        &b.ws::<WsLoadMore>()
            .handle(ws_event("loadMore", "A", "alice", Some(frame)))
            .await,
    );
    assert_eq!(answer["state"], "active", "{answer}");
    let frame = json!({"action": "subscribeConversations", "subscriptionId": "l1", "limit": 1});
    let answer = reply(
        &b.ws::<WsSubscribeConversations>()
            .handle(ws_event(
                "subscribeConversations",
                "A",
                "alice",
                Some(frame),
            ))
            .await,
    );
    assert_eq!(answer["state"], "active", "{answer}");
    let frame = json!({"action": "loadMore", "subscriptionId": "l1"});
    let answer = reply(
        &b.ws::<WsLoadMore>()
            .handle(ws_event("loadMore", "A", "alice", Some(frame)))
            .await,
    );
    assert_eq!(answer["type"], "conversations", "{answer}");
    let frame = json!({"action": "unsubscribe", "subscriptionId": "l1"});
    let answer = reply(
        &b.ws::<WsUnsubscribe>()
            .handle(ws_event("unsubscribe", "A", "alice", Some(frame)))
            .await,
    );
    assert_eq!(answer["type"], "conversations", "{answer}");
    let frame = json!({"action": "unsubscribe", "subscriptionId": "s1"});
    b.ws::<WsUnsubscribe>()
        .handle(ws_event("unsubscribe", "A", "alice", Some(frame)))
        .await;
    let frame = json!({"action": "nope"});
    let answer = reply(
        &b.ws::<WsDefault>()
            .handle(ws_event("$default", "A", "alice", Some(frame)))
            .await,
    );
    assert_eq!(answer["type"], "error", "{answer}");

    // The inbox, to a user and to a client id.
    let sent = b
        .http::<SendInboxMessage>()
        .run(
            &alice,
            natter::json::from_str::<natter::domain::SendInboxBody>(
                &json!({"message": {"n": 1}, "recipients": ["bob", "A"]}).to_string(),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    b.http::<ListInbox>()
        .run(&bob, Some(1), None)
        .await
        .unwrap();
    b.http::<DeleteInboxMessage>()
        .run(&bob, &sent[0])
        .await
        .unwrap();
    b.http::<ClearInbox>().run(&alice).await.unwrap();

    // The fan-out: a message with reactions (per-viewer reads), an inbox message to a user's
    // connections, and a connection found gone (disconnected).
    let fan_out = FanOut::new(&b.services("fan-out"), Arc::new(Pushes), 4);
    let with_reactions = send
        .run(&bob, "c1", body(json!({"text": "react to me"})))
        .await
        .unwrap();
    b.setup
        .build::<AddReaction>()
        .run(&alice, "c1", &with_reactions.id, "👍")
        .await
        .unwrap();
    let key = ItemKey::Message {
        conversation_id: "c1".into(),
        message_id: with_reactions.id.clone(),
    };
    let items = (b.setup.build::<Arc<dyn ItemReader>>())
        .get_items(&[key], b.clock.now_ms())
        .await
        .unwrap();
    let record = items.messages.into_values().next().expect("the message");
    fan_out
        .apply(&Change::MessageCreated(record))
        .await
        .unwrap();
    let inbox_record = natter::store::inbox::InboxRecord {
        user_id: "bob".into(),
        message_id: "inb_x".into(),
        sender_id: "alice".into(),
        message: natter::json::RawJson::from_value(&json!(1)),
        created_at: b.clock.now_ms(),
        expires_at: b.clock.now_ms() / 1000 + 600,
    };
    fan_out
        .apply(&Change::InboxCreated(inbox_record))
        .await
        .unwrap();

    // Conversation lists and read state; a deleted newest message moves the lists' activity
    // to the one before it, or removes it when none is left (c2 holds one message).
    b.http::<MarkRead>().run(&alice, "c1").await.unwrap();
    b.http::<MarkUnread>().run(&alice, "c1").await.unwrap();
    let listed = b
        .http::<ListConversations>()
        .run(&alice, "alice", Some(1), None)
        .await
        .unwrap();
    assert_eq!(listed.data.len(), 1);
    b.http::<ListConversations>()
        .run(&alice, "alice", Some(1), Some(&listed.data[0].id))
        .await
        .unwrap();
    let only = send
        .run(&alice, "c2", body(json!({"text": "alone"})))
        .await
        .unwrap();
    let only_record = (b.setup.build::<Arc<dyn ItemReader>>())
        .get_items(
            &[ItemKey::Message {
                conversation_id: "c2".into(),
                message_id: only.id.clone(),
            }],
            b.clock.now_ms(),
        )
        .await
        .unwrap()
        .messages
        .into_values()
        .next()
        .expect("the message");
    fan_out
        .apply(&Change::MessageCreated(only_record))
        .await
        .unwrap();
    b.setup
        .build::<DeleteMessage>()
        .run(&alice, "c2", &only.id)
        .await
        .unwrap();
    fan_out
        .apply(&Change::MessageDeleted {
            conversation_id: "c2".into(),
            message_id: only.id.clone(),
        })
        .await
        .unwrap();

    // Typing: alice's spell ends with her message (the fan-out deletes it), bob's by its expiry
    // check (the one after his extension), and a check of an extended spell deletes nothing.
    let checks = Arc::new(Checks::default());
    let typing = WsService::new::<WsTyping>(
        &b.services(WsTyping::ROUTE.function)
            .with_typing_timer(checks.clone()),
    );
    let frame = json!({"action": "typing", "conversationId": "c1"});
    for (conn, who) in [("A", "alice"), ("B", "bob")] {
        let response = typing
            .handle(ws_event("typing", conn, who, Some(frame.clone())))
            .await;
        assert_eq!(natter::ws::reply_body(&response), None, "typing {who}");
    }
    fan_out
        .apply(&Change::TypingChanged {
            conversation_id: "c1".into(),
            user_id: "alice".into(),
        })
        .await
        .unwrap();
    let said = send
        .run(&alice, "c1", body(json!({"text": "typed"})))
        .await
        .unwrap();
    let items = (b.setup.build::<Arc<dyn ItemReader>>())
        .get_items(
            &[ItemKey::Message {
                conversation_id: "c1".into(),
                message_id: said.id.clone(),
            }],
            b.clock.now_ms(),
        )
        .await
        .unwrap();
    let record = items.messages.into_values().next().expect("the message");
    fan_out
        .apply(&Change::MessageCreated(record))
        .await
        .unwrap();
    b.clock.advance_ms(6_000);
    typing
        .handle(ws_event("typing", "B", "bob", Some(frame.clone())))
        .await;
    b.clock.advance_ms(11_000);
    let expiry: TypingExpiry = b.services("typing-expiry").build();
    let scheduled = checks.0.lock().unwrap().clone();
    assert_eq!(scheduled.len(), 3, "{scheduled:?}");
    assert!(
        !expiry.run(&scheduled[1]).await.unwrap(),
        "bob's first check"
    );
    assert!(expiry.run(&scheduled[2]).await.unwrap(), "bob's last check");

    // Records that expired are rewritten: a user and a conversation whose lives ran out.
    b.clock.advance_ms(1_300_000);
    b.http::<PutUser>()
        .run(&alice, "alice", body(json!({"name": "Alice again"})))
        .await
        .unwrap();
    b.http::<PutConversation>()
        .run(&alice, "c1", body(json!({"subject": "New lunch"})))
        .await
        .unwrap();
    let disconnect = b.ws::<WsDisconnect>();
    disconnect
        .handle(ws_event("$disconnect", "B", "bob", None))
        .await;

    // Every recorded action is granted; every declared action was performed.
    let granted = granted();
    let ports = ports_by_function();
    let recorded = b.recorded();
    let mut wrong = Vec::new();
    for (function, actions) in &recorded {
        let allowed = &granted[function];
        for action in actions.difference(allowed) {
            wrong.push(format!(
                "{function} sent {action:?}, which template.yaml does not grant"
            ));
        }
    }
    // Ports no function holds (natter-local's own introspection reads connections) grant
    // nothing on AWS.
    let held: BTreeSet<Port> = ports.values().flatten().copied().collect();
    for port in Port::ALL.iter().filter(|p| held.contains(p)) {
        for action in port.actions() {
            let performed = ports.iter().any(|(function, held)| {
                held.contains(port)
                    && recorded
                        .get(function)
                        .is_some_and(|actions| actions.contains(action))
            });
            if !performed {
                wrong.push(format!(
                    "port {} declares {action:?}, which no function holding it sent",
                    port.name()
                ));
            }
        }
    }
    // A function without ports (ws-default, ws-ping) sends nothing to be recorded.
    for (function, held) in ports.iter().filter(|(f, _)| !f.ends_with("authorizer")) {
        if !recorded.contains_key(function) && !held.is_empty() {
            wrong.push(format!("{function} never ran"));
        }
    }
    assert!(
        wrong.is_empty(),
        "IAM parity:\n{}\nrecorded: {recorded:#?}",
        wrong.join("\n")
    );
}

// ---- Who may read the secrets ------------------------------------------------------------------

/// `!Ref Name` → `Name`; anything else as text.
fn ref_name(value: &serde_yaml::Value) -> String {
    match value {
        serde_yaml::Value::Tagged(tagged) if tagged.tag == "!Ref" => resource_text(&tagged.value),
        other => format!("{other:?}"),
    }
}

/// Binary name → (secretsmanager actions, the resources they are granted on) over every
/// statement of its policies that names a secretsmanager action or a secret.
fn secret_grants() -> BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> {
    let template = load_template();
    let secrets: BTreeSet<String> = template["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::SecretsManager::Secret"))
        .map(|(name, _)| name.as_str().expect("logical id").to_string())
        .collect();
    let mut out = BTreeMap::new();
    for (binary, resource) in functions(&template) {
        let (mut actions, mut resources) = (BTreeSet::new(), BTreeSet::new());
        for policy in policies(resource) {
            // A SAM policy template (e.g. AWSSecretsManagerGetSecretValuePolicy) or a managed
            // policy name would grant what this test cannot see: none is used, but for
            // WarmUpPolicy, whose one statement the warm-up test checks.
            if resource_text(policy) == "WarmUpPolicy" {
                continue;
            }
            assert!(
                policy.get("Statement").is_some(),
                "{binary}: a policy without Statement: {policy:?}"
            );
            for statement in policy["Statement"].as_sequence().into_iter().flatten() {
                let named: Vec<String> = match &statement["Resource"] {
                    serde_yaml::Value::Sequence(items) => items.iter().map(ref_name).collect(),
                    one => vec![ref_name(one)],
                };
                let secret_actions: Vec<String> = statement["Action"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a.as_str())
                    .filter(|a| a.to_ascii_lowercase().starts_with("secretsmanager:") || *a == "*")
                    .map(str::to_string)
                    .collect();
                let on_secret = named
                    .iter()
                    .any(|r| secrets.contains(r) || r.contains("secret"));
                if secret_actions.is_empty() && !on_secret {
                    continue;
                }
                assert_eq!(statement["Effect"].as_str(), Some("Allow"), "{binary}");
                actions.extend(secret_actions);
                resources.extend(named);
            }
        }
        if !actions.is_empty() || !resources.is_empty() {
            out.insert(binary, (actions, resources));
        }
    }
    out
}

/// Exactly the authorizers (`natter::secrets::READERS`) may read the secrets: `GetSecretValue`
/// (`natter::secrets::ACTIONS`) on the two secrets and nothing else; no other function holds any
/// secretsmanager action or any grant on a secret.
/// Binary name → the SQS actions its policy grants, with their resources.
fn sqs_grants() -> BTreeMap<String, BTreeSet<(String, String)>> {
    let template = load_template();
    let mut out = BTreeMap::new();
    for (binary, resource) in functions(&template) {
        let mut grants = BTreeSet::new();
        for policy in policies(resource) {
            for statement in policy["Statement"].as_sequence().into_iter().flatten() {
                let target = resource_text(&statement["Resource"]);
                for action in statement["Action"].as_sequence().into_iter().flatten() {
                    let name = action.as_str().expect("actions are strings");
                    if name.starts_with("sqs:") {
                        grants.insert((name.to_string(), target.clone()));
                    }
                }
            }
        }
        out.insert(binary, grants);
    }
    out
}

#[test]
fn only_the_typing_route_schedules_checks_and_only_the_expiry_function_reads_them() {
    let grants = sqs_grants();
    let ports = ports_by_function();
    let template = load_template();
    for (function, held) in &ports {
        let sends: BTreeSet<&(String, String)> = grants[function]
            .iter()
            .filter(|(action, _)| action == "sqs:SendMessage")
            .collect();
        if held.contains(&Port::TypingTimer) {
            assert_eq!(
                sends.into_iter().collect::<Vec<_>>(),
                [&("sqs:SendMessage".to_string(), "TypingQueue.Arn".to_string())],
                "{function} holds the typing timer"
            );
        } else {
            assert!(sends.is_empty(), "{function} may send to {sends:?}");
        }
    }
    let poll: BTreeSet<(String, String)> = [
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:ChangeMessageVisibility",
    ]
    .iter()
    .map(|a| (a.to_string(), "TypingQueue.Arn".to_string()))
    .collect();
    for (function, grants) in &grants {
        let want = match function.as_str() {
            "typing-expiry" => poll.clone(),
            "ws-typing" => [("sqs:SendMessage".to_string(), "TypingQueue.Arn".to_string())].into(),
            _ => BTreeSet::new(),
        };
        assert_eq!(grants, &want, "{function}'s SQS grants");
    }
    // The queue's only consumer is the expiry function, and a failing check is not retried
    // forever.
    let resources = &template["Resources"];
    let event = &resources["TypingExpiryFunction"]["Properties"]["Events"]["Checks"];
    assert_eq!(event["Type"].as_str(), Some("SQS"));
    assert_eq!(
        resource_text(&event["Properties"]["Queue"]),
        "TypingQueue.Arn"
    );
    let redrive = &resources["TypingQueue"]["Properties"]["RedrivePolicy"];
    assert_eq!(
        resource_text(&redrive["deadLetterTargetArn"]),
        "TypingDeadLetterQueue.Arn"
    );
    assert!(redrive["maxReceiveCount"].as_u64().is_some_and(|n| n >= 1));
    let url = &resources["WsTypingFunction"]["Properties"]["Environment"]["Variables"]
        ["TYPING_QUEUE_URL"];
    assert_eq!(resource_text(url), "TypingQueue");
}

#[test]
fn only_the_authorizers_may_read_the_secrets() {
    let want: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> = natter::secrets::READERS
        .iter()
        .map(|f| {
            let actions = natter::secrets::ACTIONS
                .iter()
                .map(|a| a.to_string())
                .collect();
            let resources = natter::secrets::SECRET_RESOURCES
                .iter()
                .map(|r| r.to_string())
                .collect();
            (f.to_string(), (actions, resources))
        })
        .collect();
    assert_eq!(secret_grants(), want);
    // The readers are the authorizer functions (the ones that hold no table port).
    for reader in natter::secrets::READERS {
        assert_eq!(
            ports_by_function().get(*reader),
            Some(&Vec::new()),
            "{reader}"
        );
    }
}

/// The secrets exist, are generated by Secrets Manager (no value in the template), and reach the
/// authorizers only as ARNs; no function's environment carries a secret value.
#[test]
fn the_secrets_are_generated_and_passed_by_arn() {
    let template = load_template();
    let resources = &template["Resources"];
    for (name, kid_or_key) in [
        ("SecretKeySecret", "secretKey"),
        ("SigningKeysSecret", "k1"),
    ] {
        assert!(natter::secrets::SECRET_RESOURCES.contains(&name), "{name}");
        let secret = &resources[name];
        assert_eq!(secret["Type"].as_str(), Some("AWS::SecretsManager::Secret"));
        assert!(secret["Properties"].get("SecretString").is_none(), "{name}");
        let generate = &secret["Properties"]["GenerateSecretString"];
        assert_eq!(generate["GenerateStringKey"].as_str(), Some(kid_or_key));
        assert_eq!(generate["SecretStringTemplate"].as_str(), Some("{}"));
        let length = generate["PasswordLength"].as_u64().expect("PasswordLength") as usize;
        assert!(
            length >= natter::config::input::SECRET_MIN_CHARS,
            "{name} generates {length} characters"
        );
    }
    assert!(
        natter::auth::check_kid("k1").is_ok(),
        "the first generated kid is one the authorizers accept"
    );
    assert!(
        template["Parameters"]
            .as_mapping()
            .expect("Parameters")
            .iter()
            .all(|(_, p)| p.get("NoEcho").is_none()),
        "no parameter carries a secret"
    );

    let mut environments = vec![(
        "Globals".to_string(),
        template["Globals"]["Function"]["Environment"]["Variables"].clone(),
    )];
    for (binary, resource) in functions(&template) {
        let env = resource["Properties"]["Environment"]["Variables"].clone();
        environments.push((binary, env));
    }
    for (who, env) in environments {
        let Some(vars) = env.as_mapping() else {
            continue;
        };
        let reader = natter::secrets::READERS.contains(&who.as_str());
        for (var, value) in vars {
            let var = var.as_str().expect("variable name");
            let refers_to_secret =
                natter::secrets::SECRET_RESOURCES.contains(&ref_name(value).as_str());
            match var {
                v if v == natter::secrets::SECRET_KEY_SECRET_ENV => {
                    assert!(reader, "{who} gets {v}");
                    assert_eq!(ref_name(value), "SecretKeySecret", "{who}");
                }
                v if v == natter::secrets::SIGNING_KEYS_SECRET_ENV => {
                    assert!(reader, "{who} gets {v}");
                    assert_eq!(ref_name(value), "SigningKeysSecret", "{who}");
                }
                "SECRETS_REVISION" => assert!(reader, "{who} gets SECRETS_REVISION"),
                other => {
                    assert!(!refers_to_secret, "{who}: {other} refers to a secret");
                    assert!(
                        !other.contains("SECRET") && !other.contains("KEY"),
                        "{who}: {other} looks like a secret in the environment"
                    );
                }
            }
        }
        if reader {
            for v in [
                natter::secrets::SECRET_KEY_SECRET_ENV,
                natter::secrets::SIGNING_KEYS_SECRET_ENV,
            ] {
                assert!(env.get(v).is_some(), "{who} lacks {v}");
            }
        }
    }
}
