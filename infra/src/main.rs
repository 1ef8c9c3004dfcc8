use std::io::Write;

use natter::clock::{Clock, SystemClock};
use natter_local::cli::{self, Command};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match cli::parse(&args) {
        Err(message) => {
            eprintln!("natter-local: {message}\n\n{}", cli::USAGE);
            2
        }
        Ok(Command::Help) => {
            println!("{}", cli::USAGE);
            0
        }
        Ok(Command::Token {
            user,
            role,
            ttl_secs,
        }) => {
            let now = (SystemClock.now_ms() / 1000).max(0) as u64;
            let token = natter_local::server::auth_from_env().and_then(|(auth, _)| {
                natter::auth::issue_user_token(
                    &user,
                    role.as_deref(),
                    ttl_secs,
                    now,
                    auth.signing_key(),
                )
                .map_err(|e| e.to_string())
            });
            match token {
                Ok(token) => {
                    println!("{token}");
                    0
                }
                Err(e) => {
                    eprintln!("natter-local: {e}");
                    1
                }
            }
        }
        Ok(Command::Serve(options)) => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "warn".into()),
                )
                .with_writer(std::io::stderr)
                .try_init();
            match natter_local::server::run(options).await {
                Ok(()) => 0,
                Err(message) => {
                    eprintln!("natter-local: {message}");
                    1
                }
            }
        }
    };
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}
