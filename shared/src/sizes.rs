//! The one size-bounded page builder: every page natter sends (the `subscription` replies of
//! `subscribe` and `loadMore`, `hello` and `inbox` frames, the `GET` message list and inbox
//! responses) holds the longest run of its items that fits its limit, measured as it is sent.
//!
//! A page is an envelope (the reply with an empty item array, measured by the caller as it goes
//! on the wire: a frame with its echoed `requestId`, or a whole Lambda invocation response) and
//! its items. serde_json writes `[a,b]` as `[`, `a`, `,`, `b`, `]`, and escaping a JSON text into
//! a string escapes it character by character, so each item adds exactly its own bytes (escaped,
//! in an HTTP body) and one separator: the measure is exact, not an estimate.
//!
//! The limits are in `config::sizes`.

use serde::Serialize;

use crate::error::{Error, Result};

/// Where a page's JSON ends up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// A WebSocket text frame: the JSON text itself.
    Frame,
    /// An HTTP response body, which Lambda carries as an escaped JSON string in its invocation
    /// response.
    LambdaBody,
}

/// The compact JSON text of `value`.
pub fn json_text<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Internal(format!("serializing a page: {e}")))
}

/// Bytes `value` takes as compact JSON.
pub fn json_len<T: Serialize + ?Sized>(value: &T) -> Result<usize> {
    Ok(json_text(value)?.len())
}

/// Bytes `text` takes inside a JSON string, without the quotes (as serde_json escapes it).
pub fn escaped_len(text: &str) -> usize {
    text.bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0C => 2,
            0x00..=0x1F => 6,
            _ => 1,
        })
        .sum()
}

/// Bytes `value` adds to a page on `wire`.
pub fn item_len<T: Serialize + ?Sized>(value: &T, wire: Wire) -> Result<usize> {
    let text = json_text(value)?;
    Ok(match wire {
        Wire::Frame => text.len(),
        Wire::LambdaBody => escaped_len(&text),
    })
}

/// The items of a page that fit, and whether some were left out for lack of room.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted<T> {
    pub items: Vec<T>,
    /// `true` when the page stopped early: the next item would not have fit.
    pub cut: bool,
    /// The page's size as sent, envelope included.
    pub bytes: usize,
}

/// The longest prefix of `items` that fits in `max_bytes` on `wire`, given the page's
/// `envelope_bytes` (the page as sent with no items). Items are never reordered or skipped, so
/// a caller that pages on from the last item returned loses and repeats none.
pub fn fit<T: Serialize>(
    items: Vec<T>,
    envelope_bytes: usize,
    max_bytes: usize,
    wire: Wire,
) -> Result<Fitted<T>> {
    let mut used = envelope_bytes;
    let mut kept = 0;
    for item in &items {
        let separator = usize::from(kept > 0);
        let cost = item_len(item, wire)? + separator;
        if used + cost > max_bytes {
            break;
        }
        used += cost;
        kept += 1;
    }
    let cut = kept < items.len();
    let mut items = items;
    items.truncate(kept);
    Ok(Fitted {
        items,
        cut,
        bytes: used,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    #[test]
    fn escaped_len_is_what_serde_json_writes() {
        let all: String = (0u8..0x80).map(char::from).collect::<String>() + "é😀\u{2028}";
        for text in [all.as_str(), "", "plain", "\"q\" \\ \n\t\u{1}\u{7f}"] {
            assert_eq!(
                escaped_len(text),
                serde_json::to_string(text).unwrap().len() - 2,
                "{text:?}"
            );
        }
    }

    fn page(items: &[Value]) -> Value {
        json!({"data": items, "hasMore": false})
    }

    #[test]
    fn the_measure_is_exact_on_both_wires() {
        let items: Vec<Value> = (0..20)
            .map(|i| json!({"n": i, "text": "x\"\n\u{1}".repeat(i)}))
            .collect();
        for wire in [Wire::Frame, Wire::LambdaBody] {
            let size = |v: &Value| match wire {
                Wire::Frame => v.to_string().len(),
                Wire::LambdaBody => serde_json::to_string(&v.to_string()).unwrap().len(),
            };
            let envelope = size(&page(&[]));
            for max in [
                envelope,
                envelope + 10,
                envelope + 100,
                envelope + 1000,
                1 << 20,
            ] {
                let fitted = fit(items.clone(), envelope, max, wire).unwrap();
                let sent = size(&page(&fitted.items));
                assert_eq!(fitted.bytes, sent, "{wire:?} {max}");
                assert!(sent <= max);
                assert_eq!(fitted.cut, fitted.items.len() < items.len());
                if fitted.cut {
                    // The next item would not have fit.
                    let one_more = &items[..=fitted.items.len()];
                    assert!(size(&page(one_more)) > max, "{wire:?} {max}");
                }
                assert_eq!(fitted.items, items[..fitted.items.len()]);
            }
        }
    }
}
