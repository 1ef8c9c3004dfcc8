//! The composition root: the stores, the clock and the configuration of one process, from which
//! every operation takes exactly the ports it names.
//!
//! The Lambda functions build one over the DynamoDB table (`functions/src/lib.rs`), natter-local
//! one over the store it was asked for (`infra/src/server.rs`), the tests theirs over either; an
//! operation never sees the `Services` it was built from, only its ports.

use std::sync::Arc;

use crate::changes::ChangeReceiver;
use crate::clock::Clock;
use crate::config::storage::CHANGE_FEED_CAPACITY;
use crate::config::Config;
use crate::ports::{ConnectionReader, InboxStore, Port, RealtimeStore, Store, TypingStore};
use crate::realtime::dynamo::DynamoRealtimeStore;
use crate::realtime::memory::MemoryRealtimeStore;
use crate::store::dynamo::DynamoStore;
use crate::store::inbox::{ClientDirectory, ConnectionDirectory};
use crate::store::memory::MemoryStore;
use crate::store::memory_inbox::MemoryInbox;
use crate::typing::{NoTypingTimer, TypingTimer};

/// Everything a process stores and the time and settings it runs with.
#[derive(Clone)]
pub struct Services {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) inbox: Arc<dyn InboxStore>,
    pub(crate) realtime: Arc<dyn RealtimeStore>,
    pub(crate) clients: Arc<dyn ClientDirectory>,
    pub(crate) typing: Arc<dyn TypingStore>,
    /// Schedules typing expiry checks; none unless given (`with_typing_timer`).
    pub(crate) typing_timer: Arc<dyn TypingTimer>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: Arc<Config>,
}

impl Services {
    /// Client ids resolve through the realtime store's connection records.
    pub fn new(
        store: Arc<dyn Store>,
        inbox: Arc<dyn InboxStore>,
        realtime: Arc<dyn RealtimeStore>,
        typing: Arc<dyn TypingStore>,
        clock: Arc<dyn Clock>,
        config: Config,
    ) -> Self {
        let connections: Arc<dyn ConnectionReader> = realtime.clone();
        Services {
            store,
            inbox,
            realtime,
            clients: Arc::new(ConnectionDirectory(connections)),
            typing,
            typing_timer: Arc::new(NoTypingTimer),
            clock,
            config: Arc::new(config),
        }
    }

    /// The embedded, in-memory stores, and the feed of the changes they make (what the fan-out
    /// reads where DynamoDB would have its stream): every change in write order, none lost; a
    /// write waits while `CHANGE_FEED_CAPACITY` changes are unread. Drop the receiver when
    /// nothing reads it (then writes never wait); one kept but never read stops the writes
    /// once it is full.
    pub fn memory(clock: Arc<dyn Clock>, config: Config) -> (Self, ChangeReceiver) {
        let (changes, feed) = crate::changes::feed(CHANGE_FEED_CAPACITY);
        let store = Arc::new(MemoryStore::with_changes(changes.clone()));
        let inbox = MemoryInbox::new(changes);
        let services = Services::new(
            store.clone(),
            Arc::new(inbox),
            Arc::new(MemoryRealtimeStore::new()),
            store,
            clock,
            config,
        );
        (services, feed)
    }

    /// Every store on one DynamoDB table, through one client.
    pub fn dynamodb(
        client: aws_sdk_dynamodb::Client,
        table: &str,
        clock: Arc<dyn Clock>,
        config: Config,
    ) -> Self {
        let store = DynamoStore::new(client.clone(), table);
        Services::new(
            Arc::new(store.clone()),
            Arc::new(store.clone()),
            Arc::new(DynamoRealtimeStore::new(client, table)),
            Arc::new(store),
            clock,
            config,
        )
    }

    /// The same services, scheduling typing expiry checks with this timer (`typing`).
    pub fn with_typing_timer(mut self, timer: Arc<dyn TypingTimer>) -> Self {
        self.typing_timer = timer;
        self
    }

    /// The same stores and clock under other settings.
    pub fn with_config(mut self, config: Config) -> Self {
        self.config = Arc::new(config);
        self
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// Builds any component (an operation, a port, the context) from these services.
    pub fn build<C: Component>(&self) -> C {
        C::build(self)
    }
}

/// A part an operation is made of: a port, the time-and-settings context, or another operation.
/// `ports` lists the storage ports it holds, for the IAM parity test.
pub trait Component: Sized {
    fn build(services: &Services) -> Self;

    fn ports(into: &mut Vec<Port>);
}

/// The ports a component holds, deduplicated and sorted.
pub fn ports_of<C: Component>() -> Vec<Port> {
    let mut ports = Vec::new();
    C::ports(&mut ports);
    ports.sort();
    ports.dedup();
    ports
}

/// Declares an operation: a struct of the components it uses (fields stay private), built from
/// `Services` field by field, whose ports are the union of its fields' ports.
#[macro_export]
macro_rules! operation {
    ($(#[$meta:meta])* $vis:vis struct $name:ident { $($field:ident: $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone)]
        $vis struct $name {
            $($field: $ty,)*
        }

        impl $crate::services::Component for $name {
            fn build(_services: &$crate::services::Services) -> Self {
                $name {
                    $($field: <$ty as $crate::services::Component>::build(_services),)*
                }
            }

            fn ports(_into: &mut Vec<$crate::ports::Port>) {
                $(<$ty as $crate::services::Component>::ports(_into);)*
            }
        }
    };
}
