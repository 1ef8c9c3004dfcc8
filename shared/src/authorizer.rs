//! The HTTP API's Lambda authorizer, and how functions read its verdict.
//!
//! API Gateway HTTP API authorizers can only refuse with a bare 403, so the authorizer always
//! answers `isAuthorized: true` and puts its verdict in the context: `kind` is `user`, `secret`
//! or `denied` (with `error`). Every function refuses `denied` (and a missing verdict) with a 401
//! in natter's error format before doing anything else. Only the authorizer holds the secrets.
//!
//! API Gateway caches a verdict per `Authorization` value for `config::authorizer::CACHE_TTL_SECS`
//! (so most requests run one Lambda, not two). A cached verdict can outlive the token's `exp`,
//! so a user verdict carries `exp` and [`identity_from_context`] refuses it from that second
//! with the same 401 the authorizer would give: caching never lets an expired token through.
//! The verdict must not depend on anything but that header (not the route, not the time beyond
//! `exp`): it answers every route for the TTL.

use aws_lambda_events::apigw::{
    ApiGatewayV2CustomAuthorizerSimpleResponse, ApiGatewayV2CustomAuthorizerV2Request,
    ApiGatewayV2httpRequestContext,
};
use serde_json::{json, Value};

use crate::auth::{authenticate_with_expiry, is_expired, AuthConfig, AuthError, Identity};
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
    let context = match authenticate_with_expiry(header, config, now_secs) {
        Ok((Identity::User { user_id, role }, exp)) => {
            json!({"kind": "user", "userId": user_id, "role": role, "exp": exp})
        }
        Ok((Identity::Secret, _)) => json!({"kind": "secret"}),
        Err(e) => json!({"kind": "denied", "error": e.to_string()}),
    };
    let mut response = ApiGatewayV2CustomAuthorizerSimpleResponse::default();
    response.is_authorized = true;
    response.context = context;
    response
}

/// Whether a request carries the authorizer's identity source (`Authorization`, present and not
/// empty): API Gateway answers a request without it 401 `{"message":"Unauthorized"}` itself,
/// without calling the authorizer (natter-local too).
pub fn has_identity_source(authorization_header: Option<&str>) -> bool {
    authorization_header.is_some_and(|value| !value.trim().is_empty())
}

/// The identity the authorizer established for this request, or a 401; a user token's verdict
/// (which API Gateway may have cached) is refused once its `exp` has passed at `now_secs`.
pub fn identity_from_context(
    context: &ApiGatewayV2httpRequestContext,
    now_secs: u64,
) -> Result<Identity> {
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
            // A verdict without exp is an authorizer's from before exp was handed on.
            if fields
                .get("exp")
                .and_then(Value::as_u64)
                .is_some_and(|exp| is_expired(exp, now_secs))
            {
                return Err(Error::Unauthorized(AuthError::Expired.to_string()));
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{issue_user_token, SigningKey};

    const NOW: u64 = 1_800_000_000;

    fn config() -> AuthConfig {
        AuthConfig::new("s".repeat(40), vec![SigningKey::new("k1", "x".repeat(40))]).unwrap()
    }

    fn context_for(header: &str, at: u64) -> ApiGatewayV2httpRequestContext {
        let mut event = ApiGatewayV2CustomAuthorizerV2Request::default();
        event
            .headers
            .insert(http::header::AUTHORIZATION, header.parse().unwrap());
        let verdict = authorize(&config(), &event, at);
        let mut context = ApiGatewayV2httpRequestContext::default();
        context.authorizer =
            Some(serde_json::from_value(json!({ "lambda": verdict.context })).unwrap());
        context
    }

    #[test]
    fn a_cached_user_verdict_is_refused_from_the_second_its_token_expires() {
        let config = config();
        let token = issue_user_token("alice", None, 30, NOW, config.signing_key()).unwrap();
        // The verdict as API Gateway would cache it, at NOW.
        let context = context_for(&format!("Bearer {token}"), NOW);
        let alice = Identity::User {
            user_id: "alice".into(),
            role: None,
        };
        assert_eq!(identity_from_context(&context, NOW).unwrap(), alice);
        assert_eq!(identity_from_context(&context, NOW + 29).unwrap(), alice);
        for later in [NOW + 30, NOW + 59] {
            match identity_from_context(&context, later) {
                Err(Error::Unauthorized(why)) => assert!(why.contains("expired"), "{why}"),
                other => panic!("{later}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_secret_key_verdict_does_not_expire_and_a_denial_stays_one() {
        let config = config();
        let context = context_for(&format!("Bearer {}", config.secret_key), NOW);
        assert_eq!(
            identity_from_context(&context, NOW + 3600).unwrap(),
            Identity::Secret
        );
        let context = context_for("Bearer nope", NOW);
        assert!(matches!(
            identity_from_context(&context, NOW),
            Err(Error::Unauthorized(_))
        ));
    }

    #[test]
    fn the_identity_source_is_a_present_non_empty_header() {
        assert!(!has_identity_source(None));
        assert!(!has_identity_source(Some("")));
        assert!(!has_identity_source(Some("  ")));
        assert!(has_identity_source(Some("Bearer x")));
        assert!(has_identity_source(Some("junk")));
    }
}
