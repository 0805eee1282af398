//! Real git repositories for tests, and `git daemon` serving them on loopback
//! (shallow fetches do not work over local paths, so fetching is tested over
//! the git protocol).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A working repository in a temporary directory, on branch `main`.
pub struct GitRepo {
    dir: tempfile::TempDir,
}

impl GitRepo {
    /// `git init -b main` with a test identity.
    pub fn init() -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let repo = Self { dir };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "user.name", "pushsync tests"]);
        repo.git(&["config", "user.email", "tests@pushsync.dev"]);
        repo.git(&["config", "commit.gpgsign", "false"]);
        repo
    }

    /// The working tree.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Run git in the repository and return its trimmed stdout.
    pub fn git(&self, args: &[&str]) -> String {
        let output = Command::new("git")
            .args(args)
            .current_dir(self.path())
            .output()
            .unwrap_or_else(|e| panic!("git {args:?}: {e}"));
        assert!(
            output.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Write a file (creating directories).
    pub fn write(&self, path: &str, contents: &str) -> &Self {
        let file = self.path().join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
        }
        std::fs::write(&file, contents).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
        self
    }

    /// Copy a directory tree into the repository at `to`.
    pub fn copy_dir(&self, from: &Path, to: &str) -> &Self {
        let status = Command::new("cp")
            .arg("-r")
            .arg(from)
            .arg(self.path().join(to))
            .status()
            .unwrap_or_else(|e| panic!("cp: {e}"));
        assert!(status.success());
        self
    }

    /// Create a symbolic link `path` → `target`.
    pub fn symlink(&self, path: &str, target: &str) -> &Self {
        let link = self.path().join(path);
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir: {e}"));
        }
        std::os::unix::fs::symlink(target, &link)
            .unwrap_or_else(|e| panic!("symlink {}: {e}", link.display()));
        self
    }

    /// Remove a file or directory.
    pub fn remove(&self, path: &str) -> &Self {
        self.git(&["rm", "-r", "-q", path]);
        self
    }

    /// Commit everything; returns the new commit id.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.head()
    }

    /// The commit `main` (or the current branch) points at.
    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }
}

/// `git daemon` serving every repository below a directory, read-only.
pub struct GitDaemon {
    child: Child,
    port: u16,
    base: PathBuf,
}

impl GitDaemon {
    /// Serve the repositories below `base` on a free loopback port.
    pub fn serve(base: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("free port: {e}"));
        let child = Command::new("git")
            .args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--listen=127.0.0.1",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("git daemon: {e}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "git daemon did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            port,
            base: base.to_path_buf(),
        }
    }

    /// Serve one repository; its URL is [`GitDaemon::url_of`].
    pub fn serve_repo(repo: &GitRepo) -> Self {
        let base = repo
            .path()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        Self::serve(&base)
    }

    /// `git://127.0.0.1:<port>/<path relative to the base>`.
    pub fn url_of(&self, repo: &GitRepo) -> String {
        let relative = repo.path().strip_prefix(&self.base).unwrap_or(repo.path());
        format!("git://127.0.0.1:{}/{}", self.port, relative.display())
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_served_repository_can_be_cloned_over_the_git_protocol() {
        let repo = GitRepo::init();
        repo.write("apps/a/cm.yaml", "kind: ConfigMap\n");
        let commit = repo.commit("first");
        let daemon = GitDaemon::serve_repo(&repo);
        let output = Command::new("git")
            .args(["ls-remote", &daemon.url_of(&repo), "refs/heads/main"])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(String::from_utf8_lossy(&output.stdout).starts_with(&commit));
    }
}
