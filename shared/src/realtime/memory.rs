//! The embedded realtime store: the DynamoDB store's access patterns in memory, behind one lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::realtime::{
    ConnectionLister, ConnectionReader, ConnectionWriter, Disconnector, SubscriberLister,
    SubscriptionReader, SubscriptionRemover, SubscriptionWriter, WindowExtender,
};
use async_trait::async_trait;

use super::{ConnectionRecord, SubscribeOutcome, SubscriptionRecord};
use crate::config::connections::{CLIENT_ID_GRACE_SECS, MAX_SUBSCRIPTIONS_PER_CONNECTION};
use crate::store::{is_expired, StoreError, StoreResult};

#[derive(Default)]
struct State {
    connections: HashMap<String, ConnectionRecord>,
    /// conversation id → (connection id, subscription id) → subscription
    subscriptions: HashMap<String, BTreeMap<(String, String), SubscriptionRecord>>,
}

impl State {
    fn remove_subscription(&mut self, cid: &str, connection_id: &str, subscription_id: &str) {
        if let Some(subs) = self.subscriptions.get_mut(cid) {
            subs.remove(&(connection_id.to_string(), subscription_id.to_string()));
            if subs.is_empty() {
                self.subscriptions.remove(cid);
            }
        }
    }
}

#[derive(Default)]
pub struct MemoryRealtimeStore {
    state: Mutex<State>,
}

impl MemoryRealtimeStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> StoreResult<std::sync::MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| StoreError::Backend("realtime store lock poisoned".into()))
    }
}

#[async_trait]
impl ConnectionWriter for MemoryRealtimeStore {
    async fn put_connection(&self, connection: &ConnectionRecord) -> StoreResult<()> {
        let mut state = self.lock()?;
        let old = state
            .connections
            .insert(connection.connection_id.clone(), connection.clone());
        // A replaced item's subscriptions would be orphans: DynamoDB's put leaves them to expire;
        // here they go at once, which no reader can tell apart.
        if let Some(old) = old {
            for (sub_id, cid) in &old.subscriptions {
                state.remove_subscription(cid, &old.connection_id, sub_id);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ConnectionReader for MemoryRealtimeStore {
    async fn get_connection(
        &self,
        connection_id: &str,
        now_ms: i64,
    ) -> StoreResult<Option<ConnectionRecord>> {
        let state = self.lock()?;
        Ok(state
            .connections
            .get(connection_id)
            .filter(|c| !is_expired(c.expires_at, now_ms))
            .cloned())
    }
}

#[async_trait]
impl ConnectionLister for MemoryRealtimeStore {
    async fn user_connections(
        &self,
        user_id: &str,
        now_ms: i64,
    ) -> StoreResult<Vec<ConnectionRecord>> {
        let state = self.lock()?;
        let mut found: Vec<ConnectionRecord> = state
            .connections
            .values()
            .filter(|c| c.user_id == user_id && c.connected && !is_expired(c.expires_at, now_ms))
            .cloned()
            .collect();
        found.sort_by(|a, b| a.connection_id.cmp(&b.connection_id));
        Ok(found)
    }
}

#[async_trait]
impl SubscriptionWriter for MemoryRealtimeStore {
    async fn put_subscription(
        &self,
        sub: &SubscriptionRecord,
        now_ms: i64,
    ) -> StoreResult<SubscribeOutcome> {
        let mut state = self.lock()?;
        let Some(connection) = state
            .connections
            .get_mut(&sub.connection_id)
            .filter(|c| c.connected && !is_expired(c.expires_at, now_ms))
        else {
            return Ok(SubscribeOutcome::ConnectionGone);
        };
        let replaced = connection.subscriptions.get(&sub.subscription_id).cloned();
        if replaced.is_none() && connection.subscriptions.len() >= MAX_SUBSCRIPTIONS_PER_CONNECTION
        {
            return Ok(SubscribeOutcome::TooMany);
        }
        connection
            .subscriptions
            .insert(sub.subscription_id.clone(), sub.conversation_id.clone());
        let mut stored = sub.clone();
        stored.expires_at = connection.subscription_expiry();
        if let Some(old_cid) = replaced {
            state.remove_subscription(&old_cid, &sub.connection_id, &sub.subscription_id);
        }
        state
            .subscriptions
            .entry(sub.conversation_id.clone())
            .or_default()
            .insert(
                (sub.connection_id.clone(), sub.subscription_id.clone()),
                stored,
            );
        Ok(SubscribeOutcome::Subscribed)
    }
}

#[async_trait]
impl SubscriptionReader for MemoryRealtimeStore {
    async fn get_subscription(
        &self,
        connection_id: &str,
        subscription_id: &str,
        now_ms: i64,
    ) -> StoreResult<Option<SubscriptionRecord>> {
        let state = self.lock()?;
        let Some(cid) = state
            .connections
            .get(connection_id)
            .filter(|c| !is_expired(c.expires_at, now_ms))
            .and_then(|c| c.subscriptions.get(subscription_id))
        else {
            return Ok(None);
        };
        Ok(state
            .subscriptions
            .get(cid)
            .and_then(|subs| subs.get(&(connection_id.to_string(), subscription_id.to_string())))
            .filter(|s| !is_expired(s.expires_at, now_ms))
            .cloned())
    }
}

#[async_trait]
impl WindowExtender for MemoryRealtimeStore {
    async fn extend_window(
        &self,
        conversation_id: &str,
        connection_id: &str,
        subscription_id: &str,
        new_start: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let mut state = self.lock()?;
        let Some(sub) = state
            .subscriptions
            .get_mut(conversation_id)
            .and_then(|subs| {
                subs.get_mut(&(connection_id.to_string(), subscription_id.to_string()))
            })
            .filter(|s| !is_expired(s.expires_at, now_ms))
        else {
            return Ok(false);
        };
        let reaches_further = match (&sub.window_start, new_start) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(current), Some(new)) => new < current.as_str(),
        };
        if reaches_further {
            sub.window_start = new_start.map(str::to_string);
        }
        Ok(true)
    }
}

#[async_trait]
impl SubscriptionRemover for MemoryRealtimeStore {
    async fn delete_subscription(
        &self,
        connection_id: &str,
        subscription_id: &str,
    ) -> StoreResult<Option<String>> {
        let mut state = self.lock()?;
        let Some(cid) = state
            .connections
            .get_mut(connection_id)
            .and_then(|c| c.subscriptions.remove(subscription_id))
        else {
            return Ok(None);
        };
        state.remove_subscription(&cid, connection_id, subscription_id);
        Ok(Some(cid))
    }
}

#[async_trait]
impl SubscriberLister for MemoryRealtimeStore {
    async fn subscribers(
        &self,
        conversation_id: &str,
        now_ms: i64,
    ) -> StoreResult<Vec<SubscriptionRecord>> {
        let state = self.lock()?;
        Ok(state
            .subscriptions
            .get(conversation_id)
            .map(|subs| {
                subs.values()
                    .filter(|s| !is_expired(s.expires_at, now_ms))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }
}

#[async_trait]
impl Disconnector for MemoryRealtimeStore {
    async fn disconnect(&self, connection_id: &str, now_ms: i64) -> StoreResult<()> {
        let mut state = self.lock()?;
        let Some(connection) = state.connections.get_mut(connection_id) else {
            return Ok(());
        };
        let subs = std::mem::take(&mut connection.subscriptions);
        if connection.connected {
            connection.connected = false;
            connection.expires_at = now_ms.div_euclid(1000) + CLIENT_ID_GRACE_SECS;
        }
        for (sub_id, cid) in subs {
            state.remove_subscription(&cid, connection_id, &sub_id);
        }
        Ok(())
    }
}
