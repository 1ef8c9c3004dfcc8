//! Cold-init benchmark (not a test): every function's release bootstrap started the way Lambda
//! starts it, beside a hello-world `lambda_runtime` binary built with the same profile.
//!
//! The bench serves a minimal Lambda Runtime API on 127.0.0.1 and, for each function, spawns its
//! bootstrap with Lambda's environment (region, credentials, `AWS_LAMBDA_RUNTIME_API`, and the
//! function's own variables from `template.yaml`, with every AWS endpoint at moto), then measures:
//! - **init**: from the spawn to the first `GET /next` (what Lambda bills and reports as Init);
//! - **first**: the first invocation, from handing out its event to its response;
//! - **warm**: the same event once more;
//! - the init's **CPU time** (summed over the process's threads) and **minor page faults**, read
//!   from `/proc` at that first `GET /next`: on a shared machine the faults hardly move, and
//!   the CPU time less than the wall time.
//!
//! Each function gets an event of its own kind that reaches DynamoDB: the HTTP routes and the
//! WebSocket routes as a participant of a seeded conversation would send them, the fan-out a
//! stream record of a stored message, the typing expiry an SQS message, the authorizers a valid
//! token. Medians over the runs; the ratios are to the hello binary's init, so a noisy machine
//! still compares like with like.
//!
//! `cold-init-bench [--runs N] [--bin-dir DIR] [FUNCTION...]` (N ≤ 50, default 10; DIR holds the
//! release binaries, default `$CARGO_TARGET_DIR/release` or `target/release`; FUNCTION names
//! binaries, default all). It needs moto: run it with `scripts/cold-init-bench`, which builds the
//! release binaries, starts moto and runs this.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use natter::auth::{issue_user_token, Identity, SigningKey};
use natter::clock::{Clock, SystemClock};
use natter::config::Config;
use natter::domain::{PutConversation, SendMessage};
use natter::routes::{HTTP_ROUTES, WS_ROUTES};
use natter::services::Services;
use natter::store::dynamo::{DynamoStore, WARM_UP_LOG};
use natter::store::schema;
use natter_local::lambda_runtime_api::{
    http_event, lambda_env, ws_event, BootstrapRun, ProcessUsage, RuntimeApi,
};
use serde_json::{json, Value};

/// The hello-world binary every function is measured against.
const HELLO: &str = "hello-lambda";
const CONVERSATION: &str = "bench";
const USER: &str = "bench-user";
/// The user the participant routes add and remove.
const OTHER_USER: &str = "bench-other";
const RUNS_MAX: usize = 50;
/// How long one function may take from spawn to its second response.
const RUN_LIMIT: Duration = Duration::from_secs(20);
/// The whole bench stops (and fails) past this.
const BENCH_LIMIT: Duration = Duration::from_secs(1200);
const SECRET_KEY: &str = "bench-secret-key-0123456789abcdef0123456789";
const SIGNING_KEY: (&str, &str) = ("k1", "bench-signing-secret-0123456789abcdef0123");

struct Options {
    runs: usize,
    bin_dir: PathBuf,
    functions: Vec<String>,
}

fn parse_args() -> Result<Options, String> {
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let mut options = Options {
        runs: 10,
        bin_dir: PathBuf::from(target).join("release"),
        functions: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => {
                let value = args.next().ok_or("--runs needs a value")?;
                options.runs = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=RUNS_MAX).contains(n))
                    .ok_or_else(|| format!("--runs must be 1..={RUNS_MAX}, not {value}"))?;
            }
            "--bin-dir" => options.bin_dir = args.next().ok_or("--bin-dir needs a value")?.into(),
            flag if flag.starts_with('-') => return Err(format!("unknown flag {flag}")),
            name => options.functions.push(name.to_string()),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() {
    let result = match parse_args() {
        Ok(options) => match tokio::time::timeout(BENCH_LIMIT, run(options)).await {
            Ok(result) => result,
            Err(_) => Err(format!("the bench took longer than {BENCH_LIMIT:?}")),
        },
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        eprintln!("cold-init-bench: {e}");
        std::process::exit(1);
    }
}

// ---- One function, started cold -----------------------------------------------------------------

struct Measured {
    init: Duration,
    first: Duration,
    warm: Duration,
    /// The first response's status (HTTP and WebSocket routes) or a short summary.
    outcome: String,
    /// The part of init spent on the network, as the function logged it.
    warm_up: Option<Duration>,
    /// The process's CPU time and page faults at its first `GET /next`.
    usage: Option<ProcessUsage>,
}

/// Starts `binary` cold with `env`, hands it `event` twice, and stops it.
async fn measure_once(
    api: &RuntimeApi,
    binary: &std::path::Path,
    env: &[(String, String)],
    event: &Value,
) -> Result<Measured, String> {
    let run = api
        .run(binary, env, vec![event.clone(), event.clone()], RUN_LIMIT)
        .await?;
    Ok(Measured {
        init: run.init,
        first: run.invocations[0].duration,
        warm: run.invocations[1].duration,
        outcome: outcome(&run.invocations[0].response),
        warm_up: warm_up_time(&run),
        usage: run.init_usage,
    })
}

/// The time init spent on the network, as the function logged it: the DynamoDB warm-up
/// (`WARM_UP_LOG`), or the authorizers' secrets read (`secrets::LOADED_LOG`).
fn warm_up_time(run: &BootstrapRun) -> Option<Duration> {
    [WARM_UP_LOG, natter::secrets::LOADED_LOG]
        .into_iter()
        .find_map(|message| run.log(message))
        .and_then(|log| log["fields"]["elapsed_us"].as_u64())
        .map(Duration::from_micros)
}

fn outcome(response: &Value) -> String {
    if let Some(status) = response.get("statusCode") {
        return format!("status {status}");
    }
    if let Some(authorized) = response.get("isAuthorized") {
        return format!("isAuthorized {authorized}");
    }
    if response.get("policyDocument").is_some() {
        return "policy".into();
    }
    if let Some(failures) = response.get("batchItemFailures") {
        return format!("{} failures", failures.as_array().map_or(0, Vec::len));
    }
    "answered".into()
}

struct Summary {
    name: String,
    init: Duration,
    first: Duration,
    warm: Duration,
    outcome: String,
    warm_up: Option<Duration>,
    /// The init's CPU time and minor faults, medians (each on its own).
    init_cpu: Option<Duration>,
    init_faults: Option<u64>,
}

fn median<T: Ord + Copy>(mut values: Vec<T>) -> T {
    values.sort();
    values[values.len() / 2]
}

/// The median, if every run has a value.
fn median_if_all<T: Ord + Copy>(values: impl Iterator<Item = Option<T>>) -> Option<T> {
    values.collect::<Option<Vec<_>>>().map(median)
}

async fn measure(
    api: &RuntimeApi,
    options: &Options,
    name: &str,
    env: &[(String, String)],
    event: &Value,
) -> Result<Summary, String> {
    // Cargo puts examples (the hello binary) in their own directory.
    let binary = if name == HELLO {
        options.bin_dir.join("examples").join(name)
    } else {
        options.bin_dir.join(name)
    };
    if !binary.is_file() {
        return Err(format!(
            "{} is missing: build the release binaries first (scripts/cold-init-bench does)",
            binary.display()
        ));
    }
    let mut runs = Vec::with_capacity(options.runs);
    for _ in 0..options.runs {
        runs.push(measure_once(api, &binary, env, event).await?);
    }
    Ok(Summary {
        name: name.to_string(),
        init: median(runs.iter().map(|r| r.init).collect()),
        first: median(runs.iter().map(|r| r.first).collect()),
        warm: median(runs.iter().map(|r| r.warm).collect()),
        outcome: runs[0].outcome.clone(),
        warm_up: median_if_all(runs.iter().map(|r| r.warm_up)),
        init_cpu: median_if_all(runs.iter().map(|r| r.usage.map(|u| u.cpu))),
        init_faults: median_if_all(runs.iter().map(|r| r.usage.map(|u| u.minor_faults))),
    })
}

// ---- The environment and the events ---------------------------------------------------------

struct Setup {
    endpoint: String,
    table: String,
    secret_arns: (String, String),
    websocket_endpoint: String,
    typing_queue_url: String,
    token: String,
    message_id: String,
    /// The message `delete-message` deletes, so that the reactions still find theirs.
    spare_message_id: String,
    message_record: Value,
}

/// The function's own variables beside the shared ones, as `template.yaml` sets them.
fn function_env(setup: &Setup, name: &str) -> Vec<(String, String)> {
    let mut env = lambda_env(name, &setup.endpoint);
    let mut add = |k: &str, v: &str| env.push((k.to_string(), v.to_string()));
    // The template's globals.
    add("TABLE_NAME", &setup.table);
    add("RETENTION_DAYS", "30");
    add("NATTER_ROLES", "");
    add("RUST_LOG", "info");
    match name {
        "authorizer" | "ws-authorizer" => {
            add(natter::secrets::SECRET_KEY_SECRET_ENV, &setup.secret_arns.0);
            add(
                natter::secrets::SIGNING_KEYS_SECRET_ENV,
                &setup.secret_arns.1,
            );
            add("SECRETS_REVISION", "1");
        }
        "fan-out" => {
            add("WEBSOCKET_ENDPOINT", &setup.websocket_endpoint);
        }
        "ws-typing" => add("TYPING_QUEUE_URL", &setup.typing_queue_url),
        _ => {}
    }
    env
}

/// The event `name` is invoked with; an error for a binary the bench does not know.
fn event_for(setup: &Setup, name: &str) -> Result<Value, String> {
    let verdict = json!({
        "kind": "user",
        "userId": USER,
        "exp": SystemClock.now_ms() / 1000 + 3600,
    });
    if name == HELLO {
        return Ok(json!({"hello": "world"}));
    }
    if let Some(route) = HTTP_ROUTES.iter().find(|r| r.function == name) {
        // The participant routes add and remove another user, so that `USER` stays in the
        // conversation for the functions measured after them; they and the import take the
        // secret key.
        let (user, verdict) = match name {
            "put-participant" | "delete-participant" | "import-messages" => {
                (OTHER_USER, json!({"kind": "secret"}))
            }
            _ => (USER, verdict),
        };
        let message_id = match name {
            "delete-message" => &setup.spare_message_id,
            _ => &setup.message_id,
        };
        let path = route
            .path
            .replace("{conversationId}", CONVERSATION)
            .replace("{userId}", user)
            .replace("{messageId}", message_id)
            .replace("{emoji}", "%F0%9F%91%8D");
        let body = match name {
            "send-message" => Some(json!({"text": "hello"})),
            "edit-message" => Some(json!({"text": "edited"})),
            "send-inbox-message" => Some(json!({"recipients": [USER], "message": {"hello": 1}})),
            "import-messages" => Some(json!([{
                "sender": USER,
                "text": "imported",
                "createdAt": SystemClock.now_ms() - 60_000,
            }])),
            _ if route.method == "PUT" || route.method == "POST" => Some(json!({})),
            _ => None,
        };
        return http_event(
            route,
            &path,
            &path_parameters(route.path, user, message_id),
            body.as_ref(),
            verdict,
        );
    }
    if let Some(route) = WS_ROUTES.iter().find(|r| r.function == name) {
        let frame = match route.route_key {
            "$connect" | "$disconnect" => None,
            "subscribe" => Some(json!({"action": "subscribe", "subscriptionId": "s1",
                                       "conversationId": CONVERSATION})),
            "subscribeConversations" => {
                Some(json!({"action": "subscribeConversations", "subscriptionId": "l1"}))
            }
            "loadMore" => Some(json!({"action": "loadMore", "subscriptionId": "s1"})),
            "unsubscribe" => Some(json!({"action": "unsubscribe", "subscriptionId": "s1"})),
            "inboxMore" => Some(json!({"action": "inboxMore", "after": setup.message_id})),
            "typing" => Some(json!({"action": "typing", "conversationId": CONVERSATION})),
            "$default" => Some(json!({"action": "nothing"})),
            action => Some(json!({ "action": action })),
        };
        return ws_event(route.route_key, USER, frame.as_ref());
    }
    match name {
        "fan-out" => Ok(json!({ "Records": [setup.message_record] })),
        "typing-expiry" => Ok(json!({ "Records": [{
            "messageId": "q1",
            "receiptHandle": "r1",
            "body": json!({"conversationId": CONVERSATION, "userId": USER, "at": SystemClock.now_ms()})
                .to_string(),
            "attributes": {},
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:bench",
            "awsRegion": "us-east-1",
        }]})),
        "authorizer" => Ok(json!({
            "version": "2.0",
            "type": "REQUEST",
            "routeArn": "arn:aws:execute-api:us-east-1:000000000000:bench/$default/GET/v1/inbox",
            "identitySource": [format!("Bearer {}", setup.token)],
            "routeKey": "GET /v1/inbox",
            "rawPath": "/v1/inbox",
            "rawQueryString": "",
            "headers": {"authorization": format!("Bearer {}", setup.token)},
            "requestContext": {"http": {"method": "GET", "path": "/v1/inbox"}},
        })),
        "ws-authorizer" => Ok(json!({
            "type": "REQUEST",
            "methodArn": "arn:aws:execute-api:us-east-1:000000000000:bench/prod/$connect",
            "queryStringParameters": {"token": setup.token},
            "multiValueQueryStringParameters": {"token": [setup.token]},
            "requestContext": {
                "routeKey": "$connect", "eventType": "CONNECT", "connectionId": "c1",
                "requestId": "r1", "apiId": "bench", "stage": "prod",
                "identity": {"sourceIp": "127.0.0.1"}, "connectedAt": 0, "requestTimeEpoch": 0,
            },
        })),
        _ => Err(format!("no event for {name}")),
    }
}

fn path_parameters(
    template: &str,
    user_id: &str,
    message_id: &str,
) -> std::collections::BTreeMap<String, String> {
    let mut params = std::collections::BTreeMap::new();
    for (name, value) in [
        ("conversationId", CONVERSATION),
        ("userId", user_id),
        ("messageId", message_id),
        ("emoji", "👍"),
    ] {
        if template.contains(&format!("{{{name}}}")) {
            params.insert(name.to_string(), value.to_string());
        }
    }
    params
}

/// The table, the secrets and a conversation that `USER` is in, with one message, on moto.
async fn prepare(runtime_api: &str) -> Result<Setup, String> {
    let endpoint = std::env::var("NATTER_TEST_DYNAMODB_ENDPOINT").map_err(|_| {
        "NATTER_TEST_DYNAMODB_ENDPOINT is not set: run scripts/cold-init-bench, which starts moto"
            .to_string()
    })?;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "bench",
        ))
        .endpoint_url(&endpoint)
        .load()
        .await;
    let table = format!("cold-init-{}", SystemClock.now_ms());
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    DynamoStore::new(client.clone(), &table)
        .create_table_if_missing()
        .await
        .map_err(|e| format!("could not create the table: {e}"))?;
    let services = Services::dynamodb(
        client.clone(),
        &table,
        Arc::new(SystemClock),
        Config::default(),
    );
    let body =
        serde_json::from_value(json!({ "participants": [USER] })).map_err(|e| e.to_string())?;
    services
        .build::<PutConversation>()
        .run(&Identity::Secret, CONVERSATION, body)
        .await
        .map_err(|e| format!("could not seed the conversation: {e}"))?;
    let mut sent = Vec::new();
    for text in ["seed", "spare"] {
        let body = serde_json::from_value(json!({ "text": text })).map_err(|e| e.to_string())?;
        let message = services
            .build::<SendMessage>()
            .run(
                &Identity::User {
                    user_id: USER.into(),
                    role: None,
                },
                CONVERSATION,
                body,
            )
            .await
            .map_err(|e| format!("could not seed a message: {e}"))?;
        sent.push(message.id);
    }
    let (message_id, spare_message_id) = (sent[0].clone(), sent[1].clone());
    let item = client
        .get_item()
        .table_name(&table)
        .key(
            schema::PK,
            aws_sdk_dynamodb::types::AttributeValue::S(schema::conv_pk(CONVERSATION)),
        )
        .key(
            schema::SK,
            aws_sdk_dynamodb::types::AttributeValue::S(schema::msg_sk(&message_id)),
        )
        .send()
        .await
        .map_err(|e| format!("could not read the seeded message: {e}"))?
        .item
        .ok_or("the seeded message is not stored")?;
    let keys: std::collections::HashMap<_, _> = item
        .iter()
        .filter(|(k, _)| *k == schema::PK || *k == schema::SK)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let message_record = json!({
        "eventID": "1",
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "eventSourceARN": format!("arn:aws:dynamodb:us-east-1:000000000000:table/{table}/stream/x"),
        "dynamodb": {
            "ApproximateCreationDateTime": SystemClock.now_ms() / 1000,
            "Keys": serde_json::to_value(serde_dynamo::Item::from(keys)).map_err(|e| e.to_string())?,
            "NewImage": serde_json::to_value(serde_dynamo::Item::from(item)).map_err(|e| e.to_string())?,
            "SequenceNumber": "1",
            "SizeBytes": 100,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    });
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let mut arns = Vec::new();
    for (name, value) in [
        ("secret-key", json!({ "secretKey": SECRET_KEY })),
        ("signing-keys", json!({ SIGNING_KEY.0: SIGNING_KEY.1 })),
    ] {
        let arn = secrets
            .create_secret()
            .name(format!("{table}-{name}"))
            .secret_string(value.to_string())
            .send()
            .await
            .map_err(|e| format!("could not create a secret: {e}"))?
            .arn
            .ok_or("moto gave no secret ARN")?;
        arns.push(arn);
    }
    let now_secs = (SystemClock.now_ms() / 1000) as u64;
    let token = issue_user_token(
        USER,
        None,
        3600,
        now_secs,
        &SigningKey::new(SIGNING_KEY.0, SIGNING_KEY.1),
    )
    .map_err(|e| format!("could not issue a token: {e}"))?;
    Ok(Setup {
        endpoint: endpoint.clone(),
        table: table.clone(),
        secret_arns: (arns[0].clone(), arns[1].clone()),
        websocket_endpoint: format!("http://{runtime_api}"),
        typing_queue_url: format!("{endpoint}/000000000000/{table}-typing"),
        token,
        message_id,
        spare_message_id,
        message_record,
    })
}

// ---- The report -------------------------------------------------------------------------------

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

async fn run(options: Options) -> Result<(), String> {
    let api = RuntimeApi::start().await?;
    let setup = prepare(api.address()).await?;
    let mut names: Vec<String> = if options.functions.is_empty() {
        all_functions()
    } else {
        options.functions.clone()
    };
    names.retain(|n| n != HELLO);
    let mut summaries = Vec::new();
    for name in std::iter::once(HELLO.to_string()).chain(names) {
        let event = event_for(&setup, &name)?;
        let env = function_env(&setup, &name);
        let summary = measure(&api, &options, &name, &env, &event).await?;
        eprintln!(
            "{name}: init {} ms, first {} ms, warm {} ms ({})",
            ms(summary.init),
            ms(summary.first),
            ms(summary.warm),
            summary.outcome
        );
        summaries.push(summary);
    }
    let hello = summaries[0].init;
    let ratio = |d: Duration| d.as_secs_f64() / hello.as_secs_f64();
    let hello_cpu = summaries[0].init_cpu;
    let cpu = |s: &Summary| match (s.init_cpu, hello_cpu) {
        (Some(cpu), Some(hello)) => format!(
            "{} | {:.2}",
            ms(cpu),
            cpu.as_secs_f64() / hello.as_secs_f64()
        ),
        _ => "– | –".to_string(),
    };
    println!(
        "| function | init (ms) | init ÷ hello | of which network (ms) | init without the network ÷ hello | init CPU (ms) | init CPU ÷ hello | minor faults at init | first invocation (ms) | warm invocation (ms) | first ÷ warm | first answer |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for s in &summaries {
        let warm_up = s.warm_up.unwrap_or_default();
        println!(
            "| {} | {} | {:.2} | {} | {:.2} | {} | {} | {} | {} | {:.2} | {} |",
            s.name,
            ms(s.init),
            ratio(s.init),
            s.warm_up.map_or("–".to_string(), ms),
            ratio(s.init.saturating_sub(warm_up)),
            cpu(s),
            s.init_faults.map_or("–".to_string(), |f| f.to_string()),
            ms(s.first),
            ms(s.warm),
            s.first.as_secs_f64() / s.warm.as_secs_f64(),
            s.outcome
        );
    }
    let worst = |f: &dyn Fn(&Summary) -> Duration| {
        summaries
            .iter()
            .skip(1)
            .map(|s| ratio(f(s)))
            .fold(0.0, f64::max)
    };
    println!(
        "\n{} runs each, medians. Worst init ÷ hello {:.2}; without the network {:.2}.",
        options.runs,
        worst(&|s| s.init),
        worst(&|s| s.init.saturating_sub(s.warm_up.unwrap_or_default())),
    );
    Ok(())
}

/// Every function's binary name: the routes', the authorizers', the fan-out's and the typing
/// expiry's.
fn all_functions() -> Vec<String> {
    let mut names: Vec<String> = HTTP_ROUTES
        .iter()
        .map(|r| r.function)
        .chain(WS_ROUTES.iter().map(|r| r.function))
        .chain([
            "authorizer",
            natter::routes::WS_AUTHORIZER_FUNCTION,
            "fan-out",
            "typing-expiry",
        ])
        .map(str::to_string)
        .collect();
    names.dedup();
    names
}
