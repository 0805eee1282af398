//! The same HTTPS client the forges are called with, for pushsync's other
//! outbound calls (the API server's OpenID Connect discovery, key and token
//! requests): rustls with ring given explicitly, the platform's roots, the
//! `*_PROXY` environment, no redirects followed, bounded answers and time.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Response};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::transport::{Connector, https_connector, native_roots, tls_config};

/// What a failed call is made of.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The largest answer read.
const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// An HTTP(S) client for whole-body requests.
#[derive(Clone)]
pub struct HttpsClient {
    client: Client<HttpsConnector<Connector>, Full<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for HttpsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsClient")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpsClient {
    /// A client whose every call (connect, send, read the answer) ends
    /// within `timeout`.
    pub fn new(timeout: Duration) -> Result<HttpsClient, BoxError> {
        let tls = tls_config(native_roots())?;
        let connector = https_connector(tls, Arc::new(Matcher::from_env()), timeout);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Ok(HttpsClient { client, timeout })
    }

    /// Send `request`; the answer whatever its status (a redirect is
    /// returned, not followed), its body read whole up to 4 MiB.
    pub async fn send(&self, request: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, BoxError> {
        let (parts, body) = request.into_parts();
        let request = Request::from_parts(parts, Full::new(Bytes::from(body)));
        let call = async {
            let response = self.client.request(request).await?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, BODY_LIMIT).collect().await?.to_bytes();
            Ok::<_, BoxError>(Response::from_parts(parts, body.to_vec()))
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| -> BoxError {
                format!("no complete answer within {:?}", self.timeout).into()
            })?
    }
}
