//! One clock drives the gateway: with the services on a manual clock, the times natter-local
//! itself puts in events and answers (the `$connect` event's `connectedAt`, a socket's last
//! activity, the management API's timestamps) are that clock's, not the wall clock's.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use natter::clock::{Clock, ManualClock};
use natter::config::Config;
use natter::services::Services;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

/// 2001-09-09T01:46:40.000Z: far from any wall clock the test runs on.
const START_MS: i64 = 1_000_000_000_000;

/// A plain HTTP/1.1 GET; the response's body.
async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

#[tokio::test]
async fn the_gateway_takes_time_from_the_services_clock() {
    let clock = ManualClock::new(START_MS);
    // No fan-out here: the change feed is dropped, so that writes never wait for a reader.
    let (services, _) = Services::memory(Arc::new(clock.clone()), Config::default());
    let (auth, _) = natter_local::server::auth_from_env().unwrap();
    let state = natter_local::server::app_state(&services, auth);
    let token = natter::auth::issue_user_token(
        "alice",
        None,
        3600,
        state.now_secs(),
        state.auth.signing_key(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = natter_local::server::router(state.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });

    // The token is valid at the manual clock's time only: connecting proves the authorizer
    // reads that clock.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?token={token}"))
        .await
        .expect("connected at the manual clock's time");
    clock.advance_ms(1_234);
    ws.send(Message::Text(json!({"action": "hello"}).to_string().into()))
        .await
        .unwrap();
    let hello: Value = loop {
        match ws.next().await.expect("a reply").unwrap() {
            Message::Text(text) => break serde_json::from_str(&text).unwrap(),
            _ => continue,
        }
    };
    // The client id of `hello` is the connection id.
    let connection_id = hello["clientId"].as_str().expect("a client id").to_string();

    let socket = state.sockets.get(&connection_id).expect("the socket");
    assert_eq!(socket.connected_at, START_MS);
    assert_eq!(
        socket.last_active_at.load(Ordering::SeqCst),
        START_MS + 1_234
    );
    // `$connect` stored the event's connectedAt.
    let record = state
        .connections
        .get_connection(&connection_id, clock.now_ms())
        .await
        .unwrap()
        .expect("the connection record");
    assert_eq!(record.connected_at, START_MS);

    let described: Value =
        serde_json::from_str(&get(addr, &format!("/@connections/{connection_id}")).await).unwrap();
    assert_eq!(described["ConnectedAt"], "2001-09-09T01:46:40.000Z");
    assert_eq!(described["LastActiveAt"], "2001-09-09T01:46:41.234Z");
    let introspected: Value =
        serde_json::from_str(&get(addr, &format!("/@local/connections/{connection_id}")).await)
            .unwrap();
    assert_eq!(introspected["record"]["connectedAt"], START_MS);
    assert_eq!(introspected["socket"]["open"], true);
}
