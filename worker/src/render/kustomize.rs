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

fn is_remote(reference: &str) -> bool {
    let reference = reference.trim();
    reference.contains("://")
        || reference.starts_with("git@")
        || reference.starts_with("github.com/")
        || reference.starts_with("gitlab.com/")
        || reference.contains("?ref=")
        || reference.ends_with(".git")
}

/// Refuse kustomizations that reach outside the repository.
fn check(files: &[SourceFile]) -> Result<(), RenderError> {
    for file in files.iter().filter(|f| is_kustomization(&f.path)) {
        let text = String::from_utf8_lossy(&file.data);
        let Ok(kustomization) = serde_saphyr::from_str::<Value>(&text) else {
            // kustomize reports its own parse errors well enough.
            continue;
        };
        for field in ["resources", "bases", "components", "crds"] {
            for entry in kustomization
                .get(field)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(reference) = entry.as_str() else {
                    continue;
                };
                if is_remote(reference) {
                    return Err(RenderError::Forbidden {
                        file: file.path.clone(),
                        reason: format!(
                            "{field} entry {reference:?} is remote; only the repository's own files are rendered"
                        ),
                    });
                }
                if reference.starts_with('/') {
                    return Err(RenderError::Forbidden {
                        file: file.path.clone(),
                        reason: format!("{field} entry {reference:?} is an absolute path"),
                    });
                }
            }
        }
        if kustomization.get("helmCharts").is_some() {
            return Err(RenderError::Forbidden {
                file: file.path.clone(),
                reason:
                    "helmCharts in a kustomization pull charts from the network; use a Helm source"
                        .to_owned(),
            });
        }
    }
    Ok(())
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
    check(repo)?;
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
    command.arg("kustomize").arg(&target);
    super::tool::run(command, "kustomize", timeout, limits).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn overlays_reach_their_bases_in_the_repository() {
        let repo = super::super::fixture_files("podinfo/deploy", "deploy/");
        let manifests = render(
            Path::new("kubectl"),
            &repo,
            "deploy/overlays/dev",
            &Options::default(),
            TIMEOUT,
            RenderLimits::default(),
        )
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
        let plain = render(
            Path::new("kubectl"),
            &repo,
            "app",
            &Options::default(),
            TIMEOUT,
            RenderLimits::default(),
        )
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
        let renamed = render(
            Path::new("kubectl"),
            &repo,
            "app",
            &prefixed,
            TIMEOUT,
            RenderLimits::default(),
        )
        .await
        .unwrap();
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
            ("github.com/org/repo/base", "is remote"),
            ("/etc/kubernetes", "absolute path"),
        ] {
            let repo = vec![SourceFile {
                path: "app/kustomization.yaml".into(),
                data: format!("resources:\n- {reference}\n").into_bytes(),
            }];
            let error = render(
                Path::new("kubectl"),
                &repo,
                "app",
                &Options::default(),
                TIMEOUT,
                RenderLimits::default(),
            )
            .await
            .unwrap_err();
            assert!(error.to_string().contains(expected), "{error}");
        }
        // A file outside the kustomization root is refused by kustomize itself.
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
        let error = render(
            Path::new("kubectl"),
            &repo,
            "app",
            &Options::default(),
            TIMEOUT,
            RenderLimits::default(),
        )
        .await
        .unwrap_err();
        assert!(matches!(error, RenderError::Tool { .. }), "{error}");
    }
}
