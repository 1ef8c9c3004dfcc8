//! Input checks shared by the operations. Every limit comes from `config::Limits`.

use crate::config::Limits;
use crate::content::{self, Content};
use crate::error::{Error, Result};
use crate::format;
use crate::model::Custom;

/// Checks a `custom` map against the limits.
pub fn custom(limits: &Limits, custom: &Custom) -> Result<()> {
    check_custom_len(limits, custom.len())?;
    for (key, value) in custom {
        custom_entry(limits, key, Some(value))?;
    }
    Ok(())
}

pub fn check_custom_len(limits: &Limits, len: usize) -> Result<()> {
    if len > limits.max_custom_keys {
        return Err(Error::invalid(format!(
            "custom has {len} keys; the most is {}",
            limits.max_custom_keys
        )));
    }
    Ok(())
}

pub fn custom_entry(limits: &Limits, key: &str, value: Option<&String>) -> Result<()> {
    let chars = key.chars().count();
    if chars == 0 || chars > limits.max_custom_key_chars {
        return Err(Error::invalid(format!(
            "custom key {key:?} must be 1 to {} characters",
            limits.max_custom_key_chars
        )));
    }
    if let Some(value) = value {
        if value.len() > limits.max_custom_value_bytes {
            return Err(Error::TooLarge(format!(
                "custom value for {key:?} is {} bytes; the most is {}",
                value.len(),
                limits.max_custom_value_bytes
            )));
        }
    }
    Ok(())
}

/// A short text field (names, subjects, URLs).
pub fn short_text(limits: &Limits, field: &str, value: &str) -> Result<()> {
    let chars = value.chars().count();
    if chars > limits.max_name_chars {
        return Err(Error::invalid(format!(
            "{field} is {chars} characters long; the most is {}",
            limits.max_name_chars
        )));
    }
    Ok(())
}

/// A URL natter stores outside message content (`photoUrl`): a short text and an allowed URL
/// (`content::check_url`).
pub fn url_field(limits: &Limits, field: &str, value: &str) -> Result<()> {
    short_text(limits, field, value)?;
    content::check_url(value).map_err(|reason| Error::invalid(format!("{field} {reason}")))
}

/// Turns `text` or `content` (exactly one) into checked content.
pub fn message_content(
    limits: &Limits,
    text: Option<String>,
    content: Option<Content>,
) -> Result<Content> {
    let content = match (text, content) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid("give either text or content, not both"));
        }
        (None, None) => return Err(Error::invalid("a message needs text or content")),
        (Some(text), None) => {
            if text.len() > limits.max_text_bytes {
                return Err(Error::TooLarge(format!(
                    "text is {} bytes; the most is {}",
                    text.len(),
                    limits.max_text_bytes
                )));
            }
            if text.trim().is_empty() {
                return Err(Error::invalid("text must not be empty"));
            }
            format::parse_text(&text)
        }
        (None, Some(content)) => content,
    };
    content::validate(&content, limits).map_err(Error::InvalidRequest)?;
    let size = serde_json::to_vec(&content)
        .map_err(|e| Error::Internal(e.to_string()))?
        .len();
    if size > limits.max_content_bytes {
        return Err(Error::TooLarge(format!(
            "content is {size} bytes as JSON; the most is {}",
            limits.max_content_bytes
        )));
    }
    Ok(content)
}
