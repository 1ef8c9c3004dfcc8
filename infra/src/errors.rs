//! The gateway's own JSON error responses, shaped as natter's handlers shape theirs:
//! `{"error": {"code", "message"}}` with the status the code maps to.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use natter::error::Error;
use serde_json::json;

/// An error response with this status, code and message.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        json!({"error": {"code": code, "message": message}}).to_string(),
    )
        .into_response()
}

/// The response natter's handlers give for this error.
pub fn error_response_from(error: &Error) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        error.body().to_string(),
    )
        .into_response()
}
