//! The API Gateway events natter-local feeds the handlers, all built here: the HTTP API's
//! payload 2.0 events (the request's, and its Lambda authorizer's) and the WebSocket API's (the
//! `$connect` authorizer's REQUEST event, then `$connect`, message and `$disconnect` events),
//! with the one header parser, query parser, request id and request time they share.
//!
//! The two APIs pass repeated names differently, as on AWS: payload 2.0 joins the values with
//! commas (`headers`, `queryStringParameters`); the WebSocket API's events (payload 1.0) carry
//! the last value in `headers` / `queryStringParameters` and all of them in `multiValueHeaders`
//! / `multiValueQueryStringParameters`. `Params` holds every value and gives each view.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayV2CustomAuthorizerV2Request,
    ApiGatewayV2httpRequest, ApiGatewayWebsocketProxyRequest,
};
use axum::http::{HeaderMap, Method, Uri};
use base64::Engine;
use natter::routes::HttpRoute;
use percent_encoding::percent_decode_str;
use serde_json::{json, Map, Value};

use crate::time::CivilTime;

/// The stage name the WebSocket events carry.
pub const WS_STAGE: &str = "local";

// ---- Headers and query strings ----

/// A request's headers or query parameters: each name with all its values, the names in the
/// order they first appear and each name's values in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, Vec<String>)>);

impl Params {
    fn push(&mut self, name: String, value: String) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(value),
            None => self.0.push((name, vec![value])),
        }
    }

    /// Every value of a name, in order.
    pub fn values(&self, name: &str) -> &[String] {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, values)| values.as_slice())
            .unwrap_or_default()
    }

    /// The last value of a name: the one a payload 1.0 single-value map holds.
    pub fn last(&self, name: &str) -> Option<&str> {
        self.values(name).last().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Payload 2.0's map: each name's values joined with commas, by name.
    pub fn joined(&self) -> BTreeMap<String, String> {
        self.0
            .iter()
            .map(|(name, values)| (name.clone(), values.join(",")))
            .collect()
    }

    /// Payload 1.0's single-value map: each name's last value, in order of appearance.
    pub fn single(&self) -> Map<String, Value> {
        self.0
            .iter()
            .filter_map(|(name, values)| {
                Some((name.clone(), Value::String(values.last()?.clone())))
            })
            .collect()
    }

    /// Payload 1.0's multi-value map: each name's values, in order of appearance.
    pub fn multi(&self) -> Map<String, Value> {
        self.0
            .iter()
            .map(|(name, values)| (name.clone(), json!(values)))
            .collect()
    }
}

/// The request's headers: names in lower case (as `http` keeps them), values as text (invalid
/// UTF-8 replaced).
pub fn parse_headers(headers: &HeaderMap) -> Params {
    let mut params = Params::default();
    for (name, value) in headers {
        params.push(
            name.as_str().to_ascii_lowercase(),
            String::from_utf8_lossy(value.as_bytes()).into_owned(),
        );
    }
    params
}

/// A raw query string's parameters, decoded: `+` is a space, then percent-decoding (invalid
/// UTF-8 replaced); `a` alone is `a=""`; empty pairs are skipped.
pub fn parse_query(raw: &str) -> Params {
    let decode = |s: &str| {
        percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    let mut params = Params::default();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        params.push(decode(k), decode(v));
    }
    params
}

/// The first value of a header, when it is visible ASCII.
pub fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

// ---- Ids and times ----

/// A new connection id shaped like API Gateway's (11 random bytes, base64); `now_ms` is mixed
/// into the randomness.
pub fn connection_id(now_ms: i64) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_i64(now_ms);
    hasher.write_u32(NEXT.fetch_add(1, Ordering::Relaxed));
    let random = hasher.finish().to_be_bytes();
    let count = NEXT.load(Ordering::Relaxed).to_be_bytes();
    let mut bytes = [0u8; 11];
    bytes[..8].copy_from_slice(&random);
    bytes[8..].copy_from_slice(&count[1..]);
    base64::engine::general_purpose::URL_SAFE.encode(bytes)
}

/// A new request id shaped like API Gateway's (15 characters of base64).
pub fn request_id(now_ms: i64) -> String {
    connection_id(now_ms).trim_end_matches('=').to_string()
}

/// `22/Nov/2026:04:36:00 +0000`, API Gateway's `requestTime`.
pub fn request_time(ms: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = CivilTime::from_ms(ms);
    let name = MONTHS[((t.month - 1).clamp(0, 11)) as usize];
    format!(
        "{:02}/{name}/{}:{:02}:{:02}:{:02} +0000",
        t.day, t.year, t.hour, t.minute, t.second
    )
}

// ---- The HTTP API (payload 2.0) ----

/// The HTTP API payload 2.0 event for a request, as JSON (authorizer context still empty).
pub fn http_event(
    route: &HttpRoute,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    path_parameters: &BTreeMap<String, String>,
    body: &[u8],
    now_ms: i64,
) -> Value {
    let raw_query = uri.query().unwrap_or("");
    let query = parse_query(raw_query);
    let route_key = format!("{} {}", route.method, route.path);
    let (body, is_base64) = match std::str::from_utf8(body) {
        _ if body.is_empty() => (Value::Null, false),
        Ok(text) => (Value::String(text.to_string()), false),
        Err(_) => (
            Value::String(base64::engine::general_purpose::STANDARD.encode(body)),
            true,
        ),
    };
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": uri.path(),
        "rawQueryString": raw_query,
        "headers": parse_headers(headers).joined(),
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {
                "method": method.as_str(),
                "path": uri.path(),
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": header_str(headers, "user-agent").unwrap_or(""),
            },
            "requestId": request_id(now_ms),
            "routeKey": route_key,
            "stage": "$default",
            "timeEpoch": now_ms,
        },
        "pathParameters": path_parameters,
        "isBase64Encoded": is_base64,
    });
    if !query.is_empty() {
        event["queryStringParameters"] = json!(query.joined());
    }
    if !body.is_null() {
        event["body"] = body;
    }
    event
}

/// The Lambda authorizer's payload 2.0 event for the same request.
pub fn http_authorizer_event(
    event: &Value,
    route: &HttpRoute,
) -> ApiGatewayV2CustomAuthorizerV2Request {
    let mut auth = json!({
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": format!(
            "arn:aws:execute-api:local:000000000000:local/$default/{}{}",
            route.method, route.path
        ),
        "routeKey": event["routeKey"],
        "rawPath": event["rawPath"],
        "rawQueryString": event["rawQueryString"],
        "headers": event["headers"],
        "requestContext": event["requestContext"],
        "pathParameters": event["pathParameters"],
        // The one identity source, $request.header.Authorization.
        "identitySource": [event["headers"]["authorization"].clone()],
    });
    if let Some(q) = event.get("queryStringParameters") {
        auth["queryStringParameters"] = q.clone();
    }
    serde_json::from_value(auth).unwrap_or_default()
}

/// The request's event as the function gets it: with the authorizer's context.
pub fn http_request(
    mut event: Value,
    authorizer_context: Value,
) -> Result<ApiGatewayV2httpRequest, String> {
    event["requestContext"]["authorizer"] = json!({ "lambda": authorizer_context });
    serde_json::from_value(event).map_err(|e| format!("could not build the API Gateway event: {e}"))
}

// ---- The WebSocket API ----

/// The connection a WebSocket event is about, and the peer behind it.
pub struct WsPeer<'a> {
    /// The `Host` the client connected to (the events' `domainName`).
    pub host: &'a str,
    pub connection_id: &'a str,
    /// Milliseconds since the epoch.
    pub connected_at: i64,
    pub source_ip: &'a str,
    pub user_agent: &'a str,
}

/// The `requestContext` of a WebSocket event.
pub fn ws_request_context(peer: &WsPeer, route_key: &str, event_type: &str, now_ms: i64) -> Value {
    json!({
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": request_id(now_ms),
        "requestTime": request_time(now_ms),
        "messageDirection": "IN",
        "stage": WS_STAGE,
        "connectedAt": peer.connected_at,
        "requestTimeEpoch": now_ms,
        "identity": {"sourceIp": peer.source_ip, "userAgent": peer.user_agent},
        "requestId": request_id(now_ms),
        "domainName": peer.host,
        "connectionId": peer.connection_id,
        "apiId": "local",
    })
}

/// The `$connect` authorizer's REQUEST event, over the `$connect` request's context.
pub fn ws_authorizer_event(
    headers: &Params,
    query: &Params,
    context: &Value,
) -> Result<ApiGatewayCustomAuthorizerRequestTypeRequest, String> {
    let event = json!({
        "type": "REQUEST",
        "methodArn": format!("arn:aws:execute-api:local:000000000000:local/{WS_STAGE}/$connect"),
        "headers": headers.single(),
        "multiValueHeaders": headers.multi(),
        "queryStringParameters": query.single(),
        "multiValueQueryStringParameters": query.multi(),
        "stageVariables": {},
        "requestContext": context,
    });
    serde_json::from_value(event).map_err(|e| format!("could not build the authorizer event: {e}"))
}

/// What API Gateway passes on from the authorizer to every route, in
/// `requestContext.authorizer`: the context's keys plus the principal id.
pub fn ws_authorizer_context(context: Value, principal_id: Option<String>) -> Map<String, Value> {
    let mut authorizer = match context {
        Value::Object(fields) => fields,
        _ => Map::new(),
    };
    if let Some(principal) = principal_id {
        authorizer.insert("principalId".into(), Value::String(principal));
    }
    authorizer.insert("integrationLatency".into(), json!(0));
    authorizer
}

/// The `$connect` route's event: the same request and context as its authorizer's event.
pub fn ws_connect_event(
    headers: &Params,
    query: &Params,
    mut context: Value,
    authorizer: &Map<String, Value>,
) -> Result<ApiGatewayWebsocketProxyRequest, String> {
    context["authorizer"] = Value::Object(authorizer.clone());
    ws_event(json!({
        "headers": headers.single(),
        "multiValueHeaders": headers.multi(),
        "queryStringParameters": query.single(),
        "multiValueQueryStringParameters": query.multi(),
        "requestContext": context,
        "isBase64Encoded": false,
    }))
}

/// The event of one client frame, for the route its `action` chose.
pub fn ws_message_event(
    peer: &WsPeer,
    route_key: &str,
    authorizer: &Map<String, Value>,
    body: &str,
    now_ms: i64,
) -> Result<ApiGatewayWebsocketProxyRequest, String> {
    let mut context = ws_request_context(peer, route_key, "MESSAGE", now_ms);
    context["messageId"] = json!(request_id(now_ms));
    context["authorizer"] = Value::Object(authorizer.clone());
    ws_event(json!({
        "requestContext": context,
        "body": body,
        "isBase64Encoded": false,
    }))
}

/// The `$disconnect` route's event, with the close code and reason.
pub fn ws_disconnect_event(
    peer: &WsPeer,
    authorizer: &Map<String, Value>,
    code: u16,
    reason: &str,
    now_ms: i64,
) -> Result<ApiGatewayWebsocketProxyRequest, String> {
    let mut context = ws_request_context(peer, "$disconnect", "DISCONNECT", now_ms);
    context["authorizer"] = Value::Object(authorizer.clone());
    context["disconnectStatusCode"] = json!(code);
    context["disconnectReason"] = json!(reason);
    ws_event(json!({
        "headers": {"Host": "127.0.0.1", "x-api-key": "", "x-restapi": ""},
        "multiValueHeaders": {},
        "requestContext": context,
        "isBase64Encoded": false,
    }))
}

fn ws_event(event: Value) -> Result<ApiGatewayWebsocketProxyRequest, String> {
    serde_json::from_value(event).map_err(|e| format!("could not build the WebSocket event: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static [u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_bytes(value).unwrap());
        }
        map
    }

    #[test]
    fn repeated_headers_are_comma_joined_last_and_multi_valued() {
        let parsed = parse_headers(&headers(&[
            ("x-dup", b"one"),
            ("host", b"127.0.0.1:8787"),
            ("x-dup", b"two, three"),
            ("x-bytes", b"caf\xe9"),
        ]));
        assert_eq!(parsed.values("x-dup"), ["one", "two, three"]);
        assert_eq!(parsed.last("x-dup"), Some("two, three"));
        assert_eq!(parsed.last("host"), Some("127.0.0.1:8787"));
        assert_eq!(parsed.last("x-bytes"), Some("caf\u{FFFD}"));
        assert_eq!(parsed.last("missing"), None);
        // Payload 2.0: joined with commas, by name.
        assert_eq!(
            json!(parsed.joined()).to_string(),
            r#"{"host":"127.0.0.1:8787","x-bytes":"caf�","x-dup":"one,two, three"}"#
        );
        // Payload 1.0: the last value, and all of them, in order of appearance.
        assert_eq!(
            Value::Object(parsed.single()).to_string(),
            r#"{"x-dup":"two, three","host":"127.0.0.1:8787","x-bytes":"caf�"}"#
        );
        assert_eq!(
            Value::Object(parsed.multi()).to_string(),
            r#"{"x-dup":["one","two, three"],"host":["127.0.0.1:8787"],"x-bytes":["caf�"]}"#
        );
        assert!(parse_headers(&HeaderMap::new()).is_empty());
    }

    #[test]
    fn repeated_query_keys_keep_every_value() {
        let parsed = parse_query("x=1&y=a&x=2&&x=3");
        assert_eq!(parsed.values("x"), ["1", "2", "3"]);
        assert_eq!(parsed.joined()["x"], "1,2,3");
        assert_eq!(parsed.last("x"), Some("3"));
        assert_eq!(
            Value::Object(parsed.multi()).to_string(),
            r#"{"x":["1","2","3"],"y":["a"]}"#
        );
        assert_eq!(
            Value::Object(parsed.single()).to_string(),
            r#"{"x":"3","y":"a"}"#
        );
        assert!(parse_query("").is_empty());
        assert!(parse_query("&&").is_empty());
    }

    #[test]
    fn query_parameters_are_percent_decoded() {
        let parsed =
            parse_query("a%20b=c+d&%F0%9F%91%8D=%E2%9C%93&plus=1%2B1&flag&=v&eq=1=2&bad=%zz%FF");
        assert_eq!(parsed.last("a b"), Some("c d"));
        assert_eq!(parsed.last("👍"), Some("✓"));
        assert_eq!(parsed.last("plus"), Some("1+1"));
        assert_eq!(parsed.last("flag"), Some(""));
        assert_eq!(parsed.last(""), Some("v"));
        assert_eq!(parsed.last("eq"), Some("1=2"));
        // What is not a valid escape stays as it is; bytes that are not UTF-8 become U+FFFD.
        assert_eq!(parsed.last("bad"), Some("%zz\u{FFFD}"));
    }

    #[test]
    fn request_times_look_like_api_gateway_ones() {
        assert_eq!(request_time(0), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(
            request_time(1_795_754_160_000),
            "27/Nov/2026:04:36:00 +0000"
        );
        assert_eq!(request_time(951_782_400_000), "29/Feb/2000:00:00:00 +0000");
    }

    #[test]
    fn connection_and_request_ids_are_unique_and_url_safe() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| connection_id(0)).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids
            .iter()
            .all(|id| id.len() == 16 && !id.contains('/') && !id.contains('+')));
        let request = request_id(0);
        assert_eq!(request.len(), 15);
        assert!(!request.contains('='));
    }
}
