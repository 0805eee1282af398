//! Who is asking: a browser session (local user or single sign-on), or an
//! API token; and the CSRF check every state-changing browser request passes.
//!
//! Sessions are actix-session cookies (`pushsync_session`): encrypted and
//! authenticated with the server's key, `HttpOnly`, `SameSite=Lax`, `Secure`
//! unless the operator turns it off for plain-http development. A session
//! holds the user, their groups and a CSRF token. API tokens (for scripts)
//! are stored only as SHA-256 digests and compared in constant time.

use actix_session::Session;
use actix_web::HttpRequest;
use actix_web::http::header;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ServerError;
use crate::policy::User;

const USER_KEY: &str = "user";
const CSRF_KEY: &str = "csrf";

/// The request header a browser's state-changing request carries its
/// session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// One API token: who it is, and the digest of its secret.
#[derive(Debug, Clone)]
struct TokenEntry {
    user: User,
    digest: [u8; 32],
}

/// The API tokens, from a file of lines `NAME GROUP[,GROUP…] SHA256-HEX`.
#[derive(Debug, Clone, Default)]
pub struct Tokens(Vec<TokenEntry>);

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// 32 random bytes, hex: a token, a password, a CSRF token.
pub fn random_secret() -> Result<String, ServerError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| ServerError::Internal(format!("no randomness: {e}")))?;
    Ok(hex::encode(bytes))
}

impl Tokens {
    /// Parse a tokens file; a line that does not read is an error naming its
    /// number (never its content, which may be a pasted secret).
    pub fn parse(text: &str) -> Result<Tokens, String> {
        let mut entries = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [name, groups, hex_digest] = fields.as_slice() else {
                return Err(format!(
                    "line {}: write NAME GROUP[,GROUP...] SHA256-HEX-OF-THE-TOKEN",
                    number + 1
                ));
            };
            let mut digest = [0u8; 32];
            hex::decode_to_slice(hex_digest, &mut digest)
                .map_err(|_| format!("line {}: the digest is not 64 hex digits", number + 1))?;
            entries.push(TokenEntry {
                user: User {
                    name: format!("token:{name}"),
                    groups: groups
                        .split(',')
                        .filter(|g| !g.is_empty())
                        .map(str::to_owned)
                        .collect(),
                },
                digest,
            });
        }
        Ok(Tokens(entries))
    }

    /// The line a tokens file holds for `secret`.
    pub fn line(name: &str, groups: &[String], secret: &str) -> String {
        format!(
            "{name} {} {}",
            groups.join(","),
            hex::encode(digest(secret))
        )
    }

    /// Whose token `presented` is: every entry is compared, in constant
    /// time, so timing tells nothing about which one nearly matched.
    fn find(&self, presented: &str) -> Option<User> {
        let wanted = digest(presented);
        let mut found = None;
        for entry in &self.0 {
            if bool::from(entry.digest.ct_eq(&wanted)) {
                found = Some(entry.user.clone());
            }
        }
        found
    }
}

/// Users who log in with a password (`make run`'s local admin; a fallback
/// when no identity provider is configured).
#[derive(Debug, Clone, Default)]
pub struct LocalUsers(Vec<(User, [u8; 32])>);

impl LocalUsers {
    /// Add a user with `password`.
    pub fn add(&mut self, user: User, password: &str) {
        self.0.push((user, digest(password)));
    }

    /// Whether there are any.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The user `name` if `password` is theirs (constant time over all).
    pub fn check(&self, name: &str, password: &str) -> Option<User> {
        let wanted = digest(password);
        let mut found = None;
        for (user, digest) in &self.0 {
            let matches = bool::from(digest.ct_eq(&wanted)) & (user.name == name);
            if matches {
                found = Some(user.clone());
            }
        }
        found
    }
}

/// What a session stores.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionUser {
    name: String,
    groups: Vec<String>,
    /// When the login ends (Unix seconds), checked here: the cookie store
    /// keeps no server-side state, so a copied cookie would otherwise work
    /// for as long as the key does.
    expires: i64,
}

/// Start a session for `user` (a new CSRF token with it; the session id
/// is renewed so a fixated one is worthless).
pub fn log_in(session: &Session, user: &User, ttl: std::time::Duration) -> Result<(), ServerError> {
    session.renew();
    let expires = jiff::Timestamp::now()
        .as_second()
        .saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
    session
        .insert(
            USER_KEY,
            SessionUser {
                name: user.name.clone(),
                groups: user.groups.clone(),
                expires,
            },
        )
        .map_err(|e| ServerError::Internal(format!("writing the session: {e}")))?;
    session
        .insert(CSRF_KEY, random_secret()?)
        .map_err(|e| ServerError::Internal(format!("writing the session: {e}")))?;
    Ok(())
}

/// When the session's login ends (Unix seconds), if there is one.
pub fn session_expires(session: &Session) -> Option<i64> {
    session
        .get::<SessionUser>(USER_KEY)
        .ok()
        .flatten()
        .map(|u| u.expires)
}

/// The session's CSRF token (pages put it where their script reads it).
pub fn csrf_token(session: &Session) -> Option<String> {
    session.get::<String>(CSRF_KEY).ok().flatten()
}

/// How the requester authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A browser session cookie.
    Session,
    /// An `Authorization: Bearer` API token.
    Token,
}

/// The user making `req`, if authenticated: a bearer token when one is
/// presented (a wrong one is an error, not a fallback to the session),
/// else the session.
pub fn requester(
    req: &HttpRequest,
    session: &Session,
    tokens: &Tokens,
) -> Result<Option<(User, Via)>, ServerError> {
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let presented = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(ServerError::Unauthenticated)?;
        return tokens
            .find(presented)
            .map(|user| Some((user, Via::Token)))
            .ok_or(ServerError::Unauthenticated);
    }
    let user = session.get::<SessionUser>(USER_KEY).ok().flatten();
    if user
        .as_ref()
        .is_some_and(|u| u.expires <= jiff::Timestamp::now().as_second())
    {
        session.purge();
        return Ok(None);
    }
    Ok(user.map(|u| {
        (
            User {
                name: u.name,
                groups: u.groups,
            },
            Via::Session,
        )
    }))
}

/// A state-changing request made with a session cookie must come from this
/// site (`Sec-Fetch-Site`/`Origin`, when the browser sends them) and carry
/// the session's CSRF token in [`CSRF_HEADER`]. Token requests need neither:
/// no browser attaches a bearer token by itself.
pub fn check_csrf(req: &HttpRequest, session: &Session, via: Via) -> Result<(), ServerError> {
    if via == Via::Token {
        return Ok(());
    }
    same_site(req)?;
    let expected = csrf_token(session).ok_or(ServerError::Csrf)?;
    let presented = req
        .headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or(ServerError::Csrf)?;
    if bool::from(expected.as_bytes().ct_eq(presented.as_bytes())) {
        Ok(())
    } else {
        Err(ServerError::Csrf)
    }
}

/// Refuse a request a browser marks as made by another site.
pub fn same_site(req: &HttpRequest) -> Result<(), ServerError> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return Err(ServerError::Csrf);
    }
    if let (Some(origin), Some(host)) = (header("origin"), header("host")) {
        let origin_host = origin
            .split_once("://")
            .map_or(origin, |(_, rest)| rest)
            .trim_end_matches('/');
        if origin_host != host {
            return Err(ServerError::Csrf);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    #[test]
    fn tokens_are_kept_as_digests_and_found_by_their_secret() {
        let line = Tokens::line("ci", &["team-a".to_owned()], "s3cret");
        assert!(!line.contains("s3cret"));
        let tokens = Tokens::parse(&format!("# tokens\n{line}\n")).unwrap();
        let user = tokens.find("s3cret").unwrap();
        assert_eq!(user.name, "token:ci");
        assert_eq!(user.groups, ["team-a"]);
        assert!(tokens.find("s3cret ").is_none());
        assert!(tokens.find("").is_none());
        let error = Tokens::parse("ci team-a pasted-secret-here\n").unwrap_err();
        assert!(
            error.contains("line 1") && !error.contains("pasted"),
            "{error}"
        );
    }

    #[test]
    fn local_users_need_their_own_name_and_password() {
        let mut users = LocalUsers::default();
        let admin = User {
            name: "admin".to_owned(),
            groups: vec!["admins".to_owned()],
        };
        users.add(admin.clone(), "pw");
        assert_eq!(users.check("admin", "pw"), Some(admin));
        assert_eq!(users.check("admin", "PW"), None);
        assert_eq!(users.check("root", "pw"), None);
    }
}
