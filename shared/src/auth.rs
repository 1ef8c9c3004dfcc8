//! Bearer tokens and the identities they carry.
//!
//! A request is authenticated either by the deployment's secret key (for
//! operators and back-office tools) or by an HS256 JWT issued to a user.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::config::input::{TOKEN_EXP_LEEWAY_SECS, TOKEN_NBF_LEEWAY_SECS};
use crate::config::Limits;

/// The only JWT algorithm accepted or issued.
const ALGORITHM: &str = "HS256";

/// Claims of a user token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    User {
        user_id: String,
        role: Option<String>,
    },
    /// The holder of the deployment's secret key.
    Secret,
}

/// Why a request could not be authenticated. The messages are shown to API
/// clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing Authorization header")]
    MissingHeader,
    #[error("Authorization header must be 'Bearer <token>'")]
    NotBearer,
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token has no kid header; user tokens name their signing key")]
    MissingKid,
    #[error("token kid {0:?} names no current signing key")]
    UnknownKid(String),
    #[error("token algorithm {0} is not accepted; use HS256")]
    WrongAlgorithm(String),
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet (nbf is in the future)")]
    NotYetValid,
    #[error("token has no exp claim; tokens must expire")]
    MissingExp,
    #[error("token subject is invalid: {0}")]
    BadSubject(String),
    #[error("the secret key cannot open a WebSocket connection; use a user token")]
    SecretKeyNotAllowed,
    #[error("could not sign token: {0}")]
    Signing(String),
}

/// The most signing keys a deployment holds at once: the current one and, while a rotation is
/// under way, one more (see README, "Deploying to AWS").
pub const MAX_SIGNING_KEYS: usize = 2;

/// One HMAC key for user tokens, named by the `kid` header of the tokens it signs.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    pub kid: String,
    pub secret: Vec<u8>,
}

impl SigningKey {
    pub fn new(kid: impl Into<String>, secret: impl Into<Vec<u8>>) -> SigningKey {
        SigningKey {
            kid: kid.into(),
            secret: secret.into(),
        }
    }
}

// Hand-written so that secrets never end up in logs.
impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// Secrets used to authenticate requests.
///
/// A user token is checked with the signing key its `kid` header names, so a deployment can hold
/// two keys while it rotates: tokens signed with either verify, and adding or removing a key never
/// changes which key checks a token. A token without `kid` is refused ([`AuthError::MissingKid`]):
/// accepting it with "the only key" would make it fail, or pass, depending on how many keys are
/// configured at the moment, which is exactly what a rotation must not do.
#[derive(Clone)]
pub struct AuthConfig {
    /// HMAC keys for user tokens (1..=[`MAX_SIGNING_KEYS`], distinct kids). The first is the one
    /// natter itself issues tokens with (natter-local's `token`).
    signing_keys: Vec<SigningKey>,
    /// Bearer token that authenticates as [`Identity::Secret`].
    pub secret_key: String,
}

impl AuthConfig {
    /// The secrets, checked: one or two signing keys with distinct, well-formed kids.
    pub fn new(secret_key: String, signing_keys: Vec<SigningKey>) -> Result<AuthConfig, String> {
        if signing_keys.is_empty() || signing_keys.len() > MAX_SIGNING_KEYS {
            return Err(format!(
                "expected 1 to {MAX_SIGNING_KEYS} signing keys, got {}",
                signing_keys.len()
            ));
        }
        for (i, key) in signing_keys.iter().enumerate() {
            check_kid(&key.kid)?;
            if signing_keys[..i].iter().any(|k| k.kid == key.kid) {
                return Err(format!("signing key id {:?} is given twice", key.kid));
            }
        }
        Ok(AuthConfig {
            signing_keys,
            secret_key,
        })
    }

    /// The key natter issues tokens with (the first one configured).
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing_keys[0]
    }

    /// Every key a token may name.
    pub fn signing_keys(&self) -> &[SigningKey] {
        &self.signing_keys
    }

    /// The key a token's `kid` names.
    pub fn key_for(&self, kid: &str) -> Option<&SigningKey> {
        self.signing_keys.iter().find(|k| k.kid == kid)
    }
}

/// The longest signing key id.
pub const KID_MAX_CHARS: usize = 64;

/// A kid is 1..=64 characters of `A-Z a-z 0-9 . _ -`: it travels in every token header.
pub fn check_kid(kid: &str) -> Result<(), String> {
    let ok = !kid.is_empty()
        && kid.len() <= KID_MAX_CHARS
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "signing key id {kid:?} must be 1 to {KID_MAX_CHARS} characters of A-Z a-z 0-9 . _ -"
        ))
    }
}

// Hand-written so that secrets never end up in logs.
impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("signing_keys", &self.signing_keys)
            .field("secret_key", &"[redacted]")
            .finish()
    }
}

/// Authenticates an HTTP request from its `Authorization` header, which must
/// be `Bearer <token>` (scheme case-insensitive). The token is either the
/// secret key or an HS256 user token that expires after `now_secs`.
pub fn authenticate(
    authorization_header: Option<&str>,
    config: &AuthConfig,
    now_secs: u64,
) -> Result<Identity, AuthError> {
    authenticate_with_expiry(authorization_header, config, now_secs).map(|(identity, _)| identity)
}

/// [`authenticate`], and when the identity is a user token's, the second it expires (its
/// `exp`): the secret key does not expire. The authorizer hands `exp` on with its verdict so
/// that a cached verdict is refused from that second (`authorizer::identity_from_context`).
pub fn authenticate_with_expiry(
    authorization_header: Option<&str>,
    config: &AuthConfig,
    now_secs: u64,
) -> Result<(Identity, Option<u64>), AuthError> {
    let token = bearer_token(authorization_header)?;
    if is_secret_key(token, config) {
        return Ok((Identity::Secret, None));
    }
    verify_user_token_until(token, config, now_secs).map(|(identity, exp)| (identity, Some(exp)))
}

/// Whether a user token that expires at `exp` has expired at `now_secs` (no leeway but
/// `TOKEN_EXP_LEEWAY_SECS`).
pub fn is_expired(exp: u64, now_secs: u64) -> bool {
    exp.saturating_add(TOKEN_EXP_LEEWAY_SECS) <= now_secs
}

/// Authenticates a WebSocket connection from a bare token (a query parameter,
/// since browsers cannot set headers there). Only user tokens are accepted:
/// the secret key would otherwise end up in URLs and access logs.
pub fn authenticate_token(
    token: &str,
    config: &AuthConfig,
    now_secs: u64,
) -> Result<Identity, AuthError> {
    if token.is_empty() {
        return Err(AuthError::Malformed("token is empty".to_owned()));
    }
    if is_secret_key(token, config) {
        return Err(AuthError::SecretKeyNotAllowed);
    }
    verify_user_token(token, config, now_secs)
}

/// Issues an HS256 user token signed with `key` (its `kid` in the header) that expires
/// `ttl_secs` after `now_secs` (a `ttl_secs` of 0 gives a token that is already expired).
pub fn issue_user_token(
    user_id: &str,
    role: Option<&str>,
    ttl_secs: u64,
    now_secs: u64,
    key: &SigningKey,
) -> Result<String, AuthError> {
    // Never issue a token that `authenticate` would refuse.
    check_subject(user_id)?;
    if key.secret.is_empty() {
        return Err(AuthError::Signing("the signing secret is empty".to_owned()));
    }
    check_kid(&key.kid).map_err(AuthError::Signing)?;
    let claims = Claims {
        sub: user_id.to_owned(),
        exp: now_secs.saturating_add(ttl_secs),
        role: role.map(str::to_owned),
    };
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&key.secret))
        .map_err(|e| AuthError::Signing(e.to_string()))
}

fn bearer_token(authorization_header: Option<&str>) -> Result<&str, AuthError> {
    let header = authorization_header
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or(AuthError::MissingHeader)?;
    let (scheme, token) = header.split_once(' ').ok_or(AuthError::NotBearer)?;
    let token = token.trim_start();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthError::NotBearer);
    }
    Ok(token)
}

fn is_secret_key(token: &str, config: &AuthConfig) -> bool {
    // An unset secret key must not let anything through.
    !config.secret_key.is_empty()
        && constant_time_eq(token.as_bytes(), config.secret_key.as_bytes())
}

/// Compares in time that depends only on the lengths, so the secret key
/// cannot be guessed byte by byte from response times.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| std::hint::black_box(acc | (x ^ y)));
    diff == 0
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    kid: Option<String>,
}

/// Claims as found in a token, before the checks that give specific errors.
#[derive(Deserialize)]
struct RawClaims {
    sub: Option<String>,
    exp: Option<u64>,
    nbf: Option<u64>,
    role: Option<String>,
}

fn verify_user_token(
    token: &str,
    config: &AuthConfig,
    now_secs: u64,
) -> Result<Identity, AuthError> {
    verify_user_token_until(token, config, now_secs).map(|(identity, _)| identity)
}

/// The token's identity and its `exp`.
fn verify_user_token_until(
    token: &str,
    config: &AuthConfig,
    now_secs: u64,
) -> Result<(Identity, u64), AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed(
            "expected a JWT with three dot-separated parts".to_owned(),
        ));
    };

    // Checked here rather than left to jsonwebtoken: its header type cannot
    // represent "none", so it would report that as a JSON error.
    let header: RawHeader = decode_part(header, "header")?;
    if header.alg != ALGORITHM {
        return Err(AuthError::WrongAlgorithm(header.alg));
    }
    // Parsed before verifying the signature so that garbage gets a precise
    // reason instead of "bad signature".
    decode_part::<RawClaims>(payload, "payload")?;

    // The token names the key that checks it; see `AuthConfig` for why there is no fallback.
    let kid = header.kid.ok_or(AuthError::MissingKid)?;
    let key = config
        .key_for(&kid)
        .ok_or_else(|| AuthError::UnknownKid(kid.clone()))?;
    // A token signed with an empty key proves nothing.
    if key.secret.is_empty() {
        return Err(AuthError::BadSignature);
    }
    let mut validation = Validation::new(Algorithm::HS256);
    // jsonwebtoken checks exp and nbf against the system clock; they are checked below
    // against `now_secs` instead (the clock every other rule uses), each with its leeway, and
    // exp's absence gets its own error.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.required_spec_claims.clear();
    validation.leeway = TOKEN_EXP_LEEWAY_SECS;
    // Our tokens carry no audience; with only one issuer there is nothing to match.
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<RawClaims>(
        token,
        &DecodingKey::from_secret(&key.secret),
        &validation,
    )
    .map_err(|e| match e.kind() {
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        // Header and payload were decoded above, so this is the signature.
        ErrorKind::Base64(_) => AuthError::Malformed("signature is not valid base64url".to_owned()),
        _ => AuthError::Malformed(e.to_string()),
    })?
    .claims;

    let exp = claims.exp.ok_or(AuthError::MissingExp)?;
    if is_expired(exp, now_secs) {
        return Err(AuthError::Expired);
    }
    if claims
        .nbf
        .is_some_and(|nbf| nbf > now_secs.saturating_add(TOKEN_NBF_LEEWAY_SECS))
    {
        return Err(AuthError::NotYetValid);
    }
    let sub = claims
        .sub
        .ok_or_else(|| AuthError::BadSubject("sub claim is missing".to_owned()))?;
    check_subject(&sub)?;
    Ok((
        Identity::User {
            user_id: sub,
            role: claims.role,
        },
        exp,
    ))
}

fn decode_part<T: DeserializeOwned>(part: &str, what: &str) -> Result<T, AuthError> {
    let bytes = base64url_decode(part)
        .ok_or_else(|| AuthError::Malformed(format!("{what} is not valid base64url")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| AuthError::Malformed(format!("invalid {what} JSON: {e}")))
}

/// Unpadded base64url (RFC 7515), as strict as jsonwebtoken's own decoder.
/// Hand-written because the header must be read before jsonwebtoken sees it
/// and the crate's base64 dependency is not re-exported.
fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3 + 2);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for byte in s.bytes() {
        let sextet = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(sextet);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // Leftover bits must be zero, or two strings would decode the same.
    (acc == 0).then_some(out)
}

/// `sub` names a user, so it must be a valid user id (`ids::validate_id`, with the default id
/// limit: the authorizers hold no `Config`): a token for a user who could be named nowhere else
/// proves nothing.
fn check_subject(sub: &str) -> Result<(), AuthError> {
    crate::ids::validate_id("sub", sub, Limits::default().max_id_chars)
        .map_err(|e| AuthError::BadSubject(e.to_string()))
}

/// Checks a configured secret (the signing secret or the secret key) before it is used, so that
/// one that could never match fails at start instead of refusing every request: it must not be
/// empty, nor start or end with whitespace (a token is compared byte for byte, and a header's
/// surrounding whitespace is trimmed). `name` is how the configuration calls it.
///
/// # Errors
/// A message that names the setting and says what is wrong (never the value).
pub fn validate_secret(name: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("{name} is empty; set it to a long random value"));
    }
    if value.trim() != value {
        return Err(format!(
            "{name} starts or ends with whitespace, so no token could ever match it; remove the \
             whitespace"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;
    const SIGNING_SECRET: &[u8] = b"test-signing-secret-0123456789abcdef";
    const SECRET_KEY: &str = "sk_test_0123456789";

    fn key() -> SigningKey {
        SigningKey::new("k1", SIGNING_SECRET)
    }

    fn config() -> AuthConfig {
        AuthConfig::new(SECRET_KEY.to_owned(), vec![key()]).unwrap()
    }

    fn base64url(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            }
        }
        out
    }

    /// Signs arbitrary claims JSON with the given algorithm and secret, naming key `k1`.
    fn sign(claims: &serde_json::Value, alg: Algorithm, secret: &[u8]) -> String {
        sign_with_kid(claims, alg, secret, Some("k1"))
    }

    fn sign_with_kid(
        claims: &serde_json::Value,
        alg: Algorithm,
        secret: &[u8],
        kid: Option<&str>,
    ) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    fn auth(token: &str) -> Result<Identity, AuthError> {
        authenticate(Some(&bearer(token)), &config(), NOW)
    }

    #[test]
    fn base64url_round_trips() {
        for len in 0..32 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 5) as u8).collect();
            assert_eq!(base64url_decode(&base64url(&bytes)), Some(bytes));
        }
        assert_eq!(base64url_decode("A"), None);
        assert_eq!(base64url_decode("AB"), None, "non-zero trailing bits");
        assert_eq!(base64url_decode("AA=="), None, "padding");
        assert_eq!(base64url_decode("A+A/"), None, "standard alphabet");
    }

    #[test]
    fn valid_user_token_without_role() {
        let token = issue_user_token("user-1", None, 60, NOW, &key()).unwrap();
        assert_eq!(
            auth(&token),
            Ok(Identity::User {
                user_id: "user-1".to_owned(),
                role: None
            })
        );
        assert_eq!(
            authenticate_token(&token, &config(), NOW),
            auth(&token),
            "the WebSocket path accepts the same tokens"
        );
    }

    #[test]
    fn valid_user_token_with_role() {
        let token = issue_user_token("user-1", Some("admin"), 60, NOW, &key()).unwrap();
        assert_eq!(
            auth(&token),
            Ok(Identity::User {
                user_id: "user-1".to_owned(),
                role: Some("admin".to_owned())
            })
        );
    }

    #[test]
    fn issued_claims_omit_absent_role() {
        let token = issue_user_token("u", None, 60, NOW, &key()).unwrap();
        let payload = token.split('.').nth(1).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&base64url_decode(payload).unwrap()).unwrap();
        assert_eq!(json, serde_json::json!({"sub": "u", "exp": NOW + 60}));
        let header = token.split('.').next().unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&base64url_decode(header).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"typ": "JWT", "alg": "HS256", "kid": "k1"})
        );
    }

    /// Two keys at once: each token is checked with the key its kid names, and only with it.
    #[test]
    fn the_kid_picks_the_signing_key() {
        let old = SigningKey::new("2024-01", "old-signing-secret-0123456789abcdef");
        let new = SigningKey::new("2024-07", "new-signing-secret-0123456789abcdef");
        let both = AuthConfig::new(SECRET_KEY.to_owned(), vec![new.clone(), old.clone()]).unwrap();
        let user = |id: &str| {
            Ok(Identity::User {
                user_id: id.to_owned(),
                role: None,
            })
        };
        for (key, id) in [(&old, "signed-with-old"), (&new, "signed-with-new")] {
            let token = issue_user_token(id, None, 60, NOW, key).unwrap();
            assert_eq!(authenticate(Some(&bearer(&token)), &both, NOW), user(id));
            assert_eq!(authenticate_token(&token, &both, NOW), user(id));
        }
        assert_eq!(both.signing_key(), &new, "the first key issues");
        assert_eq!(both.key_for("2024-01"), Some(&old));

        // The right secret under the other key's kid is a bad signature, not a fallback.
        let swapped = SigningKey::new("2024-07", old.secret.clone());
        let token = issue_user_token("u", None, 60, NOW, &swapped).unwrap();
        assert_eq!(
            authenticate(Some(&bearer(&token)), &both, NOW),
            Err(AuthError::BadSignature)
        );

        // After the rotation the old key is gone: its tokens are refused by kid.
        let after = AuthConfig::new(SECRET_KEY.to_owned(), vec![new.clone()]).unwrap();
        let token = issue_user_token("u", None, 60, NOW, &old).unwrap();
        assert_eq!(
            authenticate(Some(&bearer(&token)), &after, NOW),
            Err(AuthError::UnknownKid("2024-01".to_owned()))
        );
        assert_eq!(
            AuthError::UnknownKid("2024-01".to_owned()).to_string(),
            "token kid \"2024-01\" names no current signing key"
        );
    }

    /// A token without kid is refused whatever the keys, so that a rotation never changes
    /// whether it passes.
    #[test]
    fn a_token_without_kid_is_refused() {
        let claims = serde_json::json!({"sub": "u", "exp": NOW + 60});
        let token = sign_with_kid(&claims, Algorithm::HS256, SIGNING_SECRET, None);
        assert_eq!(auth(&token), Err(AuthError::MissingKid));
        assert_eq!(
            authenticate_token(&token, &config(), NOW),
            Err(AuthError::MissingKid)
        );
    }

    #[test]
    fn auth_config_checks_its_keys() {
        let key = |kid: &str| SigningKey::new(kid, SIGNING_SECRET);
        let new = |keys: Vec<SigningKey>| AuthConfig::new(SECRET_KEY.to_owned(), keys).map(|_| ());
        assert!(new(vec![key("a")]).is_ok());
        assert!(new(vec![key("a"), key("b")]).is_ok());
        assert_eq!(
            new(vec![]),
            Err("expected 1 to 2 signing keys, got 0".to_owned())
        );
        assert!(new(vec![key("a"), key("b"), key("c")]).is_err());
        assert_eq!(
            new(vec![key("a"), key("a")]),
            Err("signing key id \"a\" is given twice".to_owned())
        );
        for kid in ["", "has space", "ü", &"k".repeat(65)] {
            assert!(new(vec![key(kid)]).is_err(), "kid {kid:?}");
        }
        assert!(new(vec![key(&"k".repeat(64))]).is_ok());
        let debug = format!("{:?}", config());
        assert!(!debug.contains("test-signing"), "{debug}");
        assert!(!debug.contains(SECRET_KEY), "{debug}");
    }

    #[test]
    fn secret_key() {
        assert_eq!(auth(SECRET_KEY), Ok(Identity::Secret));
        assert_eq!(
            authenticate(Some(&format!("bearer {SECRET_KEY}")), &config(), NOW),
            Ok(Identity::Secret),
            "scheme is case-insensitive"
        );
        assert_eq!(
            auth(&format!("{SECRET_KEY}x")),
            Err(AuthError::Malformed(
                "expected a JWT with three dot-separated parts".to_owned()
            ))
        );
    }

    #[test]
    fn empty_secret_key_matches_nothing() {
        let config = AuthConfig::new(String::new(), vec![key()]).unwrap();
        assert_ne!(
            authenticate_token("", &config, NOW),
            Err(AuthError::SecretKeyNotAllowed)
        );
        assert!(!is_secret_key("", &config));
    }

    #[test]
    fn secret_key_refused_on_websocket_path() {
        assert_eq!(
            authenticate_token(SECRET_KEY, &config(), NOW),
            Err(AuthError::SecretKeyNotAllowed)
        );
    }

    #[test]
    fn header_errors() {
        let cases = [
            (None, AuthError::MissingHeader),
            (Some(""), AuthError::MissingHeader),
            (Some("Basic dXNlcjpwYXNz"), AuthError::NotBearer),
            (Some(SECRET_KEY), AuthError::NotBearer),
            (Some("Bearer"), AuthError::NotBearer),
            (Some("Bearer "), AuthError::NotBearer),
            (Some("Bearer    "), AuthError::NotBearer),
        ];
        for (header, want) in cases {
            assert_eq!(
                authenticate(header, &config(), NOW),
                Err(want),
                "header {header:?}"
            );
        }
    }

    #[test]
    fn malformed_tokens() {
        let header = base64url(br#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#);
        let payload = base64url(br#"{"sub":"u","exp":1800000000}"#);
        let cases = [
            (
                "not-a-jwt".to_owned(),
                "expected a JWT with three dot-separated parts",
            ),
            (
                "a.b".to_owned(),
                "expected a JWT with three dot-separated parts",
            ),
            (
                "a.b.c.d".to_owned(),
                "expected a JWT with three dot-separated parts",
            ),
            (format!("!!.{payload}.sig"), "header is not valid base64url"),
            (
                format!("{header}.{payload}!.sig"),
                "payload is not valid base64url",
            ),
            (
                format!("{header}.{payload}.!!"),
                "signature is not valid base64url",
            ),
        ];
        for (token, reason) in cases {
            assert_eq!(
                auth(&token),
                Err(AuthError::Malformed(reason.to_owned())),
                "token {token}"
            );
        }

        for token in [
            format!("{}.{payload}.sig", base64url(b"{not json")),
            format!("{}.{payload}.sig", base64url(br#"{"typ":"JWT"}"#)),
            format!("{header}.{}.sig", base64url(b"[1, 2]")),
            format!("{header}.{}.sig", base64url(br#"{"sub":"u","exp":"soon"}"#)),
        ] {
            let err = auth(&token).unwrap_err();
            assert!(
                matches!(&err, AuthError::Malformed(m) if m.contains("JSON")),
                "{token}: {err}"
            );
        }
    }

    #[test]
    fn bad_signature() {
        let token = issue_user_token(
            "u",
            None,
            60,
            NOW,
            &SigningKey::new("k1", "some-other-secret"),
        )
        .unwrap();
        assert_eq!(auth(&token), Err(AuthError::BadSignature));

        let (unsigned, _) = token.rsplit_once('.').unwrap();
        assert_eq!(auth(&format!("{unsigned}.")), Err(AuthError::BadSignature));
    }

    #[test]
    fn empty_signing_secret_verifies_nothing() {
        let config =
            AuthConfig::new(SECRET_KEY.to_owned(), vec![SigningKey::new("k1", "")]).unwrap();
        let token = sign(
            &serde_json::json!({"sub": "u", "exp": NOW + 60}),
            Algorithm::HS256,
            b"",
        );
        assert_eq!(
            authenticate(Some(&bearer(&token)), &config, NOW),
            Err(AuthError::BadSignature)
        );
        assert!(matches!(
            issue_user_token("u", None, 60, NOW, &SigningKey::new("k1", "")),
            Err(AuthError::Signing(_))
        ));
    }

    #[test]
    fn alg_none_is_refused() {
        let token = format!(
            "{}.{}.",
            base64url(br#"{"alg":"none","typ":"JWT"}"#),
            base64url(format!(r#"{{"sub":"u","exp":{}}}"#, NOW + 60).as_bytes())
        );
        let err = auth(&token).unwrap_err();
        assert_eq!(err, AuthError::WrongAlgorithm("none".to_owned()));
        assert_eq!(
            err.to_string(),
            "token algorithm none is not accepted; use HS256"
        );
        assert_eq!(authenticate_token(&token, &config(), NOW), Err(err));
    }

    #[test]
    fn other_algorithms_are_refused() {
        let claims = serde_json::json!({"sub": "u", "exp": NOW + 60});
        for (alg, name) in [(Algorithm::HS384, "HS384"), (Algorithm::HS512, "HS512")] {
            let token = sign(&claims, alg, SIGNING_SECRET);
            assert_eq!(
                auth(&token),
                Err(AuthError::WrongAlgorithm(name.to_owned()))
            );
        }
        // An RS256 header, as used in key-confusion attacks, is refused before
        // any signature check.
        let token = format!(
            "{}.{}.c2ln",
            base64url(br#"{"alg":"RS256","typ":"JWT"}"#),
            base64url(br#"{"sub":"u","exp":1800000000}"#)
        );
        assert_eq!(
            auth(&token),
            Err(AuthError::WrongAlgorithm("RS256".to_owned()))
        );
    }

    #[test]
    fn expiry() {
        let cases = [
            (NOW - 1, Err(AuthError::Expired)),
            (NOW, Err(AuthError::Expired)),
            (
                NOW + 1,
                Ok(Identity::User {
                    user_id: "u".to_owned(),
                    role: None,
                }),
            ),
        ];
        for (exp, want) in cases {
            let token = sign(
                &serde_json::json!({"sub": "u", "exp": exp}),
                Algorithm::HS256,
                SIGNING_SECRET,
            );
            assert_eq!(auth(&token), want, "exp {exp}");
        }
        let token = issue_user_token("u", None, 0, NOW, &key()).unwrap();
        assert_eq!(auth(&token), Err(AuthError::Expired), "ttl 0");
    }

    #[test]
    fn missing_exp() {
        for claims in [
            serde_json::json!({"sub": "u"}),
            serde_json::json!({"sub": "u", "exp": null}),
        ] {
            let token = sign(&claims, Algorithm::HS256, SIGNING_SECRET);
            assert_eq!(auth(&token), Err(AuthError::MissingExp), "{claims}");
        }
    }

    #[test]
    fn bad_subject() {
        let long = "a".repeat(129);
        let longest = "é".repeat(128);
        let cases = [
            (None, "sub claim is missing"),
            (Some(""), "sub must not be empty"),
            (
                Some(long.as_str()),
                "sub is 129 characters long; the most is 128",
            ),
            (Some("user\n1"), "sub contains the control character U+000A"),
            (
                Some("user\u{7f}"),
                "sub contains the control character U+007F",
            ),
            // Not user ids: `#` separates storage keys, `/` splits paths.
            (Some("alice#admin"), "sub must not contain '#'"),
            (Some("USER#alice"), "sub must not contain '#'"),
            (Some("a/b"), "sub must not contain '/'"),
        ];
        for (sub, reason) in cases {
            let token = sign(
                &serde_json::json!({"sub": sub, "exp": NOW + 60}),
                Algorithm::HS256,
                SIGNING_SECRET,
            );
            let want = Err(AuthError::BadSubject(reason.to_owned()));
            assert_eq!(auth(&token), want, "sub {sub:?}");
            if let Some(sub) = sub {
                assert_eq!(
                    issue_user_token(sub, None, 60, NOW, &key()).map(|_| ()),
                    want.map(|_| ()),
                    "issuing for {sub:?}"
                );
            }
        }
        let token = issue_user_token(&longest, None, 60, NOW, &key()).unwrap();
        assert!(auth(&token).is_ok(), "128 characters (256 bytes) is fine");
    }

    #[test]
    fn not_before() {
        let user = Ok(Identity::User {
            user_id: "u".to_owned(),
            role: None,
        });
        let cases = [
            (NOW + 86_400, Err(AuthError::NotYetValid)),
            (NOW + TOKEN_NBF_LEEWAY_SECS + 1, Err(AuthError::NotYetValid)),
            // A clock a little ahead: within the leeway, the token passes at once.
            (NOW + TOKEN_NBF_LEEWAY_SECS, user.clone()),
            (NOW + 5, user.clone()),
            (NOW, user.clone()),
            (NOW - 3600, user.clone()),
        ];
        for (nbf, want) in cases {
            let token = sign(
                &serde_json::json!({"sub": "u", "exp": NOW + 172_800, "nbf": nbf}),
                Algorithm::HS256,
                SIGNING_SECRET,
            );
            assert_eq!(auth(&token), want, "nbf {nbf}");
            assert_eq!(
                authenticate_token(&token, &config(), NOW),
                want,
                "WebSocket, nbf {nbf}"
            );
        }
        assert_eq!(
            AuthError::NotYetValid.to_string(),
            "token is not valid yet (nbf is in the future)"
        );
        // A token without nbf is valid from the start.
        let token = issue_user_token("u", None, 60, NOW, &key()).unwrap();
        assert_eq!(auth(&token), user);
    }

    #[test]
    fn secrets_that_could_never_match_are_refused() {
        assert_eq!(validate_secret("SECRET_KEY", "sk_0123456789"), Ok(()));
        assert_eq!(validate_secret("SECRET_KEY", "in ner"), Ok(()));
        for value in ["sk_0123 ", " sk_0123", "sk_0123\n", "\tsk", "sk\u{a0}", " "] {
            let err = validate_secret("NATTER_SECRET_KEY", value).unwrap_err();
            assert!(
                err.starts_with("NATTER_SECRET_KEY starts or ends with whitespace"),
                "{value:?}: {err}"
            );
            assert!(
                !err.contains(value.trim()) || value.trim().is_empty(),
                "{err}"
            );
        }
        assert_eq!(
            validate_secret("SIGNING_SECRET", ""),
            Err("SIGNING_SECRET is empty; set it to a long random value".to_owned())
        );
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            AuthError::MissingHeader.to_string(),
            "missing Authorization header"
        );
        assert_eq!(
            AuthError::NotBearer.to_string(),
            "Authorization header must be 'Bearer <token>'"
        );
        assert_eq!(
            AuthError::SecretKeyNotAllowed.to_string(),
            "the secret key cannot open a WebSocket connection; use a user token"
        );
    }
}
