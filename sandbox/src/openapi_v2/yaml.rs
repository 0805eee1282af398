//! Vendor extension and default values as gnostic carries them: YAML text
//! in `Any.yaml`, written so that the YAML 1.1 reader kubectl uses
//! (go.yaml.in/yaml/v2) reads back the same JSON value.

use serde_json::Value;

use super::Object;

/// `value` as a block-style YAML document ending in a newline, like
/// gnostic's `compiler.Marshal`: `- group: ""\n  kind: Pod\n  version: v1\n`.
pub(super) fn yaml_text(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => yaml_map(&mut out, map, 0, false),
        Value::Array(items) if !items.is_empty() => yaml_seq(&mut out, items, 0, false),
        other => {
            out.push_str(&yaml_scalar(other));
            out.push('\n');
        }
    }
    out
}

/// Libyaml-based readers (yaml.v2) refuse implicit keys this long or longer.
pub(super) const LONG_KEY: usize = 1000;

/// A block mapping at `indent`; with `inline_first` its first key continues
/// the current line (after a sequence's `- `).
fn yaml_map(out: &mut String, map: &Object, indent: usize, inline_first: bool) {
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 || !inline_first {
            push_indent(out, indent);
        }
        let key = yaml_string(key);
        if key.chars().count() >= LONG_KEY {
            out.push_str("? ");
            out.push_str(&key);
            out.push('\n');
            push_indent(out, indent);
        } else {
            out.push_str(&key);
        }
        out.push(':');
        match value {
            Value::Object(inner) if !inner.is_empty() => {
                out.push('\n');
                yaml_map(out, inner, indent + 2, false);
            }
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                yaml_seq(out, items, indent + 2, false);
            }
            scalar => {
                out.push(' ');
                out.push_str(&yaml_scalar(scalar));
                out.push('\n');
            }
        }
    }
}

/// A block sequence at `indent`; `inline_first` as for [`yaml_map`].
fn yaml_seq(out: &mut String, items: &[Value], indent: usize, inline_first: bool) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 || !inline_first {
            push_indent(out, indent);
        }
        out.push_str("- ");
        match item {
            Value::Object(inner) if !inner.is_empty() => yaml_map(out, inner, indent + 2, true),
            Value::Array(inner) if !inner.is_empty() => yaml_seq(out, inner, indent + 2, true),
            scalar => {
                out.push_str(&yaml_scalar(scalar));
                out.push('\n');
            }
        }
    }
}

fn push_indent(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// A scalar, or an empty collection in flow style.
fn yaml_scalar(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => yaml_number(&n.to_string()),
        Value::String(s) => yaml_string(s),
        Value::Array(_) => "[]".to_owned(),
        Value::Object(_) => "{}".to_owned(),
    }
}

/// A JSON number as YAML 1.1 (go.yaml.in/yaml/v2, PyYAML) also reads it:
/// an exponent needs a fraction and a signed power there (`1.0e+300`).
fn yaml_number(text: &str) -> String {
    let Some((mantissa, power)) = text.split_once(['e', 'E']) else {
        return text.to_owned();
    };
    let fraction = if mantissa.contains('.') { "" } else { ".0" };
    let sign = if power.starts_with(['+', '-']) {
        ""
    } else {
        "+"
    };
    format!("{mantissa}{fraction}e{sign}{power}")
}

/// A string plain when no YAML 1.1 or 1.2 reader could take it for anything
/// else (`Pod`, `v1`, `io.k8s.api.core.v1.Pod`), double-quoted otherwise.
fn yaml_string(s: &str) -> String {
    if plain_is_safe(s) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Controls and the characters YAML 1.1 takes as line breaks or
            // refuses as unprintable; all of them are in the BMP.
            c if c < ' '
                || ('\u{7f}'..='\u{9f}').contains(&c)
                || matches!(
                    c,
                    '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
                ) =>
            {
                out.push_str(&format!("\\u{:04X}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether `s` reads back as the same string when written plain: it starts
/// with a letter, `_` or `/`, holds only letters, digits, `_-./` and inner
/// spaces, and is none of YAML 1.1's booleans or nulls.
fn plain_is_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    let words = ["y", "n", "yes", "no", "true", "false", "on", "off", "null"];
    (first.is_ascii_alphabetic() || first == '_' || first == '/')
        && !s.ends_with(' ')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ' '))
        && !words.iter().any(|w| s.eq_ignore_ascii_case(w))
}
