//! Which remotes a worker may contact at all, checked before libgit2 sees
//! a URL: an Application's `repoURL` is hostile input, and the worker's
//! network position (cluster-internal addresses, the node's loopback, the
//! cloud's metadata service) is worth more than anything it would fetch.
//!
//! Limits: the check resolves the host once and libgit2 resolves it again
//! to connect, so a name whose DNS answer changes in between (rebinding)
//! can still reach a refused address; the NetworkPolicy in `deploy/` is the
//! layer that holds then. Private ranges (10/8, 172.16/12, 192.168/16,
//! fc00::/7) are allowed: in-cluster and on-premises git servers live there.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};

use super::url::{RemoteUrl, Transport};

/// What [`RemotePolicy::check`] refused, in words for the Application's
/// status (nothing the worker learnt by connecting anywhere).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The scheme is not on the allowed list.
    #[error(
        "the {scheme} scheme is not allowed (allowed: {allowed}; PUSHSYNC_GIT_ALLOWED_SCHEMES)"
    )]
    Scheme {
        /// What the URL uses (`file` for a local path).
        scheme: String,
        /// The allowed list.
        allowed: String,
    },
    /// The URL cannot be read unambiguously (query, fragment, `@` in the
    /// path, percent-encoded host, no host).
    #[error(
        "the URL cannot be read unambiguously (no query, fragment, encoded host or @ in the path)"
    )]
    Unreadable,
    /// The host is, or resolves to, a loopback, link-local (cloud metadata),
    /// unspecified, multicast or broadcast address.
    #[error("{host} is a local or metadata address (PUSHSYNC_GIT_ALLOW_LOCAL_ADDRESSES)")]
    LocalAddress {
        /// The host as the URL names it.
        host: String,
    },
}

/// The schemes and addresses remotes may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotePolicy {
    schemes: BTreeSet<String>,
    allow_local_addresses: bool,
}

impl Default for RemotePolicy {
    /// What a cluster install gets: https, ssh and git to non-local hosts.
    fn default() -> Self {
        Self::new(["https", "ssh", "git"], false)
    }
}

impl RemotePolicy {
    /// Allow `schemes` (`file` covers local paths), and loopback or
    /// link-local addresses when `allow_local_addresses`.
    pub fn new<S: AsRef<str>>(
        schemes: impl IntoIterator<Item = S>,
        allow_local_addresses: bool,
    ) -> Self {
        Self {
            schemes: schemes
                .into_iter()
                .map(|s| Transport::Url(s.as_ref()).scheme())
                .collect(),
            allow_local_addresses,
        }
    }

    /// Anything libgit2 can fetch, from anywhere: the local default
    /// (`make run`) and tests against repositories on this machine.
    pub fn permissive() -> Self {
        Self::new(["https", "http", "ssh", "git", "file"], true)
    }

    /// The allowed schemes, comma-separated.
    pub fn schemes(&self) -> String {
        self.schemes.iter().cloned().collect::<Vec<_>>().join(",")
    }

    /// Whether `url` may be contacted. Resolves the host (blocking: call it
    /// where libgit2 runs, on the blocking pool).
    pub fn check(&self, url: &str) -> Result<(), Refusal> {
        let scheme = Transport::of(url).scheme();
        if !self.schemes.contains(&scheme) {
            return Err(Refusal::Scheme {
                scheme,
                allowed: self.schemes(),
            });
        }
        if scheme == "file" || self.allow_local_addresses {
            return Ok(());
        }
        let remote = RemoteUrl::parse(url).ok_or(Refusal::Unreadable)?;
        let local = || Refusal::LocalAddress {
            host: remote.host.clone(),
        };
        if is_local_name(&remote.host) {
            return Err(local());
        }
        // The system resolver, as libgit2 uses it: it also reads the
        // numeric forms a URL parser would not (`2130706433`, `0x7f.1`).
        let Ok(addresses) = (remote.host.as_str(), remote.port_or_default()).to_socket_addrs()
        else {
            // Unresolvable: libgit2 will fail the same way, with nothing reached.
            return Ok(());
        };
        for address in addresses {
            if is_local_address(address.ip()) {
                return Err(local());
            }
        }
        Ok(())
    }
}

/// Names that mean this machine or a metadata service whatever DNS says.
fn is_local_name(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    host == "localhost"
        || host.ends_with(".localhost")
        || host == "metadata"
        || host == "metadata.google.internal"
        || host == "instance-data"
        || host.ends_with(".internal") && host.starts_with("metadata")
}

/// Loopback, unspecified, link-local (where cloud metadata lives),
/// multicast, broadcast, and the same behind IPv4-mapped IPv6.
fn is_local_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_local_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_local_v4(v4);
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // fe80::/10 link-local
                || first & 0xffc0 == 0xfe80
                // AWS's IPv6 instance metadata endpoint
                || v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
                // IPv4-compatible (deprecated) ::a.b.c.d
                || v6.segments()[..6] == [0; 6] && is_local_v4(Ipv4Addr::from(v6.to_bits() as u32))
        }
    }
}

fn is_local_v4(ip: Ipv4Addr) -> bool {
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        // 0.0.0.0/8 reaches this host on Linux
        || ip.octets()[0] == 0
        // Alibaba Cloud's metadata service
        || ip == Ipv4Addr::new(100, 100, 100, 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_outside_the_list_are_refused_before_anything_is_resolved() {
        let policy = RemotePolicy::default();
        for url in [
            "file:///var/run/secrets/kubernetes.io/serviceaccount",
            "/var/run/secrets",
            "../../etc",
            "http://github.com/a/b",
            "ftp://h/x",
            // libgit2 reads these as SSH to 127.0.0.1 on a chosen port.
            "[127.0.0.1:22]:x",
            "[localhost:8080]:x",
        ] {
            let refused = policy.check(url);
            assert!(
                matches!(
                    refused,
                    Err(Refusal::Scheme { .. }) | Err(Refusal::Unreadable)
                ),
                "{url}: {refused:?}"
            );
        }
        assert_eq!(
            policy.check("file:///srv").unwrap_err().to_string(),
            "the file scheme is not allowed (allowed: git,https,ssh; PUSHSYNC_GIT_ALLOWED_SCHEMES)"
        );
    }

    #[test]
    fn loopback_link_local_and_metadata_addresses_are_refused_in_every_spelling() {
        let policy = RemotePolicy::default();
        for url in [
            "https://127.0.0.1/x",
            "https://127.1.2.3:8443/x",
            "git://2130706433/x",
            "git://0x7f.1/x",
            "git://0177.0.0.1/x",
            "https://0.0.0.0/x",
            "https://[::1]/x",
            "https://[::ffff:127.0.0.1]/x",
            "https://[::ffff:169.254.169.254]/x",
            "https://[fe80::1]/x",
            "https://[fd00:ec2::254]/x",
            "https://169.254.169.254/latest/meta-data/",
            "https://100.100.100.200/x",
            "https://localhost/x",
            "https://LOCALHOST./x",
            "ssh://git@localhost:22/x",
            "git@localhost:x/y.git",
            "https://metadata.google.internal/computeMetadata/v1/",
            "https://api.localhost/x",
        ] {
            assert!(
                matches!(policy.check(url), Err(Refusal::LocalAddress { .. })),
                "{url}: {:?}",
                policy.check(url)
            );
        }
    }

    #[test]
    fn ordinary_remotes_pass_and_the_local_default_allows_everything() {
        let policy = RemotePolicy::default();
        for url in [
            "https://10.1.2.3/org/repo.git",
            "https://[2001:db8::1]/x",
            "git@192.168.1.10:org/repo.git",
            "git://172.16.0.5/repo",
            // Unresolvable here: libgit2 fails on its own, nothing reached.
            "https://github.invalid/org/repo",
        ] {
            assert_eq!(policy.check(url), Ok(()), "{url}");
        }
        let local = RemotePolicy::permissive();
        for url in [
            "file:///srv/x",
            "/srv/x",
            "git://127.0.0.1:9418/x",
            "http://localhost/x",
        ] {
            assert_eq!(local.check(url), Ok(()), "{url}");
        }
    }
}
