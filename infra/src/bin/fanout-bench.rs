//! Fan-out benchmark (not a test): one message pushed to N WebSocket clients through the local
//! gateway.
//!
//! Starts the gateway in this process on 127.0.0.1 (embedded store, the same router, handlers
//! and change-feed fan-out as `natter-local`, posting through the real management API client to
//! the gateway's own `@connections`), opens N clients (default 1,000, each its own user and
//! connection) subscribed to one conversation, then sends messages one at a time and measures,
//! for each, the time from the send until each client has the push: the time until the last
//! client has it, and the p50/p99 over clients.
//!
//! `fanout-bench [--clients N] [--rounds R] [--concurrency C] [--connections-latency-ms MS]`
//! (N ≤ 5,000, R ≤ 20; C is the fan-out's concurrency, default `FANOUT_CONCURRENCY` or
//! `config::fanout::DEFAULT_CONCURRENCY`; MS delays every `@connections` post by that much, as
//! AWS's network round trip would, and the report puts the last delivery beside the bound
//! `N × MS / C`). Run it with `cargo run --release -p natter-local --bin fanout-bench`.
//!
//! Each client is two sockets in this process (its own and the gateway's end), plus one per
//! fan-out post in flight: 5,000 clients need about 10,100 file descriptors, and the bench
//! says so and stops when `ulimit -n` is lower.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use natter::auth::Identity;
use natter::config::Config;
use natter::domain::{PutConversation, SendMessage};
use natter::fanout::FanOut;
use natter_local::cli::ServeOptions;
use natter_local::server::{self, ChangeSource};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

const CONVERSATION: &str = "bench";
/// Whole-run limit: the benchmark stops (and fails) past it.
const RUN_LIMIT: Duration = Duration::from_secs(600);
/// How long one message may take to reach every client.
const ROUND_LIMIT: Duration = Duration::from_secs(60);

struct Options {
    clients: usize,
    rounds: usize,
    concurrency: usize,
    latency_ms: u64,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        clients: 1000,
        rounds: 5,
        concurrency: natter::fanout::concurrency_from_env()?,
        latency_ms: 0,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number: usize = value
            .parse()
            .map_err(|_| format!("{flag} needs a whole number, got {value:?}"))?;
        match flag.as_str() {
            "--clients" if (1..=5000).contains(&number) => options.clients = number,
            "--rounds" if (1..=20).contains(&number) => options.rounds = number,
            "--concurrency" if (1..=natter::config::fanout::MAX_CONCURRENCY).contains(&number) => {
                options.concurrency = number
            }
            "--connections-latency-ms"
                if number as u64 <= natter::config::local::CONNECTIONS_LATENCY_MAX_MS =>
            {
                options.latency_ms = number as u64
            }
            _ => return Err(format!("bad argument {flag} {value}")),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() {
    let options = match parse_args() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("fanout-bench: {e}\nusage: fanout-bench [--clients N] [--rounds R] [--concurrency C] [--connections-latency-ms MS]");
            std::process::exit(2);
        }
    };
    match tokio::time::timeout(RUN_LIMIT, run(options)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            eprintln!("fanout-bench: {e}");
            std::process::exit(1);
        }
        Err(_) => {
            eprintln!("fanout-bench: gave up after {RUN_LIMIT:?}");
            std::process::exit(1);
        }
    }
}

async fn run(options: Options) -> Result<(), String> {
    // ---- the gateway, in process ----
    let serve = ServeOptions {
        listen: "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?,
        table: "bench".into(),
        ..ServeOptions::default()
    };
    let storage = server::storage(&serve, Config::from_env()?).await?;
    let (auth, _) = server::auth_from_env()?;
    let mut state = server::app_state(&storage.services, auth);
    state.connections_latency = Duration::from_millis(options.latency_ms);
    check_open_files(options.clients)?;
    let put_conversation: PutConversation = storage.services.build();
    let send_message: SendMessage = storage.services.build();
    let listener = tokio::net::TcpListener::bind(serve.listen)
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let pusher = Arc::new(server::local_pusher(addr));
    let fan_out = Arc::new(FanOut::new(&storage.services, pusher, options.concurrency));
    match storage.changes {
        ChangeSource::Memory(feed) => {
            tokio::spawn(natter_local::streams::run_change_feed(feed, fan_out));
        }
        ChangeSource::Stream(_) => return Err("the benchmark uses the embedded store".into()),
    }
    let secret = state.auth.signing_key().clone();
    let now_secs = state.now_secs();
    let router = server::router(state);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });

    // ---- the conversation and its participants ----
    let users: Vec<String> = (0..options.clients)
        .map(|i| format!("user{i:05}"))
        .collect();
    for chunk in users.chunks(
        storage
            .services
            .config()
            .limits
            .max_participants_per_request,
    ) {
        let body =
            serde_json::from_value(json!({ "participants": chunk })).map_err(|e| e.to_string())?;
        put_conversation
            .run(&Identity::Secret, CONVERSATION, body)
            .await
            .map_err(|e| e.to_string())?;
    }

    // ---- the clients ----
    // The least time the fan-out can take: N posts, C at a time, each taking the latency.
    let bound_ms = options.clients as f64 * options.latency_ms as f64 / options.concurrency as f64;
    println!(
        "fanout-bench: {} clients, fan-out concurrency {}, @connections latency {} ms \
         (bound N × latency / concurrency = {bound_ms:.1} ms), gateway on {addr}",
        options.clients, options.concurrency, options.latency_ms
    );
    let started = Instant::now();
    let (arrivals_tx, mut arrivals) = mpsc::unbounded_channel::<(usize, String, Instant)>();
    let mut ready = futures::stream::iter(users.iter().enumerate().map(|(i, user)| {
        let token = natter::auth::issue_user_token(user, None, 3600, now_secs, &secret);
        let tx = arrivals_tx.clone();
        async move {
            let token = token.map_err(|e| e.to_string())?;
            open_client(addr, i, &token, tx).await
        }
    }))
    .buffer_unordered(64);
    let mut connected = 0;
    while let Some(result) = ready.next().await {
        result?;
        connected += 1;
    }
    drop(ready);
    println!(
        "fanout-bench: {connected} clients connected and subscribed in {:.2} s",
        started.elapsed().as_secs_f64()
    );

    // ---- the rounds ----
    let sender = Identity::User {
        user_id: users[0].clone(),
        role: None,
    };
    let mut results = Vec::new();
    for round in 1..=options.rounds {
        let text = format!("round {round}");
        let body = serde_json::from_value(json!({ "text": text })).map_err(|e| e.to_string())?;
        let sent_at = Instant::now();
        let cpu_before = process_cpu();
        let message = send_message
            .run(&sender, CONVERSATION, body)
            .await
            .map_err(|e| e.to_string())?;
        let mut latencies = Vec::with_capacity(options.clients);
        let deadline = tokio::time::Instant::now() + ROUND_LIMIT;
        while latencies.len() < options.clients {
            match tokio::time::timeout_at(deadline, arrivals.recv()).await {
                Ok(Some((_, id, at))) if id == message.id => {
                    latencies.push(at.saturating_duration_since(sent_at))
                }
                Ok(Some(_)) => {}
                Ok(None) => return Err("the clients stopped".into()),
                Err(_) => {
                    return Err(format!(
                    "round {round}: only {} of {} clients got the message within {ROUND_LIMIT:?}",
                    latencies.len(),
                    options.clients
                ))
                }
            }
        }
        let cpu = process_cpu()
            .zip(cpu_before)
            .map(|(after, before)| after - before);
        latencies.sort();
        let result = Round::of(&latencies, cpu);
        println!(
            "round {round}: last client after {:.1} ms{}; per client p50 {:.1} ms, p99 {:.1} ms{}",
            result.last_ms,
            ratio(result.last_ms, bound_ms),
            result.p50_ms,
            result.p99_ms,
            cpu_per_post(result.cpu_ms, options.clients)
        );
        results.push(result);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let median = |f: fn(&Round) -> f64| {
        let mut v: Vec<f64> = results.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let cpu_ms = results
        .iter()
        .all(|r| r.cpu_ms.is_some())
        .then(|| median(|r| r.cpu_ms.unwrap_or_default()));
    println!(
        "median of {} rounds: last client {:.1} ms{}, p50 {:.1} ms, p99 {:.1} ms{}",
        results.len(),
        median(|r| r.last_ms),
        ratio(median(|r| r.last_ms), bound_ms),
        median(|r| r.p50_ms),
        median(|r| r.p99_ms),
        cpu_per_post(cpu_ms, options.clients)
    );
    Ok(())
}

/// " (1.08× the bound)", or nothing without a latency.
fn ratio(ms: f64, bound_ms: f64) -> String {
    if bound_ms > 0.0 {
        format!(" ({:.2}× the bound)", ms / bound_ms)
    } else {
        String::new()
    }
}

/// The CPU time this process has used, all threads (Linux's `/proc/self/stat`: user and system
/// time, in clock ticks of 10 ms); `None` where it cannot be read. Everything of a round runs in
/// this one process (the fan-out, the gateway and the clients), so a round's CPU is the whole
/// pipeline's, and it shows where the CPU, not the latency, sets the pace.
fn process_cpu() -> Option<Duration> {
    const TICKS_PER_SECOND: u64 = 100;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}

/// "; CPU 2120 ms, 424 µs per post", or nothing without a CPU reading.
fn cpu_per_post(cpu_ms: Option<f64>, posts: usize) -> String {
    match cpu_ms {
        Some(ms) => format!(
            "; CPU {ms:.0} ms, {:.0} µs per post",
            ms * 1000.0 / posts.max(1) as f64
        ),
        None => String::new(),
    }
}

/// The open-files limit must hold every client's two sockets and the posts in flight.
fn check_open_files(clients: usize) -> Result<(), String> {
    let needed = 2 * clients + natter::config::fanout::MAX_CONCURRENCY + 64;
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<usize>().ok());
    match soft {
        Some(soft) if soft < needed => Err(format!(
            "{clients} clients need about {needed} open files, and `ulimit -n` is {soft}: \
             raise it for this shell (ulimit -n {needed}) and run again"
        )),
        _ => Ok(()),
    }
}

struct Round {
    last_ms: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// The process's CPU time from the send to the last delivery.
    cpu_ms: Option<f64>,
}

impl Round {
    fn of(sorted: &[Duration], cpu: Option<Duration>) -> Round {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let at = |q: f64| {
            let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
            ms(sorted[i])
        };
        Round {
            last_ms: sorted.last().map_or(0.0, |d| ms(*d)),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            cpu_ms: cpu.map(ms),
        }
    }
}

/// Connects one client, subscribes it, and spawns its reader, which reports each pushed
/// message's arrival.
async fn open_client(
    addr: std::net::SocketAddr,
    index: usize,
    token: &str,
    arrivals: mpsc::UnboundedSender<(usize, String, Instant)>,
) -> Result<(), String> {
    let url = format!("ws://{addr}/ws?token={token}");
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .map_err(|e| format!("client {index}: {e}"))?;
    let subscribe = json!({
        "action": "subscribe",
        "subscriptionId": "s",
        "conversationId": CONVERSATION,
        "limit": 1,
    });
    ws.send(Message::Text(subscribe.to_string().into()))
        .await
        .map_err(|e| format!("client {index}: {e}"))?;
    let reply = tokio::time::timeout(Duration::from_secs(30), ws.next())
        .await
        .map_err(|_| format!("client {index}: no subscribe reply"))?;
    let reply: Value = match reply {
        Some(Ok(Message::Text(text))) => serde_json::from_str(text.as_str()).unwrap_or_default(),
        other => return Err(format!("client {index}: unexpected {other:?}")),
    };
    if reply["state"] != "active" {
        return Err(format!("client {index}: subscribe failed: {reply}"));
    }
    tokio::spawn(async move {
        while let Some(Ok(message)) = ws.next().await {
            let at = Instant::now();
            if let Message::Text(text) = message {
                let frame: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                if frame["type"] == "message.created" {
                    let id = frame["message"]["id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    if arrivals.send((index, id, at)).is_err() {
                        break;
                    }
                }
            }
        }
    });
    Ok(())
}
