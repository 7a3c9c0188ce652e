//! Order-preserving JSON helpers.
//!
//! The workspace builds `serde_json` without `preserve_order`, so a `Value` round trip would sort
//! every record's keys. Records are therefore kept as raw text and only ever *spliced*: members
//! are listed in document order with their values left as raw text.

use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The top-level members of a JSON object, in document order; `None` if `raw` is not an object.
pub fn object_members(raw: &RawValue) -> Option<Vec<(String, &RawValue)>> {
    let mut deserializer = serde_json::Deserializer::from_str(raw.get());
    deserializer.deserialize_map(MembersVisitor).ok()
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Vec<(String, &'de RawValue)>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, &'de RawValue>()? {
            members.push((key, value));
        }
        Ok(members)
    }
}

/// Appends `s` as a JSON string literal.
pub fn push_string(buf: &mut String, s: &str) {
    buf.push('"');
    for c in s.chars() {
        match c {
            '"' => buf.push_str("\\\""),
            '\\' => buf.push_str("\\\\"),
            '\n' => buf.push_str("\\n"),
            '\r' => buf.push_str("\\r"),
            '\t' => buf.push_str("\\t"),
            c if u32::from(c) < 0x20 => buf.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => buf.push(c),
        }
    }
    buf.push('"');
}

/// `s` as a JSON string literal.
pub fn string(s: &str) -> String {
    let mut buf = String::with_capacity(s.len() + 2);
    push_string(&mut buf, s);
    buf
}

/// Writes a JSON object member by member, in the order given.
#[derive(Debug)]
pub struct ObjectWriter {
    buf: String,
    empty: bool,
}

impl Default for ObjectWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl ObjectWriter {
    pub fn new() -> Self {
        ObjectWriter {
            buf: String::from("{"),
            empty: true,
        }
    }

    fn key(&mut self, key: &str) {
        if !self.empty {
            self.buf.push(',');
        }
        self.empty = false;
        push_string(&mut self.buf, key);
        self.buf.push(':');
    }

    /// A member whose value is already JSON text.
    pub fn raw(mut self, key: &str, json: &str) -> Self {
        self.key(key);
        self.buf.push_str(json);
        self
    }

    pub fn str(mut self, key: &str, value: &str) -> Self {
        self.key(key);
        push_string(&mut self.buf, value);
        self
    }

    pub fn opt_str(self, key: &str, value: Option<&str>) -> Self {
        match value {
            Some(v) => self.str(key, v),
            None => self.raw(key, "null"),
        }
    }

    pub fn num(self, key: &str, value: i64) -> Self {
        let text = value.to_string();
        self.raw(key, &text)
    }

    pub fn strings(self, key: &str, values: &[String]) -> Self {
        let items: Vec<String> = values.iter().map(|v| string(v)).collect();
        let text = format!("[{}]", items.join(","));
        self.raw(key, &text)
    }

    pub fn finish(mut self) -> String {
        self.buf.push('}');
        self.buf
    }
}

/// Rebuilds an object from members (keys re-escaped, values verbatim).
fn write_members<'a>(members: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut writer = ObjectWriter::new();
    for (key, value) in members {
        writer = writer.raw(key, value);
    }
    writer.finish()
}

/// Keeps only the members for which `keep` says yes, in their original order. Returns `None`
/// when `raw` is not an object (such a record is served untouched).
///
/// A wrapped entity `{"value": {...}}` without an `id` (a shape some beta pages show, and one
/// the dumps contain) is filtered *inside* the wrapper, so the client still sees the wrapper.
pub fn select_members(raw: &RawValue, keep: &dyn Fn(&str) -> bool) -> Option<String> {
    let members = object_members(raw)?;
    if let Some(inner) = wrapped_entity(&members) {
        let filtered = select_members(inner, keep)?;
        return Some(write_members(members.iter().map(|(k, v)| {
            if k == "value" {
                (k.as_str(), filtered.as_str())
            } else {
                (k.as_str(), v.get())
            }
        })));
    }
    Some(write_members(
        members
            .iter()
            .filter(|(k, _)| keep(k))
            .map(|(k, v)| (k.as_str(), v.get())),
    ))
}

/// `raw` with the value of member `key` replaced by `json`, in its place; the other members
/// keep their order and their values verbatim. `None` when `raw` is not an object or has no such member.
pub fn replace_member(raw: &RawValue, key: &str, json: &str) -> Option<String> {
    let members = object_members(raw)?;
    members.iter().any(|(k, _)| k == key).then(|| {
        write_members(members.iter().map(|(k, v)| {
            if k == key {
                (k.as_str(), json)
            } else {
                (k.as_str(), v.get())
            }
        }))
    })
}

/// The inner object of a `{"value": {...}}` wrapper that has no `id` of its own.
pub fn wrapped_entity<'a>(members: &[(String, &'a RawValue)]) -> Option<&'a RawValue> {
    if members.iter().any(|(k, _)| k == "id") {
        return None;
    }
    let (_, value) = members.iter().find(|(k, _)| k == "value")?;
    value.get().starts_with('{').then_some(*value)
}

/// `raw` with `"@odata.context": context` as its first member, unless it already has one or is
/// not an object. The rest of the text is left byte for byte.
pub fn with_context(text: &str, context: &str) -> String {
    let Some(rest) = text.strip_prefix('{') else {
        return text.to_owned();
    };
    let has_context = serde_json::from_str::<&RawValue>(text)
        .ok()
        .and_then(object_members)
        .map(|members| members.iter().any(|(k, _)| k == "@odata.context"))
        .unwrap_or(true);
    if has_context {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + context.len() + 24);
    out.push_str("{\"@odata.context\":");
    push_string(&mut out, context);
    if !rest.trim_start().starts_with('}') {
        out.push(',');
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)] // a failing test should panic
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).expect("test JSON")
    }

    #[test]
    fn members_keep_document_order() {
        let r = raw(r#"{"z":1,"a":{"x":[1, 2]},"m":"s"}"#);
        let members = object_members(&r).expect("object");
        let keys: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["z", "a", "m"]);
        assert_eq!(members[1].1.get(), r#"{"x":[1, 2]}"#);
        assert!(object_members(&raw("[1]")).is_none());
        assert!(object_members(&raw("42")).is_none());
    }

    #[test]
    fn select_keeps_order_and_wrapped_entities() {
        let r =
            raw(r##"{"@odata.type":"#t","id":"1","source":"microsoft","artifact":{"id":"h"}}"##);
        let out = select_members(&r, &|k| k == "id" || k.starts_with('@')).expect("object");
        assert_eq!(out, r##"{"@odata.type":"#t","id":"1"}"##);
        let wrapped = raw(r#"{"value":{"id":"p","kind":"actor","title":"T"}}"#);
        let out = select_members(&wrapped, &|k| k == "id").expect("object");
        assert_eq!(out, r#"{"value":{"id":"p"}}"#);
        assert!(select_members(&raw("\"x\""), &|_| true).is_none());
    }

    #[test]
    fn context_is_prepended_once() {
        assert_eq!(
            with_context(r#"{"id":"x"}"#, "c"),
            r#"{"@odata.context":"c","id":"x"}"#
        );
        assert_eq!(with_context("{}", "c"), r#"{"@odata.context":"c"}"#);
        assert_eq!(
            with_context(r#"{"@odata.context":"old","id":1}"#, "c"),
            r#"{"@odata.context":"old","id":1}"#
        );
        assert_eq!(with_context("[1]", "c"), "[1]");
    }

    #[test]
    fn writer_escapes() {
        let out = ObjectWriter::new()
            .str("a", "q\"\\\r\n\u{1}")
            .num("n", -3)
            .opt_str("z", None)
            .strings("l", &["x".into()])
            .finish();
        let parsed: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
        assert_eq!(parsed["a"], "q\"\\\r\n\u{1}");
        assert_eq!(out, r#"{"a":"q\"\\\r\n\u0001","n":-3,"z":null,"l":["x"]}"#);
    }
}
