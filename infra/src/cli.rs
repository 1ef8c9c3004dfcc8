//! The command line: `natter-local [--listen ADDR] [--dynamodb-endpoint URL] [--table NAME]`
//! and `natter-local token --user ID [--role ROLE] [--ttl SECONDS]`.

use std::net::SocketAddr;

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
}

pub const USAGE: &str = "\
usage: natter-local [--listen 127.0.0.1:8787] [--dynamodb-endpoint URL] [--table NAME]
       natter-local token --user ID [--role ROLE] [--ttl SECONDS]

Runs natter on localhost with the same handlers as the Lambda functions: the HTTP API under
/v1, the WebSocket API at /ws?token=..., and the management API at /@connections/{id}.
Storage is in memory unless --dynamodb-endpoint names a DynamoDB endpoint (moto, DynamoDB
Local or AWS); the table is created there when missing, and its stream drives the pushes.
Environment: NATTER_SIGNING_SECRET, NATTER_SECRET_KEY (dev values when unset),
RETENTION_DAYS, RETENTION_SECONDS, NATTER_ROLES, FANOUT_CONCURRENCY.";

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
            &["--listen", "--dynamodb-endpoint", "--table"]
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
    }))
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
                table: "natter".into()
            })
        );
        assert_eq!(
            parse(&args(
                "--listen 127.0.0.1:0 --dynamodb-endpoint http://127.0.0.1:5000 --table t"
            ))
            .unwrap(),
            Command::Serve(ServeOptions {
                listen: "127.0.0.1:0".parse().unwrap(),
                dynamodb_endpoint: Some("http://127.0.0.1:5000".into()),
                table: "t".into()
            })
        );
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
