//! The gateway's counters of what it refused or closed for breaking AWS's limits, served at
//! `GET /@local/stats` (not an AWS API). The end-to-end harness asserts, whenever a test's
//! gateway stops, that nothing natter sent was oversized: a reply frame or an `@connections`
//! post over 128 KiB, or an HTTP response over Lambda's 6 MB, is a bug in natter (API Gateway
//! would refuse it on AWS too), never the client's doing.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};

/// Counters of one gateway process, from its start.
#[derive(Debug, Default)]
pub struct Stats {
    /// Route replies over 128 KiB, not sent.
    pub oversized_replies: AtomicU64,
    /// `@connections` posts over 128 KiB, answered 413.
    pub oversized_posts: AtomicU64,
    /// HTTP responses over Lambda's payload limit, answered 502.
    pub oversized_responses: AtomicU64,
    /// Connections closed with 1009 for a client message over 128 KiB.
    pub too_big_closes: AtomicU64,
    /// Connections closed with 1008 for having too much queued and unwritten.
    pub slow_reader_closes: AtomicU64,
    /// Connections closed with 1001 for no client frame within the idle timeout.
    pub idle_closes: AtomicU64,
    /// Connections closed with 1001 at the end of their lifetime.
    pub lifetime_closes: AtomicU64,
    /// HTTP requests that ran the authorizer (the others had a cached verdict or no
    /// `Authorization` header).
    pub authorizer_calls: AtomicU64,
    /// HTTP requests without an `Authorization` header, answered 401 without the authorizer.
    pub missing_identity: AtomicU64,
}

/// Adds one to a counter.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Stats {
    /// Counts and logs a connection closed with 1008 for reading too slowly.
    pub fn slow_reader_closed(&self, connection_id: &str) {
        bump(&self.slow_reader_closes);
        tracing::warn!(
            connection_id,
            limit = natter::config::local::WS_MAX_QUEUED_BYTES,
            "closing a connection that reads too slowly (1008): its unwritten frames passed the \
             limit"
        );
    }

    /// Frames natter tried to send over 128 KiB: replies and posts.
    pub fn oversized_frames(&self) -> u64 {
        self.oversized_replies.load(Ordering::Relaxed)
            + self.oversized_posts.load(Ordering::Relaxed)
    }

    /// The counters as `GET /@local/stats` answers them, with the open connections.
    pub fn to_json(&self, open_connections: usize) -> Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        json!({
            "oversizedFrames": self.oversized_frames(),
            "oversizedReplies": get(&self.oversized_replies),
            "oversizedPosts": get(&self.oversized_posts),
            "oversizedResponses": get(&self.oversized_responses),
            "tooBigCloses": get(&self.too_big_closes),
            "slowReaderCloses": get(&self.slow_reader_closes),
            "idleCloses": get(&self.idle_closes),
            "lifetimeCloses": get(&self.lifetime_closes),
            "authorizerCalls": get(&self.authorizer_calls),
            "missingIdentity": get(&self.missing_identity),
            "openConnections": open_connections,
        })
    }
}
