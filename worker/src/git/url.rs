//! Reading a repository URL the way a git client does, once, for the two
//! places that must agree on where a URL points: credentials (which secret
//! may be offered) and the remote policy (which scheme and host may be
//! contacted at all).

/// The forms of repository URL libgit2 accepts, by the transport it picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport<'a> {
    /// `scheme://…`: `https`, `http`, `ssh` (also `git+ssh`, `ssh+git`),
    /// `git`, `file`, or anything else a remote helper might claim.
    Url(&'a str),
    /// scp-like `[user@]host:path`, which libgit2 reads as SSH.
    ScpLike,
    /// A path on the worker's own disk (`/srv/repo`, `../repo`, `C:\repo`).
    LocalPath,
}

impl<'a> Transport<'a> {
    /// How libgit2 would read `url`.
    pub fn of(url: &'a str) -> Self {
        if let Some((scheme, _)) = url.split_once("://")
            && !scheme.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        {
            return Self::Url(scheme);
        }
        // `host:path` with no `/` before the colon; a single letter before
        // it is a Windows drive, which libgit2 reads as a path.
        match url.split_once(':') {
            Some((authority, _))
                if !authority.contains('/') && !authority.is_empty() && authority.len() > 1 =>
            {
                Self::ScpLike
            }
            _ => Self::LocalPath,
        }
    }

    /// The scheme, lower-cased, aliases folded (`git+ssh` is `ssh`); a local
    /// path is `file`.
    pub fn scheme(self) -> String {
        match self {
            Self::Url(scheme) => {
                let scheme = scheme.to_ascii_lowercase();
                match scheme.as_str() {
                    "git+ssh" | "ssh+git" => "ssh".to_owned(),
                    _ => scheme,
                }
            }
            Self::ScpLike => "ssh".to_owned(),
            Self::LocalPath => "file".to_owned(),
        }
    }
}

/// Where a network URL points: scheme, host, port and path.
#[derive(Debug, PartialEq, Eq)]
pub struct RemoteUrl {
    /// Lower-cased, aliases folded (see [`Transport::scheme`]).
    pub scheme: String,
    /// Lower-cased; an IPv6 literal without its brackets.
    pub host: String,
    /// `None` when absent or the scheme's default.
    pub port: Option<u16>,
    /// Path segments.
    pub path: Vec<String>,
}

impl RemoteUrl {
    /// `scheme://[user@]host[:port]/path`, or scp-like `user@host:path`
    /// (read as `ssh`). `None` for local paths, for URLs without a host,
    /// and for the ambiguous forms below, which callers treat as "nowhere
    /// we vouch for".
    pub fn parse(url: &str) -> Option<Self> {
        // A query or fragment ends the authority for a git client
        // (`https://evil.tld?@github.com/x` is evil.tld's URL) but not for
        // the reading below: such a URL has no reading at all.
        if url.contains(['?', '#']) {
            return None;
        }
        let transport = Transport::of(url);
        let rest = match transport {
            Transport::Url(scheme) => &url[scheme.len() + 3..],
            Transport::ScpLike => {
                // libgit2 also reads `[host:port]:path` and `[v6]:path`
                // here; we do not vouch for any bracketed form.
                if url.contains(['[', ']']) {
                    return None;
                }
                let (authority, path) = url.split_once(':')?;
                let host = authority
                    .rsplit_once('@')
                    .map_or(authority, |(_, host)| host)
                    .to_ascii_lowercase();
                return plain_host(&host).then(|| Self {
                    scheme: transport.scheme(),
                    host,
                    port: None,
                    path: segments(path),
                });
            }
            Transport::LocalPath => return None,
        };
        let scheme = transport.scheme();
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        // An `@` after the first `/` makes the URL ambiguous (libgit2 reads
        // `https://github.com%2Facme%2F@evil.tld/x`, decoded, as user
        // `github.com/acme/` at `evil.tld`).
        if path.contains('@') {
            return None;
        }
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = match host_port.strip_prefix('[') {
            // [v6]:port
            Some(bracketed) => {
                let (host, after) = bracketed.split_once(']')?;
                let port = match after.strip_prefix(':') {
                    Some(port) => Some(port.parse().ok()?),
                    None if after.is_empty() => None,
                    None => return None,
                };
                (host, port)
            }
            None => match host_port.split_once(':') {
                Some((host, port)) => (host, Some(port.parse().ok()?)),
                None => (host_port, None),
            },
        };
        if !plain_host(host) {
            // No host (`file:///x`), a percent-encoded one (what it decodes
            // to is the resolver's guess, not ours), or characters no host
            // name or address has.
            return None;
        }
        Some(Self {
            port: port.filter(|port| Some(*port) != default_port(&scheme)),
            scheme,
            host: host.to_ascii_lowercase(),
            path: segments(path),
        })
    }

    /// The port a connection goes to: the given one or the scheme's default.
    pub fn port_or_default(&self) -> u16 {
        self.port
            .or_else(|| default_port(&self.scheme))
            .unwrap_or(0)
    }

    /// Same scheme, host and port, and `self`'s path a segment prefix of
    /// `target`'s.
    pub fn covers(&self, target: &Self) -> bool {
        self.scheme == target.scheme
            && self.host == target.host
            && self.port == target.port
            && target.path.starts_with(&self.path)
    }
}

/// A host name or address as written: letters, digits, `.`, `-`, `_`, and
/// `:` (an IPv6 literal, brackets already removed); nothing else.
fn plain_host(host: &str) -> bool {
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        "ssh" => Some(22),
        "git" => Some(9418),
        _ => None,
    }
}

/// The path's segments, query and fragment left out.
fn segments(path: &str) -> Vec<String> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_are_read_as_libgit2_reads_them() {
        for (url, scheme) in [
            ("https://github.com/a/b", "https"),
            ("HTTP://h/x", "http"),
            ("git+ssh://h/x", "ssh"),
            ("ssh+git://h/x", "ssh"),
            ("git@github.com:a/b.git", "ssh"),
            ("github.com:a/b", "ssh"),
            ("file:///srv/repo", "file"),
            ("/srv/repo", "file"),
            ("../repo", "file"),
            ("C:\\repo", "file"),
            ("ext::sh -c touch% /tmp/pwned", "ssh"),
        ] {
            assert_eq!(Transport::of(url).scheme(), scheme, "{url}");
        }
    }

    #[test]
    fn hosts_ports_and_ambiguous_forms() {
        let url = RemoteUrl::parse("https://user@GitHub.com:443/a/b").unwrap();
        assert_eq!(
            (url.host.as_str(), url.port, url.port_or_default()),
            ("github.com", None, 443)
        );
        let url = RemoteUrl::parse("git://[::1]:9000/x").unwrap();
        assert_eq!((url.host.as_str(), url.port), ("::1", Some(9000)));
        for ambiguous in [
            "https://evil.tld?@github.com/x",
            "https://a/b@c/d",
            "https://%31%32%37.0.0.1/x",
            "file:///srv/repo",
            "/srv/repo",
            "https://host:notaport/x",
            // libgit2's bracketed scp forms, and hosts no resolver should see.
            "[127.0.0.1:22]:x",
            "[localhost:8080]:x",
            "git@[::1]:x",
            "https://a b/x",
            "https://a\\b/x",
        ] {
            assert_eq!(RemoteUrl::parse(ambiguous), None, "{ambiguous}");
        }
    }
}
