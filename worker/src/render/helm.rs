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

/// The longest release name Helm accepts.
pub const MAX_RELEASE_NAME: usize = 53;

/// Whether `name` is a release name Helm itself accepts: DNS-1123 (lower
/// case letters, digits, `-` and `.`, starting and ending alphanumeric), at
/// most [`MAX_RELEASE_NAME`] characters. Anything else never reaches helm:
/// a name like `--set-file=t=/var/run/secrets/…` or `--post-renderer=…`
/// would otherwise be read as a flag.
pub fn valid_release_name(name: &str) -> bool {
    name.len() <= MAX_RELEASE_NAME && name.split('.').all(valid_dns_label)
}

/// Whether `name` is a namespace name (DNS-1123 label, ≤ 63 characters).
fn valid_namespace(name: &str) -> bool {
    name.len() <= 63 && !name.contains('.') && valid_dns_label(name)
}

fn valid_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
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
    if !valid_release_name(&options.release) {
        return Err(RenderError::InvalidOption {
            option: "spec.source.helm.releaseName",
            reason: format!(
                "{:?} is not a Helm release name (lower case letters, digits, '-' and '.', starting and ending with a letter or digit, at most {MAX_RELEASE_NAME} characters); when unset the Application's name is used",
                options.release
            ),
        });
    }
    if !valid_namespace(&options.namespace) {
        return Err(RenderError::InvalidOption {
            option: "spec.destination.namespace",
            reason: format!("{:?} is not a namespace name", options.namespace),
        });
    }
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

    // Flags first, each with its value in the same argument, then `--`,
    // then the positionals: nothing from the Application is read as a flag.
    let mut command = super::tool::command(helm, dir.path());
    command
        .arg("template")
        .arg(format!("--namespace={}", options.namespace))
        .arg("--include-crds")
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
        let mut flag = std::ffi::OsString::from("--values=");
        flag.push(root.join(relative));
        command.arg(flag);
    }
    if let Some(values) = &options.values {
        let inline = dir.path().join("inline-values.yaml");
        std::fs::write(&inline, values).map_err(|source| RenderError::ToolUnavailable {
            tool: "helm",
            source,
        })?;
        let mut flag = std::ffi::OsString::from("--values=");
        flag.push(inline);
        command.arg(flag);
    }
    command.arg("--").arg(&options.release).arg(&root);
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

    /// A chart that puts `.Values.t` into a ConfigMap: what `--set-file`
    /// smuggled through the release name would leak into the cluster.
    fn leaky_chart() -> Vec<SourceFile> {
        vec![
            SourceFile {
                path: "Chart.yaml".into(),
                data: b"apiVersion: v2\nname: leaky\nversion: 0.1.0\n".to_vec(),
            },
            SourceFile {
                path: "templates/cm.yaml".into(),
                data: b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: leak}\ndata: {t: {{ .Values.t | default \"none\" | quote }}}\n".to_vec(),
            },
        ]
    }

    #[tokio::test]
    async fn a_release_name_carrying_helm_flags_never_reaches_helm() {
        let helm = pushsync_testkit::helm_binary();
        let secret = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(secret.path(), "the-service-account-token").unwrap();
        let attacks = [
            format!("--set-file=t={}", secret.path().display()),
            "--post-renderer=/bin/sh".to_owned(),
            "-f/etc/passwd".to_owned(),
            "Upper".to_owned(),
            "a".repeat(54),
            String::new(),
        ];
        for release in attacks {
            let options = Options {
                release: release.clone(),
                ..options()
            };
            let error = render(
                &helm,
                &leaky_chart(),
                &options,
                TIMEOUT,
                RenderLimits::default(),
            )
            .await
            .unwrap_err();
            assert!(
                matches!(
                    error,
                    RenderError::InvalidOption {
                        option: "spec.source.helm.releaseName",
                        ..
                    }
                ),
                "{release:?}: {error}"
            );
            assert!(!error.to_string().contains("the-service-account-token"));
        }
        for namespace in ["--kube-context=x", "Web", "a.b"] {
            let options = Options {
                namespace: namespace.into(),
                ..options()
            };
            let error = render(
                &helm,
                &leaky_chart(),
                &options,
                TIMEOUT,
                RenderLimits::default(),
            )
            .await
            .unwrap_err();
            assert!(
                matches!(
                    error,
                    RenderError::InvalidOption {
                        option: "spec.destination.namespace",
                        ..
                    }
                ),
                "{namespace:?}: {error}"
            );
        }
        // A valid name renders, and the value stays the chart's default.
        let rendered = render(
            &helm,
            &leaky_chart(),
            &options(),
            TIMEOUT,
            RenderLimits::default(),
        )
        .await
        .unwrap();
        assert_eq!(
            rendered[0].object.pointer("/data/t"),
            Some(&serde_json::json!("none"))
        );
    }

    #[tokio::test]
    async fn a_chart_schema_ref_cannot_make_helm_fetch_from_the_network() {
        // helm follows `$ref`s of values.schema.json while templating. A
        // listener on this machine's outward address (not loopback, which Go
        // never proxies) counts whether it was reached.
        let outward = std::net::UdpSocket::bind("0.0.0.0:0")
            .and_then(|socket| {
                socket.connect("192.0.2.1:9")?;
                socket.local_addr()
            })
            .unwrap()
            .ip();
        assert!(!outward.is_loopback(), "{outward}");
        let listener = std::net::TcpListener::bind((outward, 0)).unwrap();
        let address = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let mut chart = leaky_chart();
        chart.push(SourceFile {
            path: "values.schema.json".into(),
            data: format!(r#"{{"$ref": "http://{address}/schema.json"}}"#).into_bytes(),
        });
        let helm = pushsync_testkit::helm_binary();
        let result = render(&helm, &chart, &options(), TIMEOUT, RenderLimits::default()).await;
        assert!(
            matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "helm reached {address}; render said {result:?}"
        );
    }

    #[tokio::test]
    async fn a_chart_that_renders_more_than_the_output_cap_is_stopped() {
        // One ConfigMap of 100,000 keys, ~3 MB of output: valid, and within
        // what one parse allows, so only the output cap stops it.
        let chart = vec![
            SourceFile {
                path: "Chart.yaml".into(),
                data: b"apiVersion: v2\nname: loud\nversion: 0.1.0\n".to_vec(),
            },
            SourceFile {
                path: "templates/cm.yaml".into(),
                data: b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: loud}\ndata:\n{{- range until 100000 }}\n  key{{ . }}: \"a value of some length\"\n{{- end }}\n".to_vec(),
            },
        ];
        let helm = pushsync_testkit::helm_binary();
        let capped = RenderLimits {
            max_output_bytes: 1024 * 1024,
            ..RenderLimits::default()
        };
        let error = render(&helm, &chart, &options(), TIMEOUT, capped)
            .await
            .unwrap_err();
        assert!(
            matches!(
                &error,
                RenderError::TooLarge { what, limit: 1_048_576 } if what.contains("helm output")
            ),
            "{error}"
        );
        let rendered = render(&helm, &chart, &options(), TIMEOUT, RenderLimits::default())
            .await
            .unwrap();
        assert_eq!(
            rendered[0].object["data"].as_object().map(|d| d.len()),
            Some(100_000)
        );
    }

    #[test]
    fn release_names_follow_helm() {
        for good in ["guestbook", "a", "web-1", "my.release", &"a".repeat(53)] {
            assert!(valid_release_name(good), "{good}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "a_b",
            "a..b",
            ".a",
            "--set=x",
            &"a".repeat(54),
        ] {
            assert!(!valid_release_name(bad), "{bad}");
        }
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
