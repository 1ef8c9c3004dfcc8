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
//! `fanout-bench [--clients N] [--rounds R] [--concurrency C] [--connections-latency-ms MS]
//! [--fan-out-memory-mb MB]`
//! (N ≤ 5,000, R ≤ 20; C is the fan-out's concurrency, default `FANOUT_CONCURRENCY` or
//! `config::fanout::DEFAULT_CONCURRENCY`; MS delays every `@connections` post by that much, as
//! AWS's network round trip would, and the report puts the last delivery beside the bound
//! `N × MS / C`); MB limits the fan-out's thread to the CPU share of a Lambda function of that
//! memory (`LambdaCpuShare`: a cgroup quota, where the machine lets the bench make one). Run it
//! with `cargo run --release -p natter-local --bin fanout-bench`.
//!
//! The fan-out (the change feed, its store reads and every post with its HTTP connections) runs
//! on a runtime and thread of its own, and each round reports that thread's CPU time beside the
//! whole process's: the fan-out's own work per post, apart from the simulation's (the gateway and
//! the clients), and what that work would take at a Lambda function's CPU share.
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
    /// Limit the fan-out's thread to the CPU share of a Lambda function of this memory.
    fan_out_memory_mb: Option<u32>,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        clients: 1000,
        rounds: 5,
        concurrency: natter::fanout::concurrency_from_env()?,
        latency_ms: 0,
        fan_out_memory_mb: None,
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
            // Lambda's memory settings.
            "--fan-out-memory-mb" if (128..=10240).contains(&number) => {
                options.fan_out_memory_mb = Some(number as u32)
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
            eprintln!("fanout-bench: {e}\nusage: fanout-bench [--clients N] [--rounds R] [--concurrency C] [--connections-latency-ms MS] [--fan-out-memory-mb MB]");
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
    let mut fan_out_thread = match storage.changes {
        ChangeSource::Memory(feed) => spawn_fan_out_thread(feed, fan_out)?,
        ChangeSource::Stream(_) => return Err("the benchmark uses the embedded store".into()),
    };
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
    // Each join told every participant's conversation lists: let the fan-out finish that.
    let settling = Instant::now();
    fan_out_thread.settle().await?;
    println!(
        "fanout-bench: the fan-out had the joins' changes done {:.2} s later",
        settling.elapsed().as_secs_f64()
    );
    // The limit starts with the rounds (the joins are the bench's set-up), and is removed when
    // the run ends, however it ends.
    let _cpu_share = match options.fan_out_memory_mb {
        Some(mb) => Some(LambdaCpuShare::limit(&fan_out_thread, mb)?),
        None => None,
    };
    let sender = Identity::User {
        user_id: users[0].clone(),
        role: None,
    };
    let mut results = Vec::new();
    // Round 0 warms up: the pusher opens its connections (up to the concurrency), which it then
    // keeps for the rounds that count, as a warm fan-out Lambda does.
    for round in 0..=options.rounds {
        fan_out_thread.settle().await?;
        let text = format!("round {round}");
        let body = serde_json::from_value(json!({ "text": text })).map_err(|e| e.to_string())?;
        let sent_at = Instant::now();
        let cpu_before = process_cpu();
        let fan_out_cpu_before = fan_out_thread.cpu();
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
        let fan_out_cpu = fan_out_thread
            .cpu()
            .zip(fan_out_cpu_before)
            .map(|(after, before)| after - before);
        latencies.sort();
        let result = Round::of(&latencies, cpu, fan_out_cpu);
        println!(
            "round {round}{}: last client after {:.1} ms{}; per client p50 {:.1} ms, p99 {:.1} ms{}{}",
            if round == 0 { " (warm-up, not counted)" } else { "" },
            result.last_ms,
            ratio(result.last_ms, bound_ms),
            result.p50_ms,
            result.p99_ms,
            cpu_per_post("CPU", result.cpu_ms, options.clients),
            cpu_per_post("the fan-out's own thread", result.fan_out_cpu_ms, options.clients),
        );
        // What follows the pushes: the lists' side of the message (every participant's
        // list subscriptions and activity item).
        let lists_started = Instant::now();
        let lists_cpu_before = fan_out_thread.cpu();
        fan_out_thread.settle().await?;
        if let Some(cpu) = fan_out_thread
            .cpu()
            .zip(lists_cpu_before)
            .map(|(after, before)| after - before)
        {
            println!(
                "  then the conversation lists' side: done {:.0} ms later, the fan-out's thread {:.0} ms",
                lists_started.elapsed().as_secs_f64() * 1000.0,
                cpu.as_secs_f64() * 1000.0
            );
        }
        if round > 0 {
            results.push(result);
        }
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
    let fan_out_cpu_ms = results
        .iter()
        .all(|r| r.fan_out_cpu_ms.is_some())
        .then(|| median(|r| r.fan_out_cpu_ms.unwrap_or_default()));
    println!(
        "median of {} rounds: last client {:.1} ms{}, p50 {:.1} ms, p99 {:.1} ms{}{}",
        results.len(),
        median(|r| r.last_ms),
        ratio(median(|r| r.last_ms), bound_ms),
        median(|r| r.p50_ms),
        median(|r| r.p99_ms),
        cpu_per_post("CPU", cpu_ms, options.clients),
        cpu_per_post("the fan-out's own thread", fan_out_cpu_ms, options.clients),
    );
    if let Some(ms) = fan_out_cpu_ms {
        println!("{}", on_lambda(ms, options.clients));
    }
    Ok(())
}

/// The fan-out's thread: the change feed, the fan-out's store reads and every post it makes
/// (signing, the HTTP client and the connections it spawns) run on a runtime of their own,
/// so that thread's CPU time is the fan-out's alone, apart from the gateway's and the clients'.
struct FanOutThread {
    /// `/proc/self/task/{tid}/stat` of the thread.
    stat: std::path::PathBuf,
    /// True while the fan-out has applied every change it received and none waits.
    idle: tokio::sync::watch::Receiver<bool>,
}

impl FanOutThread {
    /// The thread's CPU time (user and system) so far; `None` where it cannot be read.
    fn cpu(&self) -> Option<Duration> {
        cpu_of_stat(&std::fs::read_to_string(&self.stat).ok()?)
    }

    /// Waits until the fan-out has done all of its work: what a round starts with, and what
    /// follows a message's pushes (the conversation lists' side of the change).
    async fn settle(&mut self) -> Result<(), String> {
        // A change just written is taken from the feed within microseconds by this otherwise
        // idle thread; the pause makes sure it has been, so `idle` speaks of it.
        tokio::time::sleep(Duration::from_millis(50)).await;
        tokio::time::timeout(ROUND_LIMIT, self.idle.wait_for(|idle| *idle))
            .await
            .map_err(|_| format!("the fan-out was still busy after {ROUND_LIMIT:?}"))?
            .map_err(|_| "the fan-out's thread stopped".to_string())?;
        Ok(())
    }
}

/// Runs the change feed as `natter-local` does (`streams::run_change_feed`: batches in write
/// order), with a signal of when it is idle, on its own thread.
fn spawn_fan_out_thread(
    mut feed: natter::changes::ChangeReceiver,
    fan_out: Arc<FanOut>,
) -> Result<FanOutThread, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("the fan-out's runtime: {e}"))?;
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let (idle_tx, idle) = tokio::sync::watch::channel(true);
    std::thread::Builder::new()
        .name("fan-out".into())
        .spawn(move || {
            // "/proc/thread-self" links to "{pid}/task/{tid}".
            let _ = tid_tx.send(std::fs::read_link("/proc/thread-self"));
            runtime.block_on(async move {
                let mut batch = Vec::with_capacity(natter::config::stream::BATCH_SIZE);
                while feed
                    .recv_many(&mut batch, natter::config::stream::BATCH_SIZE)
                    .await
                    > 0
                {
                    idle_tx.send_replace(false);
                    if let Err((_, error)) = fan_out.apply_all(&batch).await {
                        eprintln!("fanout-bench: the fan-out failed: {error}");
                    }
                    batch.clear();
                    idle_tx.send_replace(feed.is_empty());
                }
            });
        })
        .map_err(|e| format!("the fan-out's thread: {e}"))?;
    let task = tid_rx
        .recv()
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("/proc/thread-self: {e}"))?;
    Ok(FanOutThread {
        stat: std::path::Path::new("/proc").join(task).join("stat"),
        idle,
    })
}

/// A CPU limit on the fan-out's thread: the share of one CPU that AWS Lambda gives a function
/// of a memory size (a full vCPU at 1,769 MB, in proportion below), enforced the way Lambda
/// enforces it, by a CFS bandwidth quota: a cgroup (v1 `cpu` controller) of that one thread.
/// It needs a writable `/sys/fs/cgroup/cpu` (root in a container), and says so when there is
/// none.
struct LambdaCpuShare {
    group: std::path::PathBuf,
    tid: String,
}

impl LambdaCpuShare {
    const ROOT: &'static str = "/sys/fs/cgroup/cpu";
    const PERIOD_US: u64 = 100_000;

    fn limit(thread: &FanOutThread, memory_mb: u32) -> Result<LambdaCpuShare, String> {
        let tid = thread
            .stat
            .parent()
            .and_then(|task| task.file_name())
            .map(|tid| tid.to_string_lossy().into_owned())
            .ok_or("the fan-out thread's id")?;
        let group = std::path::Path::new(Self::ROOT)
            .join(format!("natter-fanout-bench-{}", std::process::id()));
        let quota_us = Self::PERIOD_US * u64::from(memory_mb) / FULL_VCPU_MB as u64;
        let write = |file: &str, value: &str| {
            std::fs::write(group.join(file), value).map_err(|e| {
                format!(
                    "--fan-out-memory-mb needs a writable cgroup v1 cpu controller at {}: writing {file}: {e}",
                    Self::ROOT
                )
            })
        };
        std::fs::create_dir(&group).map_err(|e| {
            format!(
                "--fan-out-memory-mb needs a writable cgroup v1 cpu controller at {}: {e}",
                Self::ROOT
            )
        })?;
        let share = LambdaCpuShare {
            group: group.clone(),
            tid,
        };
        write("cpu.cfs_period_us", &Self::PERIOD_US.to_string())?;
        write("cpu.cfs_quota_us", &quota_us.to_string())?;
        write("tasks", &share.tid)?;
        println!(
            "fanout-bench: the fan-out's thread limited to {:.3} of a CPU, as a {memory_mb} MB Lambda function",
            quota_us as f64 / Self::PERIOD_US as f64
        );
        Ok(share)
    }
}

impl Drop for LambdaCpuShare {
    fn drop(&mut self) {
        // A cgroup with a task in it cannot be removed: the thread goes back to the root first.
        let _ = std::fs::write(std::path::Path::new(Self::ROOT).join("tasks"), &self.tid);
        let _ = std::fs::remove_dir(&self.group);
    }
}

/// The memory at which AWS Lambda gives a function one full vCPU (its documentation); below it,
/// CPU in proportion to memory.
const FULL_VCPU_MB: f64 = 1769.0;

/// What the fan-out's own CPU time would take on a Lambda function, whose CPU share grows with
/// its memory: a full vCPU at 1,769 MB (AWS Lambda's documentation), so at `m` MB a second of
/// CPU takes 1,769 / m seconds. Loopback posts carry no TLS, which AWS's would.
fn on_lambda(fan_out_cpu_ms: f64, posts: usize) -> String {
    let at = |mb: f64| {
        format!(
            "{mb:.0} MB {:.2} s",
            fan_out_cpu_ms * FULL_VCPU_MB / mb / 1000.0
        )
    };
    format!(
        "the fan-out's own CPU for {posts} posts, as a Lambda function's time at its memory's CPU share: {}, {}, {}, {}",
        at(256.0),
        at(512.0),
        at(1024.0),
        at(FULL_VCPU_MB)
    )
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
    cpu_of_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// User and system time from a `/proc/…/stat` line.
fn cpu_of_stat(stat: &str) -> Option<Duration> {
    const TICKS_PER_SECOND: u64 = 100;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}

/// "; CPU 2120 ms, 424 µs per post" (whose CPU: `of`), or nothing without a CPU reading.
fn cpu_per_post(of: &str, cpu_ms: Option<f64>, posts: usize) -> String {
    match cpu_ms {
        Some(ms) => format!(
            "; {of} {ms:.0} ms, {:.0} µs per post",
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
    /// The fan-out thread's part of it.
    fan_out_cpu_ms: Option<f64>,
}

impl Round {
    fn of(sorted: &[Duration], cpu: Option<Duration>, fan_out_cpu: Option<Duration>) -> Round {
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
            fan_out_cpu_ms: fan_out_cpu.map(ms),
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
