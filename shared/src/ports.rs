//! The storage ports: every small capability trait an operation may hold, and the DynamoDB actions
//! each one may perform.
//!
//! An operation names its ports (see `crate::operations`), never a whole store, so its signature
//! is its permission: the IAM policy that `template.yaml` gives a function is exactly the union of
//! its ports' actions, and the IAM parity test (`shared/tests/iam_parity.rs`) checks both that and
//! that every request a port sends to DynamoDB is one of the actions listed here.
//!
//! `use natter::ports::*` brings every port trait into scope.

pub use crate::realtime::{
    ConnectionLister, ConnectionReader, ConnectionWriter, Disconnector, RealtimeStore,
    SubscriberLister, SubscriptionReader, SubscriptionRemover, SubscriptionWriter, WindowExtender,
};
pub use crate::store::inbox::{
    ClientDirectory, InboxClearer, InboxDeleter, InboxReader, InboxStore, InboxWriter,
};
use std::sync::Arc;

use crate::services::{Component, Services};

pub use crate::store::typing::{TypingLister, TypingRemover, TypingStore, TypingWriter};
pub use crate::store::{
    ActivityWriter, ConversationLister, ConversationReader, ConversationWriter, ItemReader,
    MessageCreator, MessageDeleter, MessageEditor, MessageImporter, MessageLister,
    ParticipantRemover, ParticipantWriter, ReactionAdder, ReactionReader, ReactionRemover,
    ReadMarker, Store, UnreadCounter, UserWriter,
};
pub use crate::typing::TypingTimer;

/// One IAM action on the table (`dynamodb:GetItem` …) or on its indexes (`Resource:
/// ${Table.Arn}/index/*`). A part of a `TransactWriteItems` is the action of its kind
/// (`Put` → `PutItem`, `ConditionCheck` → `ConditionCheckItem`, …), as IAM evaluates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    GetItem,
    BatchGetItem,
    Query,
    PutItem,
    UpdateItem,
    DeleteItem,
    ConditionCheckItem,
    BatchWriteItem,
    /// `dynamodb:Query` on the table's indexes.
    QueryIndex,
}

impl Action {
    /// The IAM action name, as `template.yaml` spells it.
    pub fn iam_name(self) -> &'static str {
        match self {
            Action::GetItem => "dynamodb:GetItem",
            Action::BatchGetItem => "dynamodb:BatchGetItem",
            Action::Query | Action::QueryIndex => "dynamodb:Query",
            Action::PutItem => "dynamodb:PutItem",
            Action::UpdateItem => "dynamodb:UpdateItem",
            Action::DeleteItem => "dynamodb:DeleteItem",
            Action::ConditionCheckItem => "dynamodb:ConditionCheckItem",
            Action::BatchWriteItem => "dynamodb:BatchWriteItem",
        }
    }

    /// Whether the action's resource is the table's indexes rather than the table.
    pub fn on_index(self) -> bool {
        self == Action::QueryIndex
    }
}

/// Declares the port catalogue: each port's trait and the actions its DynamoDB implementation
/// may send.
macro_rules! ports {
    ($($port:ident from $source:ident => [$($action:ident),* $(,)?],)*) => {
        /// Every port, by the name of its trait.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Port {
            $($port,)*
            /// The typing expiry timer (`typing::TypingTimer`): no DynamoDB action, but on AWS
            /// `sqs:SendMessage` on the typing queue.
            TypingTimer,
        }

        impl Port {
            pub const ALL: &'static [Port] = &[$(Port::$port,)* Port::TypingTimer];

            /// The DynamoDB actions this port's implementation may send.
            pub fn actions(self) -> &'static [Action] {
                match self {
                    $(Port::$port => &[$(Action::$action),*],)*
                    Port::TypingTimer => &[],
                }
            }

            /// The trait's name.
            pub fn name(self) -> &'static str {
                match self {
                    $(Port::$port => stringify!($port),)*
                    Port::TypingTimer => "TypingTimer",
                }
            }
        }

        $(
            /// A port is a component: taken from the store that implements it.
            impl Component for Arc<dyn $port> {
                fn build(services: &Services) -> Self {
                    services.$source.clone()
                }

                fn ports(into: &mut Vec<Port>) {
                    into.push(Port::$port);
                }
            }
        )*
    };
}

ports! {
    // The message store.
    ItemReader from store => [BatchGetItem],
    UserWriter from store => [UpdateItem, DeleteItem],
    ConversationWriter from store => [Query, UpdateItem, DeleteItem],
    ConversationReader from store => [Query],
    ParticipantWriter from store => [ConditionCheckItem, UpdateItem],
    ParticipantRemover from store => [DeleteItem],
    ConversationLister from store => [QueryIndex, BatchGetItem],
    ReadMarker from store => [UpdateItem],
    UnreadCounter from store => [Query],
    ActivityWriter from store => [UpdateItem, DeleteItem],
    MessageCreator from store => [PutItem, ConditionCheckItem],
    MessageImporter from store => [PutItem],
    MessageLister from store => [Query],
    MessageEditor from store => [UpdateItem],
    MessageDeleter from store => [DeleteItem],
    ReactionAdder from store => [ConditionCheckItem, PutItem, UpdateItem],
    ReactionRemover from store => [ConditionCheckItem, DeleteItem, UpdateItem],
    ReactionReader from store => [Query],
    // The inbox.
    InboxWriter from inbox => [BatchWriteItem],
    InboxReader from inbox => [Query],
    InboxDeleter from inbox => [DeleteItem],
    InboxClearer from inbox => [Query, BatchWriteItem],
    ClientDirectory from clients => [GetItem],
    // Connections and subscriptions.
    ConnectionWriter from realtime => [PutItem],
    ConnectionReader from realtime => [GetItem],
    ConnectionLister from realtime => [QueryIndex],
    SubscriptionWriter from realtime => [GetItem, PutItem, UpdateItem, DeleteItem],
    SubscriptionReader from realtime => [GetItem],
    WindowExtender from realtime => [UpdateItem],
    SubscriptionRemover from realtime => [GetItem, UpdateItem, DeleteItem],
    SubscriberLister from realtime => [Query],
    Disconnector from realtime => [UpdateItem, BatchWriteItem],
    // Typers (the typer item itself is read through `ItemReader`).
    TypingWriter from typing => [PutItem],
    TypingLister from typing => [Query],
    TypingRemover from typing => [DeleteItem],
}

/// Whether an operation with these ports reads or writes the table at all: the functions that
/// do open their DynamoDB connection at init (`DynamoStore::warm_up`) and hold `template.yaml`'s
/// `WarmUpPolicy`.
pub fn uses_table(ports: &[Port]) -> bool {
    ports.iter().any(|port| !port.actions().is_empty())
}
