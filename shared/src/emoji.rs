//! Reaction emoji normalisation.
//!
//! A reaction is either exactly one Unicode emoji or a custom emoji `:name:`.
//! Unicode emoji are stored in their fully-qualified form so that the same
//! emoji typed with or without U+FE0F variation selectors counts as one
//! reaction.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::config::input::{CUSTOM_EMOJI_MAX_CHARS, EMOJI_INPUT_MAX_CHARS};

const VARIATION_SELECTOR_16: char = '\u{FE0F}';

/// Why a string is not a valid reaction. The messages are shown to API
/// clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmojiError {
    #[error("reaction is empty")]
    Empty,
    #[error("reaction must not start or end with whitespace")]
    SurroundingWhitespace,
    #[error("reaction is too long; it must be one emoji or a custom emoji like :name:")]
    TooLong,
    #[error("reaction must be one emoji or a custom emoji like :name:")]
    NotEmoji,
    #[error("reaction must be exactly one emoji, not several")]
    MultipleEmoji,
    #[error("a skin-tone modifier on its own is not an emoji; put it after one, like 👍🏽")]
    LoneSkinTone,
    #[error("a single regional indicator is not a flag; flags take two, like 🇳🇱")]
    LoneRegionalIndicator,
    #[error("not a custom emoji; write it as :name:")]
    NotCustom,
    #[error("custom emoji name is empty; use :name:")]
    CustomNameEmpty,
    #[error(
        "custom emoji is {0} characters long; at most {max} are allowed, colons included",
        max = CUSTOM_EMOJI_MAX_CHARS
    )]
    CustomTooLong(usize),
    #[error("custom emoji names may only contain A-Z, a-z, 0-9, '_', '+' and '-'; found {0:?}")]
    CustomInvalidChar(char),
}

/// Normalises a reaction.
///
/// - A Unicode emoji (including keycaps, ZWJ sequences, skin tones and flags)
///   is returned in its fully-qualified form, whatever U+FE0F variation
///   selectors the input had: `❤` and `❤\u{FE0F}` both give `❤️`.
/// - A custom emoji is `:name:` where `name` is 1 to 48 characters from
///   `[A-Za-z0-9_+-]` (so the whole reaction is at most 50 characters,
///   `config::input::CUSTOM_EMOJI_MAX_CHARS`). It
///   is returned unchanged.
///
/// Anything else, including surrounding whitespace, is an error.
pub fn normalize_reaction(input: &str) -> Result<String, EmojiError> {
    if input.is_empty() {
        return Err(EmojiError::Empty);
    }
    if input.trim() != input {
        return Err(EmojiError::SurroundingWhitespace);
    }
    if let Some(name) = input
        .strip_prefix(':')
        .and_then(|rest| rest.strip_suffix(':'))
    {
        return validate_custom(input, name);
    }
    if input.chars().count() > EMOJI_INPUT_MAX_CHARS {
        return Err(EmojiError::TooLong);
    }

    let stripped = strip_variation_selectors(input);
    if let Some(&emoji) = table().by_stripped.get(&stripped) {
        return Ok(emoji.to_owned());
    }

    let mut chars = stripped.chars();
    if let (Some(only), None) = (chars.next(), chars.next()) {
        if ('\u{1F3FB}'..='\u{1F3FF}').contains(&only) {
            return Err(EmojiError::LoneSkinTone);
        }
        if ('\u{1F1E6}'..='\u{1F1FF}').contains(&only) {
            return Err(EmojiError::LoneRegionalIndicator);
        }
    }
    match count_emoji(&stripped) {
        Some(n) if n > 1 => Err(EmojiError::MultipleEmoji),
        _ => Err(EmojiError::NotEmoji),
    }
}

/// Checks a custom emoji `:name:` (a `customEmoji` node's `text`), by the rule reactions use.
///
/// # Errors
/// [`EmojiError::NotEmoji`] when it is not written `:name:`, else why the name is invalid.
pub fn validate_custom_emoji(input: &str) -> Result<(), EmojiError> {
    let name = input
        .strip_prefix(':')
        .and_then(|rest| rest.strip_suffix(':'))
        .ok_or(EmojiError::NotCustom)?;
    validate_custom(input, name).map(|_| ())
}

fn validate_custom(input: &str, name: &str) -> Result<String, EmojiError> {
    if name.is_empty() {
        return Err(EmojiError::CustomNameEmpty);
    }
    let len = input.chars().count();
    if len > CUSTOM_EMOJI_MAX_CHARS {
        return Err(EmojiError::CustomTooLong(len));
    }
    if let Some(bad) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-')))
    {
        return Err(EmojiError::CustomInvalidChar(bad));
    }
    Ok(input.to_owned())
}

fn strip_variation_selectors(s: &str) -> String {
    s.chars().filter(|&c| c != VARIATION_SELECTOR_16).collect()
}

struct Table {
    /// FE0F-stripped emoji -> fully-qualified emoji.
    by_stripped: HashMap<String, &'static str>,
    /// Longest key, in chars.
    max_chars: usize,
}

/// Every emoji and skin-tone variant, keyed by its FE0F-stripped form.
///
/// `emojis::get` is not used for lookups: besides missing some qualification
/// variants (`👍🏽\u{FE0F}`), it maps bare variation sequences such as
/// `1\u{FE0F}` to the keycap `1️⃣`, which is a different emoji.
fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut by_stripped = HashMap::new();
        let mut max_chars = 0;
        for base in emojis::iter() {
            // `skin_tones()` yields the default-tone emoji first, then the toned variants.
            for emoji in std::iter::once(base).chain(base.skin_tones().into_iter().flatten()) {
                let key = strip_variation_selectors(emoji.as_str());
                max_chars = max_chars.max(key.chars().count());
                by_stripped.insert(key, emoji.as_str());
            }
        }
        Table {
            by_stripped,
            max_chars,
        }
    })
}

/// Splits an FE0F-stripped string into emoji, longest match first, and
/// returns how many there are, or `None` if it is not made of emoji alone.
/// Only used to pick the error message.
fn count_emoji(stripped: &str) -> Option<usize> {
    let table = table();
    let chars: Vec<char> = stripped.chars().collect();
    let mut pos = 0;
    let mut count = 0;
    while pos < chars.len() {
        let longest = (pos + table.max_chars).min(chars.len());
        let end = (pos + 1..=longest).rev().find(|&end| {
            chars.get(pos..end).is_some_and(|candidate| {
                table
                    .by_stripped
                    .contains_key(&candidate.iter().collect::<String>())
            })
        })?;
        count += 1;
        pos = end;
    }
    Some(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_unicode_emoji() {
        let cases = [
            ("👍", "👍"),
            ("👍\u{FE0F}", "👍"),
            ("❤", "❤\u{FE0F}"),
            ("❤\u{FE0F}", "❤\u{FE0F}"),
            ("1\u{20E3}", "1\u{FE0F}\u{20E3}"),
            ("1\u{FE0F}\u{20E3}", "1\u{FE0F}\u{20E3}"),
            ("🏳\u{200D}🌈", "🏳\u{FE0F}\u{200D}🌈"),
            ("🏳\u{FE0F}\u{200D}🌈", "🏳\u{FE0F}\u{200D}🌈"),
            ("🏳\u{200D}⚧", "🏳\u{FE0F}\u{200D}⚧\u{FE0F}"),
            ("🏳\u{200D}⚧\u{FE0F}", "🏳\u{FE0F}\u{200D}⚧\u{FE0F}"),
            ("👍🏽", "👍🏽"),
            ("👍🏽\u{FE0F}", "👍🏽"),
            ("🧑🏽\u{200D}🤝\u{200D}🧑🏻", "🧑🏽\u{200D}🤝\u{200D}🧑🏻"),
            ("🇳🇱", "🇳🇱"),
            ("©", "©\u{FE0F}"),
        ];
        for (input, want) in cases {
            assert_eq!(
                normalize_reaction(input).as_deref(),
                Ok(want),
                "input {}",
                input.escape_unicode()
            );
        }
    }

    #[test]
    fn thumbs_up_forms_are_equal() {
        assert_eq!(normalize_reaction("👍"), normalize_reaction("👍\u{FE0F}"));
    }

    #[test]
    fn accepts_custom_emoji_unchanged() {
        let longest = format!(":{}:", "a".repeat(48));
        for input in [
            ":cat:",
            ":party_parrot:",
            ":+1:",
            ":-1:",
            ":A-z_0+9:",
            &longest,
        ] {
            assert_eq!(normalize_reaction(input).as_deref(), Ok(input));
        }
    }

    #[test]
    fn rejects_invalid_reactions() {
        let too_long = format!(":{}:", "a".repeat(49));
        let cases = [
            ("", EmojiError::Empty),
            (" 👍", EmojiError::SurroundingWhitespace),
            ("👍 ", EmojiError::SurroundingWhitespace),
            ("\u{A0}👍", EmojiError::SurroundingWhitespace),
            ("ok", EmojiError::NotEmoji),
            ("a", EmojiError::NotEmoji),
            ("👍ok", EmojiError::NotEmoji),
            ("\u{FE0F}", EmojiError::NotEmoji),
            ("❤\u{FE0E}", EmojiError::NotEmoji),
            // emojis::get maps this to the keycap 1️⃣.
            ("1\u{FE0F}", EmojiError::NotEmoji),
            (":cat", EmojiError::NotEmoji),
            ("👍👍", EmojiError::MultipleEmoji),
            ("👍❤\u{FE0F}", EmojiError::MultipleEmoji),
            ("🇳🇱🇳🇱", EmojiError::MultipleEmoji),
            ("🏽", EmojiError::LoneSkinTone),
            ("🇳", EmojiError::LoneRegionalIndicator),
            ("::", EmojiError::CustomNameEmpty),
            (too_long.as_str(), EmojiError::CustomTooLong(51)),
            (":cat roomba:", EmojiError::CustomInvalidChar(' ')),
            (":é:", EmojiError::CustomInvalidChar('é')),
            (":a:b:", EmojiError::CustomInvalidChar(':')),
        ];
        for (input, want) in cases {
            assert_eq!(
                normalize_reaction(input),
                Err(want),
                "input {}",
                input.escape_unicode()
            );
        }
    }

    #[test]
    fn rejects_long_input_early() {
        assert_eq!(
            normalize_reaction(&"👍".repeat(EMOJI_INPUT_MAX_CHARS + 1)),
            Err(EmojiError::TooLong)
        );
    }

    #[test]
    fn every_fully_qualified_emoji_is_a_fixed_point() {
        let mut checked = 0;
        for base in emojis::iter() {
            for emoji in std::iter::once(base).chain(base.skin_tones().into_iter().flatten()) {
                assert_eq!(
                    normalize_reaction(emoji.as_str()).as_deref(),
                    Ok(emoji.as_str()),
                    "{} ({})",
                    emoji.name(),
                    emoji.as_str().escape_unicode()
                );
                checked += 1;
            }
        }
        assert!(checked > 3000, "only {checked} emoji checked");
    }

    #[test]
    fn longest_emoji_fits_input_limit() {
        assert!(table().max_chars <= EMOJI_INPUT_MAX_CHARS);
        // So no reaction is longer than a custom one (the API documents that as `maxLength`).
        assert!(table().max_chars <= CUSTOM_EMOJI_MAX_CHARS);
    }

    #[test]
    fn custom_emoji_nodes_follow_the_reaction_rule() {
        assert_eq!(validate_custom_emoji(":cat_roomba:"), Ok(()));
        assert_eq!(validate_custom_emoji(":+1:"), Ok(()));
        for (input, want) in [
            ("<img src=x onerror=alert(1)>", EmojiError::NotCustom),
            ("wave", EmojiError::NotCustom),
            (":wave", EmojiError::NotCustom),
            (":", EmojiError::NotCustom),
            ("", EmojiError::NotCustom),
            ("👍", EmojiError::NotCustom),
            ("::", EmojiError::CustomNameEmpty),
            (":<img>:", EmojiError::CustomInvalidChar('<')),
            (":a b:", EmojiError::CustomInvalidChar(' ')),
        ] {
            assert_eq!(validate_custom_emoji(input), Err(want), "{input:?}");
        }
        let long = format!(":{}:", "a".repeat(CUSTOM_EMOJI_MAX_CHARS - 1));
        assert_eq!(
            validate_custom_emoji(&long),
            Err(EmojiError::CustomTooLong(CUSTOM_EMOJI_MAX_CHARS + 1))
        );
    }
}
