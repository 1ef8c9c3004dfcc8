//! Changes to stored data that subscribers must hear about.
//!
//! On AWS these come from the table's DynamoDB stream (`fanout::stream` decodes each stream
//! record into a `Change`); the embedded store emits them directly from its writes. Either
//! way the fan-out receives the same values, so it behaves the same locally and deployed.

use crate::model::{MessageRecord, ParticipantRecord};

#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    MessageCreated(MessageRecord),
    MessageEdited(MessageRecord),
    /// Deleted by a user; expiry (TTL) removals are not changes anyone is told about.
    MessageDeleted {
        conversation_id: String,
        message_id: String,
    },
    ReactionAdded {
        message: MessageRecord,
        emoji: String,
        user_id: String,
        /// The emoji's count after the change.
        count: u64,
    },
    ReactionRemoved {
        message: MessageRecord,
        emoji: String,
        user_id: String,
        count: u64,
    },
    /// A participant joined (`before` is `None`), left (`after` is `None`), or changed access
    /// or read state. What the conversation lists hear about.
    ParticipantChanged {
        conversation_id: String,
        user_id: String,
        before: Option<ParticipantRecord>,
        after: Option<ParticipantRecord>,
    },
    /// A conversation's subject, photo or `custom` changed.
    ConversationChanged {
        conversation_id: String,
    },
    /// A new inbox message for one recipient.
    InboxCreated(crate::store::inbox::InboxRecord),
    /// An inbox message deleted by its recipient (not by expiry).
    InboxDeleted {
        user_id: String,
        message_id: String,
    },
    /// `user_id` started or stopped typing in a conversation: their typer item was created,
    /// rewritten for a new spell, or deleted (not by TTL). An item whose `until` was only
    /// extended is no change. The fan-out reads who is typing now (`fanout::typing`).
    TypingChanged {
        conversation_id: String,
        user_id: String,
    },
}

impl Change {
    /// The conversation a message or typing change belongs to; `None` for inbox changes.
    pub fn conversation_id(&self) -> Option<&str> {
        Some(match self {
            Change::TypingChanged {
                conversation_id, ..
            } => conversation_id,
            Change::MessageCreated(m) | Change::MessageEdited(m) => &m.conversation_id,
            Change::MessageDeleted {
                conversation_id, ..
            } => conversation_id,
            Change::ReactionAdded { message, .. } | Change::ReactionRemoved { message, .. } => {
                &message.conversation_id
            }
            Change::ParticipantChanged {
                conversation_id, ..
            }
            | Change::ConversationChanged { conversation_id } => conversation_id,
            Change::InboxCreated(_) | Change::InboxDeleted { .. } => return None,
        })
    }

    /// The message a change is about; `None` for changes to conversations, participants and
    /// the inbox.
    pub fn message_id(&self) -> Option<&str> {
        match self {
            Change::MessageCreated(m) | Change::MessageEdited(m) => Some(&m.id),
            Change::MessageDeleted { message_id, .. } => Some(message_id),
            Change::ReactionAdded { message, .. } | Change::ReactionRemoved { message, .. } => {
                Some(&message.id)
            }
            Change::ParticipantChanged { .. }
            | Change::ConversationChanged { .. }
            | Change::TypingChanged { .. }
            | Change::InboxCreated(_)
            | Change::InboxDeleted { .. } => None,
        }
    }
}

// ---- The embedded stores' feed ----

/// The receiving end of the embedded stores' feed: every change, in write order, none lost.
pub type ChangeReceiver = tokio::sync::mpsc::Receiver<Change>;

/// A lossless feed with backpressure: a bounded queue of `capacity` changes. The embedded stores
/// send every change they make into it; when the reader (the fan-out) falls behind and the queue
/// is full, a writer waits for room instead of anything being dropped. Dropping the receiver
/// closes the feed: from then on sends are skipped and writes never wait.
pub fn feed(capacity: usize) -> (ChangeSender, ChangeReceiver) {
    let (queue, receiver) = tokio::sync::mpsc::channel(capacity);
    let feed = Feed {
        queue,
        turns: tokio::sync::watch::Sender::new(Turns::default()),
    };
    (
        ChangeSender {
            feed: Some(std::sync::Arc::new(feed)),
        },
        receiver,
    )
}

/// The sending side of a [`feed`], shared by the embedded stores.
///
/// A write takes a [`Ticket`] while it holds its store's lock, then sends its changes with the
/// ticket after releasing the lock: tickets are served one after another in the order they were
/// taken, so the feed carries changes in the order the writes happened (across every store
/// that shares the feed), one write's changes together, and no lock is held while waiting.
#[derive(Clone, Default)]
pub struct ChangeSender {
    feed: Option<std::sync::Arc<Feed>>,
}

struct Feed {
    queue: tokio::sync::mpsc::Sender<Change>,
    turns: tokio::sync::watch::Sender<Turns>,
}

/// Tickets are numbered from 0 in the order they were taken.
#[derive(Default)]
struct Turns {
    /// The number of the next ticket taken.
    next: u64,
    /// The ticket whose changes are being sent.
    serving: u64,
    /// Later tickets released before their turn (with nothing to send).
    released: std::collections::BTreeSet<u64>,
}

impl Turns {
    /// Ends the turn of `serving`, and skips the tickets already released after it.
    fn advance(&mut self) {
        self.serving += 1;
        while self.released.remove(&self.serving) {
            self.serving += 1;
        }
    }
}

impl ChangeSender {
    /// A sender with no feed behind it: every change is dropped at once (stores nobody reads).
    pub fn none() -> Self {
        ChangeSender { feed: None }
    }

    /// A place in the feed's line. Take it under the lock of the write it belongs to.
    pub fn ticket(&self) -> Ticket {
        let feed = self.feed.as_ref().filter(|f| !f.queue.is_closed());
        let Some(feed) = feed else {
            return Ticket { turn: None };
        };
        let mut number = 0;
        feed.turns.send_if_modified(|turns| {
            number = turns.next;
            turns.next += 1;
            // Nobody waits for a ticket being taken.
            false
        });
        Ticket {
            turn: Some((feed.clone(), number)),
        }
    }
}

/// One write's place in the feed's line (see [`ChangeSender`]). A ticket dropped unused gives up
/// its place without holding back the tickets after it.
#[must_use = "a ticket sends nothing unless `send` is awaited"]
pub struct Ticket {
    turn: Option<(std::sync::Arc<Feed>, u64)>,
}

impl Ticket {
    /// Sends these changes, in order, once every earlier ticket's have been sent; returns when
    /// the queue has taken the last of them (waiting for room while it is full). The sending
    /// runs in a task of its own, so even when the caller stops waiting (a cancelled request)
    /// every change still reaches the feed, in its place.
    pub async fn send(self, changes: Vec<Change>) {
        if self.turn.is_none() || changes.is_empty() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let _ = runtime.spawn(self.deliver(changes)).await;
            }
            Err(_) => self.deliver(changes).await,
        }
    }

    async fn deliver(self, changes: Vec<Change>) {
        let Some((feed, number)) = &self.turn else {
            return;
        };
        let mut turns = feed.turns.subscribe();
        // Fails only when the sender is gone, and this ticket holds it.
        let _ = turns.wait_for(|turns| turns.serving == *number).await;
        for change in changes {
            if feed.queue.send(change).await.is_err() {
                // The reader is gone: nothing more is read.
                break;
            }
        }
        // Dropping the ticket ends its turn.
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some((feed, number)) = self.turn.take() {
            feed.turns.send_if_modified(|turns| {
                if turns.serving == number {
                    turns.advance();
                    true
                } else {
                    turns.released.insert(number);
                    false
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::store::inbox::{InboxClearer, InboxDeleter, InboxRecord, InboxWriter};
    use crate::store::memory_inbox::MemoryInbox;

    fn record(user_id: &str, i: usize) -> InboxRecord {
        InboxRecord {
            user_id: user_id.into(),
            message_id: format!("inb_{i:06}"),
            sender_id: "sender".into(),
            message: crate::json::RawJson::from_value(&serde_json::json!(i)),
            created_at: 1,
            expires_at: 0,
        }
    }

    fn deleted(user_id: &str, i: usize) -> Change {
        Change::InboxDeleted {
            user_id: user_id.into(),
            message_id: format!("inb_{i:06}"),
        }
    }

    #[tokio::test]
    async fn a_slow_reader_gets_every_change_of_a_big_clear_in_order_while_the_writer_waits() {
        const CAPACITY: usize = 8;
        const MESSAGES: usize = 3_000;
        let (sender, mut feed) = feed(CAPACITY);
        let inbox = MemoryInbox::new(sender);
        let records: Vec<InboxRecord> = (0..MESSAGES).map(|i| record("u", i)).collect();
        let received = Arc::new(AtomicUsize::new(0));
        let writer = tokio::spawn({
            let (records, received) = (records.clone(), received.clone());
            async move {
                inbox.put_inbox_messages(&records).await.unwrap();
                let after_put = received.load(Ordering::SeqCst);
                let cleared = inbox.clear_inbox("u").await.unwrap();
                (after_put, cleared, received.load(Ordering::SeqCst))
                // The inbox, and with it the feed's only sender, is dropped here.
            }
        });
        let mut got = Vec::new();
        let mut most_queued = 0;
        // A slow reader: it sleeps after every 100 changes and yields after every other one.
        while let Some(change) = feed.recv().await {
            most_queued = most_queued.max(feed.len() + 1);
            got.push(change);
            received.fetch_add(1, Ordering::SeqCst);
            if got.len() % 100 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            } else {
                tokio::task::yield_now().await;
            }
        }
        let (after_put, cleared, after_clear) = writer.await.unwrap();
        assert_eq!(cleared, MESSAGES);
        println!(
            "{} changes received of {}; at most {most_queued} queued; read when the put returned: \
             {after_put}, when the clear returned: {after_clear}",
            got.len(),
            2 * MESSAGES
        );

        // Every change arrived, once, in write order: the creations, then the whole clear.
        let expected: Vec<Change> = records
            .into_iter()
            .map(Change::InboxCreated)
            .chain((0..MESSAGES).map(|i| deleted("u", i)))
            .collect();
        assert_eq!(got.len(), 2 * MESSAGES);
        assert!(got == expected, "the feed reordered or changed changes");

        // Backpressure: never more than the capacity queued, and each write returned only once
        // all but at most a queue's worth of its changes had been read.
        assert!(most_queued <= CAPACITY, "{most_queued} changes were queued");
        assert!(
            MESSAGES - after_put <= CAPACITY,
            "put returned at {after_put}"
        );
        assert!(
            2 * MESSAGES - after_clear <= CAPACITY,
            "clear returned at {after_clear}"
        );
    }

    #[tokio::test]
    async fn tickets_are_served_in_the_order_taken_and_an_unused_one_holds_nothing_back() {
        let (sender, mut feed) = feed(4);
        let first = sender.ticket();
        let unused = sender.ticket();
        let third = sender.ticket();
        // The third write sends first, but waits for the first one's turn.
        let late = tokio::spawn(third.send(vec![deleted("u", 3)]));
        tokio::task::yield_now().await;
        assert!(feed.try_recv().is_err(), "the third ticket went first");
        drop(unused);
        first.send(vec![deleted("u", 1), deleted("u", 2)]).await;
        late.await.unwrap();
        drop(sender);
        let mut got = Vec::new();
        while let Some(change) = feed.recv().await {
            got.push(change);
        }
        assert_eq!(got, vec![deleted("u", 1), deleted("u", 2), deleted("u", 3)]);
    }

    #[tokio::test]
    async fn a_cancelled_write_still_delivers_every_change_in_its_place() {
        let (sender, mut feed) = feed(4);
        let inbox = MemoryInbox::new(sender);
        let records: Vec<InboxRecord> = (0..100).map(|i| record("u", i)).collect();
        // Nobody reads yet: the queue fills and the write waits, until its caller gives up.
        let put = tokio::time::timeout(
            Duration::from_millis(20),
            inbox.put_inbox_messages(&records),
        );
        assert!(put.await.is_err(), "the write did not wait for room");
        // A later write queues behind the cancelled one's changes.
        let inbox = Arc::new(inbox);
        let later = tokio::spawn({
            let inbox = inbox.clone();
            async move { inbox.delete_inbox_message("u", "inb_000007").await }
        });
        let mut got = Vec::new();
        while got.len() < 101 {
            got.push(feed.recv().await.unwrap());
        }
        assert!(later.await.unwrap().unwrap());
        let expected: Vec<Change> = records
            .into_iter()
            .map(Change::InboxCreated)
            .chain([deleted("u", 7)])
            .collect();
        assert!(got == expected, "changes lost or reordered");
    }

    #[tokio::test]
    async fn without_a_reader_writes_never_wait() {
        let records: Vec<InboxRecord> = (0..100).map(|i| record("u", i)).collect();
        let (sender, feed) = feed(2);
        drop(feed);
        for inbox in [
            MemoryInbox::new(sender),
            MemoryInbox::new(ChangeSender::none()),
        ] {
            let writes = async {
                inbox.put_inbox_messages(&records).await.unwrap();
                inbox.clear_inbox("u").await.unwrap()
            };
            let cleared = tokio::time::timeout(Duration::from_secs(5), writes).await;
            assert_eq!(cleared.expect("a write waited"), 100);
        }
    }
}
