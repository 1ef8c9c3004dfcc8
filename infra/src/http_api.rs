//! The HTTP half of the gateway: each request runs through the authorizer and then the route's
//! function handler, both fed the API Gateway HTTP API (payload 2.0) events they get on AWS.

use std::collections::BTreeMap;

use aws_lambda_events::apigw::{
    ApiGatewayV2CustomAuthorizerV2Request, ApiGatewayV2httpRequest, ApiGatewayV2httpResponse,
};
use aws_lambda_events::encodings::Body as EventBody;
use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Request, StatusCode, Uri};
use axum::response::Response;
use base64::Engine;
use natter::error::Error;
use natter::routes::{find_route, HttpRoute};
use percent_encoding::percent_decode_str;
use serde_json::{json, Value};

use crate::errors::{error_response, error_response_from};
use crate::state::AppState;

/// Serves every request under `/v1`.
pub async fn serve(State(state): State<AppState>, request: Request<Body>) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let (route, params) = match find_route(parts.method.as_str(), &path) {
        Ok(found) => found,
        Err(path_exists) => {
            let (status, message) = if path_exists {
                (
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("{} is not allowed on {path}", parts.method),
                )
            } else {
                (
                    StatusCode::NOT_FOUND,
                    format!("no route for {} {path}", parts.method),
                )
            };
            let code = if path_exists {
                "invalid_request"
            } else {
                "not_found"
            };
            return error_response(status, code, &message);
        }
    };
    let mut path_parameters = BTreeMap::new();
    for (name, raw) in params {
        match percent_decode_str(raw).decode_utf8() {
            Ok(value) => {
                path_parameters.insert(name, value.into_owned());
            }
            Err(_) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    &format!("path parameter {name} is not valid UTF-8 once decoded"),
                )
            }
        }
    }
    // Read one byte past the limit so that an oversized body is told apart from a full one.
    let limit = state.services.config().limits.max_body_bytes;
    let bytes = match to_bytes(body, limit + 1).await {
        Ok(bytes) if bytes.len() <= limit => bytes,
        _ => {
            return error_response_from(&Error::TooLarge(format!(
                "request body is larger than {limit} bytes"
            )))
        }
    };
    let event = http_event(
        route,
        &parts.method,
        &parts.uri,
        &parts.headers,
        &path_parameters,
        &bytes,
    );

    let verdict = natter::authorizer::authorize(
        &state.auth,
        &authorizer_event(&event, route),
        state.now_secs(),
    );
    let mut event = event;
    event["requestContext"]["authorizer"] = json!({ "lambda": verdict.context });
    let event: ApiGatewayV2httpRequest = match serde_json::from_value(event) {
        Ok(event) => event,
        Err(e) => {
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                &format!("could not build the API Gateway event: {e}"),
            )
        }
    };
    let Some(service) = state.http.get(route.function) else {
        return error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &format!("no operation serves {}", route.function),
        );
    };
    into_axum(service.handle(event).await)
}

/// The HTTP API payload 2.0 event for a request, as JSON (authorizer context still empty).
fn http_event(
    route: &HttpRoute,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    path_parameters: &BTreeMap<String, String>,
    body: &[u8],
) -> Value {
    let mut header_map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        header_map
            .entry(name.as_str().to_ascii_lowercase())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let raw_query = uri.query().unwrap_or("");
    let mut query: BTreeMap<String, String> = BTreeMap::new();
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        query
            .entry(decode(k))
            .and_modify(|existing| {
                existing.push(',');
                existing.push_str(&decode(v));
            })
            .or_insert_with(|| decode(v));
    }
    let route_key = format!("{} {}", route.method, route.path);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
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
        "headers": header_map,
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
                "userAgent": headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or(""),
            },
            "requestId": format!("local-{now}-{}", rand_suffix()),
            "routeKey": route_key,
            "stage": "$default",
            "timeEpoch": now,
        },
        "pathParameters": path_parameters,
        "isBase64Encoded": is_base64,
    });
    if !query.is_empty() {
        event["queryStringParameters"] = json!(query);
    }
    if !body.is_null() {
        event["body"] = body;
    }
    event
}

fn rand_suffix() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The Lambda authorizer's payload 2.0 event for the same request.
fn authorizer_event(event: &Value, route: &HttpRoute) -> ApiGatewayV2CustomAuthorizerV2Request {
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
    });
    if let Some(q) = event.get("queryStringParameters") {
        auth["queryStringParameters"] = q.clone();
    }
    serde_json::from_value(auth).unwrap_or_default()
}

fn into_axum(response: ApiGatewayV2httpResponse) -> Response {
    let status = u16::try_from(response.status_code)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::BAD_GATEWAY);
    let body = match response.body {
        None | Some(EventBody::Empty) => Body::empty(),
        Some(EventBody::Text(text)) => Body::from(text),
        Some(EventBody::Binary(bytes)) => Body::from(bytes),
        Some(_) => Body::empty(),
    };
    let mut out = Response::new(body);
    *out.status_mut() = status;
    *out.headers_mut() = response.headers;
    out
}
