//! Against real repositories served by `git daemon` on loopback.

use std::time::Duration;

use futures_util::StreamExt;

use pushsync_testkit::git::{GitDaemon, GitRepo};

use super::*;

fn cache() -> (tempfile::TempDir, GitCache) {
    let dir = tempfile::tempdir().unwrap();
    let cache =
        GitCache::new(dir.path(), Duration::from_secs(20)).with_policy(RemotePolicy::permissive());
    (dir, cache)
}

fn names(files: &[SourceFile]) -> Vec<&str> {
    files.iter().map(|f| f.path.as_str()).collect()
}

#[tokio::test]
async fn a_branch_resolves_to_its_head_and_files_are_read_from_the_tree() {
    let repo = GitRepo::init();
    repo.write("apps/web/deploy.yaml", "kind: Deployment\n")
        .write("apps/web/sub/cm.yaml", "kind: ConfigMap\n")
        .write("README.md", "x");
    let first = repo.commit("first");
    let daemon = GitDaemon::serve_repo(&repo);
    let url = daemon.url_of(&repo);
    let (_dir, cache) = cache();

    assert_eq!(cache.resolve(&url, "main").await.unwrap(), first);
    let files = cache
        .files(&url, &first, "apps/web", Limits::default())
        .await
        .unwrap();
    assert_eq!(names(&files), ["deploy.yaml", "sub/cm.yaml"]);
    assert_eq!(files[0].data, b"kind: Deployment\n");

    // A new commit is fetched on the next resolve; the old one stays readable.
    repo.write("apps/web/deploy.yaml", "kind: Deployment # v2\n");
    let second = repo.commit("second");
    assert_eq!(
        cache.resolve(&url, "refs/heads/main").await.unwrap(),
        second
    );
    let files = cache
        .files(&url, &second, "./apps/web/", Limits::default())
        .await
        .unwrap();
    assert_eq!(files[0].data, b"kind: Deployment # v2\n");
}

#[tokio::test]
async fn tags_and_commit_ids_resolve_and_unknown_revisions_are_user_errors() {
    let repo = GitRepo::init();
    repo.write("a.yaml", "a: 1\n");
    let tagged = repo.commit("tagged");
    repo.git(&["tag", "-a", "v1.0", "-m", "release"]);
    repo.write("a.yaml", "a: 2\n");
    repo.commit("later");
    let daemon = GitDaemon::serve_repo(&repo);
    let url = daemon.url_of(&repo);
    let (_dir, cache) = cache();

    assert_eq!(
        cache.resolve(&url, "v1.0").await.unwrap(),
        tagged,
        "annotated tags peel to their commit"
    );
    assert_eq!(
        cache.resolve(&url, &tagged).await.unwrap(),
        tagged,
        "a known commit id resolves locally"
    );
    let error = cache.resolve(&url, "no-such-branch").await.unwrap_err();
    assert!(
        matches!(error, GitError::RevisionNotFound { .. }),
        "{error:?}"
    );
    assert!(!error.is_transient());
}

#[tokio::test]
async fn nothing_outside_the_repository_is_read() {
    let repo = GitRepo::init();
    repo.write("apps/web/cm.yaml", "kind: ConfigMap\n")
        .write("shared/base.yaml", "kind: Service\n")
        .symlink("apps/web/inside.yaml", "../../shared/base.yaml");
    let good = repo.commit("inside link");
    repo.symlink("apps/web/passwd.yaml", "/etc/passwd");
    let absolute = repo.commit("absolute link");
    repo.remove("apps/web/passwd.yaml")
        .symlink("apps/web/up.yaml", "../../../outside.yaml");
    let relative = repo.commit("climbing link");
    let daemon = GitDaemon::serve_repo(&repo);
    let url = daemon.url_of(&repo);
    let (_dir, cache) = cache();
    cache.resolve(&url, "main").await.unwrap();
    // Older commits by id: the cache holds only the shallow tip so far.
    for commit in [&good, &absolute] {
        assert_eq!(&cache.resolve(&url, commit).await.unwrap(), commit);
    }

    let files = cache
        .files(&url, &good, "apps/web", Limits::default())
        .await
        .unwrap();
    let inside = files.iter().find(|f| f.path == "inside.yaml").unwrap();
    assert_eq!(
        inside.data, b"kind: Service\n",
        "a link inside the repository is followed"
    );

    for commit in [&absolute, &relative] {
        let error = cache
            .files(&url, commit, "apps/web", Limits::default())
            .await
            .unwrap_err();
        assert!(
            matches!(error, GitError::SymlinkEscapes { .. }),
            "{error:?}"
        );
        assert!(!error.is_transient());
    }
    for path in ["../etc", "apps/../../x"] {
        let error = cache
            .files(&url, &good, path, Limits::default())
            .await
            .unwrap_err();
        assert!(
            matches!(error, GitError::PathEscapes { .. }),
            "{path}: {error:?}"
        );
    }
    let error = cache
        .files(&url, &good, "apps/missing", Limits::default())
        .await
        .unwrap_err();
    assert!(matches!(error, GitError::PathNotFound { .. }), "{error:?}");
}

#[tokio::test]
async fn limits_bound_what_a_sync_reads() {
    let repo = GitRepo::init();
    repo.write("apps/a.yaml", &"x".repeat(2000))
        .write("apps/b.yaml", "b");
    let commit = repo.commit("big");
    let daemon = GitDaemon::serve_repo(&repo);
    let url = daemon.url_of(&repo);
    let (_dir, cache) = cache();
    cache.resolve(&url, "main").await.unwrap();
    let tight = Limits {
        max_file_bytes: 1000,
        ..Limits::default()
    };
    assert!(matches!(
        cache.files(&url, &commit, "apps", tight).await,
        Err(GitError::TooLarge { .. })
    ));
    let few = Limits {
        max_files: 1,
        ..Limits::default()
    };
    assert!(matches!(
        cache.files(&url, &commit, "apps", few).await,
        Err(GitError::TooLarge { .. })
    ));
}

#[tokio::test]
async fn an_unreachable_remote_is_a_transient_error_without_credentials_in_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (_dir, cache) = cache();
    let error = cache
        .resolve(
            &format!("https://user:s3cret@127.0.0.1:{port}/org/repo.git"),
            "main",
        )
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    assert!(!error.to_string().contains("s3cret"), "{error}");
}

#[tokio::test]
async fn concurrent_resolves_of_one_repository_share_the_work() {
    let repo = GitRepo::init();
    repo.write("a.yaml", "a");
    let head = repo.commit("one");
    let daemon = GitDaemon::serve_repo(&repo);
    let url = daemon.url_of(&repo);
    let (_dir, cache) = cache();
    let results = futures_util::future::join_all((0..8).map(|_| cache.resolve(&url, "main"))).await;
    for result in results {
        assert_eq!(result.unwrap(), head);
    }
    assert_eq!(
        cache.remote_calls(),
        1,
        "eight concurrent resolves asked the remote more than once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_repositories_need_their_credentials_and_secrets_stay_out_of_errors() {
    use pushsync_testkit::git_http::GitHttpServer;

    let repo = GitRepo::init();
    repo.write("apps/web/cm.yaml", "kind: ConfigMap\n");
    let head = repo.commit("private");
    let server = GitHttpServer::serve_repo(&repo, "deploy", "s3cr3t-token");
    let url = server.url_of(&repo);
    let secrets = tempfile::tempdir().unwrap();

    // No credentials configured: refused, not worth a retry, readable.
    let cache = tempfile::tempdir().unwrap();
    let git = GitCache::new(cache.path(), Duration::from_secs(20))
        .with_policy(RemotePolicy::permissive());
    let error = git.resolve(&url, "main").await.unwrap_err();
    assert!(
        matches!(error, GitError::AuthenticationFailed { .. }),
        "{error:?}"
    );
    assert!(!error.is_transient());
    assert!(error.to_string().contains("none are configured"), "{error}");

    // A wrong token: refused, and the token never appears in the error.
    let wrong = secrets.path().join("wrong");
    std::fs::write(&wrong, "not-the-token\n").unwrap();
    let credentials = |file: &std::path::Path| {
        Credentials::new(vec![Credential {
            url: url.rsplit_once('/').unwrap().0.to_owned(),
            username: Some("deploy".into()),
            password_file: Some(file.to_path_buf()),
            ssh_private_key_file: None,
        }])
    };
    let git = GitCache::new(cache.path(), Duration::from_secs(20))
        .with_policy(RemotePolicy::permissive())
        .with_credentials(credentials(&wrong));
    let error = git.resolve(&url, "main").await.unwrap_err();
    assert!(
        matches!(error, GitError::AuthenticationFailed { .. }),
        "{error:?}"
    );
    let chain = format!("{error:?} {error}");
    assert!(!chain.contains("not-the-token"), "{chain}");

    // The right token, from a file (a mounted Secret): resolved and read.
    let right = secrets.path().join("token");
    std::fs::write(&right, "s3cr3t-token\n").unwrap();
    let git = GitCache::new(cache.path(), Duration::from_secs(20))
        .with_policy(RemotePolicy::permissive())
        .with_credentials(credentials(&right));
    assert_eq!(git.resolve(&url, "main").await.unwrap(), head);
    let files = git
        .files(&url, &head, "apps/web", Limits::default())
        .await
        .unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(git.heads(&url).await.unwrap().commit_of("main"), Some(head));
}

#[test]
fn credentials_files_are_checked_and_the_longest_prefix_wins() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials.yaml");
    std::fs::write(
        &file,
        "- url: https://github.com/\n  passwordFile: /secrets/all\n- url: https://github.com/acme/\n  username: x-access-token\n  passwordFile: /secrets/acme\n- url: ssh://git@gitlab.com/\n  sshPrivateKeyFile: /secrets/id_ed25519\n",
    )
    .unwrap();
    let credentials = Credentials::load(&file).unwrap();
    let found = |url: &str| {
        credentials
            .for_url(url)
            .map(|c| c.password_file.clone().or(c.ssh_private_key_file.clone()))
    };
    assert_eq!(
        found("https://github.com/acme/app.git"),
        Some(Some("/secrets/acme".into()))
    );
    assert_eq!(
        found("https://github.com/other/app.git"),
        Some(Some("/secrets/all".into()))
    );
    assert_eq!(
        found("ssh://git@gitlab.com/g/p.git"),
        Some(Some("/secrets/id_ed25519".into()))
    );
    assert_eq!(found("https://example.com/r.git"), None);
    // Matched on the parsed URL, never as a raw string prefix.
    for (url, expected) in [
        ("https://github.com.evil.tld/acme/app.git", None),
        ("https://github.com:8443/acme/app.git", None),
        ("http://github.com/acme/app.git", None),
        ("https://GitHub.com/acme/app.git", Some("/secrets/acme")),
        (
            "https://token@github.com/acme/app.git",
            Some("/secrets/acme"),
        ),
        ("https://github.com/acme-evil/app.git", Some("/secrets/all")),
        ("git@gitlab.com:g/p.git", Some("/secrets/id_ed25519")),
        ("ssh://git@gitlab.com.evil.tld/g/p.git", None),
        ("not a url", None),
        // Percent-encoded user information that libgit2 decodes into a
        // path-looking user name at another host.
        ("https://github.com/acme/@evil.tld/x.git", None),
        // A query or fragment ends the host for libgit2: evil.tld here.
        ("https://evil.tld?@github.com/acme/app.git", None),
        ("https://evil.tld#@github.com/acme/app.git", None),
        ("https://github.com:443/acme/app.git", Some("/secrets/acme")),
    ] {
        assert_eq!(found(url), expected.map(|f| Some(f.into())), "{url}");
    }
    let acme = credentials
        .for_url("https://github.com/acme/app.git")
        .unwrap();
    assert!(acme.covers("https://github.com/acme/other.git"));
    assert!(
        !acme.covers("https://evil.example/acme/app.git"),
        "a redirect elsewhere gets nothing"
    );
    assert!(!acme.covers("https://github.com/acmex/app.git"));
    assert!(!acme.covers("https://github.com/acme/@evil.tld/x"));

    std::fs::write(&file, "- url: https://github.com/\n").unwrap();
    let error = Credentials::load(&file).unwrap_err().to_string();
    assert!(
        error.contains("neither passwordFile nor sshPrivateKeyFile"),
        "{error}"
    );
    std::fs::write(&file, "- url: https://github.com/\n  password: inline\n").unwrap();
    assert!(
        Credentials::load(&file).is_err(),
        "inline secrets are refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_applications_on_one_branch_cost_one_fetch_per_new_commit() {
    let repo = GitRepo::init();
    repo.write("apps/a/cm.yaml", "kind: ConfigMap\n");
    let first = repo.commit("first");
    let daemon = GitDaemon::serve_repo(&repo);
    let url = daemon.url_of(&repo);
    let cache = tempfile::tempdir().unwrap();
    let fetches = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = fetches.clone();
    let git = GitCache::new(cache.path(), Duration::from_secs(20))
        .with_policy(RemotePolicy::permissive())
        .observe_fetches(std::sync::Arc::new(move |_, bytes| {
            assert!(bytes > 0, "a fetch receives objects");
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }));
    // Fifty Applications on the branch resolve it, twenty at a time.
    let resolves: Vec<_> = (0..50).map(|_| git.resolve(&url, "main")).collect();
    let heads = futures_util::stream::iter(resolves)
        .buffer_unordered(20)
        .collect::<Vec<_>>()
        .await;
    assert!(
        heads
            .iter()
            .all(|h| h.as_deref().ok() == Some(first.as_str()))
    );
    assert_eq!(fetches.load(std::sync::atomic::Ordering::Relaxed), 1);
    // A new commit: one more fetch, whoever asks first.
    repo.write("apps/a/cm.yaml", "kind: ConfigMap\ndata: {}\n");
    let second = repo.commit("second");
    for _ in 0..10 {
        assert_eq!(git.resolve(&url, "main").await.unwrap(), second);
    }
    assert_eq!(fetches.load(std::sync::atomic::Ordering::Relaxed), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_withheld_from_a_host_a_redirect_leads_to() {
    use std::io::{Read, Write};

    use pushsync_testkit::git_http::GitHttpServer;

    // The real (private) server, and a host in front of it that redirects
    // every request there, as a compromised or hostile remote could. Both
    // are on 127.0.0.1: libgit2 counts a redirect to another port of the
    // same host as on-site and follows it even with `http.followRedirects`
    // off, so the check of the asking URL is what withholds the token.
    let repo = GitRepo::init();
    repo.write("a.yaml", "kind: ConfigMap\n");
    repo.commit("private");
    let target = GitHttpServer::serve_repo(&repo, "deploy", "s3cr3t-token");
    let target_url = target.url_of(&repo);
    let (target_base, path) = {
        let rest = target_url.split_once("://").unwrap().1;
        let (authority, path) = rest.split_once('/').unwrap();
        (format!("http://{authority}"), format!("/{path}"))
    };
    let front = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let front_url = format!("http://{}{path}", front.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in front.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut request = [0u8; 4096];
            let read = stream.read(&mut request).unwrap_or(0);
            let head = String::from_utf8_lossy(&request[..read]).into_owned();
            let target = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let answer = format!(
                "HTTP/1.1 302 Found\r\nLocation: {target_base}{target}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });

    // The credential is configured for the front host only.
    let secrets = tempfile::tempdir().unwrap();
    let token = secrets.path().join("token");
    std::fs::write(&token, "s3cr3t-token\n").unwrap();
    let credentials = Credentials::new(vec![Credential {
        url: front_url.rsplit_once('/').unwrap().0.to_owned(),
        username: Some("deploy".into()),
        password_file: Some(token),
        ssh_private_key_file: None,
    }]);
    let cache = tempfile::tempdir().unwrap();
    let git = GitCache::new(cache.path(), Duration::from_secs(20))
        .with_policy(RemotePolicy::permissive())
        .with_credentials(credentials);
    let error = git.resolve(&front_url, "main").await.unwrap_err();
    assert!(
        matches!(error, GitError::AuthenticationFailed { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("withheld"), "{error}");
    assert!(!format!("{error:?}").contains("s3cr3t-token"));
}

/// A listener that counts the connections it accepts.
fn counting_listener() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(stream);
        }
    });
    (port, accepted)
}

#[tokio::test]
async fn repo_urls_aimed_at_the_workers_own_network_are_refused_before_any_connection() {
    let repo = GitRepo::init();
    repo.write("a.yaml", "a: 1\n");
    repo.commit("a");
    let (port, accepted) = counting_listener();
    let dir = tempfile::tempdir().unwrap();
    // The policy a cluster install runs with.
    let git = GitCache::new(dir.path(), Duration::from_secs(5));
    let on_disk = repo.path().display().to_string();
    for url in [
        format!("git://127.0.0.1:{port}/repo"),
        format!("https://localhost:{port}/repo"),
        format!("https://[::ffff:127.0.0.1]:{port}/repo"),
        format!("git://2130706433:{port}/repo"),
        "http://169.254.169.254/latest/meta-data/iam/".to_owned(),
        format!("file://{on_disk}"),
        on_disk.clone(),
    ] {
        for error in [
            git.resolve(&url, "main").await.unwrap_err(),
            git.heads(&url).await.map(|_| ()).unwrap_err(),
        ] {
            assert!(
                matches!(error, GitError::NotAllowed { .. }),
                "{url}: {error:?}"
            );
            assert!(
                !error.is_transient(),
                "a refusal is the Application's to fix"
            );
        }
    }
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing was contacted"
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing was cached"
    );
}

#[tokio::test]
async fn network_failures_tell_the_status_nothing_about_the_target() {
    // A port nothing listens on: libgit2 says "connection refused", a port
    // scanner's answer; the status message must not.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (_dir, git) = cache();
    let error = git
        .resolve(&format!("git://127.0.0.1:{port}/x"), "main")
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    let public = error.public_message();
    assert_eq!(
        public,
        format!("fetching from git://127.0.0.1:{port}/x failed (the worker's log has the cause)")
    );
    let detail = pushsync_service::error_chain(&error);
    assert!(
        detail.len() > public.len(),
        "the log keeps the cause: {detail}"
    );
}

#[tokio::test]
async fn a_fetch_over_the_byte_cap_stops_and_is_not_retried() {
    let repo = GitRepo::init();
    // Incompressible, so the pack is as large as the content.
    let mut random = vec![0u8; 150_000];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").unwrap(),
        &mut random,
    )
    .unwrap();
    let noise: String = random.iter().map(|b| format!("{b:02x}")).collect();
    repo.write("big.txt", &noise);
    repo.commit("big");
    let daemon = GitDaemon::serve_repo(&repo);
    let dir = tempfile::tempdir().unwrap();
    let git = GitCache::new(dir.path(), Duration::from_secs(20))
        .with_policy(RemotePolicy::permissive())
        .with_max_fetch_bytes(16 * 1024);
    let error = git
        .resolve(&daemon.url_of(&repo), "main")
        .await
        .unwrap_err();
    assert!(
        matches!(error, GitError::TooLarge { limit: 16384, .. }),
        "{error:?}"
    );
    assert!(!error.is_transient());
}

#[tokio::test]
async fn the_cache_stays_within_its_disk_budget_evicting_the_least_recently_used() {
    let repos: Vec<GitRepo> = (0..3)
        .map(|i| {
            let repo = GitRepo::init();
            repo.write("a.yaml", &format!("a: {i}\n"));
            repo.commit("a");
            repo
        })
        .collect();
    let daemons: Vec<GitDaemon> = repos.iter().map(GitDaemon::serve_repo).collect();
    let urls: Vec<String> = repos
        .iter()
        .zip(&daemons)
        .map(|(repo, daemon)| daemon.url_of(repo))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    // Room for about one small repository.
    let git = GitCache::new(dir.path(), Duration::from_secs(20))
        .with_policy(RemotePolicy::permissive())
        .with_budget(1)
        .observe_cache(std::sync::Arc::new(move |bytes, evicted| {
            record.lock().unwrap().push((bytes, evicted));
        }));
    let repositories = || std::fs::read_dir(dir.path()).unwrap().count();
    for url in &urls {
        let commit = git.resolve(url, "main").await.unwrap();
        // The one just fetched is never the one evicted: it is read next.
        let files = git
            .files(url, &commit, "", Limits::default())
            .await
            .unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(repositories(), 1, "only the latest stays on disk");
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.iter().map(|(_, e)| e).sum::<u64>(), 2, "{seen:?}");
    assert!(seen.iter().all(|(bytes, _)| *bytes > 0), "{seen:?}");
    // An evicted repository is fetched again when needed.
    let calls = git.remote_calls();
    let first = git.resolve(&urls[0], "main").await.unwrap();
    assert_eq!(git.remote_calls(), calls + 1);
    git.files(&urls[0], &first, "", Limits::default())
        .await
        .unwrap();
}
