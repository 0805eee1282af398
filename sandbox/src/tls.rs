//! TLS for kubectl. kubectl (client-go's kubeconfig loader) sends
//! credentials and `--as` only to `https` servers, so with RBAC on the
//! sandbox also listens with TLS and relays each decrypted connection to its
//! plain HTTP listener, and its kubeconfigs point there.
//!
//! The certificate (for `127.0.0.1` and `localhost`) and its test CA are
//! fixed files checked in beside this module, private key included: they
//! protect nothing and must be trusted nowhere but in a sandbox kubeconfig.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_util::sync::CancellationToken;

/// The test CA that signed the sandbox's certificate, PEM (for kubeconfigs).
pub const CA_PEM: &str = include_str!("tls/ca.pem");

/// The sandbox's certificate, DER.
const CERTIFICATE: &[u8] = include_bytes!("tls/server.der");

/// Its private key, PKCS#8 DER.
const KEY: &[u8] = include_bytes!("tls/server.key.der");

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The fixed certificate or key was refused.
    #[error("the sandbox's TLS certificate is unusable")]
    Certificate(#[source] rustls::Error),
    /// The listener could not be handed to the runtime.
    #[error("cannot listen for TLS connections")]
    Listen(#[source] std::io::Error),
}

/// Accept TLS connections on `listener` and relay each to the plain HTTP
/// server at `upstream`, until `stop`.
pub fn relay(
    listener: std::net::TcpListener,
    upstream: SocketAddr,
    stop: CancellationToken,
) -> Result<(), TlsError> {
    let acceptor = TlsAcceptor::from(Arc::new(server_config()?));
    listener.set_nonblocking(true).map_err(TlsError::Listen)?;
    let listener = TcpListener::from_std(listener).map_err(TlsError::Listen)?;
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let Ok((connection, _)) = accepted else {
                continue;
            };
            let acceptor = acceptor.clone();
            // A failed handshake or a dropped peer ends only that connection.
            tokio::spawn(async move {
                let _ = relay_one(&acceptor, connection, upstream).await;
            });
        }
    });
    Ok(())
}

async fn relay_one(
    acceptor: &TlsAcceptor,
    connection: TcpStream,
    upstream: SocketAddr,
) -> std::io::Result<()> {
    let mut tls = acceptor.accept(connection).await?;
    let mut plain = TcpStream::connect(upstream).await?;
    tokio::io::copy_bidirectional(&mut tls, &mut plain).await?;
    Ok(())
}

/// HTTP/1.1 over TLS with the fixed certificate (no ALPN: clients fall back
/// to HTTP/1.1, which the plain listener speaks).
fn server_config() -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = vec![CertificateDer::from(CERTIFICATE.to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(KEY.to_vec()));
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Certificate)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Certificate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_certificate_and_key_make_a_server_config() {
        assert!(server_config().is_ok());
        assert!(CA_PEM.starts_with("-----BEGIN CERTIFICATE-----"));
    }
}
