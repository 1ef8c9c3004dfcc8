//! The open WebSocket connections: each `Socket` (the writer's queue, the connection's identity
//! and counters) and the `Registry` that finds them by connection id. `ws.rs` opens and runs
//! them; the management API (`connections.rs`) posts to, describes and closes them.
//!
//! A socket's queue is bounded by bytes, not frames: the frames queued and not yet written to
//! the connection may hold at most `config::local::WS_MAX_QUEUED_BYTES`. A frame that would
//! pass it closes the connection with 1008 (a client that reads too slowly), so that one client
//! that never reads cannot grow the gateway's memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use natter::config::local::WS_MAX_QUEUED_BYTES;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

/// What the writer half of a socket is told to do.
pub enum Outgoing {
    Text(String),
    /// Close the connection (`DELETE @connections/{id}`, the idle timeout and the lifetime,
    /// an oversized client message, a slow reader).
    Close(u16, &'static str),
}

/// What became of a frame handed to a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// It is queued for the writer.
    Yes,
    /// The connection is gone (or closing): nothing was queued.
    Gone,
    /// It would have taken the unwritten frames past `WS_MAX_QUEUED_BYTES`: nothing was
    /// queued, and the connection is being closed with 1008.
    TooSlow,
}

/// The close code and reason a slow reader is closed with.
pub const SLOW_READER_CLOSE: (u16, &str) = (1008, "Slow reader");

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
    /// The code and reason of the server's close, once it started closing.
    close_frame: Mutex<Option<(u16, &'static str)>>,
    /// The writer drops the frames still queued and sends the close frame next (a slow
    /// reader's close).
    pub(crate) drop_queued: AtomicBool,
    /// Bytes of text frames queued and not yet written to the connection.
    queued_bytes: AtomicUsize,
    /// Management API posts delivered to this socket, and posts answered 410.
    pub posts_delivered: AtomicU64,
    pub posts_gone: AtomicU64,
}

impl Socket {
    /// A new open socket whose writer reads the other end of `tx`.
    pub(crate) fn new(
        connection_id: String,
        tx: mpsc::UnboundedSender<Outgoing>,
        connected_at: i64,
        source_ip: String,
        user_agent: String,
        authorizer: Map<String, Value>,
    ) -> Socket {
        Socket {
            connection_id,
            tx,
            connected_at,
            last_active_at: AtomicI64::new(connected_at),
            source_ip,
            user_agent,
            authorizer,
            gone: AtomicBool::new(false),
            disconnected: AtomicBool::new(false),
            closing: tokio::sync::Notify::new(),
            close_frame: Mutex::new(None),
            drop_queued: AtomicBool::new(false),
            queued_bytes: AtomicUsize::new(0),
            posts_delivered: AtomicU64::new(0),
            posts_gone: AtomicU64::new(0),
        }
    }

    pub fn is_gone(&self) -> bool {
        self.gone.load(Ordering::SeqCst)
    }

    /// Bytes of text frames queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes.load(Ordering::SeqCst)
    }

    /// Queues a text frame. A frame that would take the unwritten frames past
    /// `WS_MAX_QUEUED_BYTES` is not queued: the connection starts closing with 1008 instead.
    pub fn send_text(&self, text: String) -> Queued {
        if self.is_gone() {
            return Queued::Gone;
        }
        let len = text.len();
        let before = self.queued_bytes.fetch_add(len, Ordering::SeqCst);
        if before + len > WS_MAX_QUEUED_BYTES {
            self.queued_bytes.fetch_sub(len, Ordering::SeqCst);
            let (code, reason) = SLOW_READER_CLOSE;
            return if self.start_close(code, reason, true) {
                Queued::TooSlow
            } else {
                Queued::Gone
            };
        }
        if self.tx.send(Outgoing::Text(text)).is_err() {
            self.queued_bytes.fetch_sub(len, Ordering::SeqCst);
            return Queued::Gone;
        }
        Queued::Yes
    }

    /// The writer took a text frame of `len` bytes off the queue (written or dropped).
    pub(crate) fn dequeued(&self, len: usize) {
        self.queued_bytes.fetch_sub(len, Ordering::SeqCst);
    }

    /// Starts closing the connection from the server side; `false` when it is already gone.
    pub fn close(&self, code: u16, reason: &'static str) -> bool {
        self.start_close(code, reason, false)
    }

    /// Starts closing; with `drop_queued` the frames still queued are not sent, the close
    /// frame goes out right after the one being written.
    fn start_close(&self, code: u16, reason: &'static str, drop_queued: bool) -> bool {
        if self.gone.swap(true, Ordering::SeqCst) {
            return false;
        }
        if drop_queued {
            self.drop_queued.store(true, Ordering::SeqCst);
        }
        if let Ok(mut frame) = self.close_frame.lock() {
            *frame = Some((code, reason));
        }
        let _ = self.tx.send(Outgoing::Close(code, reason));
        self.closing.notify_one();
        true
    }

    /// The code and reason the server closed with, if it did (1000 when unknown).
    pub(crate) fn close_frame(&self) -> (u16, &'static str) {
        self.close_frame
            .lock()
            .ok()
            .and_then(|f| *f)
            .unwrap_or((1000, ""))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn socket() -> (Socket, mpsc::UnboundedReceiver<Outgoing>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let socket = Socket::new(
            "c1".into(),
            tx,
            0,
            "127.0.0.1".into(),
            String::new(),
            Map::new(),
        );
        (socket, rx)
    }

    #[test]
    fn the_queue_is_bounded_by_bytes() {
        let (socket, mut rx) = socket();
        let frame = "x".repeat(100_000);
        // Ten frames fit in the 1 MiB ...
        for _ in 0..10 {
            assert_eq!(socket.send_text(frame.clone()), Queued::Yes);
        }
        assert_eq!(socket.queued_bytes(), 1_000_000);
        // ... an eleventh does not: it is not queued, and the socket closes with 1008.
        assert_eq!(socket.send_text(frame.clone()), Queued::TooSlow);
        assert_eq!(socket.queued_bytes(), 1_000_000);
        assert!(socket.is_gone());
        assert!(socket.drop_queued.load(Ordering::SeqCst));
        assert_eq!(socket.close_frame(), SLOW_READER_CLOSE);
        assert_eq!(socket.send_text("{}".into()), Queued::Gone);
        // The queue holds the ten frames and the close, in that order.
        for _ in 0..10 {
            assert!(matches!(rx.try_recv(), Ok(Outgoing::Text(t)) if t.len() == 100_000));
        }
        assert!(matches!(rx.try_recv(), Ok(Outgoing::Close(1008, _))));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn written_frames_make_room() {
        let (socket, _rx) = socket();
        let frame = "x".repeat(WS_MAX_QUEUED_BYTES / 2);
        assert_eq!(socket.send_text(frame.clone()), Queued::Yes);
        assert_eq!(socket.send_text(frame.clone()), Queued::Yes);
        socket.dequeued(frame.len());
        assert_eq!(socket.send_text(frame.clone()), Queued::Yes);
        assert_eq!(socket.queued_bytes(), WS_MAX_QUEUED_BYTES);
        assert!(!socket.is_gone());
    }

    #[test]
    fn a_close_keeps_its_code_and_the_queue() {
        let (socket, _rx) = socket();
        assert_eq!(socket.close_frame(), (1000, ""));
        assert!(socket.close(1001, "Going away"));
        assert!(!socket.close(1000, ""));
        assert_eq!(socket.close_frame(), (1001, "Going away"));
        assert!(!socket.drop_queued.load(Ordering::SeqCst));
    }
}
