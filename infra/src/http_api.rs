//! The HTTP half of the gateway: each request runs through the authorizer and then the route's
//! function handler, both fed the API Gateway HTTP API (payload 2.0) events they get on AWS
//! (built in `events.rs`).

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
        state.now_ms(),
    );

    let verdict = natter::authorizer::authorize(
        &state.auth,
        &http_authorizer_event(&event, route),
        state.now_secs(),
    );
    let event = match http_request(event, verdict.context) {
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
    into_axum(service.handle(event).await)
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
