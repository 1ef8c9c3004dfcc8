//! Identifier rules and message id generation.

use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};

use ulid::Ulid;

use crate::error::{Error, Result};

/// Every message id starts with this, followed by a ULID so that id order is creation order.
pub const MESSAGE_ID_PREFIX: &str = "msg_";
/// Inbox message ids: the same scheme with their own prefix.
pub const INBOX_ID_PREFIX: &str = "inb_";

/// Checks an id taken from a path or body: 1..=max characters, at most
/// [`ID_MAX_BYTES`](crate::config::input::ID_MAX_BYTES) bytes of UTF-8 (so that every storage
/// key built from ids fits DynamoDB's key limits), no control characters, and no `#` (the
/// storage key separator) or `/` (it could never be addressed in a path).
pub fn validate_id(kind: &str, id: &str, max_chars: usize) -> Result<()> {
    let chars = id.chars().count();
    if chars == 0 {
        return Err(Error::invalid(format!("{kind} must not be empty")));
    }
    if chars > max_chars {
        return Err(Error::invalid(format!(
            "{kind} is {chars} characters long; the most is {max_chars}"
        )));
    }
    let max_bytes = crate::config::input::ID_MAX_BYTES;
    if id.len() > max_bytes {
        return Err(Error::invalid(format!(
            "{kind} is {} bytes of UTF-8; the most is {max_bytes}",
            id.len()
        )));
    }
    if let Some(c) = id.chars().find(|c| c.is_control()) {
        return Err(Error::invalid(format!(
            "{kind} contains the control character U+{:04X}",
            c as u32
        )));
    }
    if let Some(c) = id.chars().find(|c| matches!(c, '#' | '/')) {
        return Err(Error::invalid(format!("{kind} must not contain {c:?}")));
    }
    Ok(())
}

/// A new message id for a message sent now (`now_ms`): strictly greater than every id this
/// process made before, so that messages sent within one millisecond keep their order.
pub fn new_message_id(now_ms: i64) -> String {
    format!("{MESSAGE_ID_PREFIX}{}", monotonic_ulid(now_ms))
}

/// The id of a message imported with its own `created_ms` (which may lie in the past).
pub fn imported_message_id(created_ms: i64) -> String {
    format!("{MESSAGE_ID_PREFIX}{}", ulid_at(created_ms))
}

/// A new inbox message id.
pub fn new_inbox_id(now_ms: i64) -> String {
    format!("{INBOX_ID_PREFIX}{}", monotonic_ulid(now_ms))
}

fn monotonic_ulid(now_ms: i64) -> Ulid {
    static LAST: Mutex<Option<Ulid>> = Mutex::new(None);
    let fresh = ulid_at(now_ms);
    let Ok(mut last) = LAST.lock() else {
        return fresh;
    };
    let next = match *last {
        // Same (or an earlier) millisecond: step past the last id; its random part has room.
        Some(prev) if prev.timestamp_ms() >= fresh.timestamp_ms() => {
            prev.increment().unwrap_or(fresh)
        }
        _ => fresh,
    };
    *last = Some(next);
    next
}

fn ulid_at(ms: i64) -> Ulid {
    Ulid::from_datetime(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64))
}

/// The smallest message id that could have been created at or after `ms`; ids compare as
/// strings, so this bounds key-range queries by time.
pub fn message_id_floor(ms: i64) -> String {
    let ulid = Ulid::from_parts(ms.max(0) as u64, 0);
    format!("{MESSAGE_ID_PREFIX}{ulid}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_sort_by_time() {
        // Imported ids carry exactly their own time (sent ids also never go backwards).
        let a = imported_message_id(1_700_000_000_000);
        let b = imported_message_id(1_700_000_000_001);
        assert!(a < b);
        assert!(a.starts_with("msg_"));
        assert!(message_id_floor(1_700_000_000_001) <= b);
        assert!(message_id_floor(1_700_000_000_001) > a);
    }

    #[test]
    fn ids_made_in_one_millisecond_keep_their_order() {
        let ids: Vec<String> = (0..1000)
            .map(|_| new_message_id(1_700_000_000_000))
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        let imported = imported_message_id(1_600_000_000_000);
        assert!(imported < ids[0]);
    }

    #[test]
    fn id_rules() {
        assert!(validate_id("userId", "kbadk:github", 128).is_ok());
        assert!(validate_id("userId", "", 128).is_err());
        assert!(validate_id("userId", &"a".repeat(129), 128).is_err());
        assert!(validate_id("userId", &"é".repeat(128), 128).is_ok());
        assert!(validate_id("userId", "a\u{7}b", 128).is_err());
        assert!(validate_id("userId", "a#b", 128).is_err());
    }

    #[test]
    fn ids_are_at_most_512_bytes_whatever_the_character_limit() {
        // 128 four-byte characters are 512 bytes: the widest id.
        assert!(validate_id("userId", &"😀".repeat(128), 128).is_ok());
        // A deployment allowing longer ids still gets at most 512 bytes.
        assert!(validate_id("userId", &"😀".repeat(128), 1000).is_ok());
        let err = validate_id("userId", &"😀".repeat(129), 1000).unwrap_err();
        assert!(err.to_string().contains("516 bytes"), "{err}");
        assert!(validate_id("userId", &"a".repeat(512), 1000).is_ok());
        assert!(validate_id("userId", &"a".repeat(513), 1000).is_err());
    }
}
