//! A scripted HTTP endpoint for unit tests: it answers each request with the next canned
//! response, so that tests can make an AWS client meet throttling, conflicts or gone
//! connections on demand, which moto and the local gateway never produce.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An SDK configuration for clients of a scripted server: fixed test credentials and region,
/// and the SDK's own retries off, so that every request the server sees is one the code under
/// test chose to send.
pub(crate) fn sdk_config() -> aws_config::SdkConfig {
    use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "test", "test", None, None, "test",
        )))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build()
}

/// One canned answer.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    /// Extra header lines, each `name: value`.
    pub headers: Vec<String>,
    pub body: String,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn header(mut self, line: &str) -> Self {
        self.headers.push(line.to_string());
        self
    }
}

/// The head (request line and headers) of every request the server received, in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Received(Arc<Mutex<Vec<String>>>);

impl Received {
    pub fn count(&self) -> usize {
        self.0.lock().map(|r| r.len()).unwrap_or(0)
    }

    /// Every request's head, in order.
    pub fn heads(&self) -> Vec<String> {
        self.0.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// How many requests carried `needle` in their head (e.g. an `x-amz-target` value).
    pub fn count_with(&self, needle: &str) -> usize {
        let needle = needle.to_ascii_lowercase();
        self.0
            .lock()
            .map(|r| {
                r.iter()
                    .filter(|h| h.to_ascii_lowercase().contains(&needle))
                    .count()
            })
            .unwrap_or(0)
    }
}

/// Starts a loopback server answering with `replies` in order, then with `after` for good.
/// Returns its base URL and the record of requests. It serves at most 100 connections.
pub(crate) async fn scripted_server(replies: Vec<Reply>, after: Reply) -> (String, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    let received = Received::default();
    let seen = received.clone();
    tokio::spawn(async move {
        let mut replies = replies.into_iter();
        for _ in 0..100 {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            while let Some(head) = read_request(&mut socket).await {
                if let Ok(mut heads) = seen.0.lock() {
                    heads.push(head);
                }
                let reply = replies.next().unwrap_or_else(|| after.clone());
                let mut response = format!(
                    "HTTP/1.1 {} Scripted\r\ncontent-type: application/json\r\n",
                    reply.status
                );
                for line in &reply.headers {
                    response.push_str(line);
                    response.push_str("\r\n");
                }
                response.push_str(&format!(
                    "content-length: {}\r\n\r\n{}",
                    reply.body.len(),
                    reply.body
                ));
                if socket.write_all(response.as_bytes()).await.is_err() {
                    break;
                }
            }
        }
    });
    (format!("http://{addr}"), received)
}

/// Reads one request (headers, then `content-length` bytes of body); returns its head, or
/// `None` when the peer closed the connection.
async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some(end) = text.find("\r\n\r\n") {
            let head = &text[..end];
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return Some(head.to_string());
            }
        }
    }
}
