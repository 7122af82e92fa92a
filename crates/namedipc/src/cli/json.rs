//! Just enough JSON to print the `--json` documents: values built in code,
//! written with two-space indentation. (Nothing here parses JSON.)
//!
//! Why not serde_json: the documents are only ever written, never read, and
//! this writer is about a hundred lines with its test. It escapes strings as
//! RFC 8259 asks, keeps members in the order docs/cli.md documents without a
//! map type, and writes times to the millisecond (`"since": 1795324203.600`)
//! as the versioned schema's examples show, where serde_json would write up
//! to seventeen digits and `5.0` for a whole number, changing the bytes of
//! every document. It would also be the core's first dependency beyond libc,
//! thiserror and (for the CLI) clap, bought for nothing parsed.

use std::fmt::{self, Write};

/// A JSON value.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Array(Vec<Json>),
    /// Members in the order given (the documented order).
    Object(Vec<(&'static str, Json)>),
}

impl From<bool> for Json {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

impl From<u32> for Json {
    fn from(value: u32) -> Self {
        Self::Int(i64::from(value))
    }
}

impl From<u64> for Json {
    // Beyond i64::MAX only as a float, rounded: no counter here gets there.
    #[allow(clippy::cast_precision_loss)]
    fn from(value: u64) -> Self {
        i64::try_from(value).map_or(Self::Float(value as f64), Self::Int)
    }
}

impl From<f64> for Json {
    fn from(value: f64) -> Self {
        Self::Float(value)
    }
}

impl From<&str> for Json {
    fn from(value: &str) -> Self {
        Self::Str(value.to_owned())
    }
}

impl From<String> for Json {
    fn from(value: String) -> Self {
        Self::Str(value)
    }
}

impl<T: Into<Json>> From<Option<T>> for Json {
    fn from(value: Option<T>) -> Self {
        value.map_or(Self::Null, Into::into)
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, 0)
    }
}

impl Json {
    fn write(&self, out: &mut impl Write, depth: usize) -> fmt::Result {
        let indent = |out: &mut dyn Write, depth: usize| write!(out, "\n{:1$}", "", depth * 2);
        match self {
            Self::Null => out.write_str("null"),
            Self::Bool(b) => write!(out, "{b}"),
            Self::Int(n) => write!(out, "{n}"),
            // JSON has no NaN or infinity; none is ever produced here.
            Self::Float(x) if !x.is_finite() => out.write_str("null"),
            // Three decimals: times in seconds, to the millisecond.
            Self::Float(x) => write!(out, "{x:.3}"),
            Self::Str(s) => write_string(out, s),
            Self::Array(items) if items.is_empty() => out.write_str("[]"),
            Self::Array(items) => {
                out.write_char('[')?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.write_char(',')?;
                    }
                    indent(out, depth + 1)?;
                    item.write(out, depth + 1)?;
                }
                indent(out, depth)?;
                out.write_char(']')
            }
            Self::Object(members) if members.is_empty() => out.write_str("{}"),
            Self::Object(members) => {
                out.write_char('{')?;
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.write_char(',')?;
                    }
                    indent(out, depth + 1)?;
                    write_string(out, key)?;
                    out.write_str(": ")?;
                    value.write(out, depth + 1)?;
                }
                indent(out, depth)?;
                out.write_char('}')
            }
        }
    }
}

fn write_string(out: &mut impl Write, s: &str) -> fmt::Result {
    out.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            // The other controls (DEL and C1 too) and the invisible
            // characters a terminal would act on: `\u` escapes, which every
            // JSON reader turns back into the same characters.
            c if super::show::needs_escape(c) => write!(out, "\\u{:04x}", u32::from(c))?,
            c => out.write_char(c)?,
        }
    }
    out.write_char('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_control_character_is_written_raw() {
        let doc = Json::from("/a\x1b[2J\x7f\u{9b}\u{202e}\u{2028}é");
        assert_eq!(
            doc.to_string(),
            "\"/a\\u001b[2J\\u007f\\u009b\\u202e\\u2028é\""
        );
    }

    #[test]
    fn values_are_written_as_json() {
        let doc = Json::Object(vec![
            ("name", "/a \"b\"\n\u{1}".into()),
            ("n", 3u32.into()),
            ("t", 1.5f64.into()),
            ("none", Json::from(None::<u32>)),
            ("list", Json::Array(vec![true.into(), Json::Array(vec![])])),
        ]);
        assert_eq!(
            doc.to_string(),
            "{\n  \"name\": \"/a \\\"b\\\"\\n\\u0001\",\n  \"n\": 3,\n  \"t\": 1.500,\n  \"none\": null,\n  \"list\": [\n    true,\n    []\n  ]\n}"
        );
    }
}
