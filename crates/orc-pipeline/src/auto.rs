//! AUTO tags: `<AUTO>instruction</AUTO>` in a pipeline, answered by a model when the
//! pipeline compiles, through an [`AutoResolver`] the caller gives.
//!
//! The tags are found in the raw text before the YAML parser sees it, and each outermost tag
//! is swapped for a short placeholder, so tag content (`pick one: a, b`) cannot break the
//! YAML. A table maps positions in the protected text back to the pipeline as written.

use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::yaml::{Kind, Node, Pos};

/// Answers AUTO tags at compile time. The caller implements it, usually with a model call
/// (driving its async runtime inside `resolve`).
pub trait AutoResolver: Send + Sync {
    /// The answer to one tag, as text; `Err` says why there is none.
    fn resolve(&self, request: &AutoRequest) -> Result<String, String>;

    /// The model for a whole-string tag in a model field (`model`, `parameters.model`,
    /// `requires_model`, any key that names a model), chosen without a model call.
    /// `None`: this resolver picks no model, and the tag is asked like any other.
    fn pick_model(&self, request: &AutoRequest) -> Option<Result<ModelPick, String>> {
        let _ = request;
        None
    }

    /// Whether the tags a model must answer are only checked and listed (a finding
    /// `I202` each), never asked: `orc validate` without `--resolve`.
    fn defers(&self) -> bool {
        false
    }
}

/// A model chosen for a tag in a model field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPick {
    /// The model's name, as the catalog knows it.
    pub model: String,
    /// Why this one (the router's reason).
    pub reason: String,
}

/// One question for an [`AutoResolver`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoRequest {
    /// The tag's instruction, with the answers of tags nested in it substituted.
    pub instruction: String,
    /// The tag's attributes as written (`task="analyze"`), in order.
    pub attributes: Vec<(String, String)>,
    /// What the answer must be.
    pub expected: Expected,
    /// Where the tag is, such as `steps.analyze.parameters.count`.
    pub path: String,
}

/// What an AUTO tag's answer must be, from the field it fills or its `type` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expected {
    /// Any text (a tag inside a longer string, or `type="text"`).
    Text,
    /// A whole number (`max_retries`, `max_parallel`, `max_iterations`).
    Integer,
    /// A number (`timeout`).
    Number,
    /// `true` or `false` (`condition`, `if`, `while`, `until`).
    Boolean,
    /// A JSON list (`for_each`).
    List,
    /// JSON when the answer parses as JSON, else the text (a whole-string tag elsewhere).
    Any,
}

impl Expected {
    /// The `type="…"` attribute's meaning (also the `type` parameter of the `auto` action).
    pub fn from_attribute(word: &str) -> Option<Expected> {
        Some(match word.trim().to_ascii_lowercase().as_str() {
            "text" | "string" | "str" => Expected::Text,
            "integer" | "int" => Expected::Integer,
            "number" | "float" => Expected::Number,
            "boolean" | "bool" => Expected::Boolean,
            "list" | "array" => Expected::List,
            "any" | "json" => Expected::Any,
            _ => return None,
        })
    }

    /// Whether an answer of this type can fill a field that wants `field`.
    pub(crate) fn fits(self, field: Expected) -> bool {
        match (self, field) {
            (_, Expected::Any | Expected::Text) | (Expected::Any, _) => true,
            (Expected::Integer, Expected::Number) => true,
            (a, b) => a == b,
        }
    }

    /// The word [`Expected::from_attribute`] reads back.
    pub fn word(self) -> &'static str {
        match self {
            Expected::Text => "text",
            Expected::Integer => "integer",
            Expected::Number => "number",
            Expected::Boolean => "boolean",
            Expected::List => "list",
            Expected::Any => "any",
        }
    }

    /// What the answer must be, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Expected::Text => "text",
            Expected::Integer => "a whole number",
            Expected::Number => "a number",
            Expected::Boolean => "true or false",
            Expected::List => "a JSON list",
            Expected::Any => "a value",
        }
    }
}

/// The system prompt a tag's question is asked with: what the value is for, the tag's
/// attributes (`min="100"`) and the shape the answer must have. The same at compile time and
/// at run time, so the response cache answers a question asked either way.
pub fn system_prompt(path: &str, attributes: &[(String, String)], expected: Expected) -> String {
    let shape = match expected {
        Expected::Integer => "Answer with one integer and nothing else.",
        Expected::Number => "Answer with one number and nothing else.",
        Expected::Boolean => "Answer with true or false and nothing else.",
        Expected::List => "Answer with a JSON array and nothing else.",
        Expected::Text => "Answer with the text only, without quotes or explanation.",
        Expected::Any => {
            "Answer with the value only: JSON for numbers, booleans, lists and objects, plain text otherwise."
        }
    };
    let mut context = format!("The value is for the field `{path}`.");
    for (k, v) in attributes {
        if k != "model" {
            context.push_str(&format!(" {k}: {v}."));
        }
    }
    format!("You fill in one value of an AI pipeline definition. {context} {shape}")
}

/// An answer read as `expected`: surrounding blanks, one pair of quotes and a final full stop
/// are not part of a number or boolean; a list or any value may sit in a ```json fence.
/// `None` when the answer is not of that type.
pub fn parse_answer(expected: Expected, text: &str) -> Option<serde_json::Value> {
    use serde_json::Value;
    let t = text.trim();
    let scalar = || {
        let s = ['"', '\'']
            .iter()
            .find_map(|q| t.strip_prefix(*q).and_then(|r| r.strip_suffix(*q)))
            .unwrap_or(t)
            .trim();
        s.strip_suffix('.').unwrap_or(s).trim()
    };
    match expected {
        Expected::Text => Some(Value::String(t.to_string())),
        Expected::Integer => {
            let s = scalar();
            if let Ok(i) = s.parse::<i64>() {
                return Some(Value::from(i));
            }
            let f: f64 = s.parse().ok()?;
            (f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15).then(|| Value::from(f as i64))
        }
        Expected::Number => {
            let s = scalar();
            if let Ok(i) = s.parse::<i64>() {
                return Some(Value::from(i));
            }
            let f: f64 = s.parse().ok()?;
            serde_json::Number::from_f64(f).map(Value::Number)
        }
        Expected::Boolean => crate::yaml::literal_bool(scalar()).map(Value::Bool),
        Expected::List => match serde_json::from_str(unfence(t)) {
            Ok(v @ Value::Array(_)) => Some(v),
            _ => None,
        },
        Expected::Any => {
            Some(serde_json::from_str(unfence(t)).unwrap_or_else(|_| Value::String(t.to_string())))
        }
    }
}

/// The text inside a Markdown code fence, or the text.
fn unfence(t: &str) -> &str {
    let Some(body) = t.strip_prefix("```").and_then(|b| b.strip_suffix("```")) else {
        return t;
    };
    // Past the info string (`json`) on the fence's line.
    body.split_once('\n').map_or(body, |(_, rest)| rest).trim()
}

/// A tag as written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tag {
    /// The whole tag, `<AUTO …>…</AUTO>`.
    pub(crate) text: String,
    /// The opening tag, `<AUTO type="integer">`.
    pub(crate) open: String,
    /// Where `<AUTO` starts.
    pub(crate) pos: Pos,
    pub(crate) attributes: Vec<(String, String)>,
    /// The instruction: text and nested tags.
    pub(crate) parts: Vec<Part>,
}

/// A piece of an instruction.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Part {
    Text(String),
    Tag(Tag),
}

impl Tag {
    /// The tag on one line and at most 60 characters, for messages.
    pub(crate) fn short(&self) -> String {
        let flat: String = self.text.split_whitespace().collect::<Vec<_>>().join(" ");
        if flat.chars().count() <= 60 {
            flat
        } else {
            let head: String = flat.chars().take(45).collect();
            format!("{head}…</AUTO>")
        }
    }

    /// The `type` attribute, if any.
    pub(crate) fn type_attribute(&self) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == "type")
            .map(|(_, v)| v.as_str())
    }
}

/// A piece of a string read from the protected text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Piece<'a> {
    Text(&'a str),
    Tag(&'a Tag),
}

/// The pipeline text with its outermost tags swapped for placeholders.
#[derive(Debug)]
pub(crate) struct Protected<'t> {
    /// The text the YAML parser reads: the pipeline's own text when it has no tags.
    pub(crate) text: std::borrow::Cow<'t, str>,
    /// The outermost tags, by placeholder number.
    pub(crate) tags: Vec<Tag>,
    /// The characters that open and close a placeholder; neither is in the pipeline text.
    marks: (char, char),
    /// Each placeholder: (start in `text`, length, start in the original, length), in characters.
    spans: Vec<(usize, usize, usize, usize)>,
    protected_lines: Vec<usize>,
    original_lines: Vec<usize>,
}

impl<'t> Protected<'t> {
    /// Finds the tags of `text`; reports tags that are not closed, closed twice or malformed.
    pub(crate) fn new(text: &'t str, diags: &mut Diagnostics) -> Protected<'t> {
        let outer = scan(text, diags, true);
        if outer.is_empty() {
            return Protected {
                text: std::borrow::Cow::Borrowed(text),
                tags: Vec::new(),
                marks: ('\u{E000}', '\u{E001}'),
                spans: Vec::new(),
                protected_lines: Vec::new(),
                original_lines: Vec::new(),
            };
        }
        // Two private-use characters the text does not hold.
        let used: std::collections::HashSet<char> = text
            .chars()
            .filter(|c| ('\u{E000}'..='\u{F8FF}').contains(c))
            .collect();
        let mut free = ('\u{E000}'..='\u{F8FF}').filter(|c| !used.contains(c));
        let marks = match (free.next(), free.next()) {
            (Some(a), Some(b)) => (a, b),
            _ => ('\u{E000}', '\u{E001}'),
        };
        let mut out = String::with_capacity(text.len());
        let mut spans = Vec::with_capacity(outer.len());
        let (mut copied, mut out_chars, mut in_chars) = (0usize, 0usize, 0usize);
        let mut tags = Vec::with_capacity(outer.len());
        for (i, (start, end, tag)) in outer.into_iter().enumerate() {
            let before = &text[copied..start];
            out.push_str(before);
            let n = before.chars().count();
            out_chars += n;
            in_chars += n;
            let placeholder = format!("{}{i}{}", marks.0, marks.1);
            let (p_len, t_len) = (
                placeholder.chars().count(),
                text[start..end].chars().count(),
            );
            spans.push((out_chars, p_len, in_chars, t_len));
            out.push_str(&placeholder);
            out_chars += p_len;
            in_chars += t_len;
            copied = end;
            tags.push(tag);
        }
        out.push_str(&text[copied..]);
        let protected_lines = line_starts(&out);
        Protected {
            text: std::borrow::Cow::Owned(out),
            tags,
            marks,
            spans,
            protected_lines,
            original_lines: line_starts(text),
        }
    }

    /// The position in the original text of a position in the protected text.
    pub(crate) fn original_pos(&self, pos: Pos) -> Pos {
        if self.spans.is_empty() || pos.line == 0 || pos.col == 0 {
            return pos;
        }
        let Some(&start) = self.protected_lines.get(pos.line as usize - 1) else {
            return pos;
        };
        let off = start + pos.col as usize - 1;
        let mut shift: isize = 0;
        let mut at = None;
        for &(p_start, p_len, o_start, o_len) in &self.spans {
            if off >= p_start + p_len {
                shift += o_len as isize - p_len as isize;
            } else {
                if off >= p_start {
                    at = Some(o_start + (off - p_start).min(o_len.saturating_sub(1)));
                }
                break;
            }
        }
        let orig = at.unwrap_or_else(|| off.saturating_add_signed(shift));
        let line = self.original_lines.partition_point(|&s| s <= orig).max(1);
        let col = orig - self.original_lines[line - 1] + 1;
        Pos {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            col: u32::try_from(col).unwrap_or(u32::MAX),
        }
    }

    /// Moves every position of a parsed tree back to the original text, and puts tags in
    /// mapping keys back as written (keys are names, never answered).
    pub(crate) fn restore_tree(&self, node: &mut Node) {
        if self.tags.is_empty() {
            return;
        }
        node.pos = self.original_pos(node.pos);
        match &mut node.kind {
            Kind::Seq(items) => items.iter_mut().for_each(|n| self.restore_tree(n)),
            Kind::Map(entries) => {
                for (k, v) in entries {
                    k.pos = self.original_pos(k.pos);
                    if k.name.contains(self.marks.0) {
                        k.name = self.written(&k.name);
                    }
                    self.restore_tree(v);
                }
            }
            _ => {}
        }
    }

    /// A string of the protected text cut into text and tags.
    pub(crate) fn pieces<'s>(&'s self, s: &'s str) -> Vec<Piece<'s>> {
        let mut out = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find(self.marks.0) {
            let after = &rest[open + self.marks.0.len_utf8()..];
            let tag = after.find(self.marks.1).and_then(|close| {
                let n: usize = after[..close].parse().ok()?;
                Some((self.tags.get(n)?, close))
            });
            match tag {
                Some((tag, close)) => {
                    if open > 0 {
                        out.push(Piece::Text(&rest[..open]));
                    }
                    out.push(Piece::Tag(tag));
                    rest = &after[close + self.marks.1.len_utf8()..];
                }
                None => {
                    let end = open + self.marks.0.len_utf8();
                    out.push(Piece::Text(&rest[..end]));
                    rest = &rest[end..];
                }
            }
        }
        if !rest.is_empty() {
            out.push(Piece::Text(rest));
        }
        out
    }

    /// Whether a string of the protected text holds a tag.
    pub(crate) fn has_tag(&self, s: &str) -> bool {
        !self.tags.is_empty() && s.contains(self.marks.0)
    }

    /// A string with its tags as written.
    pub(crate) fn written(&self, s: &str) -> String {
        self.pieces(s)
            .into_iter()
            .map(|p| match p {
                Piece::Text(t) => t,
                Piece::Tag(t) => t.text.as_str(),
            })
            .collect()
    }
}

/// Character offsets at which lines start (after `\n`, `\r\n` or a lone `\r`).
fn line_starts(text: &str) -> Vec<usize> {
    let mut starts = vec![0];
    let mut chars = text.chars().enumerate().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\n' => starts.push(i + 1),
            '\r' => {
                if chars.peek().is_some_and(|&(_, n)| n == '\n') {
                    chars.next();
                    starts.push(i + 2);
                } else {
                    starts.push(i + 1);
                }
            }
            _ => {}
        }
    }
    starts
}

/// A tag being read.
struct Open {
    start: usize,
    pos: Pos,
    open: String,
    attributes: Vec<(String, String)>,
    parts: Vec<Part>,
    /// Where the current run of instruction text starts.
    text_from: usize,
}

const OPEN: &str = "<AUTO";
const CLOSE: &str = "</AUTO>";

/// The outermost tags of `text`, as (start byte, end byte, tag). On full-line YAML comments
/// (`comments`), only tags that close on the line count, and stray ones are no error.
fn scan(text: &str, diags: &mut Diagnostics, comments: bool) -> Vec<(usize, usize, Tag)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    if !text.contains(OPEN) && !text.contains(CLOSE) {
        return out;
    }
    let mut stack: Vec<Open> = Vec::new();
    let (mut line, mut line_from) = (1usize, 0usize);
    let pos_at = |line: usize, line_from: usize, i: usize| Pos {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        col: u32::try_from(text[line_from..i].chars().count() + 1).unwrap_or(u32::MAX),
    };
    let mut blank_so_far = true;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\n' | b'\r' => {
                i += if b == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                line += 1;
                line_from = i;
                blank_so_far = true;
                continue;
            }
            b'#' if comments && blank_so_far && stack.is_empty() => {
                // A comment line, or a line of a block scalar that starts with `#`: its tags
                // count when they close on the line, and a stray tag is no error.
                let end = i + bytes[i..]
                    .iter()
                    .position(|&c| c == b'\n' || c == b'\r')
                    .unwrap_or(bytes.len() - i);
                let mut scratch = Diagnostics::default();
                for (start, stop, mut tag) in scan(&text[line_from..end], &mut scratch, false) {
                    shift(&mut tag, line - 1);
                    out.push((line_from + start, line_from + stop, tag));
                }
                i = end;
                continue;
            }
            b' ' | b'\t' => {}
            _ => blank_so_far = false,
        }
        if b != b'<' {
            i += 1;
            continue;
        }
        let rest = &text[i..];
        if rest.starts_with(CLOSE) {
            let end = i + CLOSE.len();
            match stack.pop() {
                None => diags.push(
                    Diagnostic::new(
                        Code::E020,
                        pos_at(line, line_from, i),
                        "`</AUTO>` closes no AUTO tag",
                    )
                    .hint(
                        "every `<AUTO>` needs one `</AUTO>`; remove this one or add its `<AUTO>`",
                    ),
                ),
                Some(mut open) => {
                    if open.text_from < i {
                        open.parts
                            .push(Part::Text(text[open.text_from..i].to_string()));
                    }
                    let tag = Tag {
                        text: text[open.start..end].to_string(),
                        open: open.open,
                        pos: open.pos,
                        attributes: open.attributes,
                        parts: open.parts,
                    };
                    match stack.last_mut() {
                        Some(parent) => {
                            parent.parts.push(Part::Tag(tag));
                            parent.text_from = end;
                        }
                        None => out.push((open.start, end, tag)),
                    }
                }
            }
            i = end;
            continue;
        }
        if rest.starts_with(OPEN)
            && rest[OPEN.len()..]
                .chars()
                .next()
                .is_some_and(|c| c == '>' || c.is_whitespace())
        {
            let pos = pos_at(line, line_from, i);
            match open_tag(&rest[OPEN.len()..]) {
                Some((len, attributes)) => {
                    let end = i + OPEN.len() + len;
                    if let Some(parent) = stack.last_mut()
                        && parent.text_from < i
                    {
                        parent
                            .parts
                            .push(Part::Text(text[parent.text_from..i].to_string()));
                    }
                    if attributes.is_empty() && bare_model_tag(text, line_from, i, end) {
                        // `model: <AUTO>`: py-orc's "pick a model", a tag with no instruction.
                        let tag = Tag {
                            text: OPEN_BARE.to_string(),
                            open: OPEN_BARE.to_string(),
                            pos,
                            attributes,
                            parts: Vec::new(),
                        };
                        match stack.last_mut() {
                            Some(parent) => {
                                parent.parts.push(Part::Tag(tag));
                                parent.text_from = end;
                            }
                            None => out.push((i, end, tag)),
                        }
                        i = end;
                        continue;
                    }
                    // The opening tag may span lines.
                    for (j, c) in text[i..end].char_indices() {
                        if c == '\n' || (c == '\r' && bytes.get(i + j + 1) != Some(&b'\n')) {
                            line += 1;
                            line_from = i + j + 1;
                        }
                    }
                    stack.push(Open {
                        start: i,
                        pos,
                        open: text[i..end].to_string(),
                        attributes,
                        parts: Vec::new(),
                        text_from: end,
                    });
                    i = end;
                    continue;
                }
                None => diags.push(
                    Diagnostic::new(Code::E020, pos, "this `<AUTO` tag is malformed").hint(
                        "write `<AUTO>instruction</AUTO>`, with attributes as `name=\"value\"`",
                    ),
                ),
            }
        }
        i += 1;
    }
    for open in stack {
        diags.push(
            Diagnostic::new(Code::E020, open.pos, "this `<AUTO>` tag is never closed")
                .hint("end the instruction with `</AUTO>`"),
        );
    }
    out
}

const OPEN_BARE: &str = "<AUTO>";

/// Whether the `<AUTO>` at `start..end` is a whole tag by itself: the value of a key that
/// names a model (`model: <AUTO>`, `requires_model: "<AUTO>"`), with nothing after it on
/// the line but a closing quote and a comment. py-orc reads it as "pick a model".
fn bare_model_tag(text: &str, line_from: usize, start: usize, end: usize) -> bool {
    if &text[start..end] != OPEN_BARE {
        return false;
    }
    let before = text[line_from..start].trim_end();
    let (before, quote) = match before.strip_suffix(['"', '\'']) {
        Some(b) => (b.trim_end(), &before[b.len()..]),
        None => (before, ""),
    };
    let Some(key) = before.strip_suffix(':') else {
        return false;
    };
    let key = key.trim().trim_start_matches('-').trim();
    let key = key.trim_matches(['"', '\'']);
    if key.is_empty()
        || !key.to_ascii_lowercase().contains("model")
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return false;
    }
    let line_end = text[end..]
        .find(['\n', '\r'])
        .map_or(text.len(), |n| end + n);
    let rest = text[end..line_end].trim_start();
    let rest = rest.strip_prefix(quote).unwrap_or(rest).trim_start();
    rest.is_empty() || rest.starts_with('#')
}

/// Moves a tag found in one line down to that line.
fn shift(tag: &mut Tag, lines: usize) {
    let lines = u32::try_from(lines).unwrap_or(u32::MAX);
    tag.pos.line = tag.pos.line.saturating_add(lines);
    for part in &mut tag.parts {
        if let Part::Tag(inner) = part {
            shift(inner, lines as usize);
        }
    }
}

/// The attributes of an opening tag and its length after `<AUTO`, through `>`.
fn open_tag(s: &str) -> Option<(usize, Vec<(String, String)>)> {
    let mut attributes = Vec::new();
    let mut i = 0;
    let bytes = s.as_bytes();
    loop {
        while bytes.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
            i += 1;
        }
        match bytes.get(i)? {
            b'>' => return Some((i + 1, attributes)),
            b if b.is_ascii_alphabetic() || *b == b'_' => {}
            _ => return None,
        }
        let name_from = i;
        while bytes
            .get(i)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
        {
            i += 1;
        }
        let name = &s[name_from..i];
        while bytes.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
            i += 1;
        }
        if bytes.get(i)? != &b'=' {
            return None;
        }
        i += 1;
        while bytes.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
            i += 1;
        }
        let quote = *bytes.get(i)?;
        if quote != b'"' && quote != b'\'' {
            return None;
        }
        let value_from = i + 1;
        let len = s[value_from..].find(quote as char)?;
        attributes.push((
            name.to_string(),
            s[value_from..value_from + len].to_string(),
        ));
        i = value_from + len + 1;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn protect(text: &str) -> (Protected<'_>, Diagnostics) {
        let mut d = Diagnostics::default();
        let p = Protected::new(text, &mut d);
        (p, d)
    }

    #[test]
    fn tags_are_swapped_and_nested_parts_kept() {
        let text = "a: <AUTO type=\"integer\">how many of <AUTO>x, y</AUTO>?</AUTO> b\n";
        let (p, d) = protect(text);
        assert!(d.0.is_empty(), "{d:?}");
        assert_eq!(p.tags.len(), 1);
        let tag = &p.tags[0];
        assert_eq!(tag.attributes, vec![("type".into(), "integer".into())]);
        assert_eq!(tag.open, "<AUTO type=\"integer\">");
        assert_eq!(tag.pos, Pos { line: 1, col: 4 });
        assert_eq!(tag.parts.len(), 3);
        assert!(
            matches!(&tag.parts[1], Part::Tag(t) if t.text == "<AUTO>x, y</AUTO>" && t.pos.col == 37)
        );
        assert!(!p.text.contains("AUTO"));
        assert_eq!(p.written(&p.text), text);
        let pieces = p.pieces(&p.text);
        assert!(matches!(pieces[1], Piece::Tag(t) if t == tag), "{pieces:?}");
    }

    #[test]
    fn positions_map_back_across_lines() {
        let text = "a: <AUTO>one,\ntwo</AUTO> x: 1\nb: [<AUTO>c</AUTO>, z]\n";
        let (p, _) = protect(text);
        // `x` follows the first placeholder on protected line 1.
        let line1 = p.text.lines().next().unwrap();
        let col = line1.chars().position(|c| c == 'x').unwrap() + 1;
        let got = p.original_pos(Pos {
            line: 1,
            col: col as u32,
        });
        assert_eq!(got, Pos { line: 2, col: 12 });
        let line2 = p.text.lines().nth(1).unwrap();
        let col = line2.chars().position(|c| c == 'z').unwrap() + 1;
        let got = p.original_pos(Pos {
            line: 2,
            col: col as u32,
        });
        assert_eq!(got, Pos { line: 3, col: 21 });
        // The placeholder itself maps to `<AUTO`.
        assert_eq!(
            p.original_pos(Pos { line: 1, col: 4 }),
            Pos { line: 1, col: 4 }
        );
    }

    #[test]
    fn unbalanced_and_malformed_tags_are_reported() {
        let (_, d) = protect("a: <AUTO>x\nb: y</AUTO></AUTO>\nc: <AUTO bad>z</AUTO>\n");
        let got: Vec<(Code, u32, u32)> =
            d.0.iter()
                .map(|d| (d.code, d.pos.line, d.pos.col))
                .collect();
        assert_eq!(
            got,
            vec![(Code::E020, 2, 12), (Code::E020, 3, 4), (Code::E020, 3, 15)]
        );
        let (_, d) = protect("a: <AUTO>x\n");
        assert_eq!(d.0[0].pos, Pos { line: 1, col: 4 });
        assert!(d.0[0].message.contains("never closed"));
    }

    #[test]
    fn a_lone_auto_in_a_model_field_is_a_whole_tag() {
        let text = "steps:\n  - parameters:\n      model: <AUTO>  # pick one\n      prompt: <AUTO>x</AUTO>\n  - requires_model: \"<AUTO>\"\n";
        let (p, d) = protect(text);
        assert!(d.0.is_empty(), "{d:?}");
        assert_eq!(p.tags.len(), 3);
        assert_eq!(p.tags[0].text, "<AUTO>");
        assert!(p.tags[0].parts.is_empty());
        assert_eq!(p.tags[0].pos, Pos { line: 3, col: 14 });
        assert_eq!(p.tags[1].text, "<AUTO>x</AUTO>");
        assert_eq!(p.tags[2].text, "<AUTO>");
        assert_eq!(p.written(&p.text), text);
        // Elsewhere, or with more on the line, it is still a tag left open.
        let (_, d) = protect("prompt: <AUTO>\n");
        assert!(d.0[0].message.contains("never closed"), "{d:?}");
        let (_, d) = protect("model: <AUTO> and more\n");
        assert!(d.0[0].message.contains("never closed"), "{d:?}");
    }

    #[test]
    fn comment_lines_and_lookalikes_are_not_tags() {
        let (p, d) = protect("# an <AUTO> tag\na: <AUTOMATIC> </AUTOX>\n");
        assert!(d.0.is_empty(), "{d:?}");
        assert!(p.tags.is_empty());
    }

    #[test]
    fn whole_tags_on_lines_that_start_with_a_hash_count() {
        // In a block scalar, `# …` is text: its tags are found, at their place.
        let text = "a: |\n  echo hi\n  # <AUTO>a <AUTO>b</AUTO></AUTO> and <AUTO>\n";
        let (p, d) = protect(text);
        assert!(d.0.is_empty(), "{d:?}");
        assert_eq!(p.tags.len(), 1);
        assert_eq!(p.tags[0].pos, Pos { line: 3, col: 5 });
        assert!(matches!(&p.tags[0].parts[1], Part::Tag(t) if t.pos == Pos { line: 3, col: 13 }));
        assert_eq!(p.written(&p.text), text);
    }
}
