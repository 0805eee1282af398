//! Running rendering tools on a materialised copy of the source.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use super::budget::Budget;
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

/// How much of a tool's standard error is kept: its first 2,000 characters
/// are quoted in the error, the rest is read and dropped.
const MAX_STDERR_BYTES: usize = 64 * 1024;

/// Run `command`, killed after `timeout` or once its standard output passes
/// `limits.max_output_bytes`; that output parsed as manifests.
pub(crate) async fn run(
    mut command: Command,
    tool: &'static str,
    timeout: Duration,
    limits: RenderLimits,
) -> Result<Vec<Manifest>, RenderError> {
    let unavailable = |source| RenderError::ToolUnavailable { tool, source };
    // Dropping the child kills it: on a timeout, on too much output, on any
    // error below.
    command
        .kill_on_drop(true)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(unavailable)?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(unavailable(std::io::Error::other(
            "the child's output pipes are missing",
        )));
    };
    // Both streams at once: a tool that fills the stderr pipe while we wait
    // on stdout (or the reverse) would otherwise stall until the timeout.
    // Too much stdout is an error at once, which ends the join (and, the
    // child dropped, the tool) without waiting for stderr to close.
    let finish = async {
        let stdout = async {
            read_capped(stdout, limits.max_output_bytes)
                .await
                .map_err(unavailable)?
                .ok_or_else(|| RenderError::TooLarge {
                    what: format!("the size of the {tool} output in bytes"),
                    limit: limits.max_output_bytes,
                })
        };
        let stderr = async {
            read_kept(stderr, MAX_STDERR_BYTES)
                .await
                .map_err(unavailable)
        };
        let (stdout, stderr) = tokio::try_join!(stdout, stderr)?;
        let status = child.wait().await.map_err(unavailable)?;
        Ok::<_, RenderError>((status, stdout, stderr))
    };
    let (status, stdout, stderr) = match tokio::time::timeout(timeout, finish).await {
        Ok(finished) => finished?,
        Err(_) => {
            return Err(RenderError::Tool {
                tool,
                message: format!("did not finish within {timeout:?}"),
            });
        }
    };
    if !status.success() {
        let stderr = String::from_utf8_lossy(&stderr);
        let message: String = stderr.trim().chars().take(2000).collect();
        return Err(RenderError::Tool { tool, message });
    }
    // The output's text is dropped once parsed, before validation.
    let documents = super::directory::parse_file(
        &SourceFile {
            path: format!("({tool} output)"),
            data: stdout,
        },
        RenderLimits {
            max_file_bytes: usize::MAX,
            ..limits
        },
        &mut Budget::new(limits),
    )?;
    validate(documents, limits)
}

/// All of `reader` if it ends within `cap` bytes; `None` as soon as it
/// passes `cap` (the rest is left unread). The buffer grows by doubling, so
/// up to twice `cap` may be allocated for a moment.
async fn read_capped(
    reader: impl AsyncRead + Unpin,
    cap: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut data = Vec::new();
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    reader.take(limit).read_to_end(&mut data).await?;
    Ok((data.len() <= cap).then_some(data))
}

/// The first `cap` bytes of `reader`, the rest read to its end and dropped
/// (so the writer never blocks on a full pipe).
async fn read_kept(reader: impl AsyncRead + Unpin, cap: usize) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    let mut reader = reader.take(u64::try_from(cap).unwrap_or(u64::MAX));
    reader.read_to_end(&mut data).await?;
    tokio::io::copy(&mut reader.into_inner(), &mut tokio::io::sink()).await?;
    Ok(data)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// `/bin/sh -c script` as a renderer runs.
    fn shell(script: &str, home: &Path) -> Command {
        let mut command = command(Path::new("/bin/sh"), home);
        command.arg("-c").arg(script);
        command
    }

    const MANIFEST: &str = "printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: c}\\n'";

    #[tokio::test]
    async fn a_tool_flooding_stdout_then_hanging_is_stopped_at_the_cap() {
        let home = tempfile::tempdir().unwrap();
        let limits = RenderLimits {
            max_output_bytes: 1024 * 1024,
            ..RenderLimits::default()
        };
        let started = Instant::now();
        // 2 MB, then a tool that would run for a minute more.
        let error = run(
            shell("head -c 2000000 /dev/zero; exec sleep 60", home.path()),
            "helm",
            Duration::from_secs(120),
            limits,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(
                &error,
                RenderError::TooLarge { what, limit: 1_048_576 } if what.contains("helm output")
            ),
            "{error}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "stopped only after {:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_tool_flooding_stderr_cannot_stall_the_render() {
        // 4 MiB of stderr before any stdout: read one stream after the
        // other, the tool blocks on the full stderr pipe and never exits.
        let home = tempfile::tempdir().unwrap();
        let manifests = run(
            shell(
                &format!("head -c 4194304 /dev/zero >&2; {MANIFEST}"),
                home.path(),
            ),
            "helm",
            Duration::from_secs(20),
            RenderLimits::default(),
        )
        .await
        .unwrap();
        assert_eq!(manifests[0].name(), "c");
        // A failing one is quoted from the start of its stderr, 2,000
        // characters of it.
        let error = run(
            shell(
                "echo 'Error: the first words' >&2; head -c 4194304 /dev/zero | tr '\\0' x >&2; exit 1",
                home.path(),
            ),
            "helm",
            Duration::from_secs(20),
            RenderLimits::default(),
        )
        .await
        .unwrap_err();
        let RenderError::Tool { message, .. } = &error else {
            panic!("{error}");
        };
        assert!(
            message.starts_with("Error: the first words\nxxx"),
            "{error}"
        );
        assert_eq!(message.chars().count(), 2000);
    }

    #[tokio::test]
    async fn a_tool_flooding_stderr_cannot_fill_memory() {
        // 256 MiB of stderr: kept to its first 64 KiB, the rest read and
        // dropped so the tool is never blocked.
        let flood = tokio::io::repeat(b'x').take(256 * 1024 * 1024);
        let kept = read_kept(flood, MAX_STDERR_BYTES).await.unwrap();
        assert_eq!(kept.len(), MAX_STDERR_BYTES);
    }
}
