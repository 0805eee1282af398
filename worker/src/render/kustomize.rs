//! Kustomize: `kubectl kustomize` on a materialised copy of the repository.
//!
//! Only the repository is read: kustomizations may refer to other directories
//! of the repository (`../../bases/backend`), but remote resources (URLs, git
//! repositories) are refused before kustomize runs, and kustomize's default
//! load restrictor keeps files inside each kustomization root.

use std::path::Path;
use std::time::Duration;

use super::{Manifest, RenderError, RenderLimits};
use crate::git::SourceFile;
use serde_json::Value;

/// File names kustomize reads as a kustomization.
pub const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Settings from the Application's `source.kustomize`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Prefix added to every resource name.
    pub name_prefix: Option<String>,
}

fn is_kustomization(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    KUSTOMIZATION_FILES.contains(&name)
}

/// Fields whose entries name files or directories kustomize loads.
const REFERENCE_FIELDS: [&str; 9] = [
    "resources",
    "bases",
    "components",
    "crds",
    "configurations",
    "patchesStrategicMerge",
    "generators",
    "transformers",
    "validators",
];

/// Refuse a kustomization tree that could reach outside the repository.
/// Starting at the kustomization in `path` and following every directory it
/// references, each kustomization reached must be one YAML mapping whose
/// keys are distinct whatever their case (kustomize reads keys
/// case-insensitively: `Resources:` is `resources:`); every reference must
/// be a relative path that resolves to a file or directory of the
/// repository (so `GitHub.com/org/repo`, `github.com:org/repo` and
/// `user@host:org/repo.git` are refused: nothing of that name is in the
/// repository, whatever the spelling); an inline entry (YAML text in the
/// list) is allowed but, like every other string, may not be a URL;
/// inline generator, transformer or validator mappings (plugins) and
/// `helmCharts` are refused. Kustomizations the tree does not reach are
/// not read: a broken example elsewhere in the repository is not this
/// Application's concern.
fn check(files: &[SourceFile], path: &str) -> Result<(), RenderError> {
    let exists = |path: &str| {
        path.is_empty()
            || files.iter().any(|f| {
                f.path == path
                    || f.path
                        .strip_prefix(path)
                        .is_some_and(|rest| rest.starts_with('/'))
            })
    };
    let kustomization_in = |dir: &str| {
        files.iter().find(|f| {
            is_kustomization(&f.path) && f.path.rsplit_once('/').map_or("", |(d, _)| d) == dir
        })
    };
    let mut pending = vec![crate::paths::normalise(path).unwrap_or_default()];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(dir) = pending.pop() {
        if !seen.insert(dir.clone()) {
            continue;
        }
        // A directory without a kustomization is read as plain files by
        // kustomize (or refused by it); nothing of ours to follow.
        let Some(file) = kustomization_in(&dir) else {
            continue;
        };
        for reference in check_one(file, &exists)? {
            pending.push(reference);
        }
    }
    Ok(())
}

/// Check one kustomization; the repository paths it references.
fn check_one(
    file: &SourceFile,
    exists: &impl Fn(&str) -> bool,
) -> Result<Vec<String>, RenderError> {
    let forbidden = |reason: String| RenderError::Forbidden {
        file: file.path.clone(),
        reason,
    };
    let text =
        std::str::from_utf8(&file.data).map_err(|_| forbidden("not UTF-8 text".to_owned()))?;
    let kustomization: Value = serde_saphyr::from_str(text)
        .map_err(|e| forbidden(format!("cannot be read as one YAML document: {e}")))?;
    let Some(fields) = kustomization.as_object() else {
        return Err(forbidden("is not a YAML mapping".to_owned()));
    };
    let mut keys = std::collections::BTreeMap::new();
    for key in fields.keys() {
        if let Some(other) = keys.insert(key.to_ascii_lowercase(), key) {
            return Err(forbidden(format!(
                "keys {other:?} and {key:?} are the same key to kustomize"
            )));
        }
    }
    if let Some(url) = find_url(&kustomization) {
        return Err(forbidden(format!(
            "{url:?} is remote; only the repository's own files are rendered"
        )));
    }
    let field = |name: &str| {
        fields
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    };
    if field("helmCharts").is_some() || field("helmGlobals").is_some() {
        return Err(forbidden(
            "helmCharts in a kustomization pull charts from the network; use a Helm source"
                .to_owned(),
        ));
    }
    let dir = file.path.rsplit_once('/').map_or("", |(dir, _)| dir);
    let mut references = Vec::new();
    for name in REFERENCE_FIELDS {
        let entries = match field(name) {
            None | Some(Value::Null) => continue,
            Some(Value::Array(entries)) => entries,
            Some(_) => return Err(forbidden(format!("{name} must be a list"))),
        };
        for entry in entries {
            let Some(reference) = entry.as_str() else {
                if matches!(name, "generators" | "transformers" | "validators") {
                    return Err(forbidden(format!(
                        "inline {name} configurations (plugins) are not rendered; reference a file of the repository"
                    )));
                }
                continue;
            };
            // Inline YAML (a patch, a builtin transformer's configuration):
            // no reference to follow, and already scanned for URLs above.
            if reference.contains('\n') {
                continue;
            }
            if reference.starts_with('/') {
                return Err(forbidden(format!(
                    "{name} entry {reference:?} is an absolute path"
                )));
            }
            match crate::paths::normalise(&format!("{dir}/{reference}")) {
                Some(resolved) if exists(&resolved) => references.push(resolved),
                _ => {
                    return Err(forbidden(format!(
                        "{name} entry {reference:?} is not a file or directory of the repository; only the repository's own files are rendered"
                    )));
                }
            }
        }
    }
    Ok(references)
}

/// The first string in `value` that is a URL (has a scheme).
fn find_url(value: &Value) -> Option<&str> {
    match value {
        Value::String(text) => text.contains("://").then_some(text.as_str()),
        Value::Array(items) => items.iter().find_map(find_url),
        Value::Object(map) => map.values().find_map(find_url),
        _ => None,
    }
}

/// Render the kustomization at `path` of a repository whose files are `repo`.
pub async fn render(
    kubectl: &Path,
    repo: &[SourceFile],
    path: &str,
    options: &Options,
    timeout: Duration,
    limits: RenderLimits,
) -> Result<Vec<Manifest>, RenderError> {
    check(repo, path)?;
    let dir = tempfile::tempdir().map_err(|source| RenderError::ToolUnavailable {
        tool: "kustomize",
        source,
    })?;
    let root = dir.path().join("repo");
    super::tool::materialise(repo, &root, "kustomize")?;
    let path = path.trim_matches('/');
    let mut target = if path.is_empty() || path == "." {
        root.clone()
    } else {
        root.join(path)
    };
    if !KUSTOMIZATION_FILES
        .iter()
        .any(|name| target.join(name).is_file())
    {
        return Err(RenderError::Tool {
            tool: "kustomize",
            message: format!("no kustomization file in {path:?}"),
        });
    }
    if let Some(prefix) = &options.name_prefix {
        // An overlay of our own, as `kustomize edit set nameprefix` would write.
        let overlay = dir.path().join("overlay");
        let relative = format!("../repo/{path}");
        std::fs::create_dir_all(&overlay).map_err(|source| RenderError::ToolUnavailable {
            tool: "kustomize",
            source,
        })?;
        let kustomization = serde_json::json!({"resources": [relative], "namePrefix": prefix});
        std::fs::write(
            overlay.join("kustomization.yaml"),
            kustomization.to_string(),
        )
        .map_err(|source| RenderError::ToolUnavailable {
            tool: "kustomize",
            source,
        })?;
        target = overlay;
    }
    let mut command = super::tool::command(kubectl, dir.path());
    // No network, whatever the checks above missed: proxies that answer
    // nothing for HTTP(S) (set for every tool), and git may use no protocol
    // at all. No plugin flags are ever passed. The target is an absolute
    // path of ours, and still goes after `--`.
    command
        .env("GIT_ALLOW_PROTOCOL", "")
        .env("GIT_TERMINAL_PROMPT", "0")
        .arg("kustomize")
        .arg("--")
        .arg(&target);
    super::tool::run(command, "kustomize", timeout, limits).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Render with `kubectl` (a program name or path) and default limits.
    async fn kustomize(
        kubectl: &str,
        repo: &[SourceFile],
        path: &str,
        options: &Options,
    ) -> Result<Vec<Manifest>, RenderError> {
        render(
            Path::new(kubectl),
            repo,
            path,
            options,
            TIMEOUT,
            RenderLimits::default(),
        )
        .await
    }

    const TIMEOUT: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn overlays_reach_their_bases_in_the_repository() {
        let repo = super::super::fixture_files("podinfo/deploy", "deploy/");
        let manifests = kustomize("kubectl", &repo, "deploy/overlays/dev", &Options::default())
            .await
            .unwrap();
        assert!(
            manifests
                .iter()
                .any(|m| m.kind() == "Namespace" && m.name() == "dev")
        );
        assert!(
            manifests
                .iter()
                .filter(|m| m.kind() == "Deployment")
                .all(|m| m.namespace() == Some("dev"))
        );
    }

    #[tokio::test]
    async fn the_argo_cd_kustomize_example_renders_with_and_without_a_prefix() {
        let repo = super::super::fixture_files("argocd-example-apps/kustomize-guestbook", "app/");
        let plain = kustomize("kubectl", &repo, "app", &Options::default())
            .await
            .unwrap();
        let names: Vec<&str> = plain.iter().map(Manifest::name).collect();
        assert!(
            names.iter().all(|n| n.starts_with("kustomize-")),
            "{names:?}"
        );
        let prefixed = Options {
            name_prefix: Some("team-".into()),
        };
        let renamed = kustomize("kubectl", &repo, "app", &prefixed).await.unwrap();
        assert!(
            renamed
                .iter()
                .all(|m| m.name().starts_with("team-kustomize-")),
            "{renamed:?}"
        );
    }

    #[tokio::test]
    async fn remote_and_absolute_resources_are_refused_before_kustomize_runs() {
        for (reference, expected) in [
            ("https://github.com/org/repo//base?ref=v1", "is remote"),
            (
                "github.com/org/repo/base",
                "not a file or directory of the repository",
            ),
            (
                "GitHub.com/org/repo",
                "not a file or directory of the repository",
            ),
            (
                "github.com:org/repo",
                "not a file or directory of the repository",
            ),
            (
                "user@host:org/repo.git",
                "not a file or directory of the repository",
            ),
            ("../../outside", "not a file or directory of the repository"),
            ("/etc/kubernetes", "absolute path"),
        ] {
            let repo = vec![SourceFile {
                path: "app/kustomization.yaml".into(),
                data: format!("resources:\n- {reference}\n").into_bytes(),
            }];
            let error = kustomize("kubectl", &repo, "app", &Options::default())
                .await
                .unwrap_err();
            assert!(error.to_string().contains(expected), "{error}");
        }
        // A file outside the kustomization root is refused by kustomize itself
        // (it exists in the repository, so our check lets kustomize decide).
        let repo = vec![
            SourceFile {
                path: "app/kustomization.yaml".into(),
                data: b"resources:\n- ../secret.yaml\n".to_vec(),
            },
            SourceFile {
                path: "secret.yaml".into(),
                data: b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n".to_vec(),
            },
        ];
        let error = kustomize("kubectl", &repo, "app", &Options::default())
            .await
            .unwrap_err();
        assert!(matches!(error, RenderError::Tool { .. }), "{error}");
    }

    #[tokio::test]
    async fn kustomizations_that_could_reach_out_are_refused_before_kustomize_runs() {
        let local = SourceFile {
            path: "app/cm.yaml".into(),
            data: b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n".to_vec(),
        };
        for (kustomization, expected) in [
            // A second document hid a remote resource from the old check.
            (
                "resources: [cm.yaml]\n---\nresources: [github.com/org/repo]\n",
                "one YAML document",
            ),
            ("resources: [cm.yaml\n", "one YAML document"),
            ("- cm.yaml\n", "not a YAML mapping"),
            ("resources: cm.yaml\n", "must be a list"),
            ("generators: [{apiVersion: x, kind: Exec}]\n", "plugins"),
            ("transformers: [{apiVersion: x, kind: Exec}]\n", "plugins"),
            ("validators: [{apiVersion: x, kind: Exec}]\n", "plugins"),
            (
                "transformers: [github.com/org/plugins]\n",
                "not a file or directory",
            ),
            (
                "resources: [cm.yaml]\npatches: [{path: 'https://evil.example/p.yaml'}]\n",
                "is remote",
            ),
            (
                "resources: [cm.yaml]\nconfigMapGenerator: [{name: c, files: ['http://169.254.169.254/latest']}]\n",
                "is remote",
            ),
            ("helmCharts: [{name: x, repo: oci://r}]\n", "is remote"),
            ("helmCharts: [{name: x}]\n", "helmCharts"),
            // kustomize reads keys case-insensitively.
            (
                "Resources: [github.com/org/repo]\n",
                "not a file or directory",
            ),
            ("HelmCharts: [{name: x}]\n", "helmCharts"),
            (
                "resources: [cm.yaml]\nRESOURCES: [cm.yaml]\n",
                "the same key",
            ),
            // A referenced directory's own kustomization is checked too.
            ("resources: [base]\n", "not a file or directory"),
        ] {
            let repo = vec![
                SourceFile {
                    path: "app/kustomization.yaml".into(),
                    data: kustomization.as_bytes().to_vec(),
                },
                local.clone(),
                SourceFile {
                    path: "app/base/kustomization.yaml".into(),
                    data: b"resources: [github.com/org/remote-base]\n".to_vec(),
                },
            ];
            // A kubectl that does not exist: the check must refuse first.
            let error = kustomize("/nonexistent/kubectl", &repo, "app", &Options::default())
                .await
                .unwrap_err();
            assert!(
                matches!(error, RenderError::Forbidden { .. })
                    && error.to_string().contains(expected),
                "{kustomization:?}: {error}"
            );
        }
    }

    #[tokio::test]
    async fn inline_patches_render_and_unreached_kustomizations_are_not_read() {
        let repo = vec![
            SourceFile {
                path: "app/kustomization.yaml".into(),
                data: b"resources: [cm.yaml]\npatchesStrategicMerge:\n- |-\n  apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: x}\n  data: {patched: 'yes'}\n".to_vec(),
            },
            SourceFile {
                path: "app/cm.yaml".into(),
                data: b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n".to_vec(),
            },
            // Broken, and not reached from app/: not this Application's concern.
            SourceFile {
                path: "examples/kustomization.yaml".into(),
                data: b"resources: [https://example.com/x]\n---\nbad: [\n".to_vec(),
            },
        ];
        let rendered = kustomize("kubectl", &repo, "app", &Options::default())
            .await
            .unwrap();
        assert_eq!(
            rendered[0].object.pointer("/data/patched"),
            Some(&serde_json::json!("yes"))
        );
    }
}
