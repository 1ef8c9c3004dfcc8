//! The HTTP half of the gateway: each request runs through the authorizer and then the route's
//! function handler, both fed the API Gateway HTTP API (payload 2.0) events they get on AWS
//! (built in `events.rs`).
//!
//! A response is measured as the Lambda runtime would send it to API Gateway (the serialized
//! response JSON, whose body is an escaped string, or base64 for a binary one): over Lambda's
//! payload limit (`config::aws::LAMBDA_PAYLOAD_MAX_BYTES`) the invocation fails on AWS, and API
//! Gateway answers 502 `{"message": "Internal Server Error"}`; so does the gateway, logging and
//! counting it as the bug it is (`GET /@local/stats`).

use std::collections::BTreeMap;

use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use aws_lambda_events::encodings::Body as EventBody;
use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::Response;
use natter::error::Error;
use natter::routes::find_route;
use percent_encoding::percent_decode_str;

use crate::errors::{error_response, error_response_from};
use crate::events::{http_authorizer_event, http_event, http_request};
use crate::state::AppState;
use crate::stats::{bump, Stats};
use natter::config::aws::LAMBDA_PAYLOAD_MAX_BYTES;

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
    // API Gateway's own check of the authorizer's identity source, before anything else. The
    // identity (and cache key) is the header as the authorizer sees it: repeated ones joined
    // with commas, as in the event.
    let values: Vec<String> = parts
        .headers
        .get_all(axum::http::header::AUTHORIZATION)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    let authorization = (!values.is_empty()).then(|| values.join(","));
    if !natter::authorizer::has_identity_source(authorization.as_deref()) {
        bump(&state.stats.missing_identity);
        return missing_identity();
    }
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
        state.now_ms(),
    );

    // The verdict API Gateway has cached for this Authorization value, or the authorizer's.
    let identity = authorization.unwrap_or_default();
    let verdict = match state.authorizer_cache.get(&identity, state.now_ms()) {
        Some(cached) => cached,
        None => {
            bump(&state.stats.authorizer_calls);
            let verdict = natter::authorizer::authorize(
                &state.auth,
                &http_authorizer_event(&event, route),
                state.now_secs(),
            )
            .context;
            state
                .authorizer_cache
                .put(&identity, verdict.clone(), state.now_ms());
            verdict
        }
    };
    let event = match http_request(event, verdict) {
        Ok(event) => event,
        Err(e) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal", &e),
    };
    let Some(service) = state.http.get(route.function) else {
        return error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &format!("no operation serves {}", route.function),
        );
    };
    lambda_response(&state.stats, route.function, service.handle(event).await)
}

/// API Gateway's answer to a request without the authorizer's identity source (an HTTP API
/// cannot change it): 401 `{"message":"Unauthorized"}`, not natter's error format.
fn missing_identity() -> Response {
    Response::builder()
        .status(StatusCode::UNAUTHORIZED)
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            natter::config::authorizer::MISSING_IDENTITY_BODY,
        ))
        .unwrap_or_default()
}

/// How many bytes the Lambda runtime would send for `response`: its JSON.
pub fn invocation_payload_bytes(response: &ApiGatewayV2httpResponse) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, response) {
        Ok(()) => count.0,
        // A response the runtime cannot serialize fails the invocation as surely.
        Err(_) => usize::MAX,
    }
}

/// The answer API Gateway gives for a function's response: the response itself, or a 502 when
/// it is over Lambda's payload limit.
pub fn lambda_response(
    stats: &Stats,
    function: &str,
    response: ApiGatewayV2httpResponse,
) -> Response {
    let bytes = invocation_payload_bytes(&response);
    if bytes > LAMBDA_PAYLOAD_MAX_BYTES {
        bump(&stats.oversized_responses);
        tracing::error!(
            function,
            bytes,
            limit = LAMBDA_PAYLOAD_MAX_BYTES,
            "bug: a response is over Lambda's payload limit; answered 502 as API Gateway would"
        );
        let mut out = Response::new(Body::from(r#"{"message":"Internal Server Error"}"#));
        *out.status_mut() = StatusCode::BAD_GATEWAY;
        out.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        );
        return out;
    }
    into_axum(response)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    fn response(body: EventBody) -> ApiGatewayV2httpResponse {
        let mut response = ApiGatewayV2httpResponse::default();
        response.status_code = 200;
        response.headers.insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        );
        response.body = Some(body);
        response
    }

    async fn body_of(response: Response) -> Vec<u8> {
        to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec()
    }

    #[test]
    fn the_payload_is_the_serialized_response() {
        let small = response(EventBody::Text("{}".into()));
        let json = serde_json::to_vec(&small).unwrap();
        assert_eq!(invocation_payload_bytes(&small), json.len());
        // A body is an escaped string in the payload: every quote takes two bytes.
        let quotes = response(EventBody::Text("\"".repeat(1000)));
        assert!(invocation_payload_bytes(&quotes) > 2000);
        // A binary body is base64.
        let binary = response(EventBody::Binary(vec![0; 3000]));
        assert!(invocation_payload_bytes(&binary) > 4000);
    }

    #[tokio::test]
    async fn a_response_over_the_lambda_limit_is_a_502() {
        let stats = Stats::default();
        // A body under the limit as bytes whose escaped form is over it.
        let body = format!("\"{}\"", "\"".repeat(LAMBDA_PAYLOAD_MAX_BYTES / 2 + 1));
        assert!(body.len() < LAMBDA_PAYLOAD_MAX_BYTES);
        let answer = lambda_response(&stats, "get-messages", response(EventBody::Text(body)));
        assert_eq!(answer.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(
            answer.headers()[axum::http::header::CONTENT_TYPE],
            "application/json"
        );
        let json: serde_json::Value = serde_json::from_slice(&body_of(answer).await).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"message": "Internal Server Error"})
        );
        assert_eq!(stats.oversized_responses.load(Ordering::Relaxed), 1);

        // Just under the limit, the response passes as it is, and nothing is counted.
        let fits = response(EventBody::Text(String::new()));
        let room = LAMBDA_PAYLOAD_MAX_BYTES - invocation_payload_bytes(&fits);
        let fits = response(EventBody::Text("a".repeat(room)));
        assert_eq!(invocation_payload_bytes(&fits), LAMBDA_PAYLOAD_MAX_BYTES);
        let answer = lambda_response(&stats, "get-messages", fits);
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(body_of(answer).await.len(), room);
        assert_eq!(stats.oversized_responses.load(Ordering::Relaxed), 1);
    }
}
