//! The command line: `natter-local [--listen ADDR] [--dynamodb-endpoint URL] [--table NAME]
//! [--ws-idle-timeout SECONDS] [--ws-max-lifetime SECONDS]` and
//! `natter-local token --user ID [--role ROLE] [--ttl SECONDS]`.

use std::net::SocketAddr;
use std::time::Duration;

use natter::config::authorizer::CACHE_TTL_SECS;
use natter::config::aws::{WS_CONNECTION_MAX_SECS, WS_IDLE_TIMEOUT_SECS};
use natter::config::local::CONNECTIONS_LATENCY_MAX_MS;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";
pub const DEFAULT_TABLE: &str = "natter";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Serve(ServeOptions),
    Token {
        user: String,
        role: Option<String>,
        ttl_secs: u64,
    },
    Help,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub dynamodb_endpoint: Option<String>,
    pub table: String,
    /// A WebSocket connection without a client frame for this long is closed with 1001
    /// (API Gateway's 10 minutes unless `--ws-idle-timeout` shortens it).
    pub ws_idle_timeout: Duration,
    /// Every WebSocket connection is closed with 1001 this long after it connected (API
    /// Gateway's 2 hours unless `--ws-max-lifetime` shortens it).
    pub ws_max_lifetime: Duration,
    /// How long a verdict of the HTTP authorizer is reused for the same `Authorization` value
    /// (`template.yaml`'s 60 s unless `--authorizer-cache-ttl` shortens it; 0 caches nothing).
    pub authorizer_cache_ttl: Duration,
    /// How long each `@connections` post waits before it is served (`--connections-latency-ms`,
    /// default none): AWS's network round trip, for the fan-out benchmark.
    pub connections_latency: Duration,
}

impl Default for ServeOptions {
    /// `natter-local` without arguments.
    fn default() -> Self {
        ServeOptions {
            listen: DEFAULT_LISTEN.parse().expect("the default listen address"),
            dynamodb_endpoint: None,
            table: DEFAULT_TABLE.to_string(),
            ws_idle_timeout: Duration::from_secs(WS_IDLE_TIMEOUT_SECS as u64),
            ws_max_lifetime: Duration::from_secs(WS_CONNECTION_MAX_SECS as u64),
            authorizer_cache_ttl: Duration::from_secs(CACHE_TTL_SECS),
            connections_latency: Duration::ZERO,
        }
    }
}

pub const USAGE: &str = "\
usage: natter-local [--listen 127.0.0.1:8787] [--dynamodb-endpoint URL] [--table NAME]
                    [--ws-idle-timeout SECONDS] [--ws-max-lifetime SECONDS]
                    [--authorizer-cache-ttl SECONDS] [--connections-latency-ms MS]
       natter-local token --user ID [--role ROLE] [--ttl SECONDS]

Runs natter on localhost with the same handlers as the Lambda functions: the HTTP API under
/v1, the WebSocket API at /ws?token=..., and the management API at /@connections/{id}.
Storage is in memory unless --dynamodb-endpoint names a DynamoDB endpoint (moto, DynamoDB
Local or AWS); the table is created there when missing, and its stream drives the pushes.
It enforces API Gateway's limits: WebSocket messages of at most 128 KiB either way (a bigger
client message closes the connection with 1009), a connection is closed with 1001 after
--ws-idle-timeout seconds without a client frame (default and most 600) and
--ws-max-lifetime seconds after it connected (default and most 7200), and a client whose
unwritten frames pass 1 MiB is closed with 1008; HTTP responses over 6 MB answer 502.
The HTTP authorizer's verdicts are cached per Authorization value for
--authorizer-cache-ttl seconds (default and most 60, 0 for none), and a request without the
header is answered 401 {\"message\":\"Unauthorized\"}, as API Gateway does.
--connections-latency-ms delays every @connections post by that much (0 to 10000, default 0),
as AWS's network would.
Environment: NATTER_SIGNING_SECRET, NATTER_SECRET_KEY (dev values when unset),
NATTER_SIGNING_KID (the signing key's id in every token's kid; default k1),
NATTER_SIGNING_SECRET_PREVIOUS and NATTER_SIGNING_KID_PREVIOUS (a second key that still
verifies, as during a rotation), RETENTION_DAYS, RETENTION_SECONDS, NATTER_ROLES, FANOUT_CONCURRENCY,
NATTER_LOCAL_DEAD_PEER_SECS.";

/// A flag's value as whole seconds, 1 up to `max` (the AWS value the flag may only shorten).
fn seconds(name: &str, value: Option<String>, max: i64) -> Result<Duration, String> {
    let max = max as u64;
    match value {
        None => Ok(Duration::from_secs(max)),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|s| (1..=max).contains(s))
            .map(Duration::from_secs)
            .ok_or_else(|| {
                format!("{name} must be a whole number of seconds from 1 to {max}, got {v:?}")
            }),
    }
}

pub fn parse(args: &[String]) -> Result<Command, String> {
    let mut args = args.iter();
    let mut rest: Vec<&String> = Vec::new();
    let token = match args.next() {
        Some(first) if first == "token" => true,
        Some(first) => {
            rest.push(first);
            false
        }
        None => false,
    };
    rest.extend(args);
    let mut values = std::collections::HashMap::new();
    let mut it = rest.into_iter();
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(Command::Help);
        }
        let allowed: &[&str] = if token {
            &["--user", "--role", "--ttl"]
        } else {
            &[
                "--listen",
                "--dynamodb-endpoint",
                "--table",
                "--ws-idle-timeout",
                "--ws-max-lifetime",
                "--authorizer-cache-ttl",
                "--connections-latency-ms",
            ]
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag.as_str(), None),
        };
        if !allowed.contains(&name) {
            return Err(format!("unknown argument {flag:?}"));
        }
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))?,
        };
        values.insert(name.to_string(), value);
    }
    if token {
        let user = values.remove("--user").ok_or("token needs --user ID")?;
        let ttl_secs =
            match values.remove("--ttl") {
                None => natter::config::local::DEV_TOKEN_TTL_SECS,
                Some(v) => v.parse::<u64>().ok().filter(|t| *t > 0).ok_or_else(|| {
                    format!("--ttl must be a positive number of seconds, got {v:?}")
                })?,
            };
        return Ok(Command::Token {
            user,
            role: values.remove("--role"),
            ttl_secs,
        });
    }
    let listen = values
        .remove("--listen")
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let listen: SocketAddr = listen
        .parse()
        .map_err(|_| format!("--listen must be HOST:PORT, got {listen:?}"))?;
    if !listen.ip().is_loopback() {
        return Err(format!(
            "--listen must be a loopback address (127.0.0.1 or [::1]), got {listen}"
        ));
    }
    Ok(Command::Serve(ServeOptions {
        listen,
        dynamodb_endpoint: values.remove("--dynamodb-endpoint"),
        table: values
            .remove("--table")
            .unwrap_or_else(|| DEFAULT_TABLE.to_string()),
        ws_idle_timeout: seconds(
            "--ws-idle-timeout",
            values.remove("--ws-idle-timeout"),
            WS_IDLE_TIMEOUT_SECS,
        )?,
        ws_max_lifetime: seconds(
            "--ws-max-lifetime",
            values.remove("--ws-max-lifetime"),
            WS_CONNECTION_MAX_SECS,
        )?,
        authorizer_cache_ttl: Duration::from_secs(up_to(
            "--authorizer-cache-ttl",
            "seconds",
            values.remove("--authorizer-cache-ttl"),
            CACHE_TTL_SECS,
            CACHE_TTL_SECS,
        )?),
        connections_latency: Duration::from_millis(up_to(
            "--connections-latency-ms",
            "milliseconds",
            values.remove("--connections-latency-ms"),
            0,
            CONNECTIONS_LATENCY_MAX_MS,
        )?),
    }))
}

/// A flag's value as a whole number from 0 up to `max`, `default` when absent.
fn up_to(
    name: &str,
    unit: &str,
    value: Option<String>,
    default: u64,
    max: u64,
) -> Result<u64, String> {
    match value {
        None => Ok(default),
        Some(v) => v.parse::<u64>().ok().filter(|n| *n <= max).ok_or_else(|| {
            format!("{name} must be a whole number of {unit} from 0 to {max}, got {v:?}")
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn parses_serve_and_token() {
        assert_eq!(
            parse(&args("")).unwrap(),
            Command::Serve(ServeOptions {
                listen: DEFAULT_LISTEN.parse().unwrap(),
                dynamodb_endpoint: None,
                table: "natter".into(),
                ws_idle_timeout: Duration::from_secs(600),
                ws_max_lifetime: Duration::from_secs(7200),
                authorizer_cache_ttl: Duration::from_secs(60),
                connections_latency: Duration::ZERO,
            })
        );
        assert_eq!(
            parse(&args("")).unwrap(),
            Command::Serve(ServeOptions::default())
        );
        assert_eq!(
            parse(&args(
                "--listen 127.0.0.1:0 --dynamodb-endpoint http://127.0.0.1:5000 --table t \
                 --ws-idle-timeout 2 --ws-max-lifetime=5 --authorizer-cache-ttl 0 \
                 --connections-latency-ms 20"
            ))
            .unwrap(),
            Command::Serve(ServeOptions {
                listen: "127.0.0.1:0".parse().unwrap(),
                dynamodb_endpoint: Some("http://127.0.0.1:5000".into()),
                table: "t".into(),
                ws_idle_timeout: Duration::from_secs(2),
                ws_max_lifetime: Duration::from_secs(5),
                authorizer_cache_ttl: Duration::ZERO,
                connections_latency: Duration::from_millis(20),
            })
        );
        assert_eq!(
            parse(&args("--ws-idle-timeout 600 --ws-max-lifetime 7200")).unwrap(),
            Command::Serve(ServeOptions::default())
        );
        for bad in [
            "--ws-idle-timeout 0",
            "--ws-idle-timeout 601",
            "--ws-idle-timeout soon",
            "--ws-idle-timeout -1",
            "--ws-max-lifetime 0",
            "--ws-max-lifetime 7201",
            "--ws-max-lifetime 1.5",
            "--ws-max-lifetime",
            "--authorizer-cache-ttl 61",
            "--authorizer-cache-ttl -1",
            "--connections-latency-ms 10001",
            "--connections-latency-ms 1.5",
            "token --user a --ws-idle-timeout 5",
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad}");
        }
        assert_eq!(
            parse(&args("token --user kbadk:github --role moderator --ttl 60")).unwrap(),
            Command::Token {
                user: "kbadk:github".into(),
                role: Some("moderator".into()),
                ttl_secs: 60
            }
        );
        assert!(parse(&args("--listen 0.0.0.0:80")).is_err());
        assert!(parse(&args("--bogus 1")).is_err());
        assert!(parse(&args("token")).is_err());
        assert!(parse(&args("token --user a --ttl 0")).is_err());
        assert_eq!(parse(&args("--help")).unwrap(), Command::Help);
    }
}
