//! The directory source: YAML and JSON files, multi-document, optionally recursive.

use serde_json::Value;

use super::budget::Budget;
use super::{Manifest, RenderError, RenderLimits, validate};
use crate::git::SourceFile;

/// Render a plain directory: every `.yaml`, `.yml` and `.json` file (in
/// subdirectories too when `recurse`), in path order, each YAML document one
/// manifest. Other files are ignored. YAML is read as Kubernetes reads it
/// (YAML 1.1 octals such as `defaultMode: 0644`), within one budget of nodes
/// and string bytes for all the files together, aliases expanded, so a
/// "billion laughs" fails instead of exhausting memory even when spread
/// over many files.
pub fn render(
    files: &[SourceFile],
    recurse: bool,
    limits: RenderLimits,
) -> Result<Vec<Manifest>, RenderError> {
    let mut selected: Vec<&SourceFile> = files
        .iter()
        .filter(|f| recurse || !f.path.contains('/'))
        .filter(|f| {
            let lower = f.path.to_ascii_lowercase();
            lower.ends_with(".yaml") || lower.ends_with(".yml") || lower.ends_with(".json")
        })
        .collect();
    selected.sort_by(|a, b| a.path.cmp(&b.path));

    let mut budget = Budget::new(limits);
    let mut documents = Vec::new();
    for file in selected {
        documents.extend(parse_file(file, limits, &mut budget)?);
        if documents.len() > limits.max_documents {
            return Err(RenderError::TooLarge {
                what: "the number of documents".to_owned(),
                limit: limits.max_documents,
            });
        }
    }
    validate(documents, limits)
}

/// The documents of one YAML or JSON file (empty documents skipped), each
/// named `path#index`, charged to the render's `budget`.
pub(crate) fn parse_file(
    file: &SourceFile,
    limits: RenderLimits,
    budget: &mut Budget,
) -> Result<Vec<(String, Value)>, RenderError> {
    if file.data.len() > limits.max_file_bytes {
        return Err(RenderError::TooLarge {
            what: format!("{} ({} bytes)", file.path, file.data.len()),
            limit: limits.max_file_bytes,
        });
    }
    let parse_error = |message: String| RenderError::Parse {
        file: file.path.clone(),
        message,
    };
    let text = std::str::from_utf8(&file.data).map_err(|e| parse_error(e.to_string()))?;
    let values: Vec<Value> = if file.path.to_ascii_lowercase().ends_with(".json") {
        // JSON has no aliases: the file's size bounds what it parses to.
        vec![serde_json::from_str(text).map_err(|e| parse_error(e.to_string()))?]
    } else {
        budget.parse_yaml(&file.path, text)?
    };
    budget.charge(&file.path, &values)?;
    Ok(values
        .into_iter()
        .enumerate()
        .filter(|(_, value)| !value.is_null())
        .map(|(index, value)| (format!("{}#{index}", file.path), value))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, data: &str) -> SourceFile {
        SourceFile {
            path: path.into(),
            data: data.as_bytes().to_vec(),
        }
    }

    #[test]
    fn real_world_directories_render() {
        let guestbook = render(
            &super::super::fixture_files("argocd-example-apps/guestbook", ""),
            false,
            RenderLimits::default(),
        )
        .unwrap();
        let kinds: Vec<&str> = guestbook.iter().map(Manifest::kind).collect();
        assert_eq!(kinds, ["Deployment", "Service"]);
        let sock_shop = render(
            &super::super::fixture_files("argocd-example-apps/sock-shop/base", ""),
            false,
            RenderLimits::default(),
        )
        .unwrap();
        assert_eq!(sock_shop.len(), 29);
        let hooks = render(
            &super::super::fixture_files("argocd-example-apps/helm-hooks", ""),
            false,
            RenderLimits::default(),
        )
        .unwrap();
        assert!(hooks.iter().any(|m| {
            m.generate_name() == "upgrade-sql-schema"
                && m.object
                    .pointer("/metadata/annotations/helm.sh~1hook")
                    .is_some()
        }));
    }

    #[test]
    fn documents_are_split_nulls_skipped_lists_flattened_and_octals_read_as_kubernetes_does() {
        let files = [
            file(
                "b.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n---\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\n",
            ),
            file(
                "a.json",
                r#"{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a1"}}]}"#,
            ),
            file(
                "c.yaml",
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {template: {spec: {volumes: [{name: v, secret: {defaultMode: 0644}}]}}}\n",
            ),
            file("README.md", "# not a manifest"),
            file(
                "sub/ignored.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\n",
            ),
        ];
        let manifests = render(&files, false, RenderLimits::default()).unwrap();
        let names: Vec<&str> = manifests.iter().map(Manifest::name).collect();
        assert_eq!(names, ["a1", "b", "s", "d"]);
        assert_eq!(manifests[1].source, "b.yaml#0");
        assert_eq!(
            manifests[3]
                .object
                .pointer("/spec/template/spec/volumes/0/secret/defaultMode"),
            Some(&serde_json::json!(420))
        );
        let recursive = render(&files, true, RenderLimits::default()).unwrap();
        assert!(recursive.iter().any(|m| m.name() == "deep"));
    }

    #[test]
    fn broken_sources_fail_the_whole_render_with_a_readable_error() {
        let ok = file(
            "ok.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n",
        );
        let cases: Vec<(SourceFile, &str)> = vec![
            (
                file("bad.yaml", "apiVersion: v1\nkind: [unclosed\n"),
                "bad.yaml: not valid YAML/JSON",
            ),
            (
                file("bad.json", "{\"apiVersion\": }"),
                "bad.json: not valid YAML/JSON",
            ),
            (
                file("scalar.yaml", "just a string\n"),
                "scalar.yaml#0: a manifest must be a mapping, found a string",
            ),
            (
                file("nokind.yaml", "apiVersion: v1\nmetadata: {name: x}\n"),
                "nokind.yaml#0: kind is required",
            ),
            (
                file(
                    "noname.yaml",
                    "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n",
                ),
                "noname.yaml#0: metadata.name is required",
            ),
            (
                file(
                    "dup.yaml",
                    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n",
                ),
                "/ConfigMap//ok is defined twice: in dup.yaml#0 and in ok.yaml#0",
            ),
            (
                file("bin.yaml", "\u{0}\u{1}garbage: ["),
                "bin.yaml: not valid YAML/JSON",
            ),
        ];
        for (bad, expected) in cases {
            let error = render(&[ok.clone(), bad], false, RenderLimits::default()).unwrap_err();
            assert!(
                error.to_string().contains(expected),
                "{error} lacks {expected}"
            );
        }
    }

    /// A valid custom resource whose spec expands, through five levels of
    /// ten aliases, to ~123,000 nodes: within serde-saphyr's bounds for one
    /// file (250,000 nodes), an eighth of the render's.
    fn laughing_thing(name: &str) -> SourceFile {
        let mut yaml = format!(
            "apiVersion: example.com/v1\nkind: Thing\nmetadata: {{name: {name}}}\nspec:\n  l0: &l0 [{}]\n",
            ["lol"; 10].join(", ")
        );
        for level in 1..5 {
            let previous = format!("*l{}", level - 1);
            yaml.push_str(&format!(
                "  l{level}: &l{level} [{}]\n",
                [previous.as_str(); 10].join(", ")
            ));
        }
        file(&format!("{name}.yaml"), &yaml)
    }

    #[test]
    fn a_billion_laughs_spread_over_many_files_hits_the_render_budget() {
        let one = render(&[laughing_thing("t0")], false, RenderLimits::default()).unwrap();
        assert_eq!(one[0].kind(), "Thing", "one file alone is a valid render");
        // Twelve of them: ~1.5 million nodes, each file within its own bounds.
        let files: Vec<SourceFile> = (0..12)
            .map(|i| laughing_thing(&format!("t{i:02}")))
            .collect();
        let error = render(&files, false, RenderLimits::default()).unwrap_err();
        assert!(
            matches!(
                &error,
                RenderError::TooLarge { what, limit: 1_000_000 } if what.contains("node count")
            ),
            "{error}"
        );
        // The file that crosses the line is named: the ninth (8 × ~123,000
        // nodes fit in 1,000,000).
        assert!(error.to_string().contains("t08.yaml"), "{error}");
    }

    #[test]
    fn alias_bombs_and_oversized_sets_are_refused() {
        let mut bomb =
            String::from("a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\n");
        for level in b'b'..=b'k' {
            let previous = char::from(level - 1);
            let name = char::from(level);
            bomb.push_str(&format!("{name}: &{name} [*{previous},*{previous},*{previous},*{previous},*{previous},*{previous},*{previous},*{previous},*{previous}]\n"));
        }
        let error =
            render(&[file("bomb.yaml", &bomb)], false, RenderLimits::default()).unwrap_err();
        assert!(matches!(error, RenderError::Parse { .. }), "{error}");

        let many: String = (0..20)
            .map(|i| format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}}}\n---\n"))
            .collect();
        let limits = RenderLimits {
            max_documents: 10,
            ..RenderLimits::default()
        };
        assert!(matches!(
            render(&[file("many.yaml", &many)], false, limits),
            Err(RenderError::TooLarge { .. })
        ));
    }
}
