//! The demo chat page at `/`: plain HTML, CSS and JavaScript on the client library
//! (`clients/js`), embedded in the binary so that `cargo run -p natter-local` serves it with
//! nothing else installed. `web/natter-client.js` is the client's build, copied in by its build
//! (`npm run build` in `clients/js`) and checked current by the client's tests.
//!
//! Not an AWS API: the gateway's own pages and `/@local/…` helpers. With the dev secrets only,
//! `POST /@local/token` hands the page a token for the user id typed in; with real secrets it
//! answers 404 and the page asks for a token instead.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::errors::error_response;
use crate::state::AppState;

/// One embedded file: its path under `/` and its content type.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../web/index.html"),
    },
    Asset {
        path: "/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../web/app.js"),
    },
    Asset {
        path: "/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../web/style.css"),
    },
    Asset {
        path: "/natter-client.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../web/natter-client.js"),
    },
];

/// The router's routes for the page: each asset's path, and what it serves.
pub fn asset_paths() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|a| a.path)
}

/// Serves the embedded file at `path` (the router only routes the paths of `ASSETS` here).
pub async fn asset(uri: axum::http::Uri) -> Response {
    match ASSETS.iter().find(|a| a.path == uri.path()) {
        Some(asset) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, asset.content_type),
                // The page is small and changes with the binary: always fetch it anew.
                (header::CACHE_CONTROL, "no-cache"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            asset.body,
        )
            .into_response(),
        None => error_response(StatusCode::NOT_FOUND, "not_found", "no such page"),
    }
}

/// `GET /@local/demo`: what the page needs to know of this gateway.
pub async fn demo_config(State(state): State<AppState>) -> Response {
    Json(json!({ "devTokens": state.dev_tokens })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TokenRequest {
    user_id: String,
}

/// `POST /@local/token {userId}`: a user token for the demo page, with the dev secrets only.
pub async fn dev_token(
    State(state): State<AppState>,
    body: Result<Json<TokenRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if !state.dev_tokens {
        return error_response(
            StatusCode::NOT_FOUND,
            "not_found",
            "this gateway runs with real secrets: it hands out no tokens",
        );
    }
    let Json(request) = match body {
        Ok(body) => body,
        Err(rejection) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("the body must be {{\"userId\": \"...\"}}: {rejection}"),
            )
        }
    };
    match natter::auth::issue_user_token(
        &request.user_id,
        None,
        natter::config::local::DEV_TOKEN_TTL_SECS,
        state.now_secs(),
        state.auth.signing_key(),
    ) {
        Ok(token) => Json(json!({ "token": token })).into_response(),
        Err(e) => error_response(StatusCode::BAD_REQUEST, "invalid_request", &e.to_string()),
    }
}
