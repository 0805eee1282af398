//! A git smart-HTTP server on loopback that demands HTTP basic auth: `git
//! http-backend` (the git project's own CGI program) behind a small actix-web
//! front, so credential handling is tested against the real protocol.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use tokio::io::AsyncWriteExt;

use crate::git::GitRepo;

struct Auth {
    root: PathBuf,
    expected: String,
}

/// `git http-backend` over HTTP with basic auth, serving every repository
/// below a directory. Stops when dropped.
pub struct GitHttpServer {
    port: u16,
    base: PathBuf,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl GitHttpServer {
    /// Serve the repositories next to `repo`, to `user`:`password` only.
    pub fn serve_repo(repo: &GitRepo, user: &str, password: &str) -> Self {
        let base = repo
            .path()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let port = listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("local addr: {e}"));
        let data = web::Data::new(Auth {
            root: base.clone(),
            expected,
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let system = actix_web::rt::System::new();
            system.block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .app_data(web::PayloadConfig::new(64 << 20))
                        .default_service(web::to(backend))
                })
                .workers(1)
                .listen(listener)
                .unwrap_or_else(|e| panic!("listen: {e}"))
                .run();
                let _ = tx.send(server.handle());
                let _ = server.await;
            });
        });
        let handle = rx
            .recv()
            .unwrap_or_else(|e| panic!("git http server did not start: {e}"));
        Self {
            port,
            base,
            handle,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>/<path relative to the base>` (no credentials).
    pub fn url_of(&self, repo: &GitRepo) -> String {
        let relative = repo.path().strip_prefix(&self.base).unwrap_or(repo.path());
        format!("http://127.0.0.1:{}/{}", self.port, relative.display())
    }
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        let _ = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(handle.stop(false));
        })
        .join();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn backend(request: HttpRequest, body: web::Bytes, auth: web::Data<Auth>) -> HttpResponse {
    let given = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if given != auth.expected {
        return HttpResponse::Unauthorized()
            .insert_header(("WWW-Authenticate", "Basic realm=\"git\""))
            .finish();
    }
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mut command = tokio::process::Command::new("git");
    command
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", &auth.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", request.path())
        .env("REQUEST_METHOD", request.method().as_str())
        .env("QUERY_STRING", request.query_string())
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .env("REMOTE_USER", "test")
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        // A request dropped mid-way (shutdown) must not leave the CGI behind.
        .kill_on_drop(true);
    let Ok(mut child) = command.spawn() else {
        return HttpResponse::InternalServerError().body("git http-backend did not start");
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&body).await;
    }
    let Ok(output) = child.wait_with_output().await else {
        return HttpResponse::InternalServerError().body("git http-backend failed");
    };
    // A CGI answer: headers, a blank line, the body.
    let out = output.stdout;
    let (split, gap) = match out.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(at) => (at, 4),
        None => match out.windows(2).position(|w| w == b"\n\n") {
            Some(at) => (at, 2),
            None => return HttpResponse::InternalServerError().body("bad CGI answer"),
        },
    };
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let mut response = HttpResponse::Ok();
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value
                .split_whitespace()
                .next()
                .and_then(|c| c.parse::<u16>().ok())
                .and_then(|c| actix_web::http::StatusCode::from_u16(c).ok())
                .unwrap_or(actix_web::http::StatusCode::OK);
            response.status(code);
        } else {
            response.insert_header((name.trim().to_owned(), value.to_owned()));
        }
    }
    response.body(out[split + gap..].to_vec())
}
