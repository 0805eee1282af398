//! Stoplight prism as a validating proxy between the client and the fake
//! forges: `prism proxy <description> <fake> --errors`. A request the
//! description does not allow is answered 422 (and not forwarded), a response
//! it does not allow 500; both, and warnings such as an undocumented status
//! code (otherwise only in the `sl-violations` header), are logged with `✖`
//! or `⚠`, and [`Stack::assert_valid`] fails a test on any such line.
//!
//! One prism per description is started once per test binary (GitHub's
//! takes about 12 s and 300 MB). A static is never dropped, so each prism
//! runs under a guard shell that kills it when its stdin reaches end of
//! file: the pipe's write end belongs to this process, so prism ends with
//! the test binary however that ends (`scripts/leak-check.sh` checks).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::fake::{Fake, Flavor};

/// A fake forge behind its validating proxy.
pub struct Stack {
    pub fake: Arc<Fake>,
    pub prism: Prism,
    /// The API base a client uses (prism's address plus the forge's prefix).
    pub base: String,
}

impl Stack {
    /// Fail when prism logged any violation or error so far.
    pub fn assert_valid(&self) {
        let problems = self.prism.problems();
        assert!(
            problems.is_empty(),
            "prism ({}) reported violations:\n{}",
            self.prism.spec.display(),
            problems.join("\n")
        );
    }
}

/// Every stack the tests use, started on first use.
pub struct Stacks {
    /// api.github.com's description, base without prefix.
    pub github: Stack,
    /// GitHub Enterprise Server 3.19's description, base `…/api/v3`.
    pub ghes: Stack,
    /// GitLab's hook endpoints (hand-written from the docs), base `…/api/v4`.
    pub gitlab: Stack,
    /// Gitea 1.22's served description, base `…/api/v1`.
    pub gitea: Stack,
}

/// The shared stacks.
pub fn stacks() -> &'static Stacks {
    static STACKS: OnceLock<Stacks> = OnceLock::new();
    STACKS.get_or_init(|| {
        let openapi = octokit_dir();
        let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openapi");
        let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("forge-openapi");
        std::fs::create_dir_all(&scratch).unwrap();
        // prism ignores `servers` and `basePath`, so the prefixed forms get
        // copies of their descriptions with the prefix in every path.
        let ghes = prefixed(
            &openapi.join("ghes-3.19.json"),
            "/api/v3",
            &scratch.join("ghes-3.19-hooks.json"),
            true,
        );
        let gitea = prefixed(
            &here.join("gitea-v1.22.json"),
            "/api/v1",
            &scratch.join("gitea-v1.22-prefixed.json"),
            false,
        );
        let github_fake = Fake::start(Flavor::Github);
        let gitlab_fake = Fake::start(Flavor::Gitlab);
        let gitea_fake = Fake::start(Flavor::Gitea);
        // Started together, awaited one by one.
        let github = Prism::spawn(&openapi.join("api.github.com.json"), github_fake.port);
        let ghes = Prism::spawn(&ghes, github_fake.port);
        let gitlab = Prism::spawn(&here.join("gitlab-hooks.yaml"), gitlab_fake.port);
        let gitea = Prism::spawn(&gitea, gitea_fake.port);
        let stack = |fake: &Arc<Fake>, prism: Prism, prefix: &str| {
            prism.wait_ready();
            Stack {
                fake: Arc::clone(fake),
                base: format!("http://127.0.0.1:{}{prefix}", prism.port),
                prism,
            }
        };
        Stacks {
            gitlab: stack(&gitlab_fake, gitlab, "/api/v4"),
            gitea: stack(&gitea_fake, gitea, "/api/v1"),
            github: stack(&github_fake, github, ""),
            ghes: stack(&github_fake, ghes, "/api/v3"),
        }
    })
}

/// `$PUSHSYNC_TOOLS/prism` (default `~/.cache/pushsync-tools/prism`).
fn tools_dir() -> PathBuf {
    std::env::var_os("PUSHSYNC_TOOLS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/pushsync-tools"))
        })
        .unwrap_or_default()
        .join("prism")
}

fn prism_binary() -> PathBuf {
    let binary = tools_dir().join("node_modules/.bin/prism");
    if !binary.is_file() {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        panic!(
            "{} is missing{}: run `make deps` (scripts/install-prism.sh installs prism 5.14.2 and @octokit/openapi 23.0.2); \
             these tests validate every request and response against the forges' API descriptions and are never skipped",
            binary.display(),
            if ci { " on CI" } else { "" },
        );
    }
    binary
}

pub fn octokit_dir() -> PathBuf {
    let dir = tools_dir().join("node_modules/@octokit/openapi/generated");
    assert!(
        dir.is_dir(),
        "{} is missing: run `make deps`",
        dir.display()
    );
    dir
}

/// A copy of the description at `from` with `prefix` before every path
/// (and, with `hooks_only`, only the webhook paths, which starts faster).
fn prefixed(from: &Path, prefix: &str, to: &Path, hooks_only: bool) -> PathBuf {
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(from).unwrap()).unwrap();
    let paths = spec["paths"].as_object().unwrap().clone();
    let paths: serde_json::Map<_, _> = paths
        .into_iter()
        .filter(|(path, _)| {
            !hooks_only
                || path.starts_with("/repos/{owner}/{repo}/hooks")
                || path.starts_with("/orgs/{org}/hooks")
        })
        .map(|(path, item)| (format!("{prefix}{path}"), item))
        .collect();
    spec["paths"] = paths.into();
    if spec.get("basePath").is_some() {
        spec["basePath"] = "/".into();
    }
    std::fs::write(to, serde_json::to_vec(&spec).unwrap()).unwrap();
    to.to_path_buf()
}

/// One prism process under its guard shell.
pub struct Prism {
    pub port: u16,
    spec: PathBuf,
    log: PathBuf,
    guard: Child,
    /// Closing it (when this process ends) ends prism.
    _stdin: ChildStdin,
}

/// Run `"$@"` in the background and kill it once stdin reaches end of file.
pub const GUARD: &str = r#""$@" & pid=$!; cat >/dev/null; kill "$pid" 2>/dev/null; wait "$pid""#;

/// Spawn `program args…` under the guard shell, output to `log`.
pub fn guarded(program: &Path, args: &[&str], log: &Path) -> (Child, ChildStdin) {
    let out = File::create(log).unwrap();
    let mut child = Command::new("sh")
        .args(["-c", GUARD, "pushsync-prism-guard"])
        .arg(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    (child, stdin)
}

impl Prism {
    pub fn spawn(spec: &Path, upstream: u16) -> Prism {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let name = spec.file_stem().and_then(|s| s.to_str()).unwrap_or("spec");
        let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("prism-{name}.log"));
        let (guard, stdin) = guarded(
            &prism_binary(),
            &[
                "proxy",
                spec.to_str().unwrap(),
                &format!("http://127.0.0.1:{upstream}"),
                "--errors",
                "--port",
                &port.to_string(),
                "-v",
                "warn",
            ],
            &log,
        );
        Prism {
            port,
            spec: spec.to_path_buf(),
            log,
            guard,
            _stdin: stdin,
        }
    }

    /// Wait until prism accepts connections (it listens once the
    /// description is loaded).
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "prism did not listen on {} within 120 s:\n{}",
                self.port,
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = &self.guard;
    }

    fn output(&self) -> String {
        let mut text = String::new();
        let _ = File::open(&self.log).and_then(|mut f| f.read_to_string(&mut text));
        text
    }

    /// Log lines reporting a violation or a terminated request.
    pub fn problems(&self) -> Vec<String> {
        self.output()
            .lines()
            .filter(|l| {
                l.contains('✖') || l.contains('⚠') || l.to_ascii_lowercase().contains("violation")
            })
            .map(str::to_owned)
            .collect()
    }
}
