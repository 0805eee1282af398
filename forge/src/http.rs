//! The HTTP side shared by the three forges: the client (hyper over rustls
//! with ring, timeouts, no redirects, the `*_PROXY` environment),
//! authentication headers, path joining under the API base, pagination, and
//! turning error answers into [`ForgeError`]s.
//!
//! TLS is configured per client: the ring provider is handed to the
//! `rustls::ClientConfig` explicitly and the platform's root certificates
//! are trusted, so no process-wide rustls provider is read or installed.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::uri::Scheme;
use hyper::{Method, Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use url::Url;

pub(crate) use crate::transport::{Connector, https_connector, native_roots, tls_config};
use crate::{ForgeError, ForgeKind, Target};

/// `User-Agent` on every request (GitHub rejects requests without one).
const USER_AGENT: &str = concat!("pushsync/", env!("CARGO_PKG_VERSION"));
/// Pages followed at most when listing: a guard against a forge that keeps
/// answering "next".
const MAX_PAGES: u32 = 1000;
/// How much of an unparsable error body is kept in the message.
const MESSAGE_LIMIT: usize = 300;
/// The largest successful answer read (a page of hooks is a few hundred
/// kilobytes at most); a larger one is a transport error.
const BODY_LIMIT: usize = 8 * 1024 * 1024;
/// How much of an error answer's body is read; the rest is dropped.
const ERROR_BODY_LIMIT: usize = 64 * 1024;
/// The longest a TCP connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an idle connection is kept for the next request.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// What a transport failure is made of.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The HTTP client: hyper over rustls, HTTP/1.1.
type HttpClient = Client<HttpsConnector<Connector>, Full<Bytes>>;

/// An authenticated client of one forge's API base.
#[derive(Clone)]
pub(crate) struct Api {
    inner: Arc<Inner>,
}

struct Inner {
    kind: ForgeKind,
    base: Url,
    token: SecretString,
    client: HttpClient,
    /// The `*_PROXY`/`NO_PROXY` environment when the client was built.
    proxies: Arc<Matcher>,
    /// Whether any root certificate was found: without one no `https`
    /// request is tried, and the error says why.
    has_roots: bool,
    timeout: Duration,
}

/// A successful answer.
pub(crate) struct Answer {
    headers: HeaderMap,
    body: Vec<u8>,
}

/// One request, described without its credentials.
#[derive(Clone, Copy)]
pub(crate) struct Call<'a> {
    /// What this crate is doing, for errors: `list hooks`, `create hook`.
    pub operation: &'static str,
    pub method: &'static str,
    pub url: &'a Url,
}

/// A transport failure of our own making (the others come from hyper,
/// rustls or the proxy tunnel).
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("no complete answer within {0:?}")]
    TimedOut(Duration),
    #[error("the answer is larger than {BODY_LIMIT} bytes")]
    TooLarge,
    #[error("no trusted root certificates were found on this system")]
    NoRootCertificates,
}

impl Api {
    pub(crate) fn new(
        kind: ForgeKind,
        base: Url,
        token: SecretString,
        timeout: Duration,
    ) -> Result<Api, ForgeError> {
        let roots = native_roots();
        let has_roots = !roots.is_empty();
        let tls = tls_config(roots).map_err(|e| ForgeError::Client(Box::new(e)))?;
        let proxies = Arc::new(Matcher::from_env());
        let connector = https_connector(tls, Arc::clone(&proxies), timeout.min(CONNECT_TIMEOUT));
        // A redirect is never followed (hyper does not): following one could
        // send the token (in a header a client does not know to strip, like
        // GitLab's PRIVATE-TOKEN) to another host. It is answered as an
        // error status.
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .build(connector);
        Ok(Api {
            inner: Arc::new(Inner {
                kind,
                base,
                token,
                client,
                proxies,
                has_roots,
                timeout,
            }),
        })
    }

    pub(crate) fn kind(&self) -> ForgeKind {
        self.inner.kind
    }

    pub(crate) fn base(&self) -> &Url {
        &self.inner.base
    }

    /// The base with `segments` appended, each percent-encoded as one
    /// segment, keeping the base's own path (`/api/v3`).
    pub(crate) fn url(&self, segments: &[&str]) -> Url {
        join(&self.inner.base, segments)
    }

    /// The target's hook collection.
    pub(crate) fn hooks_url(&self, target: &Target) -> Result<Url, ForgeError> {
        Ok(self.url(&target.hooks_segments(self.kind())?))
    }

    /// One hook of the target, with more segments after its id.
    pub(crate) fn hook_url_with(
        &self,
        target: &Target,
        id: u64,
        more: &[&str],
    ) -> Result<Url, ForgeError> {
        let id = id.to_string();
        let mut segments = target.hooks_segments(self.kind())?;
        segments.push(&id);
        segments.extend_from_slice(more);
        Ok(self.url(&segments))
    }

    /// One hook of the target.
    pub(crate) fn hook_url(&self, target: &Target, id: u64) -> Result<Url, ForgeError> {
        self.hook_url_with(target, id, &[])
    }

    /// Send a request; a non-2xx status is a [`ForgeError::Status`] with the
    /// forge's message, redacted of the token and of `secret`. The whole
    /// exchange, the answer's body included, is bounded by the timeout.
    pub(crate) async fn send(
        &self,
        call: Call<'_>,
        body: Option<&serde_json::Value>,
        secret: Option<&SecretString>,
    ) -> Result<Answer, ForgeError> {
        tracing::debug!(forge = %self.kind(), method = call.method, path = call.url.path(), "forge request");
        let transport = |source| ForgeError::Transport {
            operation: call.operation,
            method: call.method,
            path: call.url.path().to_owned(),
            source,
        };
        let request = self.request(call, body).map_err(transport)?;
        let timeout = self.inner.timeout;
        let (status, headers, body) =
            match tokio::time::timeout(timeout, self.exchange(request)).await {
                Ok(answer) => answer.map_err(transport)?,
                Err(_) => return Err(transport(Box::new(Failure::TimedOut(timeout)))),
            };
        tracing::debug!(forge = %self.kind(), method = call.method, path = call.url.path(), status = status.as_u16(), "forge answer");
        if !status.is_success() {
            // Redacted before it is cut short, so no part of a secret stays.
            let message = redact(
                &error_message(status, &body),
                &[Some(&self.inner.token), secret],
            );
            let message = message.chars().take(MESSAGE_LIMIT).collect();
            return Err(ForgeError::Status {
                operation: call.operation,
                method: call.method,
                path: call.url.path().to_owned(),
                status: status.as_u16(),
                message,
            });
        }
        Ok(Answer { headers, body })
    }

    /// The request for `call`: our headers, the authentication, and `body`
    /// as JSON.
    fn request(
        &self,
        call: Call<'_>,
        body: Option<&serde_json::Value>,
    ) -> Result<Request<Full<Bytes>>, BoxError> {
        let method = Method::from_bytes(call.method.as_bytes()).unwrap_or(Method::GET);
        let uri: Uri = call.url.as_str().parse()?;
        let https = uri.scheme() == Some(&Scheme::HTTPS);
        if https && !self.inner.has_roots {
            return Err(Box::new(Failure::NoRootCertificates));
        }
        let mut headers = HeaderMap::new();
        headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        headers.extend(self.auth_headers());
        // A plain-http request through a proxy is forwarded, not tunnelled:
        // the proxy's credentials go with it.
        if !https
            && let Some(auth) = self
                .inner
                .proxies
                .intercept(&uri)
                .and_then(|proxy| proxy.basic_auth().cloned())
        {
            let mut auth = auth;
            auth.set_sensitive(true);
            headers.insert(header::PROXY_AUTHORIZATION, auth);
        }
        let body = match body {
            Some(json) => {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                Full::new(Bytes::from(serde_json::to_vec(json)?))
            }
            None => Full::new(Bytes::new()),
        };
        let mut request = Request::builder().method(method).uri(uri).body(body)?;
        *request.headers_mut() = headers;
        Ok(request)
    }

    /// Send `request` and read the answer: a successful body whole (up to
    /// [`BODY_LIMIT`]), an error body up to [`ERROR_BODY_LIMIT`].
    async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), BoxError> {
        let response = self.inner.client.request(request).await?;
        let (parts, body) = response.into_parts();
        let success = parts.status.is_success();
        let limit = if success {
            BODY_LIMIT
        } else {
            ERROR_BODY_LIMIT
        };
        let (body, complete) = read_capped(body, limit).await?;
        if success && !complete {
            return Err(Box::new(Failure::TooLarge));
        }
        Ok((parts.status, parts.headers, body))
    }

    /// Send and decode a JSON answer.
    pub(crate) async fn send_json<T: DeserializeOwned>(
        &self,
        call: Call<'_>,
        body: Option<&serde_json::Value>,
        secret: Option<&SecretString>,
    ) -> Result<T, ForgeError> {
        let answer = self.send(call, body, secret).await?;
        decode(call, &answer.body)
    }

    /// `DELETE` one resource.
    pub(crate) async fn delete(&self, operation: &'static str, url: Url) -> Result<(), ForgeError> {
        let call = Call {
            operation,
            method: "DELETE",
            url: &url,
        };
        self.send(call, None, None).await.map(drop)
    }

    /// Every item of a paginated collection: `per_page` items a page (the
    /// page-size parameter is `size_param`), following the `page` numbers
    /// the forge announces (GitLab's `x-next-page`, or the `page` of the
    /// `Link` header's `rel="next"` URL). The next URL itself is never
    /// requested: it is rebuilt on our base, so a `Link` naming another host
    /// cannot receive the token.
    pub(crate) async fn list<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        url: Url,
        size_param: &str,
        per_page: u32,
    ) -> Result<Vec<T>, ForgeError> {
        let mut items = Vec::new();
        let mut page = 1u32;
        for _ in 0..MAX_PAGES {
            let mut page_url = url.clone();
            page_url
                .query_pairs_mut()
                .append_pair(size_param, &per_page.to_string())
                .append_pair("page", &page.to_string());
            let call = Call {
                operation,
                method: "GET",
                url: &page_url,
            };
            let answer = self.send(call, None, None).await?;
            let batch: Vec<T> = decode(call, &answer.body)?;
            let empty = batch.is_empty();
            items.extend(batch);
            match next_page(&answer.headers) {
                Some(next) if next > page && !empty => page = next,
                _ => return Ok(items),
            }
        }
        Ok(items)
    }

    fn auth_headers(&self) -> HeaderMap {
        let token = self.inner.token.expose_secret();
        let mut headers = HeaderMap::new();
        let (name, value) = match self.kind() {
            ForgeKind::Github => {
                headers.insert(
                    header::ACCEPT,
                    HeaderValue::from_static("application/vnd.github+json"),
                );
                headers.insert(
                    HeaderName::from_static("x-github-api-version"),
                    HeaderValue::from_static("2022-11-28"),
                );
                (header::AUTHORIZATION, format!("Bearer {token}"))
            }
            ForgeKind::Gitlab => (HeaderName::from_static("private-token"), token.to_owned()),
            ForgeKind::Gitea => (header::AUTHORIZATION, format!("token {token}")),
        };
        // A token that is not a valid header value is sent as no header
        // (the forge answers 401) rather than echoed in an error.
        if let Ok(mut value) = HeaderValue::from_str(&value) {
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        headers
    }
}

/// At most `limit` bytes of `body`, and whether that was all of it (the
/// rest is not read).
async fn read_capped(mut body: Incoming, limit: usize) -> Result<(Vec<u8>, bool), hyper::Error> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        let room = limit - out.len();
        if data.len() > room {
            out.extend_from_slice(&data[..room]);
            return Ok((out, false));
        }
        out.extend_from_slice(&data);
    }
    Ok((out, true))
}

/// `base` + `segments`, keeping the base's path prefix.
pub(crate) fn join(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

fn decode<T: DeserializeOwned>(call: Call<'_>, body: &[u8]) -> Result<T, ForgeError> {
    serde_json::from_slice(body).map_err(|e| ForgeError::UnexpectedBody {
        operation: call.operation,
        method: call.method,
        path: call.url.path().to_owned(),
        detail: e.to_string(),
    })
}

/// The next page number a list answer announces, if any.
fn next_page(headers: &HeaderMap) -> Option<u32> {
    let gitlab = headers
        .get("x-next-page")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    match gitlab {
        Some("") => return None,
        Some(n) => return n.parse().ok(),
        None => {}
    }
    let link = headers.get(header::LINK)?.to_str().ok()?;
    let next = link_next(link)?;
    let url = Url::parse(next).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == "page")
        .and_then(|(_, v)| v.parse().ok())
}

/// The target of the `rel="next"` entry of an RFC 8288 `Link` header.
pub(crate) fn link_next(link: &str) -> Option<&str> {
    link.split(',').find_map(|entry| {
        let (target, params) = entry.trim().split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .filter_map(|p| p.trim().split_once('='))
            .any(|(k, v)| {
                k.trim().eq_ignore_ascii_case("rel")
                    && v.trim()
                        .trim_matches('"')
                        .split_whitespace()
                        .any(|rel| rel.eq_ignore_ascii_case("next"))
            })
            .then_some(target)
    })
}

/// The forge's message from an error body: GitHub (`message` plus the
/// `errors[].message` of a 422), GitLab (`message` — a string or an object
/// of field errors — or `error`), Gitea (`message`); otherwise the start of
/// the body, RFC 9457 problem details, or the status's reason.
pub(crate) fn error_message(status: StatusCode, body: &[u8]) -> String {
    let reason = status.canonical_reason().unwrap_or("error").to_owned();
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.is_empty() {
            return reason;
        }
        return text.to_owned();
    };
    let mut message = match (json.get("message"), json.get("error")) {
        (Some(serde_json::Value::String(m)), _) => m.clone(),
        (Some(other), _) if !other.is_null() => other.to_string(),
        (_, Some(serde_json::Value::String(e))) => e.clone(),
        _ => problem_details(&json).unwrap_or(reason),
    };
    let details: Vec<&str> = json
        .get("errors")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("message").and_then(serde_json::Value::as_str))
        .collect();
    if !details.is_empty() {
        message = format!("{message} ({})", details.join("; "));
    }
    message
}

/// `title: detail` of an RFC 9457 problem details body (what a proxy in
/// front of the forge may answer).
fn problem_details(json: &serde_json::Value) -> Option<String> {
    let field = |name| json.get(name).and_then(serde_json::Value::as_str);
    match (field("title"), field("detail")) {
        (Some(title), Some(detail)) => Some(format!("{title}: {detail}")),
        (title, detail) => title.or(detail).map(str::to_owned),
    }
}

/// `text` with every non-empty secret replaced by `[REDACTED]`.
pub(crate) fn redact(text: &str, secrets: &[Option<&SecretString>]) -> String {
    secrets
        .iter()
        .flatten()
        .map(|s| s.expose_secret())
        .filter(|s| !s.is_empty())
        .fold(text.to_owned(), |text, secret| {
            text.replace(secret, "[REDACTED]")
        })
}
