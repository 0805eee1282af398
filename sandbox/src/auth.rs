//! Who sends a request: static bearer tokens (like kube-apiserver's
//! `--token-auth-file`), the identities they stand for, and the
//! `Impersonate-*` headers that ask to act as someone else.
//!
//! Deciding whether a requester may impersonate is authorization's business
//! (`api/filters.rs` asks `rbac`); this module only parses and builds identities.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use actix_web::http::header::HeaderMap;

use crate::status::ApiError;

/// The user the sandbox's own kubeconfig and client authenticate as.
pub const ADMIN: &str = "sandbox-admin";
/// The group every authorizer allows everything (kube-apiserver's privileged group).
pub const MASTERS: &str = "system:masters";
/// The group of every authenticated user.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The group of requests nobody authenticated.
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
/// The user of requests nobody authenticated.
pub const ANONYMOUS: &str = "system:anonymous";
/// The group of every ServiceAccount.
pub const SERVICE_ACCOUNTS: &str = "system:serviceaccounts";

const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// An authenticated identity, as `user.Info` carries it through the real server.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct UserInfo {
    /// The user name (`alice`, `system:serviceaccount:team-a:deployer`).
    pub name: String,
    /// The uid, when an authenticator or `Impersonate-Uid` gave one.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// Groups, in the order the real server lists them (given, then implied).
    pub groups: Vec<String>,
    /// Extra attributes (`Impersonate-Extra-*`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// An authenticated user with `groups`, plus the groups the real server
    /// implies: the ServiceAccount groups for `system:serviceaccount:NS:NAME`,
    /// then `system:authenticated`.
    pub fn authenticated(name: &str, groups: &[&str]) -> Self {
        let mut user = Self {
            name: name.to_owned(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            ..Self::default()
        };
        if let Some((namespace, _)) = service_account(name) {
            user.add_group(SERVICE_ACCOUNTS);
            user.add_group(&format!("{SERVICE_ACCOUNTS}:{namespace}"));
        }
        user.add_group(AUTHENTICATED);
        user
    }

    /// `system:anonymous` in `system:unauthenticated`.
    pub fn anonymous() -> Self {
        Self {
            name: ANONYMOUS.to_owned(),
            groups: vec![UNAUTHENTICATED.to_owned()],
            ..Self::default()
        }
    }

    /// Whether the user is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    fn add_group(&mut self, group: &str) {
        if !self.in_group(group) {
            self.groups.push(group.to_owned());
        }
    }
}

/// `(namespace, name)` of a ServiceAccount user name
/// (`system:serviceaccount:NS:NAME`); `None` for other users.
pub fn service_account(user: &str) -> Option<(&str, &str)> {
    let (namespace, name) = user.strip_prefix(SERVICE_ACCOUNT_PREFIX)?.split_once(':')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains(':')).then_some((namespace, name))
}

/// The static bearer tokens the sandbox accepts.
#[derive(Default)]
pub struct Tokens(Mutex<HashMap<String, UserInfo>>);

/// Names the users and counts the tokens, never printing a token.
impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tokens = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut users: Vec<&str> = tokens.values().map(|u| u.name.as_str()).collect();
        users.sort_unstable();
        f.debug_struct("Tokens")
            .field("issued", &tokens.len())
            .field("users", &users)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// Register a new random token for `user` and return it.
    pub fn issue(&self, user: UserInfo) -> String {
        let token = format!(
            "sandbox-{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(token.clone(), user);
        token
    }

    /// The user a request's `Authorization: Bearer` header names, if any
    /// token matches.
    pub fn authenticate(&self, headers: &HeaderMap) -> Option<UserInfo> {
        let header = headers.get("authorization")?.to_str().ok()?;
        let (scheme, token) = header.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(token.trim())
            .cloned()
    }
}

/// What the `Impersonate-*` headers of a request ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Impersonation {
    /// `Impersonate-User`.
    pub user: String,
    /// Every `Impersonate-Group`, in order.
    pub groups: Vec<String>,
    /// `Impersonate-Uid`.
    pub uid: Option<String>,
    /// `Impersonate-Extra-<key>` values, by key.
    pub extra: BTreeMap<String, Vec<String>>,
}

impl Impersonation {
    /// Parse the headers; `None` when the request impersonates nobody. Asking
    /// for groups, a uid or extras without a user is an error, as in the real
    /// server (which answers it with a 500).
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, ApiError> {
        let values = |name: &str| -> Vec<String> {
            headers
                .get_all(name)
                .filter_map(|v| v.to_str().ok())
                .map(str::to_owned)
                .collect()
        };
        let user = values("impersonate-user").into_iter().next();
        let groups = values("impersonate-group");
        let uid = values("impersonate-uid").into_iter().next();
        let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in headers {
            if let (Some(key), Ok(value)) = (
                name.as_str().strip_prefix("impersonate-extra-"),
                value.to_str(),
            ) {
                extra
                    .entry(key.to_owned())
                    .or_default()
                    .push(value.to_owned());
            }
        }
        match user {
            Some(user) => Ok(Some(Self {
                user,
                groups,
                uid,
                extra,
            })),
            None if groups.is_empty() && uid.is_none() && extra.is_empty() => Ok(None),
            None => Err(ApiError::internal(format!(
                "requested impersonation of groups {groups:?}, uid {uid:?} or extra {:?} without impersonating a user",
                extra.keys().collect::<Vec<_>>()
            ))),
        }
    }

    /// The identity the request acts as once every part is allowed: the given
    /// groups (a ServiceAccount's own groups when none are given), plus
    /// `system:authenticated` unless a given group says otherwise.
    pub fn identity(&self) -> UserInfo {
        let mut groups = self.groups.clone();
        if groups.is_empty()
            && let Some((namespace, _)) = service_account(&self.user)
        {
            groups = vec![
                SERVICE_ACCOUNTS.to_owned(),
                format!("{SERVICE_ACCOUNTS}:{namespace}"),
            ];
        }
        let mut user = UserInfo {
            name: self.user.clone(),
            uid: self.uid.clone().unwrap_or_default(),
            groups,
            extra: self.extra.clone(),
        };
        if user.name == ANONYMOUS {
            user.add_group(UNAUTHENTICATED);
        } else if !user.in_group(AUTHENTICATED) && !user.in_group(UNAUTHENTICATED) {
            user.groups.push(AUTHENTICATED.to_owned());
        }
        user
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        map
    }

    #[test]
    fn service_account_users_get_their_groups_and_everyone_is_authenticated() {
        let sa = UserInfo::authenticated("system:serviceaccount:team-a:deployer", &[]);
        assert_eq!(
            sa.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:team-a",
                "system:authenticated"
            ]
        );
        let alice = UserInfo::authenticated("alice", &["team-a", AUTHENTICATED]);
        assert_eq!(alice.groups, ["team-a", "system:authenticated"]);
        assert_eq!(service_account("system:serviceaccount:ns"), None);
        assert_eq!(service_account("system:serviceaccount:ns:a:b"), None);
    }

    #[test]
    fn tokens_authenticate_only_as_bearer() {
        let tokens = Tokens::default();
        let token = tokens.issue(UserInfo::authenticated("bob", &[]));
        let mut map = HeaderMap::new();
        map.insert(
            HeaderName::from_static("authorization"),
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        assert_eq!(
            tokens.authenticate(&map).map(|u| u.name),
            Some("bob".into())
        );
        map.insert(
            HeaderName::from_static("authorization"),
            HeaderValue::from_str(&format!("Basic {token}")).unwrap(),
        );
        assert_eq!(tokens.authenticate(&map), None);
        assert_eq!(
            tokens.authenticate(&headers(&[("authorization", "Bearer nope")])),
            None
        );
    }

    #[test]
    fn printing_tokens_never_prints_a_token() {
        let tokens = Tokens::default();
        let token = tokens.issue(UserInfo::authenticated("bob", &[]));
        let printed = format!("{tokens:?}");
        assert!(!printed.contains(&token), "{printed}");
        assert!(!printed.contains("sandbox-"), "{printed}");
        assert_eq!(printed, r#"Tokens { issued: 1, users: ["bob"], .. }"#);
    }

    #[test]
    fn impersonation_headers_build_the_identity_like_the_real_filter() {
        assert_eq!(Impersonation::from_headers(&headers(&[])).unwrap(), None);
        let sa = Impersonation::from_headers(&headers(&[(
            "impersonate-user",
            "system:serviceaccount:pushsync:worker",
        )]))
        .unwrap()
        .unwrap();
        assert_eq!(
            sa.identity().groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:pushsync",
                "system:authenticated"
            ]
        );
        let grouped = Impersonation::from_headers(&headers(&[
            ("impersonate-user", "system:serviceaccount:pushsync:worker"),
            ("impersonate-group", "a"),
            ("impersonate-group", "b"),
            ("impersonate-uid", "42"),
            ("impersonate-extra-scopes", "view"),
        ]))
        .unwrap()
        .unwrap();
        let identity = grouped.identity();
        assert_eq!(identity.groups, ["a", "b", "system:authenticated"]);
        assert_eq!(identity.uid, "42");
        assert_eq!(identity.extra["scopes"], ["view"]);
        let error =
            Impersonation::from_headers(&headers(&[("impersonate-group", "a")])).unwrap_err();
        assert_eq!(error.code, 500);
    }
}
