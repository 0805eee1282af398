//! Helm: `helm template` on a materialised copy of the chart.
//!
//! Values files must lie inside the chart directory; inline values are
//! written to a file of our own. Helm runs with its caches in a temporary
//! home, without `--dependency-update`, so it reads only what is in the chart.

use std::path::Path;
use std::time::Duration;

use super::{Manifest, RenderError, RenderLimits};
use crate::git::SourceFile;

/// Settings from the Application's `source.helm`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Release name.
    pub release: String,
    /// Namespace the release is rendered for.
    pub namespace: String,
    /// Values files relative to the chart, in order.
    pub value_files: Vec<String>,
    /// Inline values (YAML), applied last.
    pub values: Option<String>,
}

/// A chart-relative path resolved; `None` when it leaves the chart or is
/// the chart directory itself.
fn inside(path: &str) -> Option<String> {
    crate::paths::normalise(path).filter(|p| !p.is_empty())
}

/// Render the chart whose files (relative to the chart directory) are `chart`.
pub async fn render(
    helm: &Path,
    chart: &[SourceFile],
    options: &Options,
    timeout: Duration,
    limits: RenderLimits,
) -> Result<Vec<Manifest>, RenderError> {
    if !chart.iter().any(|f| f.path == "Chart.yaml") {
        return Err(RenderError::Tool {
            tool: "helm",
            message: "no Chart.yaml in the source path".to_owned(),
        });
    }
    let dir = tempfile::tempdir().map_err(|source| RenderError::ToolUnavailable {
        tool: "helm",
        source,
    })?;
    let root = dir.path().join("chart");
    super::tool::materialise(chart, &root, "helm")?;

    let mut command = super::tool::command(helm, dir.path());
    command
        .arg("template")
        .arg(&options.release)
        .arg(&root)
        .args(["--namespace", &options.namespace, "--include-crds"])
        .env("HELM_CACHE_HOME", dir.path().join("cache"))
        .env("HELM_CONFIG_HOME", dir.path().join("config"))
        .env("HELM_DATA_HOME", dir.path().join("data"));
    for file in &options.value_files {
        let relative = inside(file).ok_or_else(|| RenderError::Forbidden {
            file: file.clone(),
            reason: "values files must be inside the chart".to_owned(),
        })?;
        if !chart.iter().any(|f| f.path == relative) {
            return Err(RenderError::Forbidden {
                file: file.clone(),
                reason: "no such values file in the chart".to_owned(),
            });
        }
        command.arg("--values").arg(root.join(relative));
    }
    if let Some(values) = &options.values {
        let inline = dir.path().join("inline-values.yaml");
        std::fs::write(&inline, values).map_err(|source| RenderError::ToolUnavailable {
            tool: "helm",
            source,
        })?;
        command.arg("--values").arg(inline);
    }
    super::tool::run(command, "helm", timeout, limits).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        Options {
            release: "guestbook".into(),
            namespace: "web".into(),
            ..Options::default()
        }
    }

    const TIMEOUT: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn the_argo_cd_helm_example_renders_with_values_files_and_inline_values() {
        let helm = pushsync_testkit::helm_binary();
        let plain = render(
            &helm,
            &super::super::fixture_files("argocd-example-apps/helm-guestbook", ""),
            &options(),
            TIMEOUT,
            RenderLimits::default(),
        )
        .await
        .unwrap();
        let deployment = plain.iter().find(|m| m.kind() == "Deployment").unwrap();
        assert_eq!(
            deployment.object.pointer("/spec/replicas"),
            Some(&serde_json::json!(1))
        );

        let production = Options {
            value_files: vec!["values-production.yaml".into()],
            ..options()
        };
        let rendered = render(
            &helm,
            &super::super::fixture_files("argocd-example-apps/helm-guestbook", ""),
            &production,
            TIMEOUT,
            RenderLimits::default(),
        )
        .await
        .unwrap();
        let service = rendered.iter().find(|m| m.kind() == "Service").unwrap();
        assert_eq!(
            service.object.pointer("/spec/type"),
            Some(&serde_json::json!("LoadBalancer"))
        );

        let inline = Options {
            values: Some("replicaCount: 5\n".into()),
            ..production
        };
        let rendered = render(
            &helm,
            &super::super::fixture_files("argocd-example-apps/helm-guestbook", ""),
            &inline,
            TIMEOUT,
            RenderLimits::default(),
        )
        .await
        .unwrap();
        let deployment = rendered.iter().find(|m| m.kind() == "Deployment").unwrap();
        assert_eq!(
            deployment.object.pointer("/spec/replicas"),
            Some(&serde_json::json!(5))
        );
    }

    #[tokio::test]
    async fn values_outside_the_chart_and_broken_templates_fail_readably() {
        let helm = pushsync_testkit::helm_binary();
        for file in ["../../secrets.yaml", "/etc/passwd", "missing.yaml"] {
            let options = Options {
                value_files: vec![file.into()],
                ..options()
            };
            let error = render(
                &helm,
                &super::super::fixture_files("argocd-example-apps/helm-guestbook", ""),
                &options,
                TIMEOUT,
                RenderLimits::default(),
            )
            .await
            .unwrap_err();
            assert!(
                matches!(error, RenderError::Forbidden { .. }),
                "{file}: {error}"
            );
        }
        let mut broken = super::super::fixture_files("argocd-example-apps/helm-guestbook", "");
        broken.push(SourceFile {
            path: "templates/broken.yaml".into(),
            data: b"{{ .Values.nope.missing }}\n".to_vec(),
        });
        let error = render(&helm, &broken, &options(), TIMEOUT, RenderLimits::default())
            .await
            .unwrap_err();
        assert!(
            matches!(error, RenderError::Tool { tool: "helm", .. }),
            "{error}"
        );
        assert!(error.to_string().contains("broken.yaml"), "{error}");
    }
}
