//! The JSONPath subset CRD printer columns use, evaluated as the API
//! server's table convertor does: `.a.b`, `['a.b']`, `[0]`, `[*]` and
//! `[?(@.field=="value")]` (also `!=`), each step over every value the
//! previous one yielded.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Field(String),
    Index(usize),
    All,
    Filter {
        path: Vec<String>,
        equal: bool,
        value: String,
    },
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath(Vec<Step>);

impl JsonPath {
    /// Parse `path` (with or without kubectl's `{…}` braces); `None` for
    /// what this subset does not read.
    pub fn parse(path: &str) -> Option<Self> {
        let path = path.trim();
        let path = path
            .strip_prefix('{')
            .and_then(|p| p.strip_suffix('}'))
            .unwrap_or(path);
        let mut rest = path.strip_prefix('$').unwrap_or(path);
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('.') {
                let end = after.find(['.', '[']).unwrap_or(after.len());
                if end == 0 {
                    return None;
                }
                steps.push(Step::Field(after[..end].to_owned()));
                rest = &after[end..];
            } else if let Some(after) = rest.strip_prefix('[') {
                let end = closing(after)?;
                steps.push(bracket(&after[..end])?);
                rest = &after[end + 1..];
            } else {
                return None;
            }
        }
        Some(Self(steps))
    }

    /// Every value the path reaches in `object`.
    pub fn find<'a>(&self, object: &'a Value) -> Vec<&'a Value> {
        let mut current = vec![object];
        for step in &self.0 {
            let mut next = Vec::new();
            for value in current {
                match step {
                    Step::Field(name) => next.extend(value.get(name.as_str())),
                    Step::Index(i) => next.extend(value.get(*i)),
                    Step::All => match value {
                        Value::Array(items) => next.extend(items),
                        Value::Object(fields) => next.extend(fields.values()),
                        _ => {}
                    },
                    Step::Filter {
                        path,
                        equal,
                        value: wanted,
                    } => {
                        let Value::Array(items) = value else { continue };
                        next.extend(items.iter().filter(|item| {
                            let found = path.iter().try_fold(*item, |v, f| v.get(f.as_str()));
                            let text = found.map(|v| match v {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            });
                            (text.as_deref() == Some(wanted.as_str())) == *equal
                        }));
                    }
                }
            }
            current = next;
        }
        current
    }
}

/// The index of the `]` closing a bracket whose content starts `text`
/// (quotes respected).
fn closing(text: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ']') => return Some(i),
            _ => {}
        }
    }
    None
}

fn unquote(text: &str) -> Option<&str> {
    let text = text.trim();
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .or_else(|| text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')))
}

fn bracket(inner: &str) -> Option<Step> {
    let inner = inner.trim();
    if inner == "*" {
        return Some(Step::All);
    }
    if let Ok(index) = inner.parse() {
        return Some(Step::Index(index));
    }
    if let Some(name) = unquote(inner) {
        return Some(Step::Field(name.to_owned()));
    }
    let condition = inner.strip_prefix("?(")?.strip_suffix(')')?.trim();
    let (left, right, equal) = match condition.split_once("==") {
        Some((l, r)) => (l, r, true),
        None => {
            let (l, r) = condition.split_once("!=")?;
            (l, r, false)
        }
    };
    let path = left
        .trim()
        .strip_prefix("@.")?
        .split('.')
        .map(str::to_owned)
        .collect();
    let value = unquote(right).map_or_else(|| right.trim().to_owned(), str::to_owned);
    Some(Step::Filter { path, equal, value })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn printer_column_paths_read_as_the_api_server_reads_them() {
        let object = json!({
            "metadata": {"name": "web", "labels": {"app.kubernetes.io/name": "web"}},
            "spec": {"ports": [{"port": 80}, {"port": 443}]},
            "status": {"conditions": [
                {"type": "Reconciling", "status": "True", "message": "rolling"},
                {"type": "Ready", "status": "False", "message": "progressing"},
            ]},
        });
        let find = |path: &str| -> Vec<Value> {
            JsonPath::parse(path)
                .unwrap()
                .find(&object)
                .into_iter()
                .cloned()
                .collect()
        };
        assert_eq!(find(".metadata.name"), [json!("web")]);
        assert_eq!(find("{.metadata.name}"), [json!("web")]);
        assert_eq!(
            find(".metadata.labels['app.kubernetes.io/name']"),
            [json!("web")]
        );
        assert_eq!(find(".spec.ports[1].port"), [json!(443)]);
        assert_eq!(find(".spec.ports[*].port"), [json!(80), json!(443)]);
        assert_eq!(
            find(r#".status.conditions[?(@.type=="Ready")].message"#),
            [json!("progressing")]
        );
        assert_eq!(
            find(r#".status.conditions[?(@.type!="Ready")].status"#),
            [json!("True")]
        );
        assert!(find(".status.missing").is_empty());
        for unreadable in ["status", ".a[", ".a..b", ".a[?(@.x>1)]"] {
            assert_eq!(JsonPath::parse(unreadable), None, "{unreadable}");
        }
    }
}
