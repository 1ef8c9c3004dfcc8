//! Message content model: a list of blocks whose text is a tree of nodes,
//! shaped like TalkJS message content JSON.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::input::CONTENT_MAX_DEPTH;
use crate::config::Limits;

/// A message body: one or more blocks.
pub type Content = Vec<ContentBlock>;

/// One top-level block of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields,
    remote = "Self"
)]
pub enum ContentBlock {
    Text {
        children: Vec<TextNode>,
    },
    File {
        url: String,
        filename: String,
        // Integers as JSON Schema counts them: `636.0` is 636.
        #[serde(deserialize_with = "crate::json::whole")]
        size: u64,
        // The optional fields are left out when unset, never `null`: `with` says so in the
        // JSON Schema.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(with = "FileSubtype")]
        subtype: Option<FileSubtype>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "crate::json::whole_opt"
        )]
        #[schemars(with = "u32")]
        width: Option<u32>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "crate::json::whole_opt"
        )]
        #[schemars(with = "u32")]
        height: Option<u32>,
        /// Seconds; fractional for audio/video.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(with = "f64")]
        duration: Option<f64>,
    },
    Location {
        latitude: f64,
        longitude: f64,
    },
}

// `remote = "Self"` above makes the derive emit inherent functions; these trait impls add that
// a block is a JSON object (serde reads an internally tagged enum from an array too, its tag
// first: `["text", ["hi"]]`).
impl Serialize for ContentBlock {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ContentBlock::serialize(self, serializer)
    }
}

impl<'de> Deserialize<'de> for ContentBlock {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BlockVisitor;

        impl<'de> Visitor<'de> for BlockVisitor {
            type Value = ContentBlock;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a content block object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ContentBlock, A::Error> {
                ContentBlock::deserialize(MapAccessDeserializer::new(crate::json::TagNames(map)))
            }
        }

        deserializer.deserialize_map(BlockVisitor)
    }
}

/// Kind of media a file block holds, when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum FileSubtype {
    Image,
    Video,
    Audio,
    Voice,
}

/// A node of formatted text. `Text` is written as a bare JSON string; every
/// other variant is an object tagged by `"type"`.
///
/// `remote = "Self"` makes the derive emit inherent `serialize`/`deserialize`
/// functions for the tagged variants; the trait impls below add the bare
/// string case on top, so errors for bad objects keep serde's precise
/// "unknown variant"/"unknown field" messages instead of an untagged-enum
/// catch-all. The schema's derive sees the tagged variants only; `with_plain_text`
/// adds the string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields,
    remote = "Self"
)]
#[schemars(
    rename = "TextNode",
    description = "A node of formatted text: plain text as a bare string, anything else an \
        object tagged by `type`.",
    transform = with_plain_text
)]
pub enum TextNode {
    #[serde(skip)]
    Text(String),
    Bold {
        children: Vec<TextNode>,
    },
    Italic {
        children: Vec<TextNode>,
    },
    Strikethrough {
        children: Vec<TextNode>,
    },
    CodeSpan {
        text: String,
    },
    Link {
        url: String,
        children: Vec<TextNode>,
    },
    AutoLink {
        url: String,
        text: String,
    },
    ActionLink {
        action: String,
        #[serde(default)]
        params: BTreeMap<String, String>,
        children: Vec<TextNode>,
    },
    ActionButton {
        action: String,
        #[serde(default)]
        params: BTreeMap<String, String>,
        children: Vec<TextNode>,
    },
    /// `text` includes the colons, e.g. `:cat_roomba:`.
    CustomEmoji {
        text: String,
    },
    Mention {
        id: String,
        text: String,
    },
    /// Children are expected to be `BulletPoint` nodes.
    BulletList {
        children: Vec<TextNode>,
    },
    BulletPoint {
        children: Vec<TextNode>,
    },
}

/// Adds the bare-string case (`TextNode::Text`) to the schema of the tagged nodes.
fn with_plain_text(schema: &mut schemars::Schema) {
    if let Some(serde_json::Value::Array(variants)) = schema.get_mut("oneOf") {
        variants.insert(
            0,
            serde_json::json!({"type": "string", "description": "Plain text."}),
        );
    }
}

impl Serialize for TextNode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            TextNode::Text(text) => serializer.serialize_str(text),
            // Resolves to the derive's inherent fn, not this trait method.
            tagged => TextNode::serialize(tagged, serializer),
        }
    }
}

impl<'de> Deserialize<'de> for TextNode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NodeVisitor;

        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = TextNode;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a text node object")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TextNode, E> {
                Ok(TextNode::Text(v.to_owned()))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<TextNode, E> {
                Ok(TextNode::Text(v))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TextNode, A::Error> {
                TextNode::deserialize(MapAccessDeserializer::new(crate::json::TagNames(map)))
            }
        }

        deserializer.deserialize_any(NodeVisitor)
    }
}

impl TextNode {
    /// Child nodes of container variants; empty for leaves.
    pub fn children(&self) -> &[TextNode] {
        match self {
            TextNode::Bold { children }
            | TextNode::Italic { children }
            | TextNode::Strikethrough { children }
            | TextNode::Link { children, .. }
            | TextNode::ActionLink { children, .. }
            | TextNode::ActionButton { children, .. }
            | TextNode::BulletList { children }
            | TextNode::BulletPoint { children } => children,
            TextNode::Text(_)
            | TextNode::CodeSpan { .. }
            | TextNode::AutoLink { .. }
            | TextNode::CustomEmoji { .. }
            | TextNode::Mention { .. } => &[],
        }
    }

    /// The JSON `type` name, used in validation messages.
    fn kind(&self) -> &'static str {
        match self {
            TextNode::Text(_) => "string",
            TextNode::Bold { .. } => "bold",
            TextNode::Italic { .. } => "italic",
            TextNode::Strikethrough { .. } => "strikethrough",
            TextNode::CodeSpan { .. } => "codeSpan",
            TextNode::Link { .. } => "link",
            TextNode::AutoLink { .. } => "autoLink",
            TextNode::ActionLink { .. } => "actionLink",
            TextNode::ActionButton { .. } => "actionButton",
            TextNode::CustomEmoji { .. } => "customEmoji",
            TextNode::Mention { .. } => "mention",
            TextNode::BulletList { .. } => "bulletList",
            TextNode::BulletPoint { .. } => "bulletPoint",
        }
    }
}

/// Visible text of the content: formatting dropped, bullet points on their
/// own lines prefixed with "- ", files by filename, locations as "lat,lon";
/// blocks joined with "\n".
pub fn plaintext(content: &Content) -> String {
    let blocks: Vec<String> = content
        .iter()
        .map(|block| match block {
            ContentBlock::Text { children } => {
                let mut out = PlainWriter::default();
                out.nodes(children);
                out.buf
            }
            ContentBlock::File { filename, .. } => filename.clone(),
            ContentBlock::Location {
                latitude,
                longitude,
            } => format!("{latitude},{longitude}"),
        })
        .collect();
    blocks.join("\n")
}

/// Accumulates plaintext. Lists carry no "\n" nodes around them in the tree,
/// so the line breaks before each point and after a list are implied here.
#[derive(Default)]
struct PlainWriter {
    buf: String,
    break_pending: bool,
}

impl PlainWriter {
    fn push(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        if self.break_pending {
            self.buf.push('\n');
            self.break_pending = false;
        }
        self.buf.push_str(text);
    }

    fn nodes(&mut self, nodes: &[TextNode]) {
        for node in nodes {
            self.node(node);
        }
    }

    fn node(&mut self, node: &TextNode) {
        match node {
            TextNode::Text(text)
            | TextNode::CodeSpan { text }
            | TextNode::AutoLink { text, .. }
            | TextNode::CustomEmoji { text }
            | TextNode::Mention { text, .. } => self.push(text),
            TextNode::BulletList { children } => {
                self.nodes(children);
                self.break_pending = true;
            }
            TextNode::BulletPoint { children } => {
                // A pending break is replaced by this point's own line start.
                self.break_pending = false;
                if !self.buf.is_empty() {
                    self.buf.push('\n');
                }
                self.buf.push_str("- ");
                self.nodes(children);
            }
            other => self.nodes(other.children()),
        }
    }
}

/// What a role without the `sendLinks` grant may not send, for error messages.
pub const RESTRICTED_NODES: &str =
    "link, actionLink or actionButton nodes, nor an autoLink whose text is not its own url";

/// True if any node requires a role grant to post (link, actionLink,
/// actionButton, and an autoLink whose text does not show its own url), at any depth.
pub fn uses_restricted_nodes(content: &Content) -> bool {
    // Explicit stack: trees built in code are not bounded by the JSON
    // parser's recursion limit.
    let mut stack: Vec<&TextNode> = content
        .iter()
        .flat_map(|block| match block {
            ContentBlock::Text { children } => children.as_slice(),
            _ => &[],
        })
        .collect();
    while let Some(node) = stack.pop() {
        let restricted = match node {
            TextNode::Link { .. } | TextNode::ActionLink { .. } | TextNode::ActionButton { .. } => {
                true
            }
            TextNode::AutoLink { url, text } => !shows_own_url(url, text),
            _ => false,
        };
        if restricted {
            return true;
        }
        stack.extend(node.children());
    }
    false
}

/// Checks content a client submitted.
///
/// # Errors
/// A human-readable message that starts with the offending path, e.g.
/// `content[0].children[2]: link url must be an https:, http:, mailto: or tel: URL`.
pub fn validate(content: &Content, limits: &Limits) -> Result<(), String> {
    if content.is_empty() {
        return Err("content must contain at least one block".to_owned());
    }
    for (i, block) in content.iter().enumerate() {
        let path = format!("content[{i}]");
        match block {
            ContentBlock::Text { children } => {
                if children.is_empty() {
                    return Err(format!("{path}: text block must have at least one child"));
                }
                validate_nodes(children, &path, 1, limits)?;
            }
            ContentBlock::File {
                url,
                filename,
                duration,
                ..
            } => {
                check_url(url).map_err(|reason| format!("{path}: file url {reason}"))?;
                if filename.is_empty() {
                    return Err(format!("{path}: file filename must not be empty"));
                }
                if duration.is_some_and(|d| !d.is_finite() || d < 0.0) {
                    return Err(format!(
                        "{path}: file duration must be a non-negative number"
                    ));
                }
            }
            ContentBlock::Location {
                latitude,
                longitude,
            } => {
                if !latitude.is_finite() || !(-90.0..=90.0).contains(latitude) {
                    return Err(format!(
                        "{path}: latitude must be a number between -90 and 90"
                    ));
                }
                if !longitude.is_finite() || !(-180.0..=180.0).contains(longitude) {
                    return Err(format!(
                        "{path}: longitude must be a number between -180 and 180"
                    ));
                }
            }
        }
    }
    Ok(())
}

fn validate_nodes(
    nodes: &[TextNode],
    parent: &str,
    depth: usize,
    limits: &Limits,
) -> Result<(), String> {
    for (i, node) in nodes.iter().enumerate() {
        let path = format!("{parent}.children[{i}]");
        // Checked before descending so recursion stays bounded.
        if depth > CONTENT_MAX_DEPTH {
            return Err(format!(
                "{path}: nesting is deeper than {CONTENT_MAX_DEPTH} levels"
            ));
        }
        match node {
            TextNode::Link { url, .. } | TextNode::AutoLink { url, .. } => {
                check_url(url).map_err(|reason| format!("{path}: {} url {reason}", node.kind()))?;
            }
            TextNode::Mention { id, text } => {
                crate::ids::validate_id("mention id", id, limits.max_id_chars)
                    .map_err(|e| format!("{path}: {e}"))?;
                if text.is_empty() {
                    return Err(format!("{path}: mention text must not be empty"));
                }
            }
            TextNode::CustomEmoji { text } => {
                crate::emoji::validate_custom_emoji(text)
                    .map_err(|e| format!("{path}: customEmoji text {text:?}: {e}"))?;
            }
            TextNode::BulletList { children } => {
                if let Some(j) = children
                    .iter()
                    .position(|c| !matches!(c, TextNode::BulletPoint { .. }))
                {
                    return Err(format!(
                        "{path}.children[{j}]: bulletList children must be bulletPoint nodes, found {}",
                        children.get(j).map_or("?", TextNode::kind)
                    ));
                }
            }
            _ => {}
        }
        validate_nodes(node.children(), &path, depth + 1, limits)?;
    }
    Ok(())
}

/// The schemes a URL that natter stores may have (compared case-insensitively).
pub const URL_SCHEMES: [&str; 4] = ["https", "http", "mailto", "tel"];

/// Why `url` may not be stored, as the end of a sentence that names the field
/// (`photoUrl must be ...`): every URL natter stores (links, autoLinks, file blocks, photo URLs)
/// is an absolute `https:`, `http:`, `mailto:` or `tel:` URL that the `url` crate parses, with
/// no whitespace, control or invisible formatting characters anywhere (so neither
/// `" javascript:..."` nor `"java\tscript:..."` slips past a browser's own trimming), and
/// `http(s)` ones name a host after `//`.
///
/// # Errors
/// The reason, e.g. `must be an https:, http:, mailto: or tel: URL`.
pub fn check_url(url: &str) -> Result<(), String> {
    const SCHEMES: &str = "must be an https:, http:, mailto: or tel: URL";
    if url.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if let Some(c) = url
        .chars()
        .find(|&c| c.is_whitespace() || c.is_control() || is_invisible(c))
    {
        return Err(format!(
            "must not contain whitespace, control or invisible characters (found U+{:04X})",
            c as u32
        ));
    }
    let Some((scheme, rest)) = url.split_once(':') else {
        return Err(SCHEMES.to_owned());
    };
    let scheme = scheme.to_ascii_lowercase();
    if !URL_SCHEMES.contains(&scheme.as_str()) {
        return Err(SCHEMES.to_owned());
    }
    let parsed = ::url::Url::parse(url).map_err(|e| format!("is not a valid URL: {e}"))?;
    // The parser must read the scheme the check above saw.
    if parsed.scheme() != scheme {
        return Err(SCHEMES.to_owned());
    }
    let web = matches!(scheme.as_str(), "http" | "https");
    // `https:x.io` parses too, but a browser resolves it against the page's own URL.
    if web && (!rest.starts_with("//") || parsed.host_str().is_none_or(str::is_empty)) {
        return Err(format!("must be {scheme}://host..."));
    }
    if !web && rest.is_empty() {
        return Err(format!("must have something after {scheme}:"));
    }
    Ok(())
}

/// Characters that change how a URL looks without showing themselves: zero-width spaces and
/// joiners, bidirectional controls, the soft hyphen and the byte-order mark.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}')
}

/// Whether an autoLink's `text` shows its own `url`: the URL itself, or it without its scheme
/// (`x.io/a` for `https://x.io/a`, `a@b.io` for `mailto:a@b.io`), the scheme compared
/// case-insensitively. A phone number may be written with the visual separators of RFC 3966
/// and spaces (`+31 6 1234 5678` for `tel:+31612345678`). Anything else is a disguised link.
pub fn shows_own_url(url: &str, text: &str) -> bool {
    if url == text {
        return true;
    }
    let Some((scheme, rest)) = url.split_once(':') else {
        return false;
    };
    let written_with_scheme = text
        .split_once(':')
        .is_some_and(|(s, r)| s.eq_ignore_ascii_case(scheme) && r == rest);
    let scheme = scheme.to_ascii_lowercase();
    let bare = match scheme.as_str() {
        "http" | "https" => rest.strip_prefix("//"),
        _ => Some(rest),
    };
    let phone = |s: &str| -> String {
        s.chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect()
    };
    written_with_scheme
        || bare.is_some_and(|bare| {
            bare == text
                || (scheme == "tel" && !phone(bare).is_empty() && phone(bare) == phone(text))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(s: &str) -> TextNode {
        TextNode::Text(s.to_owned())
    }

    fn block(children: Vec<TextNode>) -> Content {
        vec![ContentBlock::Text { children }]
    }

    /// Parses `json`, checks it equals `expected`, and serializes back to
    /// the identical JSON.
    fn round_trip(json: serde_json::Value, expected: ContentBlock) {
        let parsed: ContentBlock = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(parsed, expected);
        assert_eq!(serde_json::to_value(&parsed).unwrap(), json);
    }

    fn node_round_trip(json: serde_json::Value, expected: TextNode) {
        round_trip(
            json!({"type": "text", "children": [json]}),
            ContentBlock::Text {
                children: vec![expected],
            },
        );
    }

    #[test]
    fn round_trips_blocks() {
        round_trip(
            json!({"type": "text", "children": ["hi"]}),
            ContentBlock::Text {
                children: vec![text("hi")],
            },
        );
        round_trip(
            json!({"type": "file", "url": "https://f.io/a.png", "filename": "a.png", "size": 12}),
            ContentBlock::File {
                url: "https://f.io/a.png".into(),
                filename: "a.png".into(),
                size: 12,
                subtype: None,
                width: None,
                height: None,
                duration: None,
            },
        );
        round_trip(
            json!({"type": "file", "url": "u", "filename": "v.ogg", "size": 1,
                   "subtype": "voice", "width": 3, "height": 4, "duration": 1.5}),
            ContentBlock::File {
                url: "u".into(),
                filename: "v.ogg".into(),
                size: 1,
                subtype: Some(FileSubtype::Voice),
                width: Some(3),
                height: Some(4),
                duration: Some(1.5),
            },
        );
        // Whole numbers written with a fraction part are integers too (JSON Schema says so).
        let parsed: ContentBlock = crate::json::from_str(
            r#"{"type": "file", "url": "u", "filename": "f", "size": 636.0, "width": 2.0,
                "height": 3e2, "duration": 4.0}"#,
        )
        .unwrap();
        assert_eq!(
            parsed,
            ContentBlock::File {
                url: "u".into(),
                filename: "f".into(),
                size: 636,
                subtype: None,
                width: Some(2),
                height: Some(300),
                duration: Some(4.0),
            }
        );
        for (name, subtype) in [
            ("image", FileSubtype::Image),
            ("video", FileSubtype::Video),
            ("audio", FileSubtype::Audio),
        ] {
            let parsed: FileSubtype = serde_json::from_value(json!(name)).unwrap();
            assert_eq!(parsed, subtype);
        }
        round_trip(
            json!({"type": "location", "latitude": 52.5, "longitude": -4.25}),
            ContentBlock::Location {
                latitude: 52.5,
                longitude: -4.25,
            },
        );
    }

    #[test]
    fn round_trips_nodes() {
        node_round_trip(json!("plain"), text("plain"));
        for (kind, make) in [
            ("bold", (|c| TextNode::Bold { children: c }) as fn(_) -> _),
            ("italic", |c| TextNode::Italic { children: c }),
            ("strikethrough", |c| TextNode::Strikethrough { children: c }),
            ("bulletPoint", |c| TextNode::BulletPoint { children: c }),
        ] {
            node_round_trip(
                json!({"type": kind, "children": ["x"]}),
                make(vec![text("x")]),
            );
        }
        node_round_trip(
            json!({"type": "codeSpan", "text": "a*b"}),
            TextNode::CodeSpan { text: "a*b".into() },
        );
        node_round_trip(
            json!({"type": "link", "url": "https://a.b", "children": ["a"]}),
            TextNode::Link {
                url: "https://a.b".into(),
                children: vec![text("a")],
            },
        );
        node_round_trip(
            json!({"type": "autoLink", "url": "https://a.b", "text": "a.b"}),
            TextNode::AutoLink {
                url: "https://a.b".into(),
                text: "a.b".into(),
            },
        );
        let params: BTreeMap<String, String> = [("k".to_owned(), "v".to_owned())].into();
        node_round_trip(
            json!({"type": "actionLink", "action": "go", "params": {"k": "v"}, "children": ["g"]}),
            TextNode::ActionLink {
                action: "go".into(),
                params: params.clone(),
                children: vec![text("g")],
            },
        );
        node_round_trip(
            json!({"type": "actionButton", "action": "ok", "params": {"k": "v"}, "children": ["o"]}),
            TextNode::ActionButton {
                action: "ok".into(),
                params,
                children: vec![text("o")],
            },
        );
        node_round_trip(
            json!({"type": "customEmoji", "text": ":cat_roomba:"}),
            TextNode::CustomEmoji {
                text: ":cat_roomba:".into(),
            },
        );
        node_round_trip(
            json!({"type": "mention", "id": "u1", "text": "@ann"}),
            TextNode::Mention {
                id: "u1".into(),
                text: "@ann".into(),
            },
        );
        node_round_trip(
            json!({"type": "bulletList", "children": [
                {"type": "bulletPoint", "children": ["a", {"type": "bold", "children": ["b"]}]}
            ]}),
            TextNode::BulletList {
                children: vec![TextNode::BulletPoint {
                    children: vec![
                        text("a"),
                        TextNode::Bold {
                            children: vec![text("b")],
                        },
                    ],
                }],
            },
        );
    }

    #[test]
    fn action_params_default_to_empty() {
        let node: TextNode =
            serde_json::from_value(json!({"type": "actionButton", "action": "a", "children": []}))
                .unwrap();
        assert_eq!(
            node,
            TextNode::ActionButton {
                action: "a".into(),
                params: BTreeMap::new(),
                children: vec![],
            }
        );
        assert_eq!(
            serde_json::to_value(&node).unwrap(),
            json!({"type": "actionButton", "action": "a", "params": {}, "children": []})
        );
    }

    #[test]
    fn rejects_unknown_types_and_fields() {
        let bad = [
            json!([{"type": "video", "url": "u"}]),
            json!([{"type": "text", "children": [], "extra": 1}]),
            json!([{"type": "file", "url": "u", "filename": "f", "size": 1, "subtype": "gif"}]),
            json!([{"type": "file", "url": "u", "filename": "f", "size": -1}]),
            json!([{"type": "file", "url": "u", "filename": "f", "size": 636.5}]),
            json!([{"type": "file", "url": "u", "filename": "f", "size": 1, "width": 1.5}]),
            json!([{"type": "file", "url": "u", "filename": "f", "size": 1, "height": 4294967296.0}]),
            json!([{"type": "location", "latitude": 1, "longitude": 2, "alt": 3}]),
            json!([{"type": "text", "children": [{"type": "underline", "children": []}]}]),
            json!([{"type": "text", "children": [{"type": "text", "text": "x"}]}]),
            json!([{"type": "text", "children": [{"type": "codeSpan", "text": "x", "lang": "rs"}]}]),
            json!([{"type": "text", "children": [{"type": "bold", "children": [
                {"type": "mention", "id": "1", "text": "x", "bold": true}]}]}]),
            json!([{"type": "text", "children": [{"text": "no type"}]}]),
            json!([{"type": "text", "children": [5]}]),
            // A variant's index is no tag, at the top or nested (serde reads one from buffered
            // content).
            json!([{"type": 0, "children": ["x"]}]),
            json!([{"type": "text", "children": [{"type": 0, "children": []}]}]),
            json!([{"type": "text", "children": [{"type": "bold", "children": [
                {"type": 0, "children": []}]}]}]),
        ];
        for value in bad {
            assert!(
                serde_json::from_value::<Content>(value.clone()).is_err(),
                "accepted {value}"
            );
        }
        let err = serde_json::from_str::<Content>(
            r#"[{"type":"text","children":[{"type":"blink","children":[]}]}]"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown variant `blink`"), "{err}");
    }

    #[test]
    fn validate_accepts_good_content() {
        let content = block(vec![
            text("a"),
            TextNode::AutoLink {
                url: "HTTPS://x.io".into(),
                text: "x.io".into(),
            },
            TextNode::Link {
                url: "tel:+123".into(),
                children: vec![],
            },
        ]);
        assert_eq!(validate(&content, &Limits::default()), Ok(()));
    }

    #[test]
    fn validate_errors() {
        let file = |url: &str, filename: &str| ContentBlock::File {
            url: url.into(),
            filename: filename.into(),
            size: 0,
            subtype: None,
            width: None,
            height: None,
            duration: None,
        };
        let location = |latitude, longitude| {
            vec![ContentBlock::Location {
                latitude,
                longitude,
            }]
        };
        let mut deep = text("x");
        for _ in 0..CONTENT_MAX_DEPTH {
            deep = TextNode::Bold {
                children: vec![deep],
            };
        }
        let deep_error = format!(
            "content[0]{}: nesting is deeper than 32 levels",
            ".children[0]".repeat(CONTENT_MAX_DEPTH + 1)
        );
        let cases: Vec<(Content, &str)> = vec![
            (vec![], "content must contain at least one block"),
            (
                block(vec![]),
                "content[0]: text block must have at least one child",
            ),
            (
                location(90.5, 0.0),
                "content[0]: latitude must be a number between -90 and 90",
            ),
            (
                location(f64::NAN, 0.0),
                "content[0]: latitude must be a number between -90 and 90",
            ),
            (
                location(0.0, -180.1),
                "content[0]: longitude must be a number between -180 and 180",
            ),
            (
                location(0.0, f64::INFINITY),
                "content[0]: longitude must be a number between -180 and 180",
            ),
            (
                block(vec![
                    text("a"),
                    text("b"),
                    TextNode::Link {
                        url: "javascript:alert(1)".into(),
                        children: vec![],
                    },
                ]),
                "content[0].children[2]: link url must be an https:, http:, mailto: or tel: URL",
            ),
            (
                block(vec![TextNode::Italic {
                    children: vec![TextNode::AutoLink {
                        url: "ftp://x".into(),
                        text: "x".into(),
                    }],
                }]),
                "content[0].children[0].children[0]: autoLink url must be an https:, http:, mailto: or tel: URL",
            ),
            (
                vec![file("", "a.png")],
                "content[0]: file url must not be empty",
            ),
            (
                vec![ContentBlock::Text { children: vec![text("x")] }, file("https://f.io/u", "")],
                "content[1]: file filename must not be empty",
            ),
            (
                block(vec![TextNode::BulletList {
                    children: vec![
                        TextNode::BulletPoint { children: vec![] },
                        text("stray"),
                    ],
                }]),
                "content[0].children[0].children[1]: bulletList children must be bulletPoint nodes, found string",
            ),
            (
                block(vec![deep]),
                &deep_error,
            ),
        ];
        for (content, expected) in cases {
            assert_eq!(
                validate(&content, &Limits::default()),
                Err(expected.to_owned()),
                "{content:?}"
            );
        }
    }

    #[test]
    fn validate_allows_exactly_max_depth() {
        let mut node = text("x");
        for _ in 1..CONTENT_MAX_DEPTH {
            node = TextNode::Bold {
                children: vec![node],
            };
        }
        assert_eq!(validate(&block(vec![node]), &Limits::default()), Ok(()));
    }

    #[test]
    fn plaintext_examples() {
        let point = |s: &str| TextNode::BulletPoint {
            children: vec![text(s)],
        };
        let cases: Vec<(Content, &str)> = vec![
            (block(vec![text("hello")]), "hello"),
            (
                block(vec![
                    TextNode::Bold {
                        children: vec![
                            text("Hi "),
                            TextNode::Italic {
                                children: vec![text("you")],
                            },
                        ],
                    },
                    text(" "),
                    TextNode::CodeSpan { text: "*x*".into() },
                    text(" "),
                    TextNode::AutoLink {
                        url: "https://x.io".into(),
                        text: "x.io".into(),
                    },
                    text(" "),
                    TextNode::CustomEmoji {
                        text: ":wave:".into(),
                    },
                    text(" "),
                    TextNode::Mention {
                        id: "u1".into(),
                        text: "@ann".into(),
                    },
                    TextNode::Link {
                        url: "https://y.io".into(),
                        children: vec![text("!")],
                    },
                ]),
                "Hi you *x* x.io :wave: @ann!",
            ),
            (
                block(vec![
                    text("intro"),
                    TextNode::BulletList {
                        children: vec![point("a"), point("b")],
                    },
                    text("outro"),
                ]),
                "intro\n- a\n- b\noutro",
            ),
            (
                block(vec![
                    text("a\n"),
                    TextNode::BulletList {
                        children: vec![point("b")],
                    },
                    text("\nc"),
                ]),
                "a\n\n- b\n\nc",
            ),
            (
                vec![
                    ContentBlock::Text {
                        children: vec![text("see")],
                    },
                    ContentBlock::File {
                        url: "u".into(),
                        filename: "cat.png".into(),
                        size: 1,
                        subtype: Some(FileSubtype::Image),
                        width: None,
                        height: None,
                        duration: None,
                    },
                    ContentBlock::Location {
                        latitude: 52.37,
                        longitude: 4.9,
                    },
                ],
                "see\ncat.png\n52.37,4.9",
            ),
        ];
        for (content, expected) in cases {
            assert_eq!(plaintext(&content), expected);
        }
    }

    #[test]
    fn detects_restricted_nodes() {
        let nested = |node| {
            block(vec![
                text("x"),
                TextNode::BulletList {
                    children: vec![TextNode::BulletPoint {
                        children: vec![TextNode::Bold {
                            children: vec![node],
                        }],
                    }],
                },
            ])
        };
        assert!(uses_restricted_nodes(&nested(TextNode::Link {
            url: "https://a".into(),
            children: vec![],
        })));
        assert!(uses_restricted_nodes(&nested(TextNode::ActionLink {
            action: "a".into(),
            params: BTreeMap::new(),
            children: vec![],
        })));
        assert!(uses_restricted_nodes(&nested(TextNode::ActionButton {
            action: "a".into(),
            params: BTreeMap::new(),
            children: vec![],
        })));
        assert!(!uses_restricted_nodes(&nested(TextNode::AutoLink {
            url: "https://a".into(),
            text: "a".into(),
        })));
        assert!(!uses_restricted_nodes(&vec![ContentBlock::Location {
            latitude: 0.0,
            longitude: 0.0,
        }]));
    }

    fn file_block(url: &str) -> Content {
        vec![ContentBlock::File {
            url: url.into(),
            filename: "f".into(),
            size: 1,
            subtype: None,
            width: None,
            height: None,
            duration: None,
        }]
    }

    #[test]
    fn every_stored_url_follows_the_link_rule() {
        let good = [
            "https://x.io",
            "HTTPS://X.io/a?b=c#d",
            "http://x.io:8080/a_(b)",
            "https://日本.jp/é",
            "mailto:a.b+c@example.com",
            "MailTo:a@b.io?subject=hi%20there",
            "tel:+31612345678",
            "TEL:+1-202-555-0143",
        ];
        for url in good {
            assert_eq!(check_url(url), Ok(()), "{url}");
            let link = |url: &str| TextNode::Link {
                url: url.into(),
                children: vec![text("x")],
            };
            assert_eq!(
                validate(&block(vec![link(url)]), &Limits::default()),
                Ok(())
            );
            assert_eq!(validate(&file_block(url), &Limits::default()), Ok(()));
        }
        let bad = [
            (
                "javascript:alert(document.cookie)",
                "must be an https:, http:, mailto: or tel: URL",
            ),
            (
                "JavaScript:alert(1)",
                "must be an https:, http:, mailto: or tel: URL",
            ),
            (
                "data:text/html;base64,PHNjcmlwdD4=",
                "must be an https:, http:, mailto: or tel: URL",
            ),
            (
                "file:///etc/passwd",
                "must be an https:, http:, mailto: or tel: URL",
            ),
            (
                "vbscript:msgbox",
                "must be an https:, http:, mailto: or tel: URL",
            ),
            (
                "ftp://x.io",
                "must be an https:, http:, mailto: or tel: URL",
            ),
            (
                "//evil.example/x",
                "must be an https:, http:, mailto: or tel: URL",
            ),
            ("/relative", "must be an https:, http:, mailto: or tel: URL"),
            ("x.io", "must be an https:, http:, mailto: or tel: URL"),
            (
                " javascript:alert(1)",
                "must not contain whitespace, control or invisible characters (found U+0020)",
            ),
            (
                " https://x.io",
                "must not contain whitespace, control or invisible characters (found U+0020)",
            ),
            (
                "https://x.io ",
                "must not contain whitespace, control or invisible characters (found U+0020)",
            ),
            (
                "java\tscript:alert(1)",
                "must not contain whitespace, control or invisible characters (found U+0009)",
            ),
            (
                "java\nscript:alert(1)",
                "must not contain whitespace, control or invisible characters (found U+000A)",
            ),
            (
                "\u{1}javascript:alert(1)",
                "must not contain whitespace, control or invisible characters (found U+0001)",
            ),
            (
                "https://bank.example\u{202E}moc.live",
                "must not contain whitespace, control or invisible characters (found U+202E)",
            ),
            (
                "https://x\u{200B}.io",
                "must not contain whitespace, control or invisible characters (found U+200B)",
            ),
            ("https:x.io", "must be https://host..."),
            ("https://", "is not a valid URL: empty host"),
            ("https://a:b", "is not a valid URL: invalid port number"),
            ("mailto:", "must have something after mailto:"),
            ("tel:", "must have something after tel:"),
            ("", "must not be empty"),
        ];
        for (url, reason) in bad {
            assert_eq!(check_url(url), Err(reason.to_owned()), "{url:?}");
            let want = |kind: &str, path: &str| Err(format!("{path}: {kind} url {reason}"));
            let link = TextNode::Link {
                url: url.into(),
                children: vec![text("x")],
            };
            let auto = TextNode::AutoLink {
                url: url.into(),
                text: url.into(),
            };
            assert_eq!(
                validate(&block(vec![link]), &Limits::default()),
                want("link", "content[0].children[0]")
            );
            assert_eq!(
                validate(&block(vec![auto]), &Limits::default()),
                want("autoLink", "content[0].children[0]")
            );
            assert_eq!(
                validate(&file_block(url), &Limits::default()),
                want("file", "content[0]")
            );
        }
    }

    #[test]
    fn an_auto_link_shows_its_own_url() {
        let shows = [
            ("https://x.io", "https://x.io"),
            ("https://x.io/a", "x.io/a"),
            ("HTTPS://x.io", "x.io"),
            ("HTTPS://x.io", "https://x.io"),
            ("https://www.example.com/a", "www.example.com/a"),
            ("mailto:a@b.io", "a@b.io"),
            ("mailto:a@b.io", "MAILTO:a@b.io"),
            ("tel:+31612345678", "+31612345678"),
            ("tel:+31612345678", "+31 6 1234 5678"),
            ("tel:+12025550143", "+1-202-555-0143"),
            ("tel:+442079460958", "+44.20.7946.0958"),
        ];
        for (url, text) in shows {
            assert!(shows_own_url(url, text), "{url} as {text}");
        }
        let disguised = [
            ("https://evil.example/login", "https://bank.example"),
            ("https://evil.example/login", "bank.example"),
            ("https://evil.example", "evil.example/"),
            ("https://evil.example", "http://evil.example"),
            ("https://evil.example", "https:evil.example"),
            ("https://x.io", ""),
            ("https://x.io", "X.IO"),
            ("mailto:a@evil.example", "a@bank.example"),
            ("mailto:a@b.io?cc=c@d.io", "a@b.io"),
            ("tel:+31612345678", "+31 6 1234 5679"),
            ("tel:+31612345678", "call us"),
            ("tel:---", " "),
            ("https://x.io", "+31612345678"),
        ];
        for (url, text) in disguised {
            assert!(!shows_own_url(url, text), "{url} as {text}");
            let node = TextNode::AutoLink {
                url: url.into(),
                text: text.into(),
            };
            assert!(uses_restricted_nodes(&block(vec![TextNode::Bold {
                children: vec![node]
            }])));
        }
    }

    #[test]
    fn mentions_and_custom_emoji_are_checked() {
        let limits = Limits::default();
        let mention = |id: &str, text: &str| {
            block(vec![TextNode::Mention {
                id: id.into(),
                text: text.into(),
            }])
        };
        let emoji = |t: &str| block(vec![TextNode::CustomEmoji { text: t.into() }]);
        assert_eq!(
            validate(&mention("kbadk:github", "@kbadk"), &limits),
            Ok(())
        );
        assert_eq!(validate(&emoji(":cat_roomba:"), &limits), Ok(()));
        let long = "u".repeat(limits.max_id_chars + 1);
        let cases = [
            (mention("", "@x"), "content[0].children[0]: mention id must not be empty"),
            (mention("u1", ""), "content[0].children[0]: mention text must not be empty"),
            (mention("a#b", "@x"), "content[0].children[0]: mention id must not contain '#'"),
            (mention("a/b", "@x"), "content[0].children[0]: mention id must not contain '/'"),
            (mention("a\u{7}", "@x"), "content[0].children[0]: mention id contains the control character U+0007"),
            // C1 controls too (schemathesis once found U+009B accepted).
            (mention("a\u{9b}b", "@x"), "content[0].children[0]: mention id contains the control character U+009B"),
            (
                emoji("<img src=x onerror=alert(1)>"),
                "content[0].children[0]: customEmoji text \"<img src=x onerror=alert(1)>\": not a custom emoji; write it as :name:",
            ),
            (emoji("wave"), "content[0].children[0]: customEmoji text \"wave\": not a custom emoji; write it as :name:"),
            (emoji(""), "content[0].children[0]: customEmoji text \"\": not a custom emoji; write it as :name:"),
            (
                emoji(":<b>:"),
                "content[0].children[0]: customEmoji text \":<b>:\": custom emoji names may only contain A-Z, a-z, 0-9, '_', '+' and '-'; found '<'",
            ),
        ];
        for (content, want) in cases {
            assert_eq!(
                validate(&content, &limits),
                Err(want.to_owned()),
                "{content:?}"
            );
        }
        let err = validate(&mention(&long, "@x"), &limits).unwrap_err();
        assert!(
            err.starts_with("content[0].children[0]: mention id is 129 characters"),
            "{err}"
        );
    }
}
