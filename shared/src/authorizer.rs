//! The HTTP API's Lambda authorizer, and how functions read its verdict.
//!
//! API Gateway HTTP API authorizers can only refuse with a bare 403, so the authorizer always
//! answers `isAuthorized: true` and puts its verdict in the context: `kind` is `user`, `secret`
//! or `denied` (with `error`). Every function refuses `denied` (and a missing verdict) with a 401
//! in natter's error format before doing anything else. Only the authorizer holds the secrets.

use aws_lambda_events::apigw::{
    ApiGatewayV2CustomAuthorizerSimpleResponse, ApiGatewayV2CustomAuthorizerV2Request,
    ApiGatewayV2httpRequestContext,
};
use serde_json::{json, Value};

use crate::auth::{authenticate, AuthConfig, Identity};
use crate::error::{Error, Result};

/// Checks the request's `Authorization` header and returns the verdict for API Gateway.
pub fn authorize(
    config: &AuthConfig,
    event: &ApiGatewayV2CustomAuthorizerV2Request,
    now_secs: u64,
) -> ApiGatewayV2CustomAuthorizerSimpleResponse<Value> {
    let header = event
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let context = match authenticate(header, config, now_secs) {
        Ok(Identity::User { user_id, role }) => {
            json!({"kind": "user", "userId": user_id, "role": role})
        }
        Ok(Identity::Secret) => json!({"kind": "secret"}),
        Err(e) => json!({"kind": "denied", "error": e.to_string()}),
    };
    let mut response = ApiGatewayV2CustomAuthorizerSimpleResponse::default();
    response.is_authorized = true;
    response.context = context;
    response
}

/// The identity the authorizer established for this request, or a 401.
pub fn identity_from_context(context: &ApiGatewayV2httpRequestContext) -> Result<Identity> {
    let fields = context
        .authorizer
        .as_ref()
        .map(|a| &a.fields)
        .ok_or_else(|| Error::Unauthorized("request was not authorized".into()))?;
    let text = |name: &str| fields.get(name).and_then(Value::as_str);
    match text("kind") {
        Some("user") => {
            let user_id = text("userId")
                .filter(|id| !id.is_empty())
                .ok_or_else(|| Error::Unauthorized("authorizer gave no user id".into()))?;
            Ok(Identity::User {
                user_id: user_id.to_string(),
                role: text("role").map(str::to_string),
            })
        }
        Some("secret") => Ok(Identity::Secret),
        Some("denied") => Err(Error::Unauthorized(
            text("error").unwrap_or("unauthorized").to_string(),
        )),
        _ => Err(Error::Unauthorized("request was not authorized".into())),
    }
}
