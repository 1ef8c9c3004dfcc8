//! Records to snapshots. Every message snapshot needs its sender, its referenced message with
//! that message's sender, and whether the viewer reacted: all of it comes from one batch read
//! plus one query, run side by side, because each record already carries the ids it needs
//! (including the referenced message's sender, copied at send time).

use std::collections::HashSet;

use super::{message_key, Context};
use crate::content::plaintext;
use crate::error::Result;
use crate::model::{
    MessageRecord, MessageSnapshot, MessageType, ReactionSnapshot, ReferencedMessageSnapshot,
    UserSnapshot,
};
use crate::ports::{ItemReader, ReactionReader};
use crate::store::{ItemKey, Items};

impl Context {
    /// Snapshots of `records`, in order. `known` holds items the caller has already read.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn expand(
        &self,
        items: &dyn ItemReader,
        reactions: &dyn ReactionReader,
        cid: &str,
        viewer: Option<&str>,
        records: Vec<MessageRecord>,
        mut known: Items,
    ) -> Result<Vec<MessageSnapshot>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let in_page: HashSet<&str> = records.iter().map(|m| m.id.as_str()).collect();
        let mut keys = Vec::new();
        let want_user = |id: &Option<String>, keys: &mut Vec<ItemKey>| {
            if let Some(id) = id {
                if !known.users.contains_key(id) {
                    keys.push(ItemKey::User(id.clone()));
                }
            }
        };
        for m in &records {
            want_user(&m.sender_id, &mut keys);
            want_user(&m.referenced_sender_id, &mut keys);
        }
        for m in &records {
            if let Some(rid) = &m.referenced_message_id {
                if !in_page.contains(rid.as_str()) && known.message(cid, rid).is_none() {
                    keys.push(message_key(cid, rid));
                }
            }
        }
        let mut seen = HashSet::new();
        keys.retain(|k| !known.looked_up.contains(k) && seen.insert(k.clone()));

        // The viewer's reactions on every message shown, page and referenced ones alike.
        let ids = records.iter().map(|m| m.id.as_str()).chain(
            records
                .iter()
                .filter_map(|m| m.referenced_message_id.as_deref()),
        );
        let (low, high) = ids.fold((None::<&str>, None::<&str>), |(lo, hi), id| {
            (
                Some(lo.map_or(id, |l| l.min(id))),
                Some(hi.map_or(id, |h| h.max(id))),
            )
        });
        let now = self.now_ms();
        let batch = async {
            if keys.is_empty() {
                Ok(Items::default())
            } else {
                items.get_items(&keys, now).await
            }
        };
        // Whether any message shown could carry the viewer's reactions: a referenced message
        // still to be read might, the others say so themselves. A new message never does.
        let fetching_references = keys.iter().any(|k| matches!(k, ItemKey::Message { .. }));
        let any_reactions = fetching_references
            || records.iter().any(|m| {
                !m.reactions.is_empty()
                    || m.referenced_message_id
                        .as_deref()
                        .and_then(|rid| known.message(cid, rid))
                        .is_some_and(|r| !r.reactions.is_empty())
            });
        let reacted = async {
            match (viewer, low, high) {
                (Some(uid), Some(low), Some(high)) if any_reactions => {
                    reactions.user_reactions(cid, uid, low, high, now).await
                }
                _ => Ok(HashSet::new()),
            }
        };
        let (fetched, reacted) = futures::try_join!(batch, reacted)?;
        known.users.extend(fetched.users);
        known.messages.extend(fetched.messages);
        for m in &records {
            known
                .messages
                .insert((cid.to_string(), m.id.clone()), m.clone());
        }

        let user = |id: &str| UserSnapshot::of(id, known.users.get(id));
        let reactions = |m: &MessageRecord| -> Vec<ReactionSnapshot> {
            m.reactions
                .iter()
                .map(|r| ReactionSnapshot {
                    emoji: r.emoji.clone(),
                    count: r.count,
                    current_user_reacted: reacted.contains(&(m.id.clone(), r.emoji.clone())),
                })
                .collect()
        };
        let snapshots = records
            .iter()
            .map(|m| {
                let referenced_message = m
                    .referenced_message_id
                    .as_deref()
                    .and_then(|rid| known.message(cid, rid))
                    .and_then(|r| {
                        let sender = r.sender_id.as_deref()?;
                        Some(ReferencedMessageSnapshot {
                            id: r.id.clone(),
                            conversation_id: r.conversation_id.clone(),
                            kind: MessageType::UserMessage,
                            sender: user(sender),
                            content: r.content.clone(),
                            plaintext: plaintext(&r.content),
                            custom: r.custom.clone(),
                            created_at: r.created_at,
                            edited_at: r.edited_at,
                            origin: r.origin,
                            referenced_message_id: r.referenced_message_id.clone(),
                            reactions: reactions(r),
                        })
                    });
                MessageSnapshot {
                    id: m.id.clone(),
                    conversation_id: m.conversation_id.clone(),
                    kind: m.kind,
                    sender: m.sender_id.as_deref().map(user),
                    content: m.content.clone(),
                    plaintext: plaintext(&m.content),
                    custom: m.custom.clone(),
                    created_at: m.created_at,
                    edited_at: m.edited_at,
                    origin: m.origin,
                    referenced_message,
                    reactions: reactions(m),
                }
            })
            .collect();
        Ok(snapshots)
    }
}
