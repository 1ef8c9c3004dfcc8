//! Chat text → content tree: `*bold*`, `_italic_`, `~strike~`, `` `code` ``,
//! bullet lists, bare URLs / e-mail addresses / phone numbers and `:emoji:`.
//!
//! Each line is parsed on its own in two passes. The first pass turns the
//! line into tokens, cutting out the atoms that must not be split by
//! formatting (code spans, links, custom emoji) and leaving every other
//! char as a token. The second pass pairs emphasis markers over those
//! tokens. Everything works on `char`s so no input can split a code point.

use std::collections::HashMap;

use crate::config::input::CUSTOM_EMOJI_NAME_MAX_CHARS;
use crate::content::{check_url, Content, ContentBlock, TextNode};

const MIN_PHONE_DIGITS: usize = 7;
const MAX_PHONE_DIGITS: usize = 15;
/// `*`, `_`, `~` in the order of `Marker` indices.
const MARKERS: [char; 3] = ['*', '_', '~'];

/// Parses a message's raw text into content holding exactly one text block.
pub fn parse_text(text: &str) -> Content {
    let mut out = NodeBuf::default();
    let mut lines = text.split('\n').peekable();
    let mut after_text_line = false;
    while let Some(line) = lines.next() {
        match bullet_body(line) {
            Some(body) => {
                let mut points = vec![point(body)];
                while let Some(body) = lines.peek().and_then(|next| bullet_body(next)) {
                    points.push(point(body));
                    lines.next();
                }
                // The list's own line structure implies the breaks around
                // it, so no "\n" string is emitted before or after it.
                out.push(TextNode::BulletList { children: points });
                after_text_line = false;
            }
            None => {
                if after_text_line {
                    out.push_str("\n");
                }
                out.extend(parse_inline(line));
                after_text_line = true;
            }
        }
    }
    vec![ContentBlock::Text {
        children: out.nodes,
    }]
}

fn point(body: &str) -> TextNode {
    TextNode::BulletPoint {
        children: parse_inline(body),
    }
}

/// The text after a bullet prefix (`- `, `* ` or `+ `, optionally indented),
/// or `None` if the line is not a bullet.
fn bullet_body(line: &str) -> Option<&str> {
    let rest = line.trim_start_matches([' ', '\t']);
    let rest = rest
        .strip_prefix('-')
        .or_else(|| rest.strip_prefix('*'))
        .or_else(|| rest.strip_prefix('+'))?;
    if rest.starts_with([' ', '\t']) {
        Some(rest.trim_start_matches([' ', '\t']))
    } else {
        None
    }
}

/// Collects nodes, merging adjacent literal text into one string node.
#[derive(Default)]
struct NodeBuf {
    nodes: Vec<TextNode>,
}

impl NodeBuf {
    fn push_str(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        match self.nodes.last_mut() {
            Some(TextNode::Text(last)) => last.push_str(text),
            _ => self.nodes.push(TextNode::Text(text.to_owned())),
        }
    }

    fn push_char(&mut self, c: char) {
        match self.nodes.last_mut() {
            Some(TextNode::Text(last)) => last.push(c),
            _ => self.nodes.push(TextNode::Text(c.to_string())),
        }
    }

    fn push(&mut self, node: TextNode) {
        match node {
            TextNode::Text(text) => self.push_str(&text),
            other => self.nodes.push(other),
        }
    }

    fn extend(&mut self, nodes: Vec<TextNode>) {
        for node in nodes {
            self.push(node);
        }
    }
}

/// First-pass output: a plain char (possibly an emphasis marker) or an atom
/// (code span, auto link, custom emoji) that formatting cannot reach into.
#[derive(Debug)]
enum Tok {
    Char(char),
    Atom(TextNode),
}

fn parse_inline(line: &str) -> Vec<TextNode> {
    let chars: Vec<char> = line.chars().collect();
    let toks = tokenize(&chars);
    Emphasis::new(&toks).build(0, toks.len(), [false; 3])
}

/// Letters, digits and combining marks continue a word; everything else
/// (whitespace, punctuation, symbols, emoji) is a boundary.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
        || matches!(c,
            '\u{0300}'..='\u{036F}'
            | '\u{1AB0}'..='\u{1AFF}'
            | '\u{1DC0}'..='\u{1DFF}'
            | '\u{20D0}'..='\u{20FF}'
            | '\u{FE20}'..='\u{FE2F}')
}

fn char_at(chars: &[char], i: usize) -> Option<char> {
    chars.get(i).copied()
}

fn char_before(chars: &[char], i: usize) -> Option<char> {
    i.checked_sub(1).and_then(|p| char_at(chars, p))
}

/// Whether `chars[i..]` starts with the ASCII `prefix`, ignoring case.
fn starts_with_ci(chars: &[char], i: usize, prefix: &str) -> bool {
    prefix
        .chars()
        .enumerate()
        .all(|(k, p)| char_at(chars, i + k).is_some_and(|c| c.eq_ignore_ascii_case(&p)))
}

fn collect(chars: &[char], start: usize, end: usize) -> String {
    chars.get(start..end).unwrap_or_default().iter().collect()
}

fn tokenize(chars: &[char]) -> Vec<Tok> {
    let code = CodeClosers::new(chars);
    let mut toks = Vec::with_capacity(chars.len());
    let mut i = 0;
    // End of the last emoji, so `:a::b:` can chain despite the ':' rule.
    let mut emoji_end = None;
    while let Some(c) = char_at(chars, i) {
        if c == '`' {
            let run = run_len(chars, i, '`');
            match code.span(chars, i, run) {
                Some((node, end)) => {
                    toks.push(Tok::Atom(node));
                    i = end;
                }
                None => {
                    // A backtick run that does not open stays literal as a
                    // whole, so a shorter suffix of it cannot open instead.
                    toks.extend((0..run).map(|_| Tok::Char('`')));
                    i += run;
                }
            }
            continue;
        }
        let atom = match c {
            'h' | 'H' | 'w' | 'W' => url(chars, i),
            '+' => phone(chars, i),
            ':' => emoji(chars, i, emoji_end == Some(i)),
            '@' => email(chars, i, &mut toks),
            _ => None,
        };
        match atom {
            Some((node, end)) => {
                if matches!(node, TextNode::CustomEmoji { .. }) {
                    emoji_end = Some(end);
                }
                toks.push(Tok::Atom(node));
                i = end;
            }
            None => {
                toks.push(Tok::Char(c));
                i += 1;
            }
        }
    }
    toks
}

fn run_len(chars: &[char], i: usize, c: char) -> usize {
    chars
        .get(i..)
        .map_or(0, |rest| rest.iter().take_while(|&&x| x == c).count())
}

/// Backtick runs that may close a code span, by run length. A span closes
/// only on a run as long as the one that opened it (as in CommonMark), so
/// double backticks can enclose a single one.
struct CodeClosers {
    by_len: HashMap<usize, Vec<usize>>,
}

impl CodeClosers {
    fn new(chars: &[char]) -> Self {
        let mut by_len: HashMap<usize, Vec<usize>> = HashMap::new();
        let mut i = 0;
        while i < chars.len() {
            let run = run_len(chars, i, '`');
            if run == 0 {
                i += 1;
                continue;
            }
            let closes = char_before(chars, i).is_some_and(|p| !p.is_whitespace())
                && char_at(chars, i + run).is_none_or(|n| !is_word_char(n));
            if closes {
                by_len.entry(run).or_default().push(i);
            }
            i += run;
        }
        CodeClosers { by_len }
    }

    /// The code span opened by the `run` backticks at `i`, and where it ends.
    fn span(&self, chars: &[char], i: usize, run: usize) -> Option<(TextNode, usize)> {
        let opens = char_before(chars, i).is_none_or(|p| !is_word_char(p))
            && char_at(chars, i + run).is_some_and(|n| !n.is_whitespace());
        if !opens {
            return None;
        }
        let content_start = i + run;
        let closers = self.by_len.get(&run)?;
        // Closer positions are ascending; skip those that would leave the
        // span empty.
        let close = *closers.get(closers.partition_point(|&s| s <= content_start))?;
        let text = collect(chars, content_start, close);
        Some((TextNode::CodeSpan { text }, close + run))
    }
}

/// A bare `http://`, `https://` or `www.` URL starting at `i`.
fn url(chars: &[char], i: usize) -> Option<(TextNode, usize)> {
    // Not inside a word, a host name or a path ("foo.www.x", "a/http://").
    if char_before(chars, i).is_some_and(|p| is_word_char(p) || matches!(p, '.' | '-' | '/' | '@'))
    {
        return None;
    }
    let prefix_len = ["https://", "http://", "www."]
        .iter()
        .find(|p| starts_with_ci(chars, i, p))?
        .len();
    if !char_at(chars, i + prefix_len).is_some_and(char::is_alphanumeric) {
        return None;
    }
    let mut end = i + prefix_len;
    while char_at(chars, end).is_some_and(|c| {
        !c.is_whitespace() && !c.is_control() && !matches!(c, '<' | '>' | '"' | '`')
    }) {
        end += 1;
    }
    let end = trim_url_end(chars, i + prefix_len, end);
    let text = collect(chars, i, end);
    let url = if prefix_len == "www.".len() {
        format!("https://{text}")
    } else {
        text.clone()
    };
    // What could not be stored as a link stays text ("https://a:b" has no valid port).
    check_url(&url).ok()?;
    Some((TextNode::AutoLink { url, text }, end))
}

/// Drops trailing sentence punctuation and closing brackets that have no
/// opening partner inside the URL, e.g. `(see https://x.io/a_(b)).` keeps
/// `https://x.io/a_(b)`. Never trims below `min`.
fn trim_url_end(chars: &[char], min: usize, mut end: usize) -> usize {
    let count = |c: char| {
        chars
            .get(min..end)
            .map_or(0, |s| s.iter().filter(|&&x| x == c).count())
    };
    // Running balance (closers minus openers) per bracket pair.
    let mut excess = [
        count(')') as isize - count('(') as isize,
        count(']') as isize - count('[') as isize,
        count('}') as isize - count('{') as isize,
    ];
    while end > min {
        let Some(last) = char_before(chars, end) else {
            break;
        };
        let bracket = match last {
            ')' => Some(0),
            ']' => Some(1),
            '}' => Some(2),
            _ => None,
        };
        let trim = match bracket {
            Some(b) => excess.get(b).is_some_and(|&e| e > 0),
            None => matches!(
                last,
                '.' | ',' | ';' | ':' | '!' | '?' | '\'' | '"' | '*' | '_' | '~'
            ),
        };
        if !trim {
            break;
        }
        if let Some(e) = bracket.and_then(|b| excess.get_mut(b)) {
            *e -= 1;
        }
        end -= 1;
    }
    end
}

/// `+` and 7–15 digits, groups separated by one space, dash or dot.
fn phone(chars: &[char], i: usize) -> Option<(TextNode, usize)> {
    if char_before(chars, i).is_some_and(|p| is_word_char(p) || p == '+') {
        return None;
    }
    let mut j = i + 1;
    let mut digits = String::new();
    // (end, digit count) after each complete digit group.
    let mut group_ends = Vec::new();
    loop {
        let start = j;
        while let Some(c) = char_at(chars, j).filter(char::is_ascii_digit) {
            digits.push(c);
            j += 1;
        }
        if j == start {
            break;
        }
        group_ends.push((j, digits.len()));
        let sep = char_at(chars, j).is_some_and(|c| matches!(c, ' ' | '-' | '.'));
        if sep && char_at(chars, j + 1).is_some_and(|c| c.is_ascii_digit()) {
            j += 1;
        } else {
            break;
        }
    }
    // Longest prefix of whole groups within the digit limit that is not
    // glued to a following word ("+1234567x" is not a phone number).
    let (end, count) = group_ends.into_iter().rev().find(|&(end, count)| {
        count <= MAX_PHONE_DIGITS && char_at(chars, end).is_none_or(|n| !is_word_char(n))
    })?;
    if count < MIN_PHONE_DIGITS {
        return None;
    }
    let digits = digits.get(..count)?;
    let url = format!("tel:+{digits}");
    check_url(&url).ok()?;
    Some((
        TextNode::AutoLink {
            url,
            text: collect(chars, i, end),
        },
        end,
    ))
}

/// `:name:` custom emoji at `i`. `after_emoji` lets emoji chain (`:a::b:`)
/// while a ':' of other text (`10:30:45`, `a::b:`) still cannot open one.
fn emoji(chars: &[char], i: usize, after_emoji: bool) -> Option<(TextNode, usize)> {
    if !after_emoji && char_before(chars, i).is_some_and(|p| is_word_char(p) || p == ':') {
        return None;
    }
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-');
    let name_len = chars
        .get(i + 1..)?
        .iter()
        .take(CUSTOM_EMOJI_NAME_MAX_CHARS + 1)
        .take_while(|&&c| is_name_char(c))
        .count();
    let close = i + 1 + name_len;
    if name_len == 0 || name_len > CUSTOM_EMOJI_NAME_MAX_CHARS || char_at(chars, close) != Some(':')
    {
        return None;
    }
    if char_at(chars, close + 1).is_some_and(is_word_char) {
        return None;
    }
    let name = chars.get(i + 1..close)?;
    // Needs a letter or digit, and digits alone look like a time (":30:"),
    // while ":+1:" is a real emoji name.
    let has_alnum = name.iter().any(char::is_ascii_alphanumeric);
    let all_digits = name.iter().all(char::is_ascii_digit);
    if !has_alnum || all_digits {
        return None;
    }
    let text = collect(chars, i, close + 1);
    Some((TextNode::CustomEmoji { text }, close + 1))
}

/// An e-mail address whose '@' is at `at`. Its local part was already
/// emitted as char tokens, so it is found by looking back over `toks` and
/// popped off when the address matches; this keeps scanning linear.
fn email(chars: &[char], at: usize, toks: &mut Vec<Tok>) -> Option<(TextNode, usize)> {
    let is_local = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-');
    let run = toks
        .iter()
        .rev()
        .take_while(|t| matches!(t, Tok::Char(c) if is_local(*c)))
        .count();
    let run_start = at.checked_sub(run)?;
    // "josé.a@x.io" must not link only "a@x.io".
    if let Some(Tok::Char(p)) = toks.len().checked_sub(run + 1).and_then(|k| toks.get(k)) {
        if is_word_char(*p) {
            return None;
        }
    }
    // Leading punctuation ("_a@b.io_" in italics, "(a@b.io)") stays outside.
    let skip = chars
        .get(run_start..at)?
        .iter()
        .take_while(|c| !c.is_ascii_alphanumeric())
        .count();
    let start = run_start + skip;
    if start >= at {
        return None;
    }
    let end = email_domain_end(chars, at + 1)?;
    if char_at(chars, end).is_some_and(|c| is_word_char(c) || c == '@') {
        return None;
    }
    let text = collect(chars, start, end);
    let url = format!("mailto:{text}");
    check_url(&url).ok()?;
    toks.truncate(toks.len() - (at - start));
    Some((TextNode::AutoLink { url, text }, end))
}

/// End of a dotted host name starting at `start` with a 2+ letter TLD.
fn email_domain_end(chars: &[char], start: usize) -> Option<usize> {
    let is_host = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-');
    let mut end = start;
    while char_at(chars, end).is_some_and(is_host) {
        end += 1;
    }
    // A sentence may end right after the address.
    while end > start && char_before(chars, end).is_some_and(|c| matches!(c, '.' | '-')) {
        end -= 1;
    }
    let domain = collect(chars, start, end);
    let labels: Vec<&str> = domain.split('.').collect();
    let labels_ok = labels.len() >= 2
        && labels
            .iter()
            .all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'));
    let tld_ok = labels
        .last()
        .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
    (labels_ok && tld_ok).then_some(end)
}

/// Second pass: pairs `*`, `_`, `~` markers over the tokens of one line.
struct Emphasis<'a> {
    toks: &'a [Tok],
    can_open: Vec<bool>,
    /// Ascending indices of tokens that may close each marker kind.
    closers: [Vec<usize>; 3],
}

fn marker_kind(tok: Option<&Tok>) -> Option<usize> {
    match tok {
        Some(Tok::Char(c)) => MARKERS.iter().position(|m| m == c),
        _ => None,
    }
}

impl<'a> Emphasis<'a> {
    fn new(toks: &'a [Tok]) -> Self {
        let mut can_open = vec![false; toks.len()];
        let mut closers: [Vec<usize>; 3] = Default::default();
        for (i, flag) in can_open.iter_mut().enumerate() {
            let Some(kind) = marker_kind(toks.get(i)) else {
                continue;
            };
            let prev = i.checked_sub(1).and_then(|p| toks.get(p));
            let next = toks.get(i + 1);
            let same = |t: Option<&Tok>| marker_kind(t) == Some(kind);
            // Atoms count as non-space boundaries on either side.
            let prev_boundary = match prev {
                Some(Tok::Char(p)) => !is_word_char(*p),
                _ => true,
            };
            let next_solid = match next {
                Some(Tok::Char(n)) => !n.is_whitespace(),
                Some(Tok::Atom(_)) => true,
                None => false,
            };
            let prev_solid = match prev {
                Some(Tok::Char(p)) => !p.is_whitespace(),
                Some(Tok::Atom(_)) => true,
                None => false,
            };
            let next_boundary = match next {
                Some(Tok::Char(n)) => !is_word_char(*n),
                _ => true,
            };
            // Doubled markers ("**x**") wrap the inner pair instead of
            // producing "*x" followed by a stray "*".
            *flag = prev_boundary && next_solid && !same(next);
            if prev_solid && next_boundary && !same(prev) {
                if let Some(list) = closers.get_mut(kind) {
                    list.push(i);
                }
            }
        }
        Emphasis {
            toks,
            can_open,
            closers,
        }
    }

    /// Nodes for `toks[start..end]`; `active` marks enclosing marker kinds,
    /// which cannot open again inside themselves.
    fn build(&self, start: usize, end: usize, active: [bool; 3]) -> Vec<TextNode> {
        let mut out = NodeBuf::default();
        let mut i = start;
        while i < end {
            let Some(tok) = self.toks.get(i) else {
                break;
            };
            match tok {
                Tok::Atom(node) => out.push(node.clone()),
                Tok::Char(c) => match self.span_at(i, end, active) {
                    Some((kind, close)) => {
                        let mut inner = active;
                        if let Some(flag) = inner.get_mut(kind) {
                            *flag = true;
                        }
                        let children = self.build(i + 1, close, inner);
                        out.push(match kind {
                            0 => TextNode::Bold { children },
                            1 => TextNode::Italic { children },
                            _ => TextNode::Strikethrough { children },
                        });
                        i = close;
                    }
                    None => out.push_char(*c),
                },
            }
            i += 1;
        }
        out.nodes
    }

    /// The marker kind and closing index of a span opening at `i`, if any.
    fn span_at(&self, i: usize, end: usize, active: [bool; 3]) -> Option<(usize, usize)> {
        let kind = marker_kind(self.toks.get(i))?;
        if active.get(kind).copied().unwrap_or(true) || !self.can_open.get(i).copied()? {
            return None;
        }
        let list = self.closers.get(kind)?;
        // Nearest closer that leaves the span non-empty and inside `end`.
        let close = *list.get(list.partition_point(|&j| j <= i + 1))?;
        (close < end).then_some((kind, close))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::{plaintext, validate};
    use proptest::prelude::*;
    use serde_json::json;

    fn t(s: &str) -> TextNode {
        TextNode::Text(s.to_owned())
    }
    fn bold(children: Vec<TextNode>) -> TextNode {
        TextNode::Bold { children }
    }
    fn ital(children: Vec<TextNode>) -> TextNode {
        TextNode::Italic { children }
    }
    fn strike(children: Vec<TextNode>) -> TextNode {
        TextNode::Strikethrough { children }
    }
    fn code(s: &str) -> TextNode {
        TextNode::CodeSpan { text: s.to_owned() }
    }
    fn link(url: &str, text: &str) -> TextNode {
        TextNode::AutoLink {
            url: url.to_owned(),
            text: text.to_owned(),
        }
    }
    fn emo(s: &str) -> TextNode {
        TextNode::CustomEmoji { text: s.to_owned() }
    }
    fn list(points: Vec<Vec<TextNode>>) -> TextNode {
        TextNode::BulletList {
            children: points
                .into_iter()
                .map(|children| TextNode::BulletPoint { children })
                .collect(),
        }
    }

    fn children(input: &str) -> Vec<TextNode> {
        match parse_text(input).as_slice() {
            [ContentBlock::Text { children }] => children.clone(),
            other => panic!("expected one text block, got {other:?}"),
        }
    }

    /// Runs every case and reports all mismatches at once.
    fn check_table(cases: Vec<(&str, Vec<TextNode>)>) {
        let failures: Vec<String> = cases
            .into_iter()
            .filter_map(|(input, expected)| {
                let got = children(input);
                (got != expected)
                    .then(|| format!("{input:?}\n   got: {got:?}\n  want: {expected:?}"))
            })
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn inline_table() {
        let long_emoji = format!(":{}:", "x".repeat(CUSTOM_EMOJI_NAME_MAX_CHARS + 1));
        let cases: Vec<(&str, Vec<TextNode>)> = vec![
            ("", vec![]),
            ("hello world", vec![t("hello world")]),
            ("   ", vec![t("   ")]),
            // Each marker.
            ("*bold*", vec![bold(vec![t("bold")])]),
            ("_it_", vec![ital(vec![t("it")])]),
            ("~gone~", vec![strike(vec![t("gone")])]),
            ("`x`", vec![code("x")]),
            ("a *b* c", vec![t("a "), bold(vec![t("b")]), t(" c")]),
            ("(*b*)", vec![t("("), bold(vec![t("b")]), t(")")]),
            ("*b*, ok", vec![bold(vec![t("b")]), t(", ok")]),
            // Nesting; the same marker cannot nest in itself.
            (
                "*bold _and italic_*",
                vec![bold(vec![t("bold "), ital(vec![t("and italic")])])],
            ),
            (
                "_~*all*~_",
                vec![ital(vec![strike(vec![bold(vec![t("all")])])])],
            ),
            ("*a *b* c*", vec![bold(vec![t("a *b")]), t(" c*")]),
            ("**x**", vec![t("*"), bold(vec![t("x")]), t("*")]),
            // Markers inside words stay literal.
            ("snake_case_name", vec![t("snake_case_name")]),
            ("2*3*4", vec![t("2*3*4")]),
            ("a*b", vec![t("a*b")]),
            ("a * b * c", vec![t("a * b * c")]),
            ("*a*b", vec![t("*a*b")]),
            ("x * a*", vec![t("x * a*")]),
            ("*a *", vec![t("*a *")]),
            ("**", vec![t("**")]),
            // Unclosed markers.
            ("*open", vec![t("*open")]),
            ("_a *b_", vec![ital(vec![t("a *b")])]),
            ("`open", vec![t("`open")]),
            // Markers never span lines.
            ("*a\nb*", vec![t("*a\nb*")]),
            ("`a\nb`", vec![t("`a\nb`")]),
            // Code spans are literal, and win over markers around them.
            ("`*a* _b_`", vec![code("*a* _b_")]),
            ("`https://x.io :wave:`", vec![code("https://x.io :wave:")]),
            ("*a `b*` c*", vec![bold(vec![t("a "), code("b*"), t(" c")])]),
            ("``a`b``", vec![code("a`b")]),
            ("```x```", vec![code("x")]),
            ("a`b`", vec![t("a`b`")]),
            // URLs.
            (
                "see https://x.io.",
                vec![t("see "), link("https://x.io", "https://x.io"), t(".")],
            ),
            (
                "http://a.b/c?d=1&e=f#g, ok!",
                vec![
                    link("http://a.b/c?d=1&e=f#g", "http://a.b/c?d=1&e=f#g"),
                    t(", ok!"),
                ],
            ),
            (
                "wow https://x.io!?",
                vec![t("wow "), link("https://x.io", "https://x.io"), t("!?")],
            ),
            (
                "(see https://en.wikipedia.org/wiki/Rust_(language))",
                vec![
                    t("(see "),
                    link(
                        "https://en.wikipedia.org/wiki/Rust_(language)",
                        "https://en.wikipedia.org/wiki/Rust_(language)",
                    ),
                    t(")"),
                ],
            ),
            (
                "(https://x.io)",
                vec![t("("), link("https://x.io", "https://x.io"), t(")")],
            ),
            (
                "go to www.example.com/a.",
                vec![
                    t("go to "),
                    link("https://www.example.com/a", "www.example.com/a"),
                    t("."),
                ],
            ),
            (
                "*https://x.io/a_b*",
                vec![bold(vec![link("https://x.io/a_b", "https://x.io/a_b")])],
            ),
            (
                "https://x.io/_a_/b",
                vec![link("https://x.io/_a_/b", "https://x.io/_a_/b")],
            ),
            ("xhttps://x.io", vec![t("xhttps://x.io")]),
            ("http:// x", vec![t("http:// x")]),
            ("foo.www.bar", vec![t("foo.www.bar")]),
            // E-mail.
            (
                "mail a.b+c@example.com.",
                vec![
                    t("mail "),
                    link("mailto:a.b+c@example.com", "a.b+c@example.com"),
                    t("."),
                ],
            ),
            (
                "_me@x.io_",
                vec![ital(vec![link("mailto:me@x.io", "me@x.io")])],
            ),
            ("@ann", vec![t("@ann")]),
            ("a@b", vec![t("a@b")]),
            ("a@b.c1", vec![t("a@b.c1")]),
            // Phone numbers.
            (
                "call +31 6 1234 5678 now",
                vec![
                    t("call "),
                    link("tel:+31612345678", "+31 6 1234 5678"),
                    t(" now"),
                ],
            ),
            (
                "+1-202-555-0143.",
                vec![link("tel:+12025550143", "+1-202-555-0143"), t(".")],
            ),
            (
                "+44.20.7946.0958",
                vec![link("tel:+442079460958", "+44.20.7946.0958")],
            ),
            ("+123456", vec![t("+123456")]),
            ("+1234567890123456", vec![t("+1234567890123456")]),
            ("1+2345678", vec![t("1+2345678")]),
            ("+1234567x", vec![t("+1234567x")]),
            ("+1  2345678", vec![t("+1  2345678")]),
            // Custom emoji.
            (
                "hi :cat_roomba: there",
                vec![t("hi "), emo(":cat_roomba:"), t(" there")],
            ),
            (":wave::+1:", vec![emo(":wave:"), emo(":+1:")]),
            ("(:a-b:)", vec![t("("), emo(":a-b:"), t(")")]),
            ("at 10:30:45", vec![t("at 10:30:45")]),
            (":30:", vec![t(":30:")]),
            ("a:b:", vec![t("a:b:")]),
            (":b:c", vec![t(":b:c")]),
            (": a:", vec![t(": a:")]),
            (&long_emoji, vec![t(&long_emoji)]),
            // Unicode.
            (
                "😀 *héllo* 😀",
                vec![t("😀 "), bold(vec![t("héllo")]), t(" 😀")],
            ),
            ("日本*語*です", vec![t("日本*語*です")]),
            ("「*強調*」", vec![t("「"), bold(vec![t("強調")]), t("」")]),
            ("שלום _עולם_", vec![t("שלום "), ital(vec![t("עולם")])]),
            ("e\u{301}_x_", vec![t("e\u{301}_x_")]),
            ("*👍🏽*", vec![bold(vec![t("👍🏽")])]),
        ];
        check_table(cases);
    }

    #[test]
    fn lines_and_lists() {
        let cases: Vec<(&str, Vec<TextNode>)> = vec![
            ("a\nb", vec![t("a\nb")]),
            ("a\n\nb\n", vec![t("a\n\nb\n")]),
            (
                "*a*\n_b_",
                vec![bold(vec![t("a")]), t("\n"), ital(vec![t("b")])],
            ),
            ("- a", vec![list(vec![vec![t("a")]])]),
            ("* a", vec![list(vec![vec![t("a")]])]),
            ("+ a", vec![list(vec![vec![t("a")]])]),
            ("  -   a ", vec![list(vec![vec![t("a ")]])]),
            (
                "- a\n* *b*\n+ c",
                vec![list(vec![
                    vec![t("a")],
                    vec![bold(vec![t("b")])],
                    vec![t("c")],
                ])],
            ),
            (
                "intro\n- a\n- b\nafter\nmore",
                vec![
                    t("intro"),
                    list(vec![vec![t("a")], vec![t("b")]]),
                    t("after\nmore"),
                ],
            ),
            (
                "- a\n\n- b",
                vec![list(vec![vec![t("a")]]), list(vec![vec![t("b")]])],
            ),
            ("- a\n\nb", vec![list(vec![vec![t("a")]]), t("\nb")]),
            ("-a\n*b*", vec![t("-a\n"), bold(vec![t("b")])]),
            ("-", vec![t("-")]),
            ("- ", vec![list(vec![vec![]])]),
        ];
        check_table(cases);
    }

    #[test]
    fn example_message_json() {
        let content = parse_text("*Hi* _there_ see https://x.io. :wave: \n- a\n- b");
        assert_eq!(
            serde_json::to_value(&content).unwrap(),
            json!([{"type": "text", "children": [
                {"type": "bold", "children": ["Hi"]},
                " ",
                {"type": "italic", "children": ["there"]},
                " see ",
                {"type": "autoLink", "url": "https://x.io", "text": "https://x.io"},
                ". ",
                {"type": "customEmoji", "text": ":wave:"},
                " ",
                {"type": "bulletList", "children": [
                    {"type": "bulletPoint", "children": ["a"]},
                    {"type": "bulletPoint", "children": ["b"]}
                ]}
            ]}])
        );
        assert_eq!(
            plaintext(&content),
            "Hi there see https://x.io. :wave: \n- a\n- b"
        );
    }

    /// Words of `s` (bullet prefixes removed, markers stripped, empties
    /// dropped) must appear in order in the stripped plaintext.
    fn assert_keeps_words(s: &str) -> Result<(), TestCaseError> {
        let strip = |w: &str| w.replace(['*', '_', '~', '`'], "");
        let plain = strip(&plaintext(&parse_text(s)));
        let mut rest = plain.as_str();
        for line in s.split('\n') {
            let line = bullet_body(line).unwrap_or(line);
            for word in line.split_whitespace().map(strip).filter(|w| !w.is_empty()) {
                let pos = rest.find(&word);
                prop_assert!(
                    pos.is_some(),
                    "word {word:?} missing from {plain:?} (input {s:?})"
                );
                rest = rest.get(pos.unwrap_or(0) + word.len()..).unwrap_or("");
            }
        }
        Ok(())
    }

    /// Structural invariants of every parse.
    fn assert_well_formed(s: &str) -> Result<(), TestCaseError> {
        let content = parse_text(s);
        prop_assert_eq!(content.len(), 1);
        if !s.is_empty() {
            prop_assert_eq!(
                validate(&content, &crate::config::Limits::default()),
                Ok(())
            );
        }
        let json = serde_json::to_string(&content).unwrap();
        let back: Content = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, &content);
        Ok(())
    }

    fn marker_heavy() -> impl Strategy<Value = String> {
        let alphabet: Vec<char> = "*_~`: -+\n aé😀/.@w1(),".chars().collect();
        prop::collection::vec(prop::sample::select(alphabet), 0..60)
            .prop_map(|cs| cs.into_iter().collect())
    }

    fn fragments() -> impl Strategy<Value = String> {
        let pieces = vec![
            "*",
            "_",
            "~",
            "`",
            "``",
            ":",
            "-",
            "+",
            " ",
            "\n",
            "- ",
            "* ",
            "a",
            "é",
            "😀",
            "https://",
            "www.",
            "x.io",
            "/",
            ".",
            "(",
            ")",
            "@",
            "b.co",
            "+31 6 1234 5678",
            ":wave:",
            "12",
            "日本",
        ];
        prop::collection::vec(prop::sample::select(pieces), 0..30).prop_map(|ps| ps.concat())
    }

    proptest! {
        #[test]
        fn never_panics_on_any_string(s in any::<String>()) {
            let _ = parse_text(&s);
        }

        #[test]
        fn keeps_words_any(s in any::<String>()) {
            assert_keeps_words(&s)?;
            assert_well_formed(&s)?;
        }

        #[test]
        fn keeps_words_marker_heavy(s in marker_heavy()) {
            assert_keeps_words(&s)?;
            assert_well_formed(&s)?;
        }

        #[test]
        fn keeps_words_fragments(s in fragments()) {
            assert_keeps_words(&s)?;
            assert_well_formed(&s)?;
        }
    }
}
