//! A minimal Lambda Runtime API on 127.0.0.1, to run a function's real bootstrap the way Lambda
//! runs it: spawned with Lambda's environment, asking `GET /next` for each event and posting its
//! answer. The cold-init bench (`src/bin/cold-init-bench.rs`) times bootstraps with it, and
//! `functions/tests/bootstrap.rs` checks that they start and answer.
//!
//! It also answers `@connections` posts with 200, so a fan-out's `WEBSOCKET_ENDPOINT` can point
//! at it.
//!
//! It is as strict as Lambda and API Gateway where a bootstrap could tell the difference: a
//! response over Lambda's 6 MB payload limit (`config::aws::LAMBDA_PAYLOAD_MAX_BYTES`) is refused
//! with 413 and fails the run, as Lambda fails the invocation; a response up to the limit passes
//! (axum's default 2 MB body limit is lifted); and a post over API Gateway's 128 KiB WebSocket
//! message limit is refused with 413 `PayloadTooLargeException`.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use natter::clock::{Clock, SystemClock};
use natter::config::aws::{LAMBDA_PAYLOAD_MAX_BYTES, WS_MESSAGE_MAX_BYTES};
use natter::routes::HttpRoute;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::events::{self, Params, WsPeer};

/// One bootstrap's run: its init and each invocation, as the Runtime API saw them.
#[derive(Debug)]
pub struct BootstrapRun {
    /// From the spawn to its first `GET /next` (Lambda's Init phase).
    pub init: Duration,
    /// What the process had used when it asked its first `GET /next`; `None` where `/proc`
    /// cannot tell (not Linux).
    pub init_usage: Option<ProcessUsage>,
    pub invocations: Vec<Invocation>,
    /// Everything it wrote to stdout (its logs).
    pub stdout: String,
}

/// A process's CPU time and page faults so far, read from `/proc`.
///
/// The init's wall time on a shared machine moves with whatever else runs; its faults hardly
/// move, and its CPU time moves less than its wall time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessUsage {
    /// Time on a CPU, summed over the process's live threads (`/proc/PID/task/*/schedstat`).
    pub cpu: Duration,
    /// Minor page faults of the whole process (`/proc/PID/stat`, field 10).
    pub minor_faults: u64,
}

impl ProcessUsage {
    /// `None` if the process is gone or `/proc` is not there.
    pub fn of(pid: u32) -> Option<ProcessUsage> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name, field 2, is in parentheses and may hold spaces: count from after it.
        let after_name = &stat[stat.rfind(')')? + 1..];
        let minor_faults = after_name.split_whitespace().nth(7)?.parse().ok()?;
        let mut cpu_ns = 0u64;
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
            let schedstat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
            cpu_ns += schedstat.split_whitespace().next()?.parse::<u64>().ok()?;
        }
        Some(ProcessUsage {
            cpu: Duration::from_nanos(cpu_ns),
            minor_faults,
        })
    }
}

#[derive(Debug)]
pub struct Invocation {
    /// From handing out the event to the response's arrival.
    pub duration: Duration,
    pub response: Value,
}

impl BootstrapRun {
    /// The first log line (the functions log JSON) whose message is `message`.
    pub fn log(&self, message: &str) -> Option<Value> {
        self.stdout
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|log| log["fields"]["message"] == message)
    }
}

/// Lambda's own environment for function `name` (region, credentials, the function's name and
/// memory), with every AWS endpoint at `endpoint`; `AWS_LAMBDA_RUNTIME_API` is added by
/// [`RuntimeApi::run`].
pub fn lambda_env(name: &str, endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_FUNCTION_NAME", name),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/natter"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "local"),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023"),
        ("_HANDLER", "bootstrap"),
        ("LAMBDA_TASK_ROOT", "/var/task"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_SESSION_TOKEN", "test"),
        ("AWS_ENDPOINT_URL", endpoint),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The HTTP API (payload 2.0) event of `route` at `path`, as natter-local builds it
/// (`events::http_event`), authorized with the Lambda authorizer context `verdict`
/// (`natter::authorizer`'s shape).
pub fn http_event(
    route: &HttpRoute,
    path: &str,
    path_parameters: &BTreeMap<String, String>,
    body: Option<&Value>,
    verdict: Value,
) -> Result<Value, String> {
    let method = Method::from_bytes(route.method.as_bytes()).map_err(|e| e.to_string())?;
    let uri: Uri = path
        .parse()
        .map_err(|e| format!("{path} is not a path: {e}"))?;
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let body = body.map(Value::to_string).unwrap_or_default();
    let event = events::http_event(
        route,
        &method,
        &uri,
        &headers,
        path_parameters,
        body.as_bytes(),
        SystemClock.now_ms(),
    );
    let request = events::http_request(event, json!(verdict))?;
    serde_json::to_value(request).map_err(|e| e.to_string())
}

/// The WebSocket API event of route `route_key` on a connection of `user_id`, carrying `frame`,
/// as natter-local builds it (`events::ws_connect_event`, `ws_message_event`,
/// `ws_disconnect_event`).
pub fn ws_event(route_key: &str, user_id: &str, frame: Option<&Value>) -> Result<Value, String> {
    let now = SystemClock.now_ms();
    let peer = WsPeer {
        host: "localhost",
        connection_id: "local-connection",
        connected_at: now,
        source_ip: "127.0.0.1",
        user_agent: "natter-local",
    };
    let authorizer =
        events::ws_authorizer_context(json!({ "userId": user_id }), Some(user_id.to_string()));
    let event = match route_key {
        "$connect" => events::ws_connect_event(
            &Params::default(),
            &Params::default(),
            events::ws_request_context(&peer, route_key, "CONNECT", now),
            &authorizer,
        )?,
        "$disconnect" => events::ws_disconnect_event(&peer, &authorizer, 1000, "closed", now)?,
        _ => {
            let body = frame.map(Value::to_string).unwrap_or_default();
            events::ws_message_event(&peer, route_key, &authorizer, &body, now)?
        }
    };
    serde_json::to_value(event).map_err(|e| e.to_string())
}

/// The Runtime API, serving one bootstrap at a time.
pub struct RuntimeApi {
    address: String,
    state: Arc<Shared>,
}

impl RuntimeApi {
    /// Listens on a free loopback port.
    pub async fn start() -> Result<Self, String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("could not listen: {e}"))?;
        let address = listener
            .local_addr()
            .map_err(|e| e.to_string())?
            .to_string();
        let state = Arc::new(Shared::default());
        let router = router(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(RuntimeApi { address, state })
    }

    /// `host:port`, as `AWS_LAMBDA_RUNTIME_API` names it.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Spawns `binary` with `env` and nothing else (plus `AWS_LAMBDA_RUNTIME_API`), hands it
    /// `events` one at a time, and stops it once it has answered them all and asked for more
    /// (as a frozen sandbox waits); an error report, an exit or `limit` passing is an error.
    pub async fn run(
        &self,
        binary: &Path,
        env: &[(String, String)],
        events: Vec<Value>,
        limit: Duration,
    ) -> Result<BootstrapRun, String> {
        let count = events.len();
        self.state.reset(events);
        let spawned = Instant::now();
        let mut child = tokio::process::Command::new(binary)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("AWS_LAMBDA_RUNTIME_API", &self.address)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("could not start {}: {e}", binary.display()))?;
        // The first `GET /next` waits for this (`next`), however late it comes.
        self.state.set_pid(child.id());
        let waited = tokio::time::timeout(limit, async {
            loop {
                let changed = self.state.changed.notified();
                {
                    let seen = self.state.seen.lock().expect("seen");
                    if let Some(e) = &seen.error {
                        return Err(format!("it reported an error: {e}"));
                    }
                    if seen.responses.len() == count && seen.nexts.len() > count {
                        return Ok(());
                    }
                }
                tokio::select! {
                    _ = changed => {}
                    status = child.wait() => {
                        return Err(format!("it exited ({status:?}) before answering {count} events"));
                    }
                }
            }
        })
        .await;
        let _ = child.start_kill();
        let (stdout, stderr) = match child.wait_with_output().await {
            Ok(o) => (
                String::from_utf8_lossy(&o.stdout).into_owned(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            ),
            Err(_) => Default::default(),
        };
        let failed = |e: String| format!("{}: {e}\n{stdout}{stderr}", binary.display());
        match waited {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(failed(e)),
            Err(_) => return Err(failed(format!("no {count} answers in {limit:?}"))),
        }
        let seen = self.state.seen.lock().expect("seen");
        Ok(BootstrapRun {
            init: seen.nexts[0] - spawned,
            init_usage: seen.init_usage,
            invocations: seen
                .responses
                .iter()
                .zip(&seen.nexts)
                .map(|((at, response), asked)| Invocation {
                    duration: *at - *asked,
                    response: response.clone(),
                })
                .collect(),
            stdout,
        })
    }
}

/// What the bootstrap did, as the Runtime API saw it.
#[derive(Default)]
struct Seen {
    /// Each `GET /next`'s arrival.
    nexts: Vec<Instant>,
    /// The process's usage at its first `GET /next`.
    init_usage: Option<ProcessUsage>,
    /// Each response's arrival and body.
    responses: Vec<(Instant, Value)>,
    /// An `/init/error` or `/invocation/{id}/error` body.
    error: Option<String>,
}

#[derive(Default)]
struct Shared {
    events: Mutex<VecDeque<Value>>,
    seen: Mutex<Seen>,
    /// The running bootstrap's process id, and its setting's signal.
    pid: Mutex<Option<u32>>,
    pid_known: Notify,
    changed: Notify,
}

impl Shared {
    fn reset(&self, events: Vec<Value>) {
        *self.events.lock().expect("events") = events.into();
        *self.seen.lock().expect("seen") = Seen::default();
        *self.pid.lock().expect("pid") = None;
    }

    fn set_pid(&self, pid: Option<u32>) {
        *self.pid.lock().expect("pid") = pid;
        self.pid_known.notify_waiters();
    }

    fn record(&self, f: impl FnOnce(&mut Seen)) {
        f(&mut self.seen.lock().expect("seen"));
        self.changed.notify_waiters();
    }
}

fn router(state: Arc<Shared>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/error",
            post(|state: State<Arc<Shared>>, body: String| error(state, body)),
        )
        .route("/2018-06-01/runtime/init/error", post(error))
        .route("/@connections/{id}", post(connections_post))
        // The limits are the handlers' own, Lambda's and API Gateway's, not axum's 2 MB.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// The running bootstrap's process id: `run` sets it once the spawn returns, which a loaded
/// machine may put after the bootstrap's first request. `None` only if it never comes.
async fn bootstrap_pid(state: &Shared) -> Option<u32> {
    let known = state.pid_known.notified();
    if let Some(pid) = *state.pid.lock().expect("pid") {
        return Some(pid);
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), known).await;
    *state.pid.lock().expect("pid")
}

async fn next(State(state): State<Arc<Shared>>) -> Response {
    let arrived = Instant::now();
    let event = state.events.lock().expect("events").pop_front();
    let first = state.seen.lock().expect("seen").nexts.is_empty();
    // Read while the bootstrap waits for this answer, so the usage is its init's alone.
    let usage = if first {
        bootstrap_pid(&state).await.and_then(ProcessUsage::of)
    } else {
        None
    };
    let mut count = 0;
    state.record(|seen| {
        seen.nexts.push(arrived);
        if first {
            seen.init_usage = usage;
        }
        count = seen.nexts.len();
    });
    let Some(event) = event else {
        // No more events: the bootstrap waits here until it is stopped, as a frozen one would.
        std::future::pending::<()>().await;
        unreachable!("pending never completes")
    };
    let header = |s: String| HeaderValue::from_str(&s).expect("an ASCII header");
    let mut headers = HeaderMap::new();
    headers.insert(
        "lambda-runtime-aws-request-id",
        header(format!("req-{count}")),
    );
    let deadline = SystemClock.now_ms() + 10_000;
    headers.insert("lambda-runtime-deadline-ms", header(deadline.to_string()));
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        HeaderValue::from_static("arn:aws:lambda:us-east-1:000000000000:function:natter"),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        HeaderValue::from_static("Root=1-00000000-000000000000000000000000;Sampled=0"),
    );
    (headers, event.to_string()).into_response()
}

async fn response(State(state): State<Arc<Shared>>, body: Bytes) -> Response {
    let arrived = Instant::now();
    if body.len() > LAMBDA_PAYLOAD_MAX_BYTES {
        // Lambda refuses the response and fails the invocation (`Function.ResponseSizeTooLarge`).
        let message = format!(
            "Response payload size ({} bytes) exceeded maximum allowed payload size \
             ({LAMBDA_PAYLOAD_MAX_BYTES} bytes).",
            body.len()
        );
        let refusal = json!({ "errorMessage": message, "errorType": "RequestEntityTooLarge" });
        state.record(|seen| seen.error = Some(format!("Function.ResponseSizeTooLarge: {message}")));
        return (StatusCode::PAYLOAD_TOO_LARGE, refusal.to_string()).into_response();
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    state.record(|seen| seen.responses.push((arrived, value)));
    StatusCode::ACCEPTED.into_response()
}

/// `POST @connections/{id}`: accepted, unless API Gateway would refuse it for its size.
async fn connections_post(body: Bytes) -> Response {
    if body.len() > WS_MESSAGE_MAX_BYTES {
        return crate::connections::payload_too_large();
    }
    StatusCode::OK.into_response()
}

async fn error(State(state): State<Arc<Shared>>, body: String) -> StatusCode {
    state.record(|seen| seen.error = Some(body));
    StatusCode::ACCEPTED
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Sends `method` `path` with `body` over a plain HTTP/1.1 connection; the status and the
    /// body.
    async fn request(address: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        // The server may answer and close before it has read a refused body.
        let _ = stream.write_all(body).await;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let status = answer[9..12].parse().unwrap();
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
        (status, body)
    }

    async fn post(address: &str, path: &str, body: &[u8]) -> (u16, String) {
        request(address, "POST", path, body).await
    }

    /// A JSON string of exactly `bytes` bytes.
    fn json_string(bytes: usize) -> Vec<u8> {
        format!("\"{}\"", "a".repeat(bytes - 2)).into_bytes()
    }

    const RESPONSE: &str = "/2018-06-01/runtime/invocation/req-1/response";

    #[tokio::test]
    async fn a_response_up_to_lambdas_limit_is_taken() {
        let api = RuntimeApi::start().await.unwrap();
        let (status, _) = post(
            api.address(),
            RESPONSE,
            &json_string(LAMBDA_PAYLOAD_MAX_BYTES),
        )
        .await;
        assert_eq!(status, 202);
        let seen = api.state.seen.lock().unwrap();
        assert_eq!(seen.error, None);
        assert_eq!(seen.responses.len(), 1);
        assert_eq!(
            seen.responses[0].1.as_str().map(str::len),
            Some(LAMBDA_PAYLOAD_MAX_BYTES - 2)
        );
    }

    #[tokio::test]
    async fn a_response_over_lambdas_limit_is_refused_and_fails_the_run() {
        let api = RuntimeApi::start().await.unwrap();
        let body = json_string(LAMBDA_PAYLOAD_MAX_BYTES + 1);
        let (status, answer) = post(api.address(), RESPONSE, &body).await;
        assert_eq!(status, 413);
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["errorType"], "RequestEntityTooLarge");
        let seen = api.state.seen.lock().unwrap();
        assert!(seen.responses.is_empty());
        let error = seen.error.as_deref().unwrap_or_default();
        assert!(
            error.starts_with("Function.ResponseSizeTooLarge"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_post_over_the_websocket_message_limit_is_refused() {
        let api = RuntimeApi::start().await.unwrap();
        let path = "/@connections/abc";
        let (status, _) = post(api.address(), path, &vec![b'a'; WS_MESSAGE_MAX_BYTES]).await;
        assert_eq!(status, 200);
        let (status, answer) =
            post(api.address(), path, &vec![b'a'; WS_MESSAGE_MAX_BYTES + 1]).await;
        assert_eq!(status, 413);
        assert!(
            answer.contains(&WS_MESSAGE_MAX_BYTES.to_string()),
            "{answer}"
        );
    }

    #[test]
    fn a_process_usage_counts_its_cpu_and_its_faults() {
        let before = ProcessUsage::of(std::process::id()).expect("this process's usage");
        // Touch fresh memory, then spin for 20 ms of CPU time. 64 MiB is over glibc's largest
        // mmap threshold, so it is a new mapping whatever the other tests freed; how many faults
        // it takes depends on the page size the kernel gives it (huge pages make it a few).
        let mut memory = vec![0u8; 64 << 20];
        for page in memory.chunks_mut(4096) {
            page[0] = 1;
        }
        let spun = std::time::Instant::now();
        let mut x = 0u64;
        while spun.elapsed() < Duration::from_millis(20) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let after = ProcessUsage::of(std::process::id()).expect("this process's usage");
        assert!(
            after.minor_faults > before.minor_faults,
            "{before:?} → {after:?} after touching 64 MiB ({} pages)",
            memory.iter().filter(|&&b| b == 1).count()
        );
        assert!(
            after.cpu >= before.cpu + Duration::from_millis(10),
            "{before:?} → {after:?} after 20 ms of spinning"
        );
    }

    #[test]
    fn a_gone_process_has_no_usage() {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("true runs");
        let pid = child.id();
        child.wait().expect("true exits");
        assert_eq!(ProcessUsage::of(pid), None);
    }

    #[tokio::test]
    async fn a_first_next_before_the_pid_is_known_waits_for_it() {
        let api = RuntimeApi::start().await.unwrap();
        api.state.reset(vec![json!({"n": 1})]);
        let address = api.address().to_string();
        let asked = tokio::spawn(async move {
            request(&address, "GET", "/2018-06-01/runtime/invocation/next", b"").await
        });
        // The request is in before the pid, as on a machine that delays the spawn's return.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!asked.is_finished(), "the first /next waits for the pid");
        api.state.set_pid(Some(std::process::id()));
        let (status, event) = asked.await.unwrap();
        assert_eq!((status, event.as_str()), (200, r#"{"n":1}"#));
        let seen = api.state.seen.lock().unwrap();
        assert!(
            seen.init_usage.is_some(),
            "the usage is read once the pid is known"
        );
    }
}
