//! One render's budget of nodes and string bytes, aliases expanded: every
//! file of a directory, or a tool's whole output, draws on the same account.
//!
//! serde-saphyr bounds each parse on its own (250,000 nodes and 64 MiB of
//! scalars, aliases expanded), which left a directory of 5,000 files free
//! to expand to 5,000 times that. Here each parse runs with those bounds
//! lowered to what is left of the render's, so even the file that crosses
//! the line stops while it is parsed, before its values exist; the values
//! it produced are then counted and charged. (serde-saphyr also counts the
//! text of numbers and tags, and merge keys before they merge, so on the
//! file that crosses it may stop a little before this count would.)

use serde_json::Value;
use serde_saphyr::budget::BudgetBreach;

use super::{RenderError, RenderLimits};

/// Estimated heap bytes per node of a parsed manifest, strings aside: the
/// `Value` itself and, serde_json's maps being B-trees, the map node share
/// (a leaf holds room for eleven entries, however few a mapping has).
/// Measured with a counting allocator: sock-shop 145, guestbook 163,
/// podinfo 118, this project's CRDs 96 bytes per node besides the text of
/// its strings.
const NODE_BYTES: usize = 128;

/// The nodes and string bytes parsed values hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Footprint {
    /// One per value and one per mapping key.
    pub nodes: usize,
    /// The bytes of every string value and mapping key.
    pub string_bytes: usize,
}

impl Footprint {
    /// Of `value`, walked without recursion.
    pub(crate) fn of(value: &Value) -> Self {
        let mut footprint = Self::default();
        let mut stack = vec![value];
        while let Some(value) = stack.pop() {
            footprint.nodes += 1;
            match value {
                Value::String(text) => footprint.string_bytes += text.len(),
                Value::Array(items) => stack.extend(items),
                Value::Object(map) => {
                    for (key, item) in map {
                        footprint.nodes += 1;
                        footprint.string_bytes += key.len();
                        stack.push(item);
                    }
                }
                Value::Null | Value::Bool(_) | Value::Number(_) => {}
            }
        }
        footprint
    }

    /// An estimate of the heap the values take (what the render cache counts).
    pub(crate) fn heap_bytes(self) -> usize {
        self.nodes
            .saturating_mul(NODE_BYTES)
            .saturating_add(self.string_bytes)
    }
}

/// What one render has spent so far.
#[derive(Debug)]
pub(crate) struct Budget {
    limits: RenderLimits,
    spent: Footprint,
}

impl Budget {
    /// A fresh account for one render.
    pub(crate) fn new(limits: RenderLimits) -> Self {
        Self {
            limits,
            spent: Footprint::default(),
        }
    }

    fn left(&self) -> Footprint {
        Footprint {
            nodes: self.limits.max_nodes.saturating_sub(self.spent.nodes),
            string_bytes: self
                .limits
                .max_scalar_bytes
                .saturating_sub(self.spent.string_bytes),
        }
    }

    /// The YAML documents of `text` (the file `file`), parsed as Kubernetes
    /// reads YAML (1.1 octals such as `defaultMode: 0644`) within what is left
    /// of the budget. Not charged yet: see [`Self::charge`].
    pub(crate) fn parse_yaml(&self, file: &str, text: &str) -> Result<Vec<Value>, RenderError> {
        let left = self.left();
        let mut budget = serde_saphyr::Budget::default();
        // Lowered, never raised: serde-saphyr's own bounds per parse stay.
        let nodes_lowered = left.nodes < budget.max_nodes;
        budget.max_nodes = budget.max_nodes.min(left.nodes);
        let bytes_lowered = left.string_bytes < budget.max_total_scalar_bytes;
        budget.max_total_scalar_bytes = budget.max_total_scalar_bytes.min(left.string_bytes);
        let options = serde_saphyr::options! {
            legacy_octal_numbers: true,
            budget: Some(budget),
        };
        serde_saphyr::from_multiple_with_options(text, options).map_err(|error| {
            // A breach of a bound we lowered is the render's budget running
            // out, not a broken file.
            match innermost(&error) {
                serde_saphyr::Error::Budget {
                    breach: BudgetBreach::Nodes { .. },
                    ..
                } if nodes_lowered => self.too_many_nodes(file),
                serde_saphyr::Error::Budget {
                    breach: BudgetBreach::ScalarBytes { .. },
                    ..
                } if bytes_lowered => self.too_many_bytes(file),
                _ => RenderError::Parse {
                    file: file.to_owned(),
                    message: error.to_string(),
                },
            }
        })
    }

    /// Charge the values parsed from `file`; `TooLarge` once the render is
    /// over either bound.
    pub(crate) fn charge(&mut self, file: &str, values: &[Value]) -> Result<(), RenderError> {
        for value in values {
            let footprint = Footprint::of(value);
            self.spent.nodes = self.spent.nodes.saturating_add(footprint.nodes);
            self.spent.string_bytes = self
                .spent
                .string_bytes
                .saturating_add(footprint.string_bytes);
        }
        if self.spent.nodes > self.limits.max_nodes {
            return Err(self.too_many_nodes(file));
        }
        if self.spent.string_bytes > self.limits.max_scalar_bytes {
            return Err(self.too_many_bytes(file));
        }
        Ok(())
    }

    fn too_many_nodes(&self, file: &str) -> RenderError {
        RenderError::TooLarge {
            what: format!("the node count of the render (aliases expanded), reached in {file},"),
            limit: self.limits.max_nodes,
        }
    }

    fn too_many_bytes(&self, file: &str) -> RenderError {
        RenderError::TooLarge {
            what: format!(
                "the bytes of the render's strings and keys (aliases expanded), reached in {file},"
            ),
            limit: self.limits.max_scalar_bytes,
        }
    }
}

/// The error beneath serde-saphyr's wrappers (alias locations, snippets).
fn innermost(mut error: &serde_saphyr::Error) -> &serde_saphyr::Error {
    loop {
        match error {
            serde_saphyr::Error::AliasError { error: inner, .. }
            | serde_saphyr::Error::WithSnippet { error: inner, .. } => error = inner,
            _ => return error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footprints_count_values_keys_and_string_bytes() {
        let value = serde_json::json!({"ab": ["xyz", 1, null, {"c": true}]});
        // The map, "ab", the list, its four items (one the inner map), "c",
        // true.
        assert_eq!(
            Footprint::of(&value),
            Footprint {
                nodes: 9,
                string_bytes: 6
            }
        );
    }

    #[test]
    fn the_budget_spans_files_and_a_lowered_bound_reads_as_too_large() {
        let limits = RenderLimits {
            max_nodes: 100,
            ..RenderLimits::default()
        };
        let mut budget = Budget::new(limits);
        let text = "a: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]\n";
        for file in ["one.yaml", "two.yaml", "three.yaml", "four.yaml"] {
            let values = budget.parse_yaml(file, text).unwrap();
            budget.charge(file, &values).unwrap();
        }
        // 4 × 23 nodes spent; the fifth file stops while it is parsed.
        let error = budget.parse_yaml("five.yaml", text).unwrap_err();
        assert!(
            matches!(&error, RenderError::TooLarge { limit: 100, what } if what.contains("five.yaml")),
            "{error}"
        );
        // So does a file past the string bytes left.
        let budget = Budget::new(RenderLimits {
            max_scalar_bytes: 10,
            ..RenderLimits::default()
        });
        let error = budget
            .parse_yaml("long.yaml", "a: 0123456789abc\n")
            .unwrap_err();
        assert!(
            matches!(&error, RenderError::TooLarge { limit: 10, what } if what.contains("long.yaml")),
            "{error}"
        );
        // A broken file is still a parse error.
        let error = budget.parse_yaml("bad.yaml", "a: [unclosed\n").unwrap_err();
        assert!(matches!(error, RenderError::Parse { .. }), "{error}");
        // Values parsed without serde-saphyr (JSON) are charged after.
        let mut budget = Budget::new(RenderLimits {
            max_nodes: 3,
            ..RenderLimits::default()
        });
        let error = budget
            .charge("list.json", &[serde_json::json!([1, 2, 3])])
            .unwrap_err();
        assert!(
            matches!(&error, RenderError::TooLarge { limit: 3, what } if what.contains("list.json")),
            "{error}"
        );
    }
}
