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
        Self::init_named("")
    }

    /// The same, in a directory whose name starts with `prefix` (for tests
    /// of URL patterns).
    pub fn init_named(prefix: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .unwrap_or_else(|e| panic!("tempdir: {e}"));
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
///
/// The daemon program (`git-daemon` in `git --exec-path`) is started itself,
/// not through the `git` wrapper: `git daemon` runs it as a child of its
/// own, which outlived the wrapper when that was killed, leaving orphaned
/// daemons behind every test run. Dropping this kills and reaps it.
pub struct GitDaemon {
    child: Child,
    port: u16,
    base: PathBuf,
}

impl GitDaemon {
    /// Serve the repositories below `base` on a free loopback port (panics
    /// when it cannot: test code).
    pub fn serve(base: &Path) -> Self {
        Self::start(base).unwrap_or_else(|e| panic!("git daemon: {e}"))
    }

    /// Serve the repositories below `base` on a free loopback port.
    pub fn start(base: &Path) -> std::io::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(daemon_program()?)
            .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        // From here on, Drop reaps the daemon on every path.
        let mut daemon = Self {
            child,
            port,
            base: base.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = daemon.child.try_wait()? {
                return Err(std::io::Error::other(format!(
                    "git daemon exited at start ({status})"
                )));
            }
            if Instant::now() >= deadline {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("git daemon did not listen on port {port} within 10 s"),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(daemon)
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
        self.url_of_path(repo.path())
    }

    /// `git://127.0.0.1:<port>/<path relative to the base>` for a repository
    /// directory below the base.
    pub fn url_of_path(&self, repo: &Path) -> String {
        let relative = repo.strip_prefix(&self.base).unwrap_or(repo);
        format!("git://127.0.0.1:{}/{}", self.port, relative.display())
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `git-daemon` in git's exec path.
fn daemon_program() -> std::io::Result<PathBuf> {
    let output = Command::new("git").arg("--exec-path").output()?;
    if !output.status.success() {
        return Err(std::io::Error::other("`git --exec-path` failed"));
    }
    let program = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()).join("git-daemon");
    if !program.exists() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} does not exist", program.display()),
        ));
    }
    Ok(program)
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

    #[test]
    fn a_dropped_daemon_leaves_no_process_behind() {
        let repo = GitRepo::init();
        let daemon = GitDaemon::serve_repo(&repo);
        let pid = daemon.pid();
        let port = format!("--port={}", daemon.port);
        assert!(crate::procs::with_argument(&port).contains(&pid));
        drop(daemon);
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "the daemon outlived its handle"
        );
        // A child serving the start-up probe's connection may still be
        // finishing that connection for a moment; it does not linger.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !crate::procs::with_argument(&port).is_empty() {
            assert!(
                Instant::now() < deadline,
                "{:?} still run after the daemon was dropped",
                crate::procs::with_argument(&port)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
