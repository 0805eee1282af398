//! Remotes that accept a connection and never answer: git's own protocol
//! and HTTP stall at every stage (before the ref advertisement, in the
//! middle of it), and the worker's git operations — the fallback poll's
//! ls-remote included — still end, free their slots, and leave the worker
//! able to fetch from a good remote.
//!
//! Its own test binary: libgit2's socket timeouts are process-wide and the
//! first setting wins, so this process sets short ones before anything else.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed step fails the test"
)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use pushsync_testkit::git::{GitDaemon, GitRepo};
use pushsync_worker::git::{GitCache, GitError, RemotePolicy, SocketTimeouts, socket_timeouts};

/// A server that accepts every connection, reads what it is sent, writes
/// `greeting` (possibly nothing), and then holds the connection open
/// without another byte.
fn black_hole(greeting: &'static [u8]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = [0; 4096];
            let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
            let _ = stream.read(&mut buffer);
            let _ = stream.write_all(greeting);
            held.push(stream);
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remotes_that_accept_and_never_answer_cannot_hold_the_worker() {
    socket_timeouts(SocketTimeouts {
        connect: Duration::from_secs(2),
        io: Duration::from_secs(2),
    });
    let stalls = [
        format!("git://127.0.0.1:{}/repo", black_hole(b"")),
        format!("http://127.0.0.1:{}/repo.git", black_hole(b"")),
        // Headers promising a body that never comes.
        format!(
            "http://127.0.0.1:{}/repo.git",
            black_hole(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-git-upload-pack-advertisement\r\nContent-Length: 1000\r\n\r\n001e# service=git-upload-pack\n")
        ),
        // A pkt-line length and then silence.
        format!("git://127.0.0.1:{}/repo", black_hole(b"00")),
    ];
    let cache = tempfile::tempdir().unwrap();
    // The overall deadline is far away: only the socket timeouts can end
    // the stalls within the bound asserted below.
    let git = GitCache::new(cache.path(), Duration::from_secs(120))
        .with_policy(RemotePolicy::permissive())
        .with_remote_slots(4);
    let started = Instant::now();
    // As many stalled operations as the worker has remote slots, resolves
    // and the poll's ls-remote alike.
    let stalled = stalls.iter().enumerate().map(|(i, url)| {
        let git = git.clone();
        let url = url.clone();
        tokio::spawn(async move {
            if i % 2 == 0 {
                git.resolve(&url, "main").await.map(|_| ())
            } else {
                git.heads(&url).await.map(|_| ())
            }
        })
    });
    let results = futures_util::future::join_all(stalled).await;
    let took = started.elapsed();
    for (url, result) in stalls.iter().zip(results) {
        let error = result.unwrap().unwrap_err();
        assert!(
            matches!(
                error,
                GitError::FetchFailed { .. } | GitError::FetchTimedOut { .. }
            ),
            "{url}: {error:?}"
        );
        assert!(error.is_transient(), "{url}: a stall is retried later");
    }
    assert!(
        took < Duration::from_secs(60),
        "the stalls ended by the socket timeouts, not the 120 s deadline: {took:?}"
    );

    // The slots are free: a good remote answers.
    let repo = GitRepo::init();
    repo.write("a.yaml", "a: 1\n");
    let head = repo.commit("a");
    let daemon = GitDaemon::serve_repo(&repo);
    assert_eq!(
        git.resolve(&daemon.url_of(&repo), "main").await.unwrap(),
        head
    );
}
