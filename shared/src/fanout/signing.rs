//! SigV4 for the one request the pusher sends: `POST {stage}/@connections/{id}` with a body.
//!
//! `aws-sigv4`'s general `sign` canonicalises any request (it sorts and normalises every
//! header, escapes the path twice through general code, hashes, formats) and derives the signing
//! key from the secret again for every request: a quarter of the fan-out's CPU per post
//! (docs/benchmarks.md). This request always has the same shape, so its canonical request is
//! written out directly, and the signing key, which depends only on the secret, the day, the
//! region and the service, is derived once a day by `aws-sigv4`'s own `generate_signing_key`.
//! The pusher's tests hold every signature to the SDK's and to `aws-sigv4`'s recomputation.

use std::fmt::Write as _;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_smithy_types::date_time::{DateTime, Format};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use sha2::{Digest, Sha256};

/// The service name SigV4 signs management API requests for.
pub(super) const SIGNING_NAME: &str = "execute-api";

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// What SigV4 escapes (again) in a canonical path: the Smithy label set (`aws-smithy-http`'s
/// `urlencode::BASE_SET`) without `/`, as `aws-sigv4` escapes a path for every service but S3.
const CANONICAL_PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b':')
    .add(b',')
    .add(b'?')
    .add(b'#')
    .add(b'[')
    .add(b']')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'@')
    .add(b'!')
    .add(b'$')
    .add(b'&')
    .add(b'\'')
    .add(b'(')
    .add(b')')
    .add(b'*')
    .add(b'+')
    .add(b';')
    .add(b'=')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'"')
    .add(b'^')
    .add(b'`')
    .add(b'\\');

/// Credentials with the signing key derived from them for one UTC day.
pub(super) struct SigningKey {
    pub(super) credentials: Credentials,
    /// `YYYYMMDD`, the day the key signs for.
    date: String,
    key: Vec<u8>,
}

impl SigningKey {
    pub(super) fn derive(credentials: Credentials, at: &AmzDate, region: &str) -> SigningKey {
        let key = aws_sigv4::sign::v4::generate_signing_key(
            credentials.secret_access_key(),
            at.time,
            region,
            SIGNING_NAME,
        );
        SigningKey {
            credentials,
            date: at.date().to_string(),
            key: key.as_ref().to_vec(),
        }
    }

    /// Whether this key signs for the day of `at`.
    pub(super) fn signs_for(&self, at: &AmzDate) -> bool {
        self.date == at.date()
    }
}

/// A signing time, as SigV4 writes it (`YYYYMMDD'T'HHMMSS'Z'`).
pub(super) struct AmzDate {
    time: SystemTime,
    stamp: String,
}

impl AmzDate {
    pub(super) fn of(time: SystemTime) -> AmzDate {
        let secs = time
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // "2026-11-30T21:33:20Z" without its separators.
        let iso = DateTime::from_secs(secs as i64)
            .fmt(Format::DateTime)
            .unwrap_or_default();
        AmzDate {
            time,
            stamp: iso.chars().filter(|c| *c != '-' && *c != ':').collect(),
        }
    }

    fn date(&self) -> &str {
        self.stamp.get(..8).unwrap_or_default()
    }
}

/// The headers a post carries besides its `content-type` and `content-length`: `x-amz-date`,
/// `x-amz-security-token` with temporary credentials, and `authorization`.
pub(super) struct Signed {
    pub(super) amz_date: String,
    pub(super) security_token: Option<String>,
    pub(super) authorization: String,
}

/// The host a request to `authority` is signed for: without the scheme's default port, as
/// hyper sends it.
pub(super) fn signed_host(scheme: &str, host: &str, port: Option<u16>) -> String {
    match (scheme, port) {
        (_, None) | ("https", Some(443)) | ("http", Some(80)) => host.to_string(),
        (_, Some(port)) => format!("{host}:{port}"),
    }
}

/// Signs `POST {path}` to `host` with `body` as `application/octet-stream`. `path` is as sent
/// (its segments already escaped).
pub(super) fn sign_post(
    key: &SigningKey,
    at: &AmzDate,
    region: &str,
    host: &str,
    path: &str,
    body: &[u8],
) -> Signed {
    let token = key.credentials.session_token();
    let signed_headers = if token.is_some() {
        "content-length;content-type;host;x-amz-date;x-amz-security-token"
    } else {
        "content-length;content-type;host;x-amz-date"
    };
    let mut canonical = String::with_capacity(384 + token.map_or(0, str::len));
    // Writing to a String cannot fail.
    let _ = write!(
        canonical,
        "POST\n{}\n\ncontent-length:{}\ncontent-type:application/octet-stream\nhost:{host}\nx-amz-date:{}\n",
        utf8_percent_encode(path, CANONICAL_PATH),
        body.len(),
        at.stamp,
    );
    if let Some(token) = token {
        let _ = writeln!(canonical, "x-amz-security-token:{}", token.trim());
    }
    let _ = write!(canonical, "\n{signed_headers}\n{}", sha256_hex(body));
    let scope = format!("{}/{region}/{SIGNING_NAME}/aws4_request", at.date());
    let string_to_sign = format!(
        "{ALGORITHM}\n{}\n{scope}\n{}",
        at.stamp,
        sha256_hex(canonical.as_bytes())
    );
    let signature = aws_sigv4::sign::v4::calculate_signature(&key.key, string_to_sign.as_bytes());
    Signed {
        amz_date: at.stamp.clone(),
        security_token: token.map(str::to_string),
        authorization: format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            key.credentials.access_key_id()
        ),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
