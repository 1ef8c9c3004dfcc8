//! TEMPORARY STUB: the DynamoDB store is being written; this only lets dependents compile.
#![allow(unused_variables)]
use std::collections::HashSet;

use async_trait::async_trait;

use super::*;
use crate::model::*;

pub struct DynamoStore;

impl DynamoStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoStore
    }
    pub async fn create_table_if_missing(&self) -> StoreResult<()> {
        Err(StoreError::Backend("DynamoDB store not built yet".into()))
    }
}

fn todo_err<T>() -> StoreResult<T> {
    Err(StoreError::Backend("DynamoDB store not built yet".into()))
}

#[async_trait]
impl Store for DynamoStore {
    async fn get_items(&self, keys: &[ItemKey], now_ms: i64) -> StoreResult<Items> { todo_err() }
    async fn upsert_user(&self, user_id: &str, patch: &UserPatch, now_ms: i64, expires_at: i64) -> StoreResult<UserRecord> { todo_err() }
    async fn upsert_conversation(&self, conversation_id: &str, patch: &ConversationPatch, participants: &[(String, Access)], now_ms: i64, expires_at: i64) -> StoreResult<()> { todo_err() }
    async fn get_conversation(&self, conversation_id: &str, now_ms: i64) -> StoreResult<Option<(ConversationRecord, Vec<ParticipantRecord>)>> { todo_err() }
    async fn put_participant(&self, participant: &ParticipantRecord, now_ms: i64) -> StoreResult<()> { todo_err() }
    async fn delete_participant(&self, conversation_id: &str, user_id: &str) -> StoreResult<()> { todo_err() }
    async fn create_message(&self, message: &MessageRecord, conditions: &CreateConditions, now_ms: i64) -> StoreResult<CreateOutcome> { todo_err() }
    async fn import_messages(&self, messages: &[MessageRecord], now_ms: i64) -> StoreResult<()> { todo_err() }
    async fn list_messages(&self, conversation_id: &str, before: Option<&str>, limit: usize, now_ms: i64) -> StoreResult<MessagePage> { todo_err() }
    async fn edit_message(&self, conversation_id: &str, message_id: &str, edit: &MessageEdit, required_sender: Option<&str>, now_ms: i64) -> StoreResult<Option<MessageRecord>> { todo_err() }
    async fn delete_message(&self, conversation_id: &str, message_id: &str, required_sender: Option<&str>) -> StoreResult<bool> { todo_err() }
    async fn add_reaction(&self, conversation_id: &str, message_id: &str, emoji: &str, guard: &ReactionGuard, max_distinct: usize, reaction_expires_at: i64, now_ms: i64) -> StoreResult<ReactionOutcome> { todo_err() }
    async fn remove_reaction(&self, conversation_id: &str, message_id: &str, emoji: &str, guard: &ReactionGuard, now_ms: i64) -> StoreResult<ReactionOutcome> { todo_err() }
    async fn user_reactions(&self, conversation_id: &str, user_id: &str, low: &str, high: &str, now_ms: i64) -> StoreResult<HashSet<(String, String)>> { todo_err() }
}
