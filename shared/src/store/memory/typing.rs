//! The embedded store's typers. Like the DynamoDB stream, the change feed hears of a typer
//! item created, deleted, or rewritten for a new spell (`since` changed), never of an extension
//! of `until`.
//!
//! A typer write does not wait for the feed to have room: its changes are queued in their place
//! (the ticket is taken under the lock) by a task of their own. The fan-out, which reads the
//! feed, itself deletes typer items (a typer who sends a message stops typing); waiting there
//! for room in the feed it reads would stop it for good once the feed is full.

use async_trait::async_trait;

use super::MemoryStore;
use crate::changes::{Change, Ticket};
use crate::store::typing::{sort_typers, TyperRecord, TypingLister, TypingRemover, TypingWriter};
use crate::store::StoreResult;

fn typing_changed(conversation_id: &str, user_id: &str) -> Change {
    Change::TypingChanged {
        conversation_id: conversation_id.to_string(),
        user_id: user_id.to_string(),
    }
}

/// Sends the changes in their place without waiting for them to be read.
async fn send_in_background(ticket: Ticket, changes: Vec<Change>) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(ticket.send(changes));
        }
        Err(_) => ticket.send(changes).await,
    }
}

#[async_trait]
impl TypingWriter for MemoryStore {
    async fn put_typer(&self, typer: &TyperRecord) -> StoreResult<()> {
        let (ticket, changed) = {
            let mut state = self.lock()?;
            let previous = state
                .typers
                .entry(typer.conversation_id.clone())
                .or_default()
                .insert(typer.user_id.clone(), typer.clone());
            let changed = previous.is_none_or(|p| p.since != typer.since);
            (self.changes.ticket(), changed)
        };
        if changed {
            let change = typing_changed(&typer.conversation_id, &typer.user_id);
            send_in_background(ticket, vec![change]).await;
        }
        Ok(())
    }
}

#[async_trait]
impl TypingLister for MemoryStore {
    async fn typers(&self, conversation_id: &str, now_ms: i64) -> StoreResult<Vec<TyperRecord>> {
        let state = self.lock()?;
        let mut typers: Vec<TyperRecord> = state
            .typers
            .get(conversation_id)
            .into_iter()
            .flat_map(|ts| ts.values())
            .filter(|t| t.is_live(now_ms))
            .cloned()
            .collect();
        sort_typers(&mut typers);
        Ok(typers)
    }
}

#[async_trait]
impl TypingRemover for MemoryStore {
    async fn delete_typer(
        &self,
        conversation_id: &str,
        user_id: &str,
        until: i64,
    ) -> StoreResult<bool> {
        let ticket = {
            let mut state = self.lock()?;
            let Some(typers) = state.typers.get_mut(conversation_id) else {
                return Ok(false);
            };
            if typers.get(user_id).is_none_or(|t| t.until != until) {
                return Ok(false);
            }
            typers.remove(user_id);
            if typers.is_empty() {
                state.typers.remove(conversation_id);
            }
            self.changes.ticket()
        };
        send_in_background(ticket, vec![typing_changed(conversation_id, user_id)]).await;
        Ok(true)
    }
}
