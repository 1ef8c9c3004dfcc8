//! Deployment configuration, and every limit and timing natter has: a number that bounds input,
//! storage, retries or time is declared here once, and everything else refers to it.
//!
//! - [`Limits`]: size and count limits a deployment could change (the defaults are the documented
//!   ones), and [`Config`]: retention and role grants, read from the environment.
//! - Fixed numbers of natter's own, by concern: [`input`] (reactions, content, tokens),
//!   [`connections`], [`fanout`], [`stream`], [`storage`] (retries of the stores) and [`local`]
//!   (the local gateway only).
//! - [`aws`]: numbers AWS imposes. natter does not choose them, but everything it sends must fit.
//!
//! `shared/tests/limits_parity.rs` checks the bounds of `docs/openapi.yaml`, the parameters of
//! `template.yaml` and the README's "Limits" tables against this file.

use std::collections::HashMap;

use serde::Deserialize;

/// Seconds in a day, for the day-valued settings.
pub const SECS_PER_DAY: i64 = 86_400;
/// How long messages, reactions, inbox messages and idempotency keys live when `RETENTION_DAYS`
/// (template parameter `RetentionDays`) is unset.
pub const DEFAULT_RETENTION_DAYS: i64 = 30;
/// How long users, conversations and participants live after their last write when
/// `RECORD_RETENTION_DAYS` is unset.
pub const DEFAULT_RECORD_RETENTION_DAYS: i64 = 365;

/// Size and count limits. One place, read by validation and documented in the README.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body the API accepts, in bytes (larger is 413).
    pub max_body_bytes: usize,
    /// Largest message content, serialized as JSON, in bytes.
    pub max_content_bytes: usize,
    /// Largest message text before parsing, in bytes.
    pub max_text_bytes: usize,
    /// Most keys in a `custom` map.
    pub max_custom_keys: usize,
    /// Longest `custom` key, in characters.
    pub max_custom_key_chars: usize,
    /// Longest `custom` string value, in bytes.
    pub max_custom_value_bytes: usize,
    /// Longest id (user, conversation, message, idempotency key, subscription, role), in
    /// characters. The default also bounds a user token's `sub` (`auth.rs`), which must be a
    /// valid user id. Ids are also at most [`input::ID_MAX_BYTES`] bytes of UTF-8 whatever this
    /// says (128 characters are at most 512 bytes), so every key built from ids fits DynamoDB's
    /// key limits.
    pub max_id_chars: usize,
    /// Longest user name, conversation subject or photo URL, in characters.
    pub max_name_chars: usize,
    /// Most participants named in one conversation PUT.
    pub max_participants_per_request: usize,
    /// Most messages in one import request.
    pub max_import_messages: usize,
    /// Most messages in one page (`limit` of the message list and of `subscribe`, `count` of
    /// `loadMore`).
    pub max_page: usize,
    /// Page size when none is given.
    pub default_page: usize,
    /// Conversations in one page of a user's conversation list (and of `subscribeConversations`)
    /// when no `limit` is given; the most is `max_page`.
    pub default_conversation_page: usize,
    /// `unreadMessageCount` counts up to this many messages: a count of this many means this
    /// many or more. Counting reads the unread messages, so the cap bounds what one
    /// conversation snapshot costs however many messages wait.
    pub max_unread_count: usize,
    /// Most distinct reactions on one message.
    pub max_distinct_reactions: usize,
    /// Largest inbox message, serialized as JSON, in bytes.
    pub max_inbox_message_bytes: usize,
    /// Most recipients of one inbox message.
    pub max_inbox_recipients: usize,
    /// Most inbox messages in one page (`limit` of `GET /inbox`, and `hello` and `inboxMore`,
    /// which always ask for this many); also the page size when `limit` is absent.
    pub max_inbox_page: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            max_content_bytes: 64 * 1024,
            max_text_bytes: 64 * 1024,
            max_custom_keys: 50,
            max_custom_key_chars: 64,
            max_custom_value_bytes: 4 * 1024,
            max_id_chars: 128,
            max_name_chars: 1024,
            max_participants_per_request: 50,
            max_import_messages: 100,
            max_page: 100,
            default_page: 30,
            default_conversation_page: 20,
            max_unread_count: 255,
            max_distinct_reactions: 50,
            max_inbox_message_bytes: 64 * 1024,
            max_inbox_recipients: 100,
            max_inbox_page: 100,
        }
    }
}

/// What a role may do with messages.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleGrants {
    #[serde(default = "yes")]
    pub edit_own: bool,
    #[serde(default = "yes")]
    pub delete_own: bool,
    #[serde(default)]
    pub edit_any: bool,
    #[serde(default)]
    pub delete_any: bool,
    #[serde(default = "yes")]
    pub react: bool,
    #[serde(default = "yes")]
    pub reply: bool,
    /// May send `link`, `actionLink` and `actionButton` nodes.
    #[serde(default)]
    pub send_links: bool,
}

fn yes() -> bool {
    true
}

impl Default for RoleGrants {
    fn default() -> Self {
        RoleGrants {
            edit_own: true,
            delete_own: true,
            edit_any: false,
            delete_any: false,
            react: true,
            reply: true,
            send_links: false,
        }
    }
}

/// The role table. Unknown roles get the `default` role's grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles {
    roles: HashMap<String, RoleGrants>,
}

impl Default for Roles {
    fn default() -> Self {
        let mut roles = HashMap::new();
        roles.insert("default".to_string(), RoleGrants::default());
        roles.insert(
            "moderator".to_string(),
            RoleGrants {
                edit_any: true,
                delete_any: true,
                ..RoleGrants::default()
            },
        );
        Roles { roles }
    }
}

impl Roles {
    /// Parses `{"roleName": {grants...}}`; the given roles are added to (or replace) the defaults.
    pub fn from_json(json: &str) -> Result<Self, String> {
        let given: HashMap<String, RoleGrants> =
            serde_json::from_str(json).map_err(|e| format!("NATTER_ROLES is not valid: {e}"))?;
        let mut roles = Roles::default();
        roles.roles.extend(given);
        Ok(roles)
    }

    /// The names of the configured roles whose grants match `pred`.
    pub fn names_without(&self, pred: impl Fn(&RoleGrants) -> bool) -> Vec<String> {
        let mut names: Vec<String> = self
            .roles
            .iter()
            .filter(|(_, g)| pred(g))
            .map(|(n, _)| n.clone())
            .collect();
        names.sort();
        names
    }

    pub fn grants(&self, role: &str) -> &RoleGrants {
        self.roles
            .get(role)
            .or_else(|| self.roles.get("default"))
            .unwrap_or(&DEFAULT_GRANTS)
    }
}

static DEFAULT_GRANTS: RoleGrants = RoleGrants {
    edit_own: true,
    delete_own: true,
    edit_any: false,
    delete_any: false,
    react: true,
    reply: true,
    send_links: false,
};

/// Everything a handler needs to know about the deployment besides its clients.
#[derive(Debug, Clone)]
pub struct Config {
    /// How long messages, reactions and inbox messages live, in seconds.
    pub retention_secs: i64,
    /// How long users, conversations and participants live after their last write, in seconds.
    pub record_retention_secs: i64,
    pub limits: Limits,
    pub roles: Roles,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            retention_secs: DEFAULT_RETENTION_DAYS * SECS_PER_DAY,
            record_retention_secs: DEFAULT_RECORD_RETENTION_DAYS * SECS_PER_DAY,
            limits: Limits::default(),
            roles: Roles::default(),
        }
    }
}

impl Config {
    /// Reads `RETENTION_DAYS`, `RETENTION_SECONDS` (wins when set), `RECORD_RETENTION_DAYS` and
    /// `NATTER_ROLES` (JSON; empty means the built-in roles).
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut config = Config::default();
        let number = |name: &str| -> Result<Option<i64>, String> {
            match get(name).filter(|v| !v.trim().is_empty()) {
                None => Ok(None),
                Some(v) => match v.trim().parse::<i64>() {
                    Ok(n) if n > 0 => Ok(Some(n)),
                    _ => Err(format!("{name} must be a positive whole number, got {v:?}")),
                },
            }
        };
        if let Some(days) = number("RETENTION_DAYS")? {
            config.retention_secs = days * SECS_PER_DAY;
        }
        if let Some(secs) = number("RETENTION_SECONDS")? {
            config.retention_secs = secs;
        }
        if let Some(days) = number("RECORD_RETENTION_DAYS")? {
            config.record_retention_secs = days * SECS_PER_DAY;
        }
        if let Some(json) = get("NATTER_ROLES").filter(|v| !v.trim().is_empty()) {
            config.roles = Roles::from_json(&json)?;
        }
        Ok(config)
    }
}

// ---- Fixed numbers --------------------------------------------------------------------------
//
// The modules below are natter's own numbers that are not per deployment: they are part of the
// protocol, or held by code (the stores, the emoji parser) that has no `Config`.

/// Input rules outside `Limits`: reactions, content and tokens.
pub mod input {
    /// Longest custom emoji `:name:`, colons included (reactions, and text parsed into
    /// `customEmoji` nodes).
    pub const CUSTOM_EMOJI_MAX_CHARS: usize = 50;
    /// Longest custom emoji name, between the colons.
    pub const CUSTOM_EMOJI_NAME_MAX_CHARS: usize = CUSTOM_EMOJI_MAX_CHARS - 2;
    /// A reaction longer than this cannot be one Unicode emoji (the longest has 10 code points);
    /// refusing it early bounds the work spent on error reporting.
    pub const EMOJI_INPUT_MAX_CHARS: usize = 64;
    /// Deepest node nesting in message content (a block's direct children are level 1).
    pub const CONTENT_MAX_DEPTH: usize = 32;
    /// Longest id in bytes of UTF-8 (every id, whatever `Limits::max_id_chars` says): the
    /// widest DynamoDB key holds two ids (`RXU#{cid}#{userId}`, a partition key of at most 2048
    /// bytes) and every sort key at most one beside short fixed parts (at most 1024 bytes);
    /// `shared/tests/key_limits.rs` writes every item with the widest ids.
    pub const ID_MAX_BYTES: usize = 512;
    /// Clock skew allowed when checking a user token's `exp`: none, so a token is refused from
    /// the second it expires (a client then fetches a new one).
    pub const TOKEN_EXP_LEEWAY_SECS: u64 = 0;
    /// Clock skew allowed when checking a user token's `nbf`: an app server whose clock runs a
    /// little ahead of AWS's issues tokens with `nbf` = its own now, and they must pass at once;
    /// a token not valid for longer than this is 401.
    pub const TOKEN_NBF_LEEWAY_SECS: u64 = 30;
    /// Shortest signing secret and secret key the authorizers accept from Secrets Manager
    /// (`secrets.rs`); the template generates longer ones. natter-local does not check it.
    pub const SECRET_MIN_CHARS: usize = 32;
}

/// The HTTP API's Lambda authorizer and API Gateway's cache of its verdicts (`template.yaml`'s
/// `NatterAuthorizer`, which natter-local imitates; `shared/tests/route_parity.rs` checks the
/// template against these).
pub mod authorizer {
    /// The request header API Gateway reads the identity from: the authorizer's only identity
    /// source, and so the cache key. A request without it (or with it empty) is answered 401
    /// `{"message":"Unauthorized"}` by API Gateway itself, without calling the authorizer.
    pub const IDENTITY_HEADER: &str = "Authorization";
    /// How long API Gateway reuses one verdict for the same `Authorization` value
    /// (`ReauthorizeEvery`, the authorizer's `AuthorizerResultTtlInSeconds`). A user token whose
    /// `exp` passes within it is still refused from that second: the verdict carries `exp` and
    /// every function checks it against its own clock. What the cache may hold on to for up to
    /// this long is a verdict the authorizer would now give differently for another reason: a
    /// signing key or the secret key removed from the secrets, or a token whose `nbf` was too
    /// far ahead when it was first seen. So a removed key is refused within a minute.
    pub const CACHE_TTL_SECS: u64 = 60;
    /// API Gateway's answer to a request without the identity header.
    pub const MISSING_IDENTITY_BODY: &str = r#"{"message":"Unauthorized"}"#;
}

/// WebSocket connections and subscriptions (the realtime store).
pub mod connections {
    /// How long a connection id stays usable as a recent client id after its connection closed
    /// (and so how long a connection item outlives its connection).
    pub const CLIENT_ID_GRACE_SECS: i64 = 24 * 3600;
    /// The most subscriptions one connection may hold at once (bounds the connection item).
    pub const MAX_SUBSCRIPTIONS_PER_CONNECTION: usize = 100;
}

/// Typing indicators (`docs/websocket.md`, "Typing"): one short-lived typer item per user and
/// conversation, never a write per keystroke.
pub mod typing {
    /// A user stops typing this long after the `typing` frame that last wrote their typer item
    /// (ms).
    pub const LIFETIME_MS: i64 = 10_000;
    /// A `typing` frame while the typer item is live and was written less than this long ago
    /// writes nothing (ms). So a user stops typing between `LIFETIME_MS - THROTTLE_MS` and
    /// `LIFETIME_MS` after their last frame, and a spell costs one write per `THROTTLE_MS` at
    /// most, however fast the client sends.
    pub const THROTTLE_MS: i64 = 5_000;
    /// How long after `until` DynamoDB's TTL may delete a typer item that no expiry check
    /// deleted (seconds); reads ignore it from `until` on anyway.
    pub const TTL_GRACE_SECS: i64 = 60;
}

/// How replies, pushes and responses are kept within AWS's limits ([`aws`]): the page builder
/// (`sizes.rs`) stops a page when the next item would not fit, and a message too big for any
/// frame is sent in its short form.
pub mod sizes {
    use super::aws::{LAMBDA_PAYLOAD_MAX_BYTES, WS_MESSAGE_MAX_BYTES};

    /// The largest `requestId` a client frame may carry, as compact JSON. A frame with a larger
    /// one is answered with an `error` frame that does not echo it (no reply could carry it).
    pub const REQUEST_ID_MAX_BYTES: usize = 1024;
    /// What a frame around one message or inbox message may take at most besides it: `type`,
    /// `subscriptionId` (at most 128 characters, 512 bytes of UTF-8, and its escapes),
    /// `state`, `loadedAll`/`hasMore`, `clientId`, `userId` and the echoed `requestId`.
    pub const FRAME_ENVELOPE_RESERVE_BYTES: usize = 4 * 1024;
    /// A message whose snapshot serializes to more than this appears in frames (replies and
    /// pushes) in its short form `{id, conversationId, truncated: true}`; below it, a frame
    /// with it alone always fits [`WS_MESSAGE_MAX_BYTES`], so paging always makes progress.
    pub const FRAME_MESSAGE_MAX_BYTES: usize = WS_MESSAGE_MAX_BYTES - FRAME_ENVELOPE_RESERVE_BYTES;
    /// The largest frame natter sends: API Gateway's limit.
    pub const FRAME_MAX_BYTES: usize = WS_MESSAGE_MAX_BYTES;
    /// Room kept free in a Lambda HTTP response for what may be added to it after natter
    /// measured it (headers of the runtime or API Gateway).
    pub const HTTP_RESPONSE_RESERVE_BYTES: usize = 64 * 1024;
    /// The largest HTTP response natter builds, measured as the Lambda invocation response
    /// JSON (the body an escaped string in it).
    pub const HTTP_RESPONSE_MAX_BYTES: usize =
        LAMBDA_PAYLOAD_MAX_BYTES - HTTP_RESPONSE_RESERVE_BYTES;
}

/// The stream fan-out's posts to connections.
pub mod fanout {
    use std::time::Duration;

    /// Posts in flight at once when `FANOUT_CONCURRENCY` (template parameter
    /// `FanOutConcurrency`) is unset. At AWS's post latency (about 20 ms) one fan-out posts
    /// 128 / 20 ms = 6,400 a second, under API Gateway's account throttle of 10,000 requests a
    /// second (shared with `@connections`), and 5,000 subscribers are bounded by
    /// 5,000 × 20 ms / 128 = 781 ms; `docs/benchmarks.md` has the measurements it was chosen from.
    pub const DEFAULT_CONCURRENCY: usize = 128;
    /// The fan-out function's memory (template parameter `FanOutMemorySize`), in MB. Lambda
    /// gives a function CPU in proportion to its memory (a full vCPU at 1,769 MB), and a fan-out
    /// to thousands of subscribers is bound by its CPU below this: with its CPU limited to a
    /// Lambda function's share, the last of 5,000 subscribers had a message after 2.8 s at
    /// 256 MB, 1.4 s at 512 MB and 0.97 s at 1,024 MB (`docs/benchmarks.md`). The other
    /// functions keep the template's 256 MB.
    pub const DEFAULT_MEMORY_MB: u32 = 1024;
    /// The least and most `FanOutMemorySize` may ask for: Lambda's own bounds.
    pub const MIN_MEMORY_MB: u32 = 128;
    pub const MAX_MEMORY_MB: u32 = 10_240;
    /// The least `FANOUT_CONCURRENCY` may ask for.
    pub const MIN_CONCURRENCY: usize = 1;
    /// The most `FANOUT_CONCURRENCY` may ask for.
    pub const MAX_CONCURRENCY: usize = 1024;
    /// Sends of one post at most, the first included. Only a post that may succeed later is
    /// sent again: throttled (429), a server error (5xx), or no answer in time.
    pub const PUSH_MAX_ATTEMPTS: u32 = 6;
    /// The base of the jittered exponential wait between sends of one post
    /// (`retry::jittered_backoff`): 50–100 ms before the second, doubling up to
    /// `PUSH_BACKOFF_MAX`; at most 2.3 s of waiting in all.
    pub const PUSH_BACKOFF_BASE: Duration = Duration::from_millis(50);
    /// The longest wait between two sends of one post.
    pub const PUSH_BACKOFF_MAX: Duration = Duration::from_millis(800);
    /// How long one send of a post may take before it counts as a timeout (and is sent again).
    /// An `@connections` post is answered in milliseconds; this bounds a hung one, so that six
    /// sends stay well inside the fan-out function's 60 s timeout.
    pub const PUSH_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
}

/// The table stream's event source mapping (`template.yaml`), which natter-local imitates.
pub mod stream {
    /// The most records handed to the fan-out at once (`BatchSize`).
    pub const BATCH_SIZE: usize = 100;
    /// Retries of a failed batch (`MaximumRetryAttempts`).
    pub const MAX_RETRY_ATTEMPTS: u32 = 5;
    /// Deliveries of one batch at most: the first and its retries.
    pub const MAX_DELIVERIES: u32 = MAX_RETRY_ATTEMPTS + 1;
    /// Records older than this are not delivered any more (`MaximumRecordAgeInSeconds`; AWS
    /// only, natter-local delivers every record it reads).
    pub const MAX_RECORD_AGE_SECS: u64 = 3600;
}

/// Retries and paging bounds of the DynamoDB stores.
pub mod storage {
    use std::time::Duration;

    /// The one retry policy of every DynamoDB store (`store::dynamo::ops`): how many times one
    /// request is sent at most, the first included, while DynamoDB answers "try again" (a
    /// transaction conflict, throttling, unprocessed batch keys or writes). With the backoff
    /// below that is about 5 s.
    pub const MAX_SENDS: u32 = 10;
    /// The wait before the second send is between half of this doubled and this doubled; it
    /// doubles with every send after that ...
    pub const BACKOFF_BASE: Duration = Duration::from_millis(10);
    /// ... up to this (the jitter takes up to half off).
    pub const BACKOFF_MAX: Duration = Duration::from_secs(1);
    /// A later query page after expired items were skipped reads at least this many items.
    pub const EXPIRED_READ_AHEAD: usize = 100;
    /// Attempts of a realtime-store read-then-write that lost a race (each reads again).
    pub const REALTIME_MAX_ATTEMPTS: usize = 5;
    /// How often `create_table_if_missing` asks whether a new table is active ...
    pub const TABLE_ACTIVE_POLL: Duration = Duration::from_millis(200);
    /// ... and how many times (2 minutes).
    pub const TABLE_ACTIVE_MAX_POLLS: usize = 600;
    /// Changes the embedded stores' feed (`changes::feed`) holds for its reader, the local
    /// fan-out. When that many are unread, a write waits until the fan-out takes some: the feed
    /// applies backpressure and loses nothing, and its memory stays bounded: ten of the
    /// fan-out's batches (`stream::BATCH_SIZE`).
    pub const CHANGE_FEED_CAPACITY: usize = 10 * super::stream::BATCH_SIZE;
    /// Query pages an unread count reads at most (each at most `max_unread_count` + 1 messages):
    /// the user's own messages are read and not counted, so a user who sent more than this many
    /// pages' worth since their last read gets a lower count, never an unbounded read.
    pub const UNREAD_COUNT_MAX_PAGES: usize = 4;
    /// Activity writes (`ActivityWriter`) in flight at once, one per participant.
    pub const ACTIVITY_WRITE_CONCURRENCY: usize = 16;
}

/// The local gateway's own timings (natter-local; nothing on AWS reads them).
pub mod local {
    use std::time::Duration;

    /// How long a vanished peer stays listed (posts answering 410) before `$disconnect` runs,
    /// when `NATTER_LOCAL_DEAD_PEER_SECS` is unset ...
    pub const DEAD_PEER_GRACE_SECS: u64 = 30;
    /// ... and the most it may ask for.
    pub const DEAD_PEER_GRACE_MAX_SECS: u64 = 3600;
    /// How long the writer of a closing connection may take to send its close frame.
    pub const CLOSE_WRITER_WAIT: Duration = Duration::from_secs(1);
    /// After our close frame, how long the peer's close frame is waited for.
    pub const PEER_CLOSE_WAIT: Duration = Duration::from_secs(2);
    /// How often an idle stream shard is polled.
    pub const STREAM_POLL_INTERVAL: Duration = Duration::from_millis(100);
    /// How often the stream's shard list is refreshed (to follow shard splits and rollovers).
    pub const SHARD_REFRESH: Duration = Duration::from_secs(5);
    /// The wait before redelivering a failed batch is `STREAM_BACKOFF_BASE_MS << attempt`.
    pub const STREAM_BACKOFF_BASE_MS: u64 = 100;
    /// Lifetime of the dev tokens the gateway prints and of `natter-local token` without `--ttl`.
    pub const DEV_TOKEN_TTL_SECS: u64 = 86_400;
    /// The most bytes of frames one connection may have queued but not yet written to its
    /// socket (replies and posts); a client that reads slower than that is closed with 1008.
    pub const WS_MAX_QUEUED_BYTES: usize = 1024 * 1024;
    /// Client messages up to this size are read whole and then refused with 1009 and a close
    /// handshake (everything over `aws::WS_MESSAGE_MAX_BYTES` is refused); larger ones are
    /// refused while they are read, without waiting for the peer's close frame.
    pub const WS_READ_MAX_BYTES: usize = 1024 * 1024;
    /// How long the writer of a connection closed as a slow reader may still take to send its
    /// close frame (its `$disconnect` has run already) before the socket is dropped.
    pub const SLOW_READER_CLOSE_WAIT: Duration = Duration::from_secs(5);
    /// The most verdicts the gateway's authorizer cache holds; past it, expired ones are dropped
    /// and, if it is still full, all of them (a miss only calls the authorizer again, as API
    /// Gateway's cache may do at any time).
    pub const AUTHORIZER_CACHE_MAX_ENTRIES: usize = 10_000;
    /// The most `--connections-latency-ms` may ask for: an `@connections` post's delay.
    pub const CONNECTIONS_LATENCY_MAX_MS: u64 = 10_000;
}

/// Numbers AWS imposes. natter does not choose them; everything it sends must fit them, and
/// natter-local enforces the ones marked so, so that nothing passes locally that would fail on
/// AWS.
pub mod aws {
    /// API Gateway: the largest WebSocket message, either way (enforced by natter-local, for
    /// client frames and `@connections` posts).
    pub const WS_MESSAGE_MAX_BYTES: usize = 128 * 1024;
    /// API Gateway: the largest WebSocket frame; a message may span several.
    pub const WS_FRAME_MAX_BYTES: usize = 32 * 1024;
    /// API Gateway closes every WebSocket connection after two hours (natter-local too). A
    /// subscription expires this long after its connection was made.
    pub const WS_CONNECTION_MAX_SECS: i64 = 2 * 3600;
    /// API Gateway closes a WebSocket connection after ten minutes without a client frame
    /// (natter-local too; `--ws-idle-timeout` shortens it).
    pub const WS_IDLE_TIMEOUT_SECS: i64 = 10 * 60;
    /// Lambda: the largest synchronous invocation payload, request or response ("6 MB"; this
    /// module counts AWS's KB and MB as 1024 and 1024 × 1024 bytes). HTTP bodies
    /// (`Limits::max_body_bytes`) stay far below it.
    pub const LAMBDA_PAYLOAD_MAX_BYTES: usize = 6 * 1024 * 1024;
    /// DynamoDB: the largest item, attribute names and values included.
    pub const DYNAMODB_ITEM_MAX_BYTES: usize = 400 * 1024;
    /// DynamoDB: the most items in one `TransactWriteItems`.
    pub const DYNAMODB_TRANSACTION_MAX_ITEMS: usize = 100;
    /// DynamoDB: the most keys in one `BatchGetItem`.
    pub const DYNAMODB_BATCH_GET_MAX_KEYS: usize = 100;
    /// DynamoDB: the most writes in one `BatchWriteItem`.
    pub const DYNAMODB_BATCH_WRITE_MAX_ITEMS: usize = 25;
    /// DynamoDB: the most operands of one `IN` in a condition expression.
    pub const DYNAMODB_IN_MAX_OPERANDS: usize = 100;
    /// SQS: the longest per-message `DelaySeconds`.
    pub const SQS_MAX_DELAY_SECS: i64 = 900;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_seconds_override_days() {
        let config = Config::from_lookup(|name| match name {
            "RETENTION_DAYS" => Some("7".into()),
            "RETENTION_SECONDS" => Some("5".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(config.retention_secs, 5);
        let config = Config::from_lookup(|_| None).unwrap();
        assert_eq!(config.retention_secs, 30 * 86_400);
        assert!(Config::from_lookup(|n| (n == "RETENTION_DAYS").then(|| "-1".into())).is_err());
    }

    #[test]
    fn role_defaults_and_overrides() {
        let roles = Roles::default();
        assert!(!roles.grants("default").edit_any);
        assert!(roles.grants("moderator").delete_any);
        assert!(!roles.grants("unknown").send_links);
        let roles = Roles::from_json(r#"{"bot": {"sendLinks": true}}"#).unwrap();
        assert!(roles.grants("bot").send_links);
        assert!(roles.grants("bot").react);
        assert!(roles.grants("moderator").edit_any);
        assert!(Roles::from_json(r#"{"bot": {"fly": true}}"#).is_err());
    }
}
