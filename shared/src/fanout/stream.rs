//! Stream-record decoding: what one DynamoDB stream record (as the Lambda event carries it)
//! means to subscribers, as a `Change`, or nothing.
//!
//! This layer knows the table's item layout (through `store::schema` and the store's item
//! readers) and nothing of subscriptions or pushes; the per-change fan-out in `fanout` takes
//! the `Change`s it yields.

use std::collections::HashMap;

use aws_lambda_events::dynamodb::EventRecord;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;

use crate::changes::Change;
use crate::store::schema::{attr, chg, CONV_PREFIX, INBOX_PREFIX, MSG_PREFIX, PK, SK};

/// The change a DynamoDB stream record stands for: `None` for items other than messages, for
/// TTL removals (expiry is not news), and for updates that changed nothing a client sees.
pub fn change_from_record(record: &EventRecord) -> std::result::Result<Option<Change>, String> {
    let ttl_removal = record
        .user_identity
        .as_ref()
        .is_some_and(|u| u.type_ == "Service" && u.principal_id == "dynamodb.amazonaws.com");
    if ttl_removal {
        return Ok(None);
    }
    let keys = item_of(&record.change.keys)?;
    let text_key = |name: &str| {
        keys.get(name)
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
    };
    if let Some(user_id) = text_key(PK).and_then(|pk| pk.strip_prefix(INBOX_PREFIX)) {
        return match record.event_name.as_str() {
            "INSERT" => {
                let new = item_of(&record.change.new_image)?;
                let inbox =
                    crate::store::dynamo::inbox::read_inbox(&new).map_err(|e| e.to_string())?;
                Ok(Some(Change::InboxCreated(inbox)))
            }
            "REMOVE" => Ok(text_key(SK).map(|message_id| Change::InboxDeleted {
                user_id: user_id.to_string(),
                message_id: message_id.to_string(),
            })),
            _ => Ok(None),
        };
    }
    let (Some(cid), Some(mid)) = (
        text_key(PK).and_then(|pk| pk.strip_prefix(CONV_PREFIX)),
        text_key(SK).and_then(|sk| sk.strip_prefix(MSG_PREFIX)),
    ) else {
        return Ok(None);
    };
    match record.event_name.as_str() {
        "REMOVE" => Ok(Some(Change::MessageDeleted {
            conversation_id: cid.to_string(),
            message_id: mid.to_string(),
        })),
        "INSERT" | "MODIFY" => {
            let new = item_of(&record.change.new_image)?;
            if new.is_empty() {
                return Err(
                    "the record has no new image (the stream must be NEW_AND_OLD_IMAGES)".into(),
                );
            }
            let old = item_of(&record.change.old_image)?;
            // An update that left the last-change marker and everything a client sees alone
            // (such as sweeping zero reaction counts) is no news. Two edits within one
            // millisecond share a marker but not their content, so both are pushed.
            let unchanged = |name: &str| old.get(name) == new.get(name);
            if record.event_name == "MODIFY"
                && [chg::ATTR, attr::CONTENT, attr::CUSTOM, attr::EDITED_AT]
                    .into_iter()
                    .all(unchanged)
            {
                return Ok(None);
            }
            let message = crate::store::dynamo::read_message(&new).map_err(|e| e.to_string())?;
            let chg = match new.get(chg::ATTR) {
                Some(AttributeValue::M(m)) => m.clone(),
                _ => Default::default(),
            };
            let chg_text = |name: &str| chg.get(name).and_then(|v| v.as_s().ok()).cloned();
            let kind = chg_text(chg::KIND).unwrap_or_else(|| {
                if record.event_name == "INSERT" {
                    chg::CREATED
                } else {
                    chg::EDITED
                }
                .to_string()
            });
            let reaction = || -> std::result::Result<(String, String, u64), String> {
                let emoji = chg_text(chg::EMOJI).ok_or("a reaction change has no emoji")?;
                let user_id = chg_text(chg::USER_ID).ok_or("a reaction change has no userId")?;
                let count = match new.get(attr::RXN) {
                    Some(AttributeValue::M(counts)) => counts
                        .get(&emoji)
                        .and_then(|v| v.as_n().ok())
                        .and_then(|n| n.parse::<u64>().ok())
                        .unwrap_or(0),
                    _ => 0,
                };
                Ok((emoji, user_id, count))
            };
            Ok(Some(match kind.as_str() {
                chg::CREATED => Change::MessageCreated(message),
                chg::EDITED => Change::MessageEdited(message),
                chg::REACTION_ADDED => {
                    let (emoji, user_id, count) = reaction()?;
                    Change::ReactionAdded {
                        message,
                        emoji,
                        user_id,
                        count,
                    }
                }
                chg::REACTION_REMOVED => {
                    let (emoji, user_id, count) = reaction()?;
                    Change::ReactionRemoved {
                        message,
                        emoji,
                        user_id,
                        count,
                    }
                }
                other => return Err(format!("unknown change kind {other:?}")),
            }))
        }
        other => Err(format!("unknown event name {other:?}")),
    }
}

/// A stream image (DynamoDB JSON as the Lambda event carries it) as SDK attribute values.
fn item_of<T: serde::Serialize>(
    image: &T,
) -> std::result::Result<HashMap<String, AttributeValue>, String> {
    match serde_json::to_value(image).map_err(|e| e.to_string())? {
        Value::Null => Ok(HashMap::new()),
        Value::Object(fields) => fields
            .into_iter()
            .map(|(k, v)| Ok((k, attribute_from_json(&v)?)))
            .collect(),
        other => Err(format!("an image is not a map: {other}")),
    }
}

/// One DynamoDB JSON attribute value (`{"S": "x"}`, `{"M": {...}}`, ...) as an SDK value.
pub fn attribute_from_json(value: &Value) -> std::result::Result<AttributeValue, String> {
    let bad = || format!("not a DynamoDB attribute value: {value}");
    let Value::Object(fields) = value else {
        return Err(bad());
    };
    let (tag, inner) = fields.iter().next().ok_or_else(bad)?;
    let strings = |v: &Value| -> std::result::Result<Vec<String>, String> {
        v.as_array()
            .ok_or_else(bad)?
            .iter()
            .map(|s| s.as_str().map(str::to_string).ok_or_else(bad))
            .collect()
    };
    let binary = |s: &str| -> std::result::Result<aws_smithy_types::Blob, String> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(aws_smithy_types::Blob::new)
            .map_err(|e| e.to_string())
    };
    Ok(match tag.as_str() {
        "S" => AttributeValue::S(inner.as_str().ok_or_else(bad)?.to_string()),
        "N" => AttributeValue::N(inner.as_str().ok_or_else(bad)?.to_string()),
        "BOOL" => AttributeValue::Bool(inner.as_bool().ok_or_else(bad)?),
        "NULL" => AttributeValue::Null(inner.as_bool().unwrap_or(true)),
        "B" => AttributeValue::B(binary(inner.as_str().ok_or_else(bad)?)?),
        "SS" => AttributeValue::Ss(strings(inner)?),
        "NS" => AttributeValue::Ns(strings(inner)?),
        "BS" => AttributeValue::Bs(
            strings(inner)?
                .iter()
                .map(|s| binary(s))
                .collect::<std::result::Result<_, _>>()?,
        ),
        "L" => AttributeValue::L(
            inner
                .as_array()
                .ok_or_else(bad)?
                .iter()
                .map(attribute_from_json)
                .collect::<std::result::Result<_, _>>()?,
        ),
        "M" => AttributeValue::M(
            inner
                .as_object()
                .ok_or_else(bad)?
                .iter()
                .map(|(k, v)| Ok((k.clone(), attribute_from_json(v)?)))
                .collect::<std::result::Result<_, String>>()?,
        ),
        _ => return Err(bad()),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn stream_images_convert_to_sdk_values() {
        let value = json!({"M": {"a": {"S": "x"}, "n": {"N": "3"}, "l": {"L": [{"BOOL": true}, {"NULL": true}]}}});
        let converted = attribute_from_json(&value).unwrap();
        let AttributeValue::M(map) = converted else {
            panic!("not a map")
        };
        assert_eq!(map["a"], AttributeValue::S("x".into()));
        assert_eq!(map["n"], AttributeValue::N("3".into()));
        assert!(attribute_from_json(&json!({"Q": 1})).is_err());
        assert!(attribute_from_json(&json!("S")).is_err());
    }
}
