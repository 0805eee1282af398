//! Finding the rendering programs once, at start-up: renderers run with a
//! minimal `PATH`, so the program is resolved to an absolute path here,
//! against the worker's own `PATH`, and its version recorded.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `program` as an absolute path: itself when it names a path (contains
/// `/`), else the first executable file of that name in `search` (a
/// `PATH`-style list); `None` when there is none.
pub fn which(program: &Path, search: Option<&OsStr>) -> Option<PathBuf> {
    if program.components().count() > 1 || program.is_absolute() {
        return is_executable(program).then(|| program.to_path_buf());
    }
    std::env::split_paths(search?)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The version a program reports (`helm version --short`, `kubectl version
/// --client`), first line, trimmed; `None` when it does not answer in time.
pub async fn version(program: &Path, args: &[&str]) -> Option<String> {
    // The environment renders run with.
    let mut command = super::tool::command(program, &std::env::temp_dir());
    command
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(10), command.output())
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    Some(line.chars().take(120).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_on_the_search_path_or_by_their_own_path() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let tool = bin.join("mytool");
        std::fs::write(&tool, "#!/bin/sh\necho mytool v1.2.3\n").unwrap();
        let not_executable = bin.join("plain");
        std::fs::write(&not_executable, "").unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let search = std::env::join_paths([dir.path().join("missing"), bin.clone()]).unwrap();
        assert_eq!(
            which(Path::new("mytool"), Some(&search)),
            Some(tool.clone())
        );
        assert_eq!(which(&tool, None), Some(tool.clone()));
        assert_eq!(which(Path::new("plain"), Some(&search)), None);
        assert_eq!(which(Path::new("absent"), Some(&search)), None);
        assert_eq!(which(Path::new("mytool"), None), None);
    }

    #[tokio::test]
    async fn a_version_is_the_first_line_a_program_prints() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("tool");
        std::fs::write(&tool, "#!/bin/sh\n\necho '  v9.8.7+abc '\necho more\n").unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        assert_eq!(version(&tool, &[]).await.as_deref(), Some("v9.8.7+abc"));
        assert_eq!(version(&dir.path().join("none"), &[]).await, None);
    }
}
