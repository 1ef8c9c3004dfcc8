//! The end-to-end harness: starts the built `natter-local` binary on a free loopback port and
//! talks to it over real HTTP.
//!
//! Every test starts its own gateway (in-memory store, or a fresh DynamoDB table at
//! `NATTER_TEST_DYNAMODB_ENDPOINT`), so tests share nothing. The binary must be built first:
//! `cargo build -p natter-local` (`scripts/test` builds every binary before testing).
//!
//! When a test's gateway stops (the `Gateway` is dropped), the harness asks it
//! (`GET /@local/stats`) whether it refused anything natter sent for its size: a WebSocket reply
//! or `@connections` post over 128 KiB, or an HTTP response over Lambda's 6 MB. Each is a bug
//! that would fail on AWS, so the test fails unless it said it expects them
//! (`Gateway::expect_oversized_frames`): every end-to-end test checks that nothing was oversized.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

/// The signing secret every test gateway uses for user tokens.
pub const SIGNING_SECRET: &str = "natter-e2e-signing-secret-0123456789abcdef";
/// The key id of [`SIGNING_SECRET`] (`NATTER_SIGNING_KID`), which every user token names.
pub const SIGNING_KID: &str = "e2e-1";
/// The secret key every test gateway accepts.
pub const SECRET_KEY: &str = "natter-e2e-secret-key-0123456789abcdef";

/// How long a gateway may take to print its `listening on` line.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one HTTP request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Which storage the gateway under test uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// The embedded in-memory store.
    Memory,
    /// The DynamoDB store, on a fresh table at `NATTER_TEST_DYNAMODB_ENDPOINT` (moto).
    Dynamo,
}

/// How to start a gateway.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    pub store: Store,
    /// Extra environment variables for the gateway process.
    pub env: Vec<(String, String)>,
    /// Environment variables the gateway process must not have (e.g. the secrets, so that it
    /// runs with its dev values).
    pub env_removed: Vec<String>,
    /// Extra command-line arguments (after `--listen`, and the store's).
    pub args: Vec<String>,
}

impl GatewayOptions {
    pub fn new(store: Store) -> Self {
        GatewayOptions {
            store,
            env: Vec::new(),
            env_removed: Vec::new(),
            args: Vec::new(),
        }
    }

    /// Adds a command-line flag with its value, e.g. `.arg("--ws-idle-timeout", "2")`.
    pub fn arg(mut self, flag: &str, value: &str) -> Self {
        self.args.push(flag.to_string());
        self.args.push(value.to_string());
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    pub fn without_env(mut self, name: &str) -> Self {
        self.env_removed.push(name.to_string());
        self
    }
}

/// The path of the built `natter-local` binary; panics with a hint when it is missing.
pub fn binary_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target
        .join("debug")
        .join(format!("natter-local{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        panic!(
            "{} is missing: run `cargo build -p natter-local` first (scripts/test does)",
            path.display()
        );
    }
    path
}

/// A `natter-local` command with the test secrets set and nothing inherited that could change
/// its behaviour (log level aside).
pub fn command() -> Command {
    let mut cmd = Command::new(binary_path());
    for name in [
        "NATTER_ROLES",
        "RETENTION_DAYS",
        "RETENTION_SECONDS",
        "RECORD_RETENTION_DAYS",
    ] {
        cmd.env_remove(name);
    }
    for name in [
        "NATTER_SIGNING_SECRET_PREVIOUS",
        "NATTER_SIGNING_KID_PREVIOUS",
    ] {
        cmd.env_remove(name);
    }
    cmd.env("NATTER_SIGNING_SECRET", SIGNING_SECRET)
        .env("NATTER_SIGNING_KID", SIGNING_KID)
        .env("NATTER_SECRET_KEY", SECRET_KEY)
        .stdin(Stdio::null());
    cmd
}

/// Output lines of a child process, as they arrive.
type Captured = Arc<Mutex<String>>;

fn drain<R: Read + Send + 'static>(
    reader: R,
    captured: Captured,
    lines: Option<mpsc::Sender<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let reader = BufReader::new(reader);
        for line in reader.lines() {
            let Ok(line) = line else { break };
            if let Ok(mut out) = captured.lock() {
                out.push_str(&line);
                out.push('\n');
            }
            if let Some(tx) = &lines {
                // The receiver goes away once the gateway is up; keep draining regardless.
                let _ = tx.send(line);
            }
        }
    })
}

/// A running `natter-local`, killed when dropped.
pub struct Gateway {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base_url: String,
    /// The table name when the store is DynamoDB.
    pub table: Option<String>,
    stdout: Captured,
    stderr: Captured,
    readers: Vec<std::thread::JoinHandle<()>>,
    client: reqwest::Client,
    /// How many oversized frames the test provokes on purpose (checked when it stops).
    expected_oversized_frames: u64,
}

fn unique_suffix() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        nanos % 1_000_000_000_000
    )
}

impl Gateway {
    /// Starts a gateway and waits until it listens. Panics (never skips) when it cannot start,
    /// including when a DynamoDB gateway is asked for without `NATTER_TEST_DYNAMODB_ENDPOINT`.
    pub fn start(options: GatewayOptions) -> Gateway {
        let mut cmd = command();
        cmd.args(["--listen", "127.0.0.1:0"]);
        let mut table = None;
        if options.store == Store::Dynamo {
            let endpoint = std::env::var("NATTER_TEST_DYNAMODB_ENDPOINT")
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| {
                    panic!(
                        "NATTER_TEST_DYNAMODB_ENDPOINT is not set: the DynamoDB variants of the \
                         end-to-end tests need a DynamoDB endpoint such as moto_server. Run \
                         `scripts/test` (it starts moto), or start `moto_server -H 127.0.0.1 -p \
                         PORT` and set NATTER_TEST_DYNAMODB_ENDPOINT=http://127.0.0.1:PORT; \
                         `cargo test -p natter-e2e memory` runs only the in-memory variants"
                    )
                });
            let name = format!("e2e-{}", unique_suffix());
            cmd.args(["--dynamodb-endpoint", &endpoint, "--table", &name])
                .env("AWS_ACCESS_KEY_ID", "test")
                .env("AWS_SECRET_ACCESS_KEY", "test")
                .env("AWS_REGION", "us-east-1")
                .env("AWS_DEFAULT_REGION", "us-east-1")
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .env_remove("AWS_PROFILE")
                .env_remove("AWS_SESSION_TOKEN");
            table = Some(name);
        }
        cmd.args(&options.args);
        for (name, value) in &options.env {
            cmd.env(name, value);
        }
        for name in &options.env_removed {
            cmd.env_remove(name);
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", binary_path().display()));
        let stdout: Captured = Arc::default();
        let stderr: Captured = Arc::default();
        let (tx, rx) = mpsc::channel();
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(drain(out, stdout.clone(), Some(tx)));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(drain(err, stderr.clone(), None));
        }
        let deadline = Instant::now() + START_TIMEOUT;
        let base_url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.trim().strip_prefix("listening on ") {
                        break addr.trim().to_string();
                    }
                }
                Err(e) => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    for reader in readers {
                        let _ = reader.join();
                    }
                    panic!(
                        "natter-local did not print `listening on http://ADDR` ({}; exit \
                         status {status:?})\n--- stdout ---\n{}\n--- stderr ---\n{}",
                        match e {
                            mpsc::RecvTimeoutError::Timeout => "timed out after 60 s",
                            mpsc::RecvTimeoutError::Disconnected => "its stdout closed",
                        },
                        stdout.lock().map(|s| s.clone()).unwrap_or_default(),
                        stderr.lock().map(|s| s.clone()).unwrap_or_default(),
                    );
                }
            }
        };
        assert!(
            base_url.starts_with("http://127.0.0.1:"),
            "unexpected listen address {base_url}"
        );
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("reqwest client");
        Gateway {
            child,
            base_url,
            table,
            stdout,
            stderr,
            readers,
            client,
            expected_oversized_frames: 0,
        }
    }

    /// Says that the test makes natter-local refuse `count` oversized frames on purpose (posts
    /// over 128 KiB), so that the check when the gateway stops expects exactly that many.
    pub fn expect_oversized_frames(&mut self, count: u64) {
        self.expected_oversized_frames = count;
    }

    /// `GET /@local/stats`: the gateway's counters (oversized frames and responses, closes for
    /// breaking a limit, open connections).
    pub async fn stats(&self) -> Value {
        let url = format!("{}/@local/stats", self.base_url);
        let response = self
            .client
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}\n{}", self.output()));
        assert_eq!(response.status().as_u16(), 200, "GET {url}");
        response.json().await.expect("stats JSON")
    }

    /// `GET /@local/stats` without an async runtime (for `drop`).
    fn stats_blocking(&self) -> Result<Value, String> {
        use std::io::Write;
        let addr = self.base_url.trim_start_matches("http://");
        let mut stream =
            std::net::TcpStream::connect(addr).map_err(|e| format!("connecting: {e}"))?;
        let timeout = Some(Duration::from_secs(10));
        stream
            .set_read_timeout(timeout)
            .map_err(|e| e.to_string())?;
        stream
            .set_write_timeout(timeout)
            .map_err(|e| e.to_string())?;
        write!(
            stream,
            "GET /@local/stats HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .map_err(|e| format!("sending: {e}"))?;
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .map_err(|e| format!("reading: {e}"))?;
        let (head, body) = response
            .split_once("\r\n\r\n")
            .ok_or_else(|| format!("not an HTTP response: {response:?}"))?;
        if !head.starts_with("HTTP/1.1 200") {
            return Err(format!("answered {head:?}"));
        }
        serde_json::from_str(body).map_err(|e| format!("{e}: {body:?}"))
    }

    /// The check when the gateway stops: nothing natter sent was refused for its size.
    fn check_nothing_oversized(&mut self) {
        // A test that failed already, or a gateway that exited (a test stopped it), has
        // nothing more to say.
        if std::thread::panicking() || !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let stats = match self.stats_blocking() {
            Ok(stats) => stats,
            Err(e) => panic!("GET /@local/stats: {e}\n{}", self.output()),
        };
        let frames = stats["oversizedFrames"].as_u64();
        let responses = stats["oversizedResponses"].as_u64();
        if frames != Some(self.expected_oversized_frames) || responses != Some(0) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            for reader in self.readers.drain(..) {
                let _ = reader.join();
            }
            panic!(
                "natter-local refused oversized frames or responses (expected {} frames and \
                 no responses): {stats}\n{}",
                self.expected_oversized_frames,
                self.output()
            );
        }
    }

    /// Starts a gateway on `store` with no extra environment.
    pub fn on(store: Store) -> Gateway {
        Gateway::start(GatewayOptions::new(store))
    }

    /// The gateway's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the gateway printed so far, stdout then stderr.
    pub fn output(&self) -> String {
        format!(
            "--- stdout ---\n{}--- stderr ---\n{}",
            self.stdout.lock().map(|s| s.clone()).unwrap_or_default(),
            self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
        )
    }

    /// Waits for the process to exit on its own, at most `timeout`; `None` if it is still
    /// running. Once it has exited, the output readers are joined, so `output` is complete.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    for reader in self.readers.drain(..) {
                        let _ = reader.join();
                    }
                    return Some(status);
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => return None,
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1{path}", self.base_url)
    }

    /// Sends one request. `path` is relative to `/v1` and already percent-encoded; a `None`
    /// token sends no `Authorization` header.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut headers = Vec::new();
        let auth;
        if let Some(token) = token {
            auth = format!("Bearer {token}");
            headers.push(("authorization", auth.as_str()));
        }
        let bytes = match body {
            Some(body) => {
                headers.push(("content-type", "application/json"));
                serde_json::to_vec(body).expect("JSON body")
            }
            None => Vec::new(),
        };
        self.send_raw(method, path, &headers, bytes).await
    }

    /// Sends raw bytes with exactly the given headers; returns the status and the body as
    /// JSON (`Null` when empty, a JSON string when it is not JSON).
    pub async fn send_raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, Value) {
        let (status, text) = self.send_raw_text(method, path, headers, body).await;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// Sends raw bytes with exactly the given headers; returns the status and the body as the
    /// exact text the gateway sent (for checks that JSON parsing would blur, like big numbers).
    pub async fn send_raw_text(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, String) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
        let mut request = self.client.request(method.clone(), self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if !body.is_empty() {
            request = request.body(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e:?}\n{}", self.output()));
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: reading the body: {e:?}"));
        (status, text)
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.request("GET", path, Some(token), None).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.request("PUT", path, Some(token), Some(&body)).await
    }

    /// A PUT without a body (reactions).
    pub async fn put_empty(&self, path: &str, token: &str) -> (u16, Value) {
        self.request("PUT", path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.request("POST", path, Some(token), Some(&body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.request("PATCH", path, Some(token), Some(&body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> (u16, Value) {
        self.request("DELETE", path, Some(token), None).await
    }

    // ---- shortcuts for common set-up, each asserting success ----

    /// Creates (or updates) a conversation with the secret key and these `ReadWrite` participants.
    pub async fn conversation(&self, cid: &str, participants: &[&str]) -> Value {
        let (status, body) = self
            .put(
                &format!("/conversations/{}", enc(cid)),
                &secret_key(),
                serde_json::json!({ "participants": participants }),
            )
            .await;
        assert_eq!(status, 200, "creating conversation {cid}: {body}");
        body
    }

    /// Sets a participant's access with the secret key.
    pub async fn participant(&self, cid: &str, uid: &str, access: &str) {
        let (status, body) = self
            .put(
                &format!("/conversations/{}/participants/{}", enc(cid), enc(uid)),
                &secret_key(),
                serde_json::json!({ "access": access }),
            )
            .await;
        assert_eq!(status, 204, "setting {uid}'s access to {cid}: {body}");
    }

    /// Sends a text message with a user token; returns the snapshot.
    pub async fn send(&self, cid: &str, token: &str, text: &str) -> Value {
        let (status, body) = self
            .post(
                &format!("/conversations/{}/messages", enc(cid)),
                token,
                serde_json::json!({ "text": text }),
            )
            .await;
        assert_eq!(status, 201, "sending {text:?} to {cid}: {body}");
        body
    }

    /// Lists a conversation's messages (up to 100) and returns their ids, newest first.
    pub async fn message_ids(&self, cid: &str, token: &str) -> Vec<String> {
        let (status, body) = self
            .get(
                &format!("/conversations/{}/messages?limit=100", enc(cid)),
                token,
            )
            .await;
        assert_eq!(status, 200, "listing {cid}: {body}");
        body["data"]
            .as_array()
            .expect("data array")
            .iter()
            .map(|m| m["id"].as_str().expect("message id").to_string())
            .collect()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.check_nothing_oversized();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Characters left as they are in a path segment; everything else is percent-encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes one path segment (emoji, `:`, spaces, ...).
pub fn enc(segment: &str) -> String {
    utf8_percent_encode(segment, SEGMENT).to_string()
}

/// Waits a few milliseconds, so that what happens next gets a later timestamp than what came
/// before. Tests whose subject is not same-millisecond ordering use it between steps whose order
/// they check; `quick_sends_keep_their_order` and `quick_reactions_keep_their_order` check
/// the same-millisecond case on purpose.
pub async fn tick() {
    tokio::time::sleep(Duration::from_millis(3)).await;
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The secret key, as a bearer token.
pub fn secret_key() -> String {
    SECRET_KEY.to_string()
}

/// A user token valid for an hour.
pub fn user_token(user_id: &str) -> String {
    token(user_id, None, 3600)
}

/// A user token with a `role` claim, valid for an hour.
pub fn user_token_with_role(user_id: &str, role: &str) -> String {
    token(user_id, Some(role), 3600)
}

fn token(user_id: &str, role: Option<&str>, ttl_secs: u64) -> String {
    natter::auth::issue_user_token(user_id, role, ttl_secs, now_secs(), &signing_key())
        .expect("issue token")
}

/// The key every test gateway signs and verifies user tokens with.
pub fn signing_key() -> natter::auth::SigningKey {
    natter::auth::SigningKey::new(SIGNING_KID, SIGNING_SECRET)
}

/// Asserts an error response, `{"error": {"code", "message"}}` with this status and code, and
/// returns its message.
#[track_caller]
pub fn expect_error(response: &(u16, Value), status: u16, code: &str) -> String {
    let (got, body) = response;
    assert_eq!(
        (*got, body["error"]["code"].as_str()),
        (status, Some(code)),
        "expected {status} {code}, got {got} {body}"
    );
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("error without a message: {body}"));
    assert!(!message.is_empty(), "empty error message: {body}");
    message.to_string()
}

/// Asserts a status, showing the body when it differs; returns the body.
#[track_caller]
pub fn expect_status(response: (u16, Value), status: u16) -> Value {
    assert_eq!(response.0, status, "expected {status}, got {}", response.1);
    response.1
}

/// Defines a test body `async fn name(store: Store)` as two tests: `#[tokio::test] async fn
/// name_memory()` (in-memory store) and `name_dynamo()` (DynamoDB store on moto).
///
/// ```ignore
/// both_stores!(sends_messages: sends_messages_memory, sends_messages_dynamo);
/// async fn sends_messages(store: Store) { ... }
/// ```
#[macro_export]
macro_rules! both_stores {
    ($($name:ident: $memory:ident, $dynamo:ident);+ $(;)?) => {
        $(
            #[tokio::test]
            async fn $memory() {
                $name($crate::Store::Memory).await
            }

            #[tokio::test]
            async fn $dynamo() {
                $name($crate::Store::Dynamo).await
            }
        )+
    };
}

pub mod ws;
