//! Typers in the DynamoDB table: pk `TYPING#{cid}`, sk the user id, with `since`, `until` (ms)
//! and `expiresAt` (a little after `until`, so that TTL removes what no expiry check deleted).
//! Reads leave out typers whose `until` has passed.

use async_trait::async_trait;

use super::ops::{self, is_condition_failed, retry_conflicts, sdk_error, Item};
use super::{n, s, DynamoStore, Expr, Reader};
use crate::store::schema::{attr, key, typing_pk, EXPIRES_AT, PK, SK, TYPING_PREFIX};
use crate::store::typing::{sort_typers, TyperRecord, TypingLister, TypingRemover, TypingWriter};
use crate::store::StoreResult;

fn typer_item(t: &TyperRecord) -> Item {
    let mut item = key(typing_pk(&t.conversation_id), t.user_id.clone());
    item.insert(attr::SINCE.into(), n(t.since));
    item.insert(attr::UNTIL.into(), n(t.until));
    item.insert(EXPIRES_AT.into(), n(t.expires_at));
    item
}

/// A typer item as a record (also used for the stream's images).
pub fn read_typer(item: &Item) -> StoreResult<TyperRecord> {
    let r = Reader::new(item);
    Ok(TyperRecord {
        conversation_id: r.key_suffix(PK, TYPING_PREFIX)?.to_string(),
        user_id: r.s(SK)?.to_string(),
        since: r.i64(attr::SINCE)?,
        until: r.i64(attr::UNTIL)?,
        expires_at: r.expires_at()?,
    })
}

#[async_trait]
impl TypingWriter for DynamoStore {
    async fn put_typer(&self, typer: &TyperRecord) -> StoreResult<()> {
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(typer_item(typer)));
        retry_conflicts(|| request.clone().send())
            .await
            .map_err(|err| sdk_error("PutItem (typer)", err))?;
        Ok(())
    }
}

#[async_trait]
impl TypingLister for DynamoStore {
    async fn typers(&self, conversation_id: &str, now_ms: i64) -> StoreResult<Vec<TyperRecord>> {
        let mut e = Expr::default();
        let pk = e.name(PK);
        let pk_v = e.value(s(typing_pk(conversation_id)));
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression(format!("{pk} = {pk_v}"))
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values());
        let mut typers = ops::query_all(query)
            .await?
            .iter()
            .map(read_typer)
            .filter(|t| t.as_ref().map_or(true, |t| t.is_live(now_ms)))
            .collect::<StoreResult<Vec<_>>>()?;
        sort_typers(&mut typers);
        Ok(typers)
    }
}

#[async_trait]
impl TypingRemover for DynamoStore {
    async fn delete_typer(
        &self,
        conversation_id: &str,
        user_id: &str,
        until: i64,
    ) -> StoreResult<bool> {
        let mut e = Expr::default();
        let until_name = e.name(attr::UNTIL);
        let until_v = e.value(n(until));
        let request = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(typing_pk(conversation_id), user_id)))
            .condition_expression(format!("{until_name} = {until_v}"))
            .set_expression_attribute_names(e.names())
            .set_expression_attribute_values(e.values());
        match retry_conflicts(|| request.clone().send()).await {
            Ok(_) => Ok(true),
            Err(err) if is_condition_failed(&err) => Ok(false),
            Err(err) => Err(sdk_error("DeleteItem (typer)", err)),
        }
    }
}
