//! The open WebSocket connections: each `Socket` (the writer's queue, the connection's identity
//! and counters) and the `Registry` that finds them by connection id. `ws.rs` opens and runs
//! them; the management API (`connections.rs`) posts to, describes and closes them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use tokio::sync::mpsc;

/// What the writer half of a socket is told to do.
pub enum Outgoing {
    Text(String),
    /// Close the connection (`DELETE @connections/{id}`, the two-hour limit).
    Close(u16, &'static str),
}

/// One connection the gateway holds.
pub struct Socket {
    pub connection_id: String,
    pub(crate) tx: mpsc::UnboundedSender<Outgoing>,
    /// Milliseconds since the epoch.
    pub connected_at: i64,
    pub last_active_at: AtomicI64,
    pub source_ip: String,
    pub user_agent: String,
    /// The authorizer's context, passed in `requestContext.authorizer` of every route.
    pub(crate) authorizer: Map<String, Value>,
    /// The peer is gone (closed, or vanished without a close frame): posts answer 410.
    pub(crate) gone: AtomicBool,
    /// `$disconnect` has run (it runs once).
    pub(crate) disconnected: AtomicBool,
    /// Woken when the server side starts closing.
    pub(crate) closing: tokio::sync::Notify,
    /// Management API posts delivered to this socket, and posts answered 410.
    pub posts_delivered: AtomicU64,
    pub posts_gone: AtomicU64,
}

impl Socket {
    pub fn is_gone(&self) -> bool {
        self.gone.load(Ordering::SeqCst)
    }

    /// Queues a text frame; `false` when the connection is gone.
    pub fn send_text(&self, text: String) -> bool {
        if self.is_gone() {
            return false;
        }
        self.tx.send(Outgoing::Text(text)).is_ok()
    }

    /// Starts closing the connection from the server side; `false` when it is already gone.
    pub fn close(&self, code: u16, reason: &'static str) -> bool {
        if self.gone.swap(true, Ordering::SeqCst) {
            return false;
        }
        let _ = self.tx.send(Outgoing::Close(code, reason));
        self.closing.notify_one();
        true
    }
}

/// The live sockets by connection id. Sockets whose peer vanished stay listed (as gone) until
/// their late `$disconnect`, so that the management API can answer 410 for them.
#[derive(Default)]
pub struct Registry {
    sockets: Mutex<HashMap<String, Arc<Socket>>>,
}

impl Registry {
    pub fn get(&self, connection_id: &str) -> Option<Arc<Socket>> {
        self.sockets
            .lock()
            .ok()
            .and_then(|s| s.get(connection_id).cloned())
    }

    pub(crate) fn insert(&self, socket: Arc<Socket>) {
        if let Ok(mut sockets) = self.sockets.lock() {
            sockets.insert(socket.connection_id.clone(), socket);
        }
    }

    pub fn remove(&self, connection_id: &str) {
        if let Ok(mut sockets) = self.sockets.lock() {
            sockets.remove(connection_id);
        }
    }

    /// How many sockets are open (not gone).
    pub fn open_count(&self) -> usize {
        self.sockets
            .lock()
            .map(|s| s.values().filter(|s| !s.is_gone()).count())
            .unwrap_or(0)
    }
}
