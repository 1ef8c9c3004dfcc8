//! The one shape of wait between retries, for every client natter retries itself (the DynamoDB
//! stores and the fan-out's posts): exponential, capped, and jittered so that many callers that
//! failed together do not all come back together.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// The wait before send `attempt + 1` (`attempt` from 1): a random duration between half of and
/// all of `min(base · 2^attempt, max)`.
pub fn jittered_backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let cap = base.saturating_mul(1 << attempt.min(16)).min(max);
    let cap_ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
    let random = RandomState::new().build_hasher().finish();
    Duration::from_millis(cap_ms / 2 + random % (cap_ms / 2 + 1))
}
