//! The gateway's command line: the token subcommand, argument errors, a clean stop on SIGTERM,
//! the loopback-only listen address, and the documented `cargo run` commands.

use std::process::{Command, Output};
use std::time::Duration;

use base64::Engine;
use natter_e2e::{command, expect_error, expect_status, now_secs, Gateway, GatewayOptions, Store};
use serde_json::{json, Value};

fn run(args: &[&str]) -> Output {
    command()
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running natter-local {args:?}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("JWT payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

#[tokio::test]
async fn token_command_prints_an_accepted_token() {
    let out = run(&[
        "token",
        "--user",
        "kbadk:github",
        "--role",
        "moderator",
        "--ttl",
        "60",
    ]);
    assert!(out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    let token = stdout.trim();
    assert_eq!(stdout.lines().count(), 1, "one line: {stdout:?}");
    let claims = claims_of(token);
    assert_eq!(claims["sub"], "kbadk:github");
    assert_eq!(claims["role"], "moderator");
    let exp = claims["exp"].as_u64().expect("exp");
    let now = now_secs();
    assert!(exp > now + 50 && exp <= now + 61, "exp {exp}, now {now}");

    let gw = Gateway::on(Store::Memory);
    let put = expect_status(
        gw.put("/users/kbadk:github", token, json!({"name": "K"}))
            .await,
        200,
    );
    assert_eq!(put["id"], "kbadk:github");
    // The role claim is honoured: this moderator edits someone else's message.
    gw.conversation("c", &["kbadk:github", "alice"]).await;
    let m = gw.send("c", &natter_e2e::user_token("alice"), "hi").await;
    let path = format!("/conversations/c/messages/{}", m["id"].as_str().unwrap());
    expect_status(
        gw.patch(&path, token, json!({"text": "moderated"})).await,
        200,
    );

    // Without --role and --ttl: no role claim, a day's validity.
    let out = run(&["token", "--user", "bob"]);
    assert!(out.status.success(), "{out:?}");
    let token = text(&out.stdout).trim().to_string();
    let claims = claims_of(&token);
    assert_eq!(claims.get("role"), None);
    let exp = claims["exp"].as_u64().unwrap();
    assert!(exp >= now + 86_000 && exp <= now + 86_401 + 5, "exp {exp}");
    expect_error(&gw.get("/users/bob", &token).await, 404, "not_found");

    // A token signed with another secret is refused by this gateway.
    let out = command()
        .env(
            "NATTER_SIGNING_SECRET",
            "another-secret-entirely-0123456789",
        )
        .args(["token", "--user", "bob"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let foreign = text(&out.stdout).trim().to_string();
    expect_error(&gw.get("/users/bob", &foreign).await, 401, "unauthorized");
}

fn header_of(token: &str) -> Value {
    let header = token.split('.').next().expect("JWT header");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .expect("base64url header");
    serde_json::from_slice(&bytes).expect("JSON header")
}

/// A rotation, locally: with `NATTER_SIGNING_SECRET_PREVIOUS` the gateway holds two keys, tokens
/// of either kid pass, `token` signs with the current one, and once the previous key is dropped its
/// tokens are refused by kid.
#[tokio::test]
async fn two_signing_keys_verify_by_kid() {
    let old = ("e2e-0", "the-previous-signing-secret-0123456789");
    let token_of = |secret: &str, kid: &str| {
        let out = command()
            .env("NATTER_SIGNING_SECRET", secret)
            .env("NATTER_SIGNING_KID", kid)
            .args(["token", "--user", "alice"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        text(&out.stdout).trim().to_string()
    };
    let old_token = token_of(old.1, old.0);
    assert_eq!(header_of(&old_token)["kid"], "e2e-0");

    let both = natter_e2e::GatewayOptions::new(Store::Memory)
        .env("NATTER_SIGNING_SECRET_PREVIOUS", old.1)
        .env("NATTER_SIGNING_KID_PREVIOUS", old.0);
    let gw = Gateway::start(both);
    let new_token = natter_e2e::user_token("alice");
    assert_eq!(header_of(&new_token)["kid"], natter_e2e::SIGNING_KID);
    for token in [&old_token, &new_token] {
        expect_status(
            gw.put("/users/alice", token, json!({"name": "A"})).await,
            200,
        );
    }
    // The token command of a gateway holding both signs with the current key.
    let out = command()
        .env("NATTER_SIGNING_SECRET_PREVIOUS", old.1)
        .env("NATTER_SIGNING_KID_PREVIOUS", old.0)
        .args(["token", "--user", "alice"])
        .output()
        .unwrap();
    let minted = text(&out.stdout).trim().to_string();
    assert_eq!(header_of(&minted)["kid"], natter_e2e::SIGNING_KID);
    expect_status(gw.get("/users/alice", &minted).await, 200);
    drop(gw);

    // The previous key is gone: its tokens name a key the gateway no longer holds.
    let gw = Gateway::on(Store::Memory);
    let message = expect_error(
        &gw.get("/users/alice", &old_token).await,
        401,
        "unauthorized",
    );
    assert!(message.contains("kid \"e2e-0\""), "{message}");
    expect_error(&gw.get("/users/alice", &new_token).await, 404, "not_found");

    // A previous secret without its kid, or under the current kid, is a configuration error.
    for (kid, why) in [
        (None, "without kid"),
        (Some(natter_e2e::SIGNING_KID), "same kid"),
    ] {
        let mut cmd = command();
        cmd.env("NATTER_SIGNING_SECRET_PREVIOUS", old.1);
        if let Some(kid) = kid {
            cmd.env("NATTER_SIGNING_KID_PREVIOUS", kid);
        }
        let out = cmd.args(["token", "--user", "alice"]).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{why}: {out:?}");
        assert!(
            text(&out.stderr).contains("NATTER_SIGNING_KID_PREVIOUS")
                || text(&out.stderr).contains("given twice"),
            "{why}: {out:?}"
        );
    }
}

#[test]
fn bad_arguments_exit_with_status_2() {
    for args in [
        &["--bogus"][..],
        &["--listen"],
        &["--listen", "nonsense"],
        &["--listen", "127.0.0.1"],
        &["token"],
        &["token", "--user"],
        &["token", "--user", "u", "--ttl", "0"],
        &["token", "--user", "u", "--ttl", "soon"],
        &["token", "--user", "u", "--listen", "127.0.0.1:1"],
        &["serve"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains("natter-local:"), "{args:?}: {stderr}");
        assert!(stderr.contains("usage:"), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
    }
    // A subject a token could never carry is refused too, not printed.
    let long = "u".repeat(129);
    let out = run(&["token", "--user", &long]);
    assert!(!out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty());
    // --help is not an error.
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(text(&out.stdout).contains("usage:"));
}

#[test]
fn listening_beyond_loopback_is_refused() {
    for addr in ["0.0.0.0:1", "0.0.0.0:0", "[::]:8787", "192.0.2.1:80"] {
        let out = run(&["--listen", addr]);
        assert_eq!(out.status.code(), Some(2), "{addr}: {out:?}");
        assert!(text(&out.stderr).contains("loopback"), "{addr}: {out:?}");
        assert!(!text(&out.stdout).contains("listening"), "{addr}: {out:?}");
    }
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly() {
    let mut gw = Gateway::on(Store::Memory);
    // It serves before the signal.
    gw.conversation("c", &["alice"]).await;
    let status = Command::new("kill")
        .args(["-TERM", &gw.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = gw
        .wait_exit(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("still running 15 s after SIGTERM\n{}", gw.output()));
    assert_eq!(exit.code(), Some(0), "{exit:?}\n{}", gw.output());
    let output = gw.output();
    assert!(output.contains("stopped"), "{output}");
    // And it no longer answers.
    let refused = reqwest::Client::new()
        .get(format!("{}/v1/users/alice", gw.base_url))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(refused.is_err(), "{refused:?}");
}

#[tokio::test]
async fn dev_secrets_are_printed_when_unset() {
    let mut child = command()
        .env_remove("NATTER_SIGNING_SECRET")
        .env_remove("NATTER_SECRET_KEY")
        .args(["--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let done = line.starts_with("listening on ");
            let _ = tx.send(line);
            if done {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
        let done = line.starts_with("listening on ");
        lines.push(line);
        if done {
            break;
        }
    }
    let _ = reader.join();
    let find = |prefix: &str| {
        lines
            .iter()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("no line starting with {prefix:?} in {lines:#?}"))
    };
    let base = find("listening on ");
    let secret = find("secret key:");
    let token = find("user token for alice (24 h):");
    let client = reqwest::Client::new();
    let get = |auth: String| {
        client
            .get(format!("{base}/v1/users/alice"))
            .header("authorization", format!("Bearer {auth}"))
            .send()
    };
    // Both printed credentials work: 404 (no such user yet), not 401.
    assert_eq!(get(secret).await.unwrap().status().as_u16(), 404);
    assert_eq!(get(token).await.unwrap().status().as_u16(), 404);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn bad_configuration_is_refused_at_start() {
    for (name, value, mention) in [
        ("RETENTION_SECONDS", "-1", "RETENTION_SECONDS"),
        ("RETENTION_DAYS", "soon", "RETENTION_DAYS"),
        ("NATTER_ROLES", r#"{"bot": {"fly": true}}"#, "NATTER_ROLES"),
        ("NATTER_ROLES", "not json", "NATTER_ROLES"),
    ] {
        let out = command()
            .env(name, value)
            .args(["--listen", "127.0.0.1:0"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{name}={value}: {out:?}");
        assert!(
            text(&out.stderr).contains(mention),
            "{name}={value}: {out:?}"
        );
        assert!(!text(&out.stdout).contains("listening"), "{out:?}");
    }
}

/// Every `cargo run -p PACKAGE` in the README and the docs that names no `--bin` must start
/// one definite binary: the package has a single one, or a `default-run`. Otherwise cargo
/// refuses the command ("could not determine which binary to run").
#[test]
fn documented_cargo_run_commands_pick_a_binary() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let metadata = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(root)
        .output()
        .expect("cargo metadata");
    assert!(metadata.status.success(), "{}", text(&metadata.stderr));
    let metadata: Value = serde_json::from_slice(&metadata.stdout).expect("metadata JSON");
    let packages = metadata["packages"].as_array().expect("packages");

    let mut documents = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).expect("docs/") {
        let path = entry.expect("docs entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            documents.push(path);
        }
    }
    let mut checked = 0;
    for document in documents {
        let body = std::fs::read_to_string(&document).expect("readable document");
        for line in body.lines().filter(|l| l.contains("cargo run")) {
            let words: Vec<&str> = line.split_whitespace().collect();
            let Some(at) = words.iter().position(|w| *w == "-p") else {
                continue;
            };
            if words.contains(&"--bin") {
                continue;
            }
            let name = words
                .get(at + 1)
                .expect("a package after -p")
                .trim_matches('`');
            let package = packages
                .iter()
                .find(|p| p["name"] == name)
                .unwrap_or_else(|| panic!("{}: no package {name}", document.display()));
            let bins = package["targets"]
                .as_array()
                .expect("targets")
                .iter()
                .filter(|t| {
                    t["kind"]
                        .as_array()
                        .is_some_and(|k| k.contains(&json!("bin")))
                })
                .count();
            assert!(
                bins == 1 || package["default_run"].is_string(),
                "{}: `{}` is ambiguous: {name} has {bins} binaries and no default-run",
                document.display(),
                line.trim()
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 3,
        "found only {checked} documented cargo run commands"
    );
}

/// `--connections-latency-ms` holds every `@connections` post that long (AWS's round trip, for
/// the fan-out benchmark); without it a post is answered at once.
#[tokio::test]
async fn connections_latency_delays_every_management_post() {
    let post = |gw: &Gateway| {
        let url = format!("{}/@connections/nobody", gw.base_url);
        async move {
            let started = std::time::Instant::now();
            let status = reqwest::Client::new()
                .post(url)
                .body("{}")
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            (status, started.elapsed())
        }
    };
    let slow =
        Gateway::start(GatewayOptions::new(Store::Memory).arg("--connections-latency-ms", "400"));
    let (status, took) = post(&slow).await;
    assert_eq!(status, 410);
    assert!(took >= Duration::from_millis(400), "{took:?}");
    let fast = Gateway::on(Store::Memory);
    let (status, took) = post(&fast).await;
    assert_eq!(status, 410);
    assert!(took < Duration::from_millis(400), "{took:?}");
}
