//! Running rendering tools on a materialised copy of the source.

use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

use super::{Manifest, RenderError, RenderLimits, validate};
use crate::git::SourceFile;

/// Write `files` below `root` (paths come from the git reader, already
/// confined to the repository; `..` is refused again here).
pub(crate) fn materialise(
    files: &[SourceFile],
    root: &Path,
    tool: &'static str,
) -> Result<(), RenderError> {
    let unavailable = |source| RenderError::ToolUnavailable { tool, source };
    for file in files {
        if file
            .path
            .split('/')
            .any(|segment| segment == ".." || segment.is_empty())
        {
            return Err(RenderError::Forbidden {
                file: file.path.clone(),
                reason: "the path leaves the repository".to_owned(),
            });
        }
        let target = root.join(&file.path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(unavailable)?;
        }
        std::fs::write(&target, &file.data).map_err(unavailable)?;
    }
    Ok(())
}

/// `binary` with a clean environment: a minimal `PATH`, `home` as `HOME`
/// and the worker's temporary directory as `TMPDIR`, so a renderer sees
/// nothing of the worker's environment (tokens, proxies) and writes its
/// temporary files where the worker's go.
pub(crate) fn command(binary: &Path, home: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home)
        .env("TMPDIR", std::env::temp_dir());
    // No network for any renderer: HTTP(S) goes to a proxy that answers
    // nothing. Kustomize remote bases and helm's `$ref`s in a chart's
    // `values.schema.json` (which helm fetches while templating) both stop
    // here. Go sends loopback addresses past a proxy, so those stay
    // reachable; the worker serves nothing there but its metrics.
    for proxy in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
        command.env(proxy, "http://127.0.0.1:9");
    }
    command
}

/// Run `command`, killed after `timeout`; its stdout parsed as manifests.
pub(crate) async fn run(
    mut command: Command,
    tool: &'static str,
    timeout: Duration,
    limits: RenderLimits,
) -> Result<Vec<Manifest>, RenderError> {
    command
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    let output = match tokio::time::timeout(timeout, command.output()).await {
        Ok(output) => output.map_err(|source| RenderError::ToolUnavailable { tool, source })?,
        Err(_) => {
            return Err(RenderError::Tool {
                tool,
                message: format!("did not finish within {timeout:?}"),
            });
        }
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let message: String = stderr.trim().chars().take(2000).collect();
        return Err(RenderError::Tool { tool, message });
    }
    let rendered = SourceFile {
        path: format!("({tool} output)"),
        data: output.stdout,
    };
    let documents = super::directory::parse_file(
        &rendered,
        RenderLimits {
            max_file_bytes: usize::MAX,
            ..limits
        },
    )?;
    validate(documents, limits)
}
