//! Rendering: from the files of an Application's source to a validated set of
//! manifests. Nothing is applied from a revision whose render or validation
//! failed, so every check happens here, on the whole set, first.

mod budget;
mod cache;
pub mod directory;
pub mod helm;
pub mod kustomize;
pub mod programs;
mod tool;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use pushsync_api::Source;
use serde_json::Value;

pub use cache::{RenderCache, Rendered};

use crate::git::SourceFile;

/// How a source is rendered.
#[derive(Debug, Clone)]
pub enum Renderer {
    /// `helm template` on the chart in the source's path.
    Helm(helm::Options),
    /// `kubectl kustomize` on the source's path, with the whole repository
    /// at hand (overlays refer to bases elsewhere in it).
    Kustomize(kustomize::Options),
    /// Plain YAML/JSON files, optionally recursing.
    Directory {
        /// Also read subdirectories.
        recurse: bool,
    },
}

impl Renderer {
    /// The renderer `source` asks for or, as Argo CD detects it, the one its
    /// files call for (`Chart.yaml`, a kustomization); plain files otherwise.
    /// `release` is the Helm release name when the source names none.
    pub fn choose(source: &Source, files: &[SourceFile], release: &str, namespace: &str) -> Self {
        let is_helm = source.helm.is_some() || files.iter().any(|f| f.path == "Chart.yaml");
        let is_kustomize = source.kustomize.is_some()
            || files
                .iter()
                .any(|f| kustomize::KUSTOMIZATION_FILES.contains(&f.path.as_str()));
        if is_helm {
            let helm = source.helm.clone().unwrap_or_default();
            Self::Helm(helm::Options {
                release: helm.release_name.unwrap_or_else(|| release.to_owned()),
                namespace: namespace.to_owned(),
                value_files: helm.value_files,
                values: helm.values,
            })
        } else if is_kustomize {
            Self::Kustomize(kustomize::Options {
                name_prefix: source
                    .kustomize
                    .as_ref()
                    .and_then(|k| k.name_prefix.clone()),
            })
        } else {
            Self::Directory {
                recurse: source.directory.as_ref().is_some_and(|d| d.recurse),
            }
        }
    }

    /// Whether it reads the whole repository rather than the source's path.
    pub fn needs_repository(&self) -> bool {
        matches!(self, Self::Kustomize(_))
    }

    /// Render `files` (those of the source's `path`, or of the whole
    /// repository when [`Self::needs_repository`]).
    pub async fn render(
        &self,
        tools: &Tools,
        files: &[SourceFile],
        path: &str,
    ) -> Result<Vec<Manifest>, RenderError> {
        match self {
            Self::Helm(options) => {
                helm::render(&tools.helm, files, options, tools.timeout, tools.limits).await
            }
            Self::Kustomize(options) => {
                kustomize::render(
                    &tools.kubectl,
                    files,
                    path,
                    options,
                    tools.timeout,
                    tools.limits,
                )
                .await
            }
            Self::Directory { recurse } => directory::render(files, *recurse, tools.limits),
        }
    }
}

/// The programs and bounds a render runs with.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The `kubectl` binary (its `kustomize` subcommand).
    pub kubectl: PathBuf,
    /// The `helm` binary (version 3).
    pub helm: PathBuf,
    /// How long Kustomize or Helm may run.
    pub timeout: Duration,
    /// Bounds on what is rendered.
    pub limits: RenderLimits,
}

impl Default for Tools {
    /// `kubectl` and `helm` from `PATH`, two minutes per render, default limits.
    fn default() -> Self {
        Self {
            kubectl: "kubectl".into(),
            helm: "helm".into(),
            timeout: Duration::from_secs(120),
            limits: RenderLimits::default(),
        }
    }
}

/// One rendered Kubernetes object.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The object as rendered.
    pub object: Value,
    /// Where it came from: `path/to/file.yaml#2` (document index from 0).
    pub source: String,
}

impl Manifest {
    /// `apiVersion`.
    pub fn api_version(&self) -> &str {
        self.object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `kind`.
    pub fn kind(&self) -> &str {
        self.object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `metadata.generateName` (hooks that want a fresh object every sync).
    pub fn generate_name(&self) -> &str {
        self.object
            .pointer("/metadata/generateName")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `metadata.namespace`, when set.
    pub fn namespace(&self) -> Option<&str> {
        self.object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
    }

    /// The API group (`""` for the core group).
    pub fn group(&self) -> &str {
        self.api_version()
            .rsplit_once('/')
            .map_or("", |(group, _)| group)
    }

    /// `group/kind/namespace/name`: what makes two manifests the same object
    /// (whatever the version they are written in).
    pub fn identity(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.group(),
            self.kind(),
            self.namespace().unwrap_or_default(),
            self.name()
        )
    }
}

/// Bounds on a render. Every parse of a render draws on one budget of nodes
/// and string bytes, aliases expanded (`budget.rs`); a tool's output is
/// capped while it is read (`tool.rs`).
#[derive(Debug, Clone, Copy)]
pub struct RenderLimits {
    /// Most documents in the whole set.
    pub max_documents: usize,
    /// Largest single file to parse.
    pub max_file_bytes: usize,
    /// Most YAML/JSON nodes in the whole render (one per value and one per
    /// mapping key), aliases expanded.
    pub max_nodes: usize,
    /// Most bytes of strings and mapping keys in the whole render, aliases
    /// expanded.
    pub max_scalar_bytes: usize,
    /// Most bytes Kustomize or Helm may write to its standard output.
    pub max_output_bytes: usize,
}

impl Default for RenderLimits {
    /// Nothing that rendered before these bounds is refused but directories
    /// past them in total (or alias bombs): the node budget is four times
    /// what serde-saphyr allows one parse (250,000, aliases expanded),
    /// strings get what it allows one parse (64 MiB), and a tool's output what a
    /// source may hold (`git::Limits::max_total_bytes`, 64 MiB). In memory a
    /// node takes ~128 bytes besides its text, so one render at the bounds
    /// holds ~120 MiB of nodes, up to 64 MiB of strings and, while it is
    /// parsed, the output or files it came from.
    fn default() -> Self {
        Self {
            max_documents: 10_000,
            max_file_bytes: 4 * 1024 * 1024,
            max_nodes: 1_000_000,
            max_scalar_bytes: 64 * 1024 * 1024,
            max_output_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Why a revision cannot be rendered. Every variant is reported on the
/// Application and nothing of the revision is applied; all but
/// `ToolUnavailable` are the source's fault (that one may also be this
/// worker's: a missing program, a full disk — it is not retried either).
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A file is not valid YAML or JSON (or exceeds serde-saphyr's own bounds
    /// on one parse).
    #[error("{file}: not valid YAML/JSON: {message}")]
    Parse {
        /// The file.
        file: String,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A document is not a mapping.
    #[error("{source_ref}: a manifest must be a mapping, found {found}")]
    NotAnObject {
        /// `file#document`.
        source_ref: String,
        /// What was found instead.
        found: &'static str,
    },
    /// A required field is missing or empty.
    #[error("{source_ref}: {field} is required")]
    MissingField {
        /// `file#document`.
        source_ref: String,
        /// `apiVersion`, `kind` or `metadata.name` (or `generateName`).
        field: &'static str,
    },
    /// Two manifests describe the same object.
    #[error("{identity} is defined twice: in {first} and in {second}")]
    Duplicate {
        /// `group/kind/namespace/name`.
        identity: String,
        /// Where first.
        first: String,
        /// Where again.
        second: String,
    },
    /// A rendering tool (kustomize, helm) failed; its message says why.
    #[error("{tool} failed: {message}")]
    Tool {
        /// `kustomize` or `helm`.
        tool: &'static str,
        /// The tool's error output (trimmed).
        message: String,
    },
    /// A rendering tool could not run at all (missing binary, no disk).
    #[error("{tool} could not run")]
    ToolUnavailable {
        /// `kustomize` or `helm`.
        tool: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The source asks for something outside the repository (a remote
    /// resource, a values file outside the chart).
    #[error("{file}: {reason}")]
    Forbidden {
        /// The file asking.
        file: String,
        /// What it asked for.
        reason: String,
    },
    /// More documents, a larger file or tool output, or more nodes or string
    /// bytes than the limits allow.
    #[error("{what} exceeds the limit of {limit}")]
    TooLarge {
        /// What was counted.
        what: String,
        /// The limit.
        limit: usize,
    },
    /// An Application setting a renderer would receive is not acceptable
    /// (checked before any tool runs).
    #[error("{option}: {reason}")]
    InvalidOption {
        /// The Application field.
        option: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl RenderError {
    /// A bounded label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Parse { .. } => "parse",
            Self::NotAnObject { .. } => "not_an_object",
            Self::MissingField { .. } => "missing_field",
            Self::Duplicate { .. } => "duplicate",
            Self::Tool { .. } => "tool",
            Self::ToolUnavailable { .. } => "tool_unavailable",
            Self::Forbidden { .. } => "forbidden",
            Self::TooLarge { .. } => "too_large",
            Self::InvalidOption { .. } => "invalid_option",
        }
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Check the whole set: every document a mapping with apiVersion, kind and
/// name; no object twice. `List` kinds are flattened first.
pub fn validate(
    documents: Vec<(String, Value)>,
    limits: RenderLimits,
) -> Result<Vec<Manifest>, RenderError> {
    let mut manifests = Vec::new();
    for (source_ref, value) in documents {
        let list_items = (value
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| k == "List" || k.ends_with("List")))
        .then(|| value.get("items").and_then(Value::as_array).cloned())
        .flatten();
        match list_items {
            Some(items) => {
                for (index, item) in items.into_iter().enumerate() {
                    manifests.push(check(format!("{source_ref}.items[{index}]"), item)?);
                }
            }
            None => manifests.push(check(source_ref, value)?),
        }
        if manifests.len() > limits.max_documents {
            return Err(RenderError::TooLarge {
                what: "the number of manifests".to_owned(),
                limit: limits.max_documents,
            });
        }
    }
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    // Objects with a generated name are new every time: never duplicates.
    for manifest in manifests.iter().filter(|m| !m.name().is_empty()) {
        if let Some(first) = seen.insert(manifest.identity(), manifest.source.clone()) {
            return Err(RenderError::Duplicate {
                identity: manifest.identity(),
                first,
                second: manifest.source.clone(),
            });
        }
    }
    Ok(manifests)
}

fn check(source_ref: String, object: Value) -> Result<Manifest, RenderError> {
    if !object.is_object() {
        return Err(RenderError::NotAnObject {
            found: type_name(&object),
            source_ref,
        });
    }
    let manifest = Manifest {
        object,
        source: source_ref,
    };
    let missing = [
        ("apiVersion", manifest.api_version()),
        ("kind", manifest.kind()),
        // Hooks may use generateName instead (a fresh object per sync).
        (
            "metadata.name",
            if manifest.name().is_empty() {
                manifest.generate_name()
            } else {
                manifest.name()
            },
        ),
    ]
    .into_iter()
    .find_map(|(field, value)| value.is_empty().then_some(field));
    if let Some(field) = missing {
        return Err(RenderError::MissingField {
            source_ref: manifest.source,
            field,
        });
    }
    Ok(manifest)
}

/// Every file below `testdata/manifests/<dir>`, recursively, as source files
/// named `<prefix><path relative to dir>` (tests only).
#[cfg(test)]
pub(crate) fn fixture_files(dir: &str, prefix: &str) -> Vec<crate::git::SourceFile> {
    let root = pushsync_testkit::repo_root()
        .join("testdata/manifests")
        .join(dir);
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push(crate::git::SourceFile {
                    path: format!("{prefix}{relative}"),
                    data: std::fs::read(&path).unwrap(),
                });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}
