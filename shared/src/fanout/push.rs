//! The push port: how the fan-out sends one frame to one WebSocket connection (`Pusher`, and
//! what became of the post, `PushOutcome`), and its adapter for API Gateway's management API
//! (`ManagementApiPusher`, `POST @connections/{id}`).
//!
//! The orchestration in `fanout` knows only the trait; this is the one layer that speaks to API
//! Gateway, and the one place that reads its answers (`classify`):
//!
//! * 410 `GoneException`: the connection is gone, and the fan-out forgets it;
//! * 429, 5xx, and no answer in time (a timeout or a failed connection): it may work later, so
//!   it is sent again with jittered backoff, and if it still fails the change fails and the
//!   stream delivers it again;
//! * any other refusal (413 `PayloadTooLargeException`, 400, 403, …) will be refused again
//!   however often it is sent: the post is logged and skipped, so that one change that can never
//!   be delivered to one connection does not hold back every change after it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_smithy_async::time::SharedTimeSource;
use aws_smithy_runtime_api::client::http::{HttpConnector, SharedHttpConnector};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::signing::{sign_post, signed_host, AmzDate, SigningKey};
use crate::config::fanout::{
    PUSH_ATTEMPT_TIMEOUT, PUSH_BACKOFF_BASE, PUSH_BACKOFF_MAX, PUSH_MAX_ATTEMPTS,
};

/// What became of one post to a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    Delivered,
    /// The connection is gone (410): it should be forgotten.
    Gone,
    /// Refused for good (413, 400, 403, …): sending it again would be refused again. The post
    /// is skipped.
    Refused(String),
    /// Failed in a way that may pass (throttled, a server error, a timeout), after the retries:
    /// the change should be delivered again.
    Failed(String),
}

/// Sends one frame to one connection.
#[async_trait]
pub trait Pusher: Send + Sync {
    async fn push(&self, connection_id: &str, frame: &str) -> PushOutcome;
}

/// The real pusher: API Gateway's management API (`POST @connections/{id}`), with posts that may
/// pass later sent again with jittered exponential backoff.
///
/// It signs each post with SigV4 (`signing`: the canonical request of this one shape, with
/// `aws-sigv4`'s signing key, derived once a day) and sends it through an HTTP connector of the
/// SDK's stack (hyper, rustls), but not through the SDK's `PostToConnection` operation. That
/// operation's pipeline (interceptors, endpoint resolution, identity and retry layers,
/// stalled-stream checks) was most of the CPU of a fan-out to thousands of connections
/// (docs/benchmarks.md), for a request this simple: one POST, a body, an empty answer. What it
/// signs is what the SDK signs, less the SDK's own user-agent header: a test sends one post both
/// ways and compares them, and recomputes both signatures from the wire.
pub struct ManagementApiPusher {
    connector: SharedHttpConnector,
    /// The stage's management endpoint, without a trailing `/`.
    endpoint: String,
    /// The endpoint's host as signed, and its path (the stage, or nothing).
    host: String,
    stage_path: String,
    region: String,
    credentials: SharedCredentialsProvider,
    /// The credentials of the last signing with their key for its day, until they come within
    /// `CREDENTIALS_REFRESH` of their expiry.
    signing_key: Mutex<Option<Arc<SigningKey>>>,
    time: SharedTimeSource,
    /// Sends of one post at most, the first included.
    pub max_attempts: u32,
    /// The base and the cap of the wait between sends (`retry::jittered_backoff`).
    pub backoff: (Duration, Duration),
    /// How long one send may take before it counts as unanswered.
    pub attempt_timeout: Duration,
}

/// How long before their expiry cached credentials are fetched again (temporary credentials
/// from a role are refreshed by their provider well before they run out).
const CREDENTIALS_REFRESH: Duration = Duration::from_secs(300);

/// What a connection id's path segment escapes: everything but RFC 3986's unreserved
/// characters, as the SDK escapes a path label (API Gateway's ids end in `=`).
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A connector for a plain-HTTP endpoint (the local gateway, a test's server): no certificates
/// to load.
pub fn plain_http_connector() -> SharedHttpConnector {
    use aws_smithy_http_client::tls::{TlsContext, TrustStore};
    let tls = TlsContext::builder()
        .with_trust_store(TrustStore::empty())
        .build()
        .unwrap_or_default();
    rustls_connector(tls)
}

/// An HTTPS (and HTTP) connector of the SDK's stack, hyper over rustls with aws-lc, trusting
/// the roots of `tls` (the functions give it the same roots as their AWS clients).
pub fn rustls_connector(tls: aws_smithy_http_client::tls::TlsContext) -> SharedHttpConnector {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    SharedHttpConnector::new(
        aws_smithy_http_client::Connector::builder()
            .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(tls)
            .build(),
    )
}

impl ManagementApiPusher {
    /// A pusher for the management endpoint of a WebSocket API stage
    /// (`https://{api}.execute-api.{region}.amazonaws.com/{stage}`, or the local gateway), with
    /// the region, the credentials and the clock of `sdk`, sending through `connector`. Fails
    /// when `sdk` has no region or no credentials, which every post would need, or when the
    /// endpoint is not an `http(s)://host[:port][/stage]` URL.
    pub fn new(
        sdk: &aws_config::SdkConfig,
        connector: SharedHttpConnector,
        endpoint: &str,
    ) -> Result<Self, String> {
        let region = sdk
            .region()
            .ok_or("the AWS configuration names no region to sign management API posts for")?;
        let credentials = sdk
            .credentials_provider()
            .ok_or("the AWS configuration has no credentials to sign management API posts")?;
        let endpoint = endpoint.trim_end_matches('/');
        let uri: http::Uri = endpoint
            .parse()
            .map_err(|e| format!("the management endpoint {endpoint:?} is not a URL: {e}"))?;
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
            return Err(format!(
                "the management endpoint {endpoint:?} names no scheme and host"
            ));
        };
        if uri.query().is_some() {
            return Err(format!(
                "the management endpoint {endpoint:?} has a query; it should end at the stage"
            ));
        }
        Ok(ManagementApiPusher {
            connector,
            endpoint: endpoint.to_string(),
            host: signed_host(scheme, host, uri.port_u16()),
            stage_path: uri.path().trim_end_matches('/').to_string(),
            region: region.to_string(),
            credentials,
            signing_key: Mutex::new(None),
            time: sdk.time_source().unwrap_or_default(),
            max_attempts: PUSH_MAX_ATTEMPTS,
            backoff: (PUSH_BACKOFF_BASE, PUSH_BACKOFF_MAX),
            attempt_timeout: PUSH_ATTEMPT_TIMEOUT,
        })
    }

    /// The key to sign with at `at`: the cached one while its credentials are fresh and it is
    /// for that day, else one derived again, from the provider's credentials when the cached
    /// ones near their expiry.
    async fn signing_key(&self, at: &AmzDate, now: SystemTime) -> Result<Arc<SigningKey>, String> {
        let fresh = |key: &Arc<SigningKey>| {
            key.credentials
                .expiry()
                .is_none_or(|expiry| expiry > now + CREDENTIALS_REFRESH)
        };
        let cached = self.cached_signing_key().filter(fresh);
        if let Some(key) = cached.as_ref().filter(|key| key.signs_for(at)) {
            return Ok(key.clone());
        }
        let credentials = match cached {
            Some(key) => key.credentials.clone(),
            None => self
                .credentials
                .provide_credentials()
                .await
                .map_err(|e| format!("no credentials to sign the post: {e}"))?,
        };
        let key = Arc::new(SigningKey::derive(credentials, at, &self.region));
        if let Ok(mut cached) = self.signing_key.lock() {
            *cached = Some(key.clone());
        }
        Ok(key)
    }

    fn cached_signing_key(&self) -> Option<Arc<SigningKey>> {
        self.signing_key
            .lock()
            .ok()
            .and_then(|cached| cached.clone())
    }

    /// `POST {endpoint}/@connections/{id}` with `frame` as its body, signed with `key` at `at`.
    fn signed_post(
        &self,
        connection_id: &str,
        frame: &str,
        key: &SigningKey,
        at: &AmzDate,
    ) -> Result<http::Request<SdkBody>, String> {
        let id = utf8_percent_encode(connection_id, PATH_SEGMENT);
        let path = format!("{}/@connections/{id}", self.stage_path);
        let uri = format!("{}/@connections/{id}", self.endpoint);
        let signed = sign_post(key, at, &self.region, &self.host, &path, frame.as_bytes());
        let mut request = http::Request::post(&uri)
            .header("content-type", "application/octet-stream")
            .header("content-length", frame.len())
            .header("x-amz-date", signed.amz_date)
            .header("authorization", signed.authorization);
        if let Some(token) = signed.security_token {
            request = request.header("x-amz-security-token", token);
        }
        request
            .body(SdkBody::from(frame))
            .map_err(|e| format!("could not build the post to {uri}: {e}"))
    }

    /// One send of the post, and what its answer means.
    async fn send_once(&self, connection_id: &str, frame: &str) -> (Answer, String) {
        let now = self.time.now();
        let at = AmzDate::of(now);
        let request = match self.signing_key(&at, now).await.and_then(|key| {
            let request = self.signed_post(connection_id, frame, &key, &at)?;
            aws_smithy_runtime_api::http::Request::try_from(request)
                .map_err(|e| format!("could not build the post: {e}"))
        }) {
            Ok(request) => request,
            // Nothing was sent: without credentials or a valid request, sending again would
            // fail the same way until the provider recovers, so this counts as transient.
            Err(why) => return (Answer::Transient, why),
        };
        // The timeout covers the answer's body too: a refusal's body that never ends would
        // otherwise hold the post past its attempt.
        let answered = async {
            match self.connector.call(request).await {
                Ok(response) => read_answer(response).await,
                Err(e) => (Answer::Transient, format!("the post was not answered: {e}")),
            }
        };
        match tokio::time::timeout(self.attempt_timeout, answered).await {
            Ok(answer) => answer,
            Err(_) => (
                Answer::Transient,
                format!(
                    "the post was not answered within {:?}",
                    self.attempt_timeout
                ),
            ),
        }
    }
}

/// What one send's answer means.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Delivered,
    Gone,
    /// May pass if sent again.
    Transient,
    /// Will be refused again.
    Refused,
}

/// Reads API Gateway's answer to one post, by its status and the error type it names
/// (`x-amzn-errortype`), and describes a refusal with its message.
async fn read_answer(response: HttpResponse) -> (Answer, String) {
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return (Answer::Delivered, String::new());
    }
    let error_type = response
        .headers()
        .get("x-amzn-errortype")
        .map(|t| t.split(':').next().unwrap_or(t).to_string())
        .unwrap_or_default();
    let answer = classify(status, &error_type);
    // The body is a short JSON `{"message": …}`; read it whole so the connection can be reused.
    let body = ByteStream::new(response.into_body())
        .collect()
        .await
        .map(|body| String::from_utf8_lossy(&body.into_bytes()).into_owned())
        .unwrap_or_default();
    (answer, format!("{status} {error_type}: {body}"))
}

/// What an error answer means: 410 (`GoneException`) that the connection is gone; 429, 5xx or
/// `LimitExceededException` that it may pass later; anything else that it will be refused again.
fn classify(status: u16, error_type: &str) -> Answer {
    match (status, error_type) {
        (410, _) | (_, "GoneException") => Answer::Gone,
        (429, _) | (500.., _) | (_, "LimitExceededException") => Answer::Transient,
        _ => Answer::Refused,
    }
}

#[async_trait]
impl Pusher for ManagementApiPusher {
    async fn push(&self, connection_id: &str, frame: &str) -> PushOutcome {
        let attempts = self.max_attempts.max(1);
        let mut last = String::new();
        for attempt in 1..=attempts {
            let (answer, why) = self.send_once(connection_id, frame).await;
            last = why;
            match answer {
                Answer::Delivered => return PushOutcome::Delivered,
                Answer::Gone => return PushOutcome::Gone,
                Answer::Refused => return PushOutcome::Refused(last),
                Answer::Transient if attempt < attempts => {
                    let (base, max) = self.backoff;
                    tokio::time::sleep(crate::retry::jittered_backoff(base, max, attempt)).await;
                }
                Answer::Transient => {}
            }
        }
        PushOutcome::Failed(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripted_http::{Received, Reply};
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};

    /// The management API's answer for `status`: the error type API Gateway names for it, or 200.
    fn management_reply(status: u16) -> Reply {
        let (error_type, body) = match status {
            410 => ("GoneException", r#"{"message":"Gone"}"#),
            429 => ("LimitExceededException", r#"{"message":"slow down"}"#),
            400 => ("BadRequestException", r#"{"message":"no"}"#),
            403 => ("ForbiddenException", r#"{"message":"Forbidden"}"#),
            413 => ("PayloadTooLargeException", r#"{"message":"too big"}"#),
            500 => ("InternalServerErrorException", r#"{"message":"oops"}"#),
            503 => ("ServiceUnavailableException", r#"{"message":"later"}"#),
            _ => return Reply::new(200, ""),
        };
        Reply::new(status, body).header(&format!("x-amzn-errortype: {error_type}"))
    }

    /// A management API answering with `statuses` in order, then 200.
    async fn scripted_server(statuses: Vec<u16>) -> (String, Received) {
        let replies = statuses.into_iter().map(management_reply).collect();
        crate::scripted_http::scripted_server(replies, management_reply(200)).await
    }

    fn pusher_over(sdk: &aws_config::SdkConfig, endpoint: &str) -> ManagementApiPusher {
        let connector = plain_http_connector();
        let mut pusher = ManagementApiPusher::new(sdk, connector, endpoint).expect("a pusher");
        pusher.backoff = (Duration::from_millis(2), Duration::from_millis(10));
        pusher
    }

    fn real_pusher(endpoint: &str) -> ManagementApiPusher {
        pusher_over(&crate::scripted_http::sdk_config(), endpoint)
    }

    /// Pushes once through a management API answering `statuses` then 200; returns the outcome
    /// and how many sends the server saw.
    async fn push_through(statuses: Vec<u16>) -> (PushOutcome, usize) {
        let (endpoint, count) = scripted_server(statuses).await;
        let outcome = real_pusher(&endpoint).push("c=", "{}").await;
        (outcome, count.count())
    }

    /// A request's head as the server saw it: the request line and the headers, names in
    /// lower case.
    struct Head {
        line: String,
        headers: Vec<(String, String)>,
    }

    impl Head {
        fn parse(head: &str) -> Head {
            let mut lines = head.lines();
            let line = lines.next().unwrap_or_default().to_string();
            let headers = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            Head { line, headers }
        }

        fn header(&self, name: &str) -> &str {
            let value = self.headers.iter().find(|(k, _)| k == name);
            value.map(|(_, v)| v.as_str()).unwrap_or_default()
        }

        /// A field of the `Authorization` header (`Credential=`, `SignedHeaders=`, `Signature=`).
        fn authorization(&self, field: &str) -> &str {
            let authorization = self.header("authorization");
            let value = authorization
                .split([' ', ','])
                .find_map(|p| p.strip_prefix(field));
            value.unwrap_or_default()
        }

        fn signed_headers(&self) -> Vec<(&str, &str)> {
            let names = self.authorization("SignedHeaders=").split(';');
            names.map(|name| (name, self.header(name))).collect()
        }

        /// The signature of this request with `body` at `at`, recomputed by `aws-sigv4` from
        /// what arrived: what API Gateway checks a post's `Authorization` against.
        fn recomputed_signature(&self, body: &str, at: std::time::SystemTime) -> String {
            self.recomputed_signature_with(body, at, &session_credentials())
        }

        fn recomputed_signature_with(
            &self,
            body: &str,
            at: std::time::SystemTime,
            credentials: &aws_credential_types::Credentials,
        ) -> String {
            let mut parts = self.line.split(' ');
            let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let identity = credentials.clone().into();
            let scope: Vec<&str> = self.authorization("Credential=").split('/').collect();
            let params = aws_sigv4::sign::v4::SigningParams::builder()
                .identity(&identity)
                .region(scope.get(2).copied().unwrap_or(""))
                .name(scope.get(3).copied().unwrap_or(""))
                .time(at)
                .settings(SigningSettings::default())
                .build()
                .expect("signing parameters")
                .into();
            let uri = format!("http://{}{path}", self.header("host"));
            let signable = SignableRequest::new(
                method,
                uri,
                self.signed_headers().into_iter(),
                SignableBody::Bytes(body.as_bytes()),
            )
            .expect("a signable request");
            sign(signable, &params)
                .expect("signed")
                .signature()
                .to_string()
        }
    }

    /// Temporary credentials, as a Lambda function's role gives it: with a session token.
    fn session_credentials() -> aws_credential_types::Credentials {
        let token = Some("the-session-token".to_string());
        aws_credential_types::Credentials::new("test", "test", token, None, "test")
    }

    #[tokio::test]
    async fn a_post_is_signed_as_api_gateway_checks_it_and_as_the_sdk_signs_it() {
        use aws_smithy_async::time::StaticTimeSource;
        let at = std::time::UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        let sdk = crate::scripted_http::sdk_config()
            .to_builder()
            .region(aws_config::Region::new("eu-west-2"))
            .credentials_provider(SharedCredentialsProvider::new(session_credentials()))
            .time_source(StaticTimeSource::new(at))
            .build();
        // An id as API Gateway makes them, with a character a path must escape.
        let (id, frame) = ("L0SM9cOFvHcCIhw=", r#"{"type":"message","text":"hé"}"#);
        let (endpoint, received) = scripted_server(vec![]).await;
        let endpoint = format!("{endpoint}/prod");
        let outcome = pusher_over(&sdk, &endpoint).push(id, frame).await;
        assert_eq!(outcome, PushOutcome::Delivered);
        // The same post through the SDK's `PostToConnection`, the reference.
        let config = aws_sdk_apigatewaymanagement::config::Builder::from(&sdk)
            .endpoint_url(&endpoint)
            .build();
        aws_sdk_apigatewaymanagement::Client::from_conf(config)
            .post_to_connection()
            .connection_id(id)
            .data(aws_smithy_types::Blob::new(frame.as_bytes()))
            .send()
            .await
            .expect("the SDK's post is answered 200");
        let heads: Vec<Head> = received.heads().iter().map(|h| Head::parse(h)).collect();
        let [ours, sdks] = heads.as_slice() else {
            panic!("two posts, not {}", heads.len());
        };

        assert!(
            ours.line
                .starts_with("POST /prod/@connections/L0SM9cOFvHcCIhw%3D HTTP/1.1"),
            "{}",
            ours.line
        );
        assert_eq!(ours.line, sdks.line);
        assert_eq!(
            ours.authorization("Credential="),
            "test/20261130/eu-west-2/execute-api/aws4_request"
        );
        assert_eq!(
            ours.authorization("Credential="),
            sdks.authorization("Credential=")
        );
        // The SDK signs the headers ours signs, and its own user agent besides.
        let sdk_signed: Vec<(&str, &str)> = sdks.signed_headers();
        let ours_signed = ours.signed_headers();
        let names: Vec<&str> = ours_signed.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            names,
            [
                "content-length",
                "content-type",
                "host",
                "x-amz-date",
                "x-amz-security-token"
            ]
        );
        let sdk_without_agent: Vec<(&str, &str)> = sdk_signed
            .into_iter()
            .filter(|(name, _)| *name != "x-amz-user-agent")
            .collect();
        assert_eq!(ours_signed, sdk_without_agent);
        // Recomputed from what arrived, both signatures hold: the recomputation is checked on
        // the SDK's request, then holds ours to it.
        assert_eq!(
            sdks.recomputed_signature(frame, at),
            sdks.authorization("Signature=")
        );
        assert_eq!(ours.authorization("Signature=").len(), 64);
        assert_eq!(
            ours.recomputed_signature(frame, at),
            ours.authorization("Signature=")
        );
        assert_ne!(
            ours.recomputed_signature("another frame", at),
            ours.authorization("Signature="),
            "the body is signed"
        );
    }

    /// A credentials provider that counts its calls and gives credentials expiring `ttl` after
    /// the call.
    #[derive(Debug, Clone)]
    struct CountingProvider {
        calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
        ttl: Duration,
    }

    impl ProvideCredentials for CountingProvider {
        fn provide_credentials<'a>(
            &'a self,
        ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let expiry = SystemTime::now() + self.ttl;
            aws_credential_types::provider::future::ProvideCredentials::ready(Ok(
                aws_credential_types::Credentials::new("test", "test", None, Some(expiry), "n"),
            ))
        }
    }

    #[tokio::test]
    async fn credentials_are_fetched_again_only_when_they_near_their_expiry() {
        for (ttl, expected_calls) in [(Duration::from_secs(3600), 1), (Duration::from_secs(60), 3)]
        {
            let provider = CountingProvider {
                calls: Default::default(),
                ttl,
            };
            let sdk = crate::scripted_http::sdk_config()
                .to_builder()
                .credentials_provider(SharedCredentialsProvider::new(provider.clone()))
                .build();
            let (endpoint, received) = scripted_server(vec![]).await;
            let pusher = pusher_over(&sdk, &endpoint);
            for _ in 0..3 {
                assert_eq!(pusher.push("c=", "{}").await, PushOutcome::Delivered);
            }
            assert_eq!(received.count(), 3);
            let calls = provider.calls.load(std::sync::atomic::Ordering::SeqCst);
            assert_eq!(calls, expected_calls, "credentials valid for {ttl:?}");
        }
    }

    /// A clock the test sets.
    #[derive(Debug, Clone)]
    struct SetClock(std::sync::Arc<Mutex<SystemTime>>);

    impl aws_smithy_async::time::TimeSource for SetClock {
        fn now(&self) -> SystemTime {
            *self.0.lock().expect("the test clock")
        }
    }

    #[tokio::test]
    async fn the_signing_key_follows_the_day_and_long_lived_credentials_sign_without_a_token() {
        // 2026-11-30T23:59:59Z, then two seconds later, the next day.
        let before_midnight = std::time::UNIX_EPOCH + Duration::from_secs(1_796_083_199);
        let after_midnight = before_midnight + Duration::from_secs(2);
        let clock = SetClock(std::sync::Arc::new(Mutex::new(before_midnight)));
        let provider = CountingProvider {
            calls: Default::default(),
            ttl: Duration::from_secs(3600),
        };
        let sdk = crate::scripted_http::sdk_config()
            .to_builder()
            .region(aws_config::Region::new("eu-west-2"))
            .credentials_provider(SharedCredentialsProvider::new(provider.clone()))
            .time_source(clock.clone())
            .build();
        let (endpoint, received) = scripted_server(vec![]).await;
        let pusher = pusher_over(&sdk, &format!("{endpoint}/prod/"));
        assert_eq!(pusher.push("a=", "one").await, PushOutcome::Delivered);
        *clock.0.lock().expect("the test clock") = after_midnight;
        assert_eq!(pusher.push("a=", "two").await, PushOutcome::Delivered);
        let heads: Vec<Head> = received.heads().iter().map(|h| Head::parse(h)).collect();
        let [first, second] = heads.as_slice() else {
            panic!("two posts, not {}", heads.len());
        };
        assert!(
            first.line.starts_with("POST /prod/@connections/a%3D "),
            "{}",
            first.line
        );
        assert_eq!(first.header("x-amz-date"), "20261130T235959Z");
        assert_eq!(second.header("x-amz-date"), "20261201T000001Z");
        assert!(first.authorization("Credential=").contains("/20261130/"));
        assert!(second.authorization("Credential=").contains("/20261201/"));
        // The credentials were still fresh: one call, and a key derived again for the new day.
        assert_eq!(provider.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        // The counting provider's credentials have no session token: nothing signs one.
        let long_lived = aws_credential_types::Credentials::new("test", "test", None, None, "n");
        for (head, body, at) in [
            (first, "one", before_midnight),
            (second, "two", after_midnight),
        ] {
            assert_eq!(head.header("x-amz-security-token"), "");
            assert_eq!(
                head.authorization("SignedHeaders="),
                "content-length;content-type;host;x-amz-date"
            );
            assert_eq!(
                head.recomputed_signature_with(body, at, &long_lived),
                head.authorization("Signature="),
                "{}",
                head.line
            );
        }
    }

    #[tokio::test]
    async fn a_pusher_needs_a_region_and_credentials() {
        let connector = plain_http_connector;
        let no_region = aws_config::SdkConfig::builder()
            .credentials_provider(
                crate::scripted_http::sdk_config()
                    .credentials_provider()
                    .expect("test credentials"),
            )
            .build();
        let err = ManagementApiPusher::new(&no_region, connector(), "http://127.0.0.1:9").err();
        assert!(err.is_some_and(|e| e.contains("region")));
        let no_credentials = aws_config::SdkConfig::builder()
            .region(aws_config::Region::new("us-east-1"))
            .build();
        let err =
            ManagementApiPusher::new(&no_credentials, connector(), "http://127.0.0.1:9").err();
        assert!(err.is_some_and(|e| e.contains("credentials")));
        let sdk = crate::scripted_http::sdk_config();
        for endpoint in ["not a url", "/prod", "http://127.0.0.1:9/prod?stage=x"] {
            let err = ManagementApiPusher::new(&sdk, connector(), endpoint).err();
            assert!(err.is_some_and(|e| e.contains("endpoint")), "{endpoint}");
        }
    }

    #[tokio::test]
    async fn a_gone_connection_is_reported_at_once() {
        assert_eq!(push_through(vec![410]).await, (PushOutcome::Gone, 1));
    }

    #[tokio::test]
    async fn throttling_and_server_errors_are_sent_again_until_they_pass() {
        assert_eq!(
            push_through(vec![429, 429, 429]).await,
            (PushOutcome::Delivered, 4)
        );
        assert_eq!(
            push_through(vec![500, 503, 429]).await,
            (PushOutcome::Delivered, 4)
        );
    }

    #[tokio::test]
    async fn a_post_that_keeps_failing_transiently_fails_after_bounded_sends() {
        for status in [429, 500, 503] {
            let (outcome, sends) = push_through(vec![status; 20]).await;
            assert!(matches!(outcome, PushOutcome::Failed(_)), "{outcome:?}");
            assert_eq!(sends, PUSH_MAX_ATTEMPTS as usize, "bounded retries");
        }
    }

    #[tokio::test]
    async fn a_refusal_for_good_is_not_sent_again() {
        for status in [400, 403, 413] {
            let (outcome, sends) = push_through(vec![status]).await;
            assert!(
                matches!(&outcome, PushOutcome::Refused(why) if !why.is_empty()),
                "{status}: {outcome:?}"
            );
            assert_eq!(sends, 1, "{status}: no retry of a refusal");
        }
    }

    /// A listener on a free loopback port, and the endpoint a pusher reaches it at.
    async fn loopback_listener() -> (tokio::net::TcpListener, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        (listener, endpoint)
    }

    #[tokio::test]
    async fn an_answer_whose_body_never_ends_counts_as_unanswered() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // A management API that answers every post's head with a refusal and then holds back the
        // body it announced.
        let (listener, endpoint) = loopback_listener().await;
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let head = "HTTP/1.1 400 Bad Request\r\ncontent-length: 100\r\n\r\n{";
                let _ = socket.write_all(head.as_bytes()).await;
                held.push(socket);
            }
        });
        let mut pusher = real_pusher(&endpoint);
        pusher.attempt_timeout = Duration::from_millis(100);
        pusher.max_attempts = 2;
        let outcome = tokio::time::timeout(Duration::from_secs(5), pusher.push("c=", "{}")).await;
        server.abort();
        let outcome = outcome.expect("the attempt timeout ends a post whose answer stalls");
        assert!(matches!(outcome, PushOutcome::Failed(_)), "{outcome:?}");
    }

    #[tokio::test]
    async fn a_send_that_is_not_answered_in_time_is_sent_again() {
        // A management API that takes every connection and never answers.
        let (listener, endpoint) = loopback_listener().await;
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(socket);
            }
        });
        let mut pusher = real_pusher(&endpoint);
        pusher.attempt_timeout = Duration::from_millis(100);
        pusher.max_attempts = 3;
        let outcome = pusher.push("c=", "{}").await;
        server.abort();
        assert!(matches!(outcome, PushOutcome::Failed(_)), "{outcome:?}");
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}
