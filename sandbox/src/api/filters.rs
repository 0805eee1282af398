//! What runs before a handler, in kube-apiserver's order: authentication,
//! impersonation, authorization. Health and version need no credentials
//! (though a token nobody issued is still refused, as in the real server);
//! the sandbox's own test controls ignore them.

use std::collections::BTreeMap;

use actix_web::HttpRequest;

use super::Shared;
use crate::auth::{Impersonation, UserInfo, service_account};
use crate::rbac::{self, Attributes, Mode};
use crate::status::ApiError;

/// Who a request runs as.
#[derive(Debug, Clone)]
pub(super) struct Requester {
    /// The effective user (the impersonated one, when impersonating).
    pub user: UserInfo,
    /// The authenticated user who impersonated `user`, if any.
    pub impersonator: Option<String>,
}

/// Authenticate, impersonate and authorize `req`: who it runs as (as far as
/// that is known, for the audit log), and the 401, 403 (or 500 for malformed
/// impersonation) the real server would answer instead of serving it.
pub(super) fn admit(
    shared: &Shared,
    req: &HttpRequest,
    query: &BTreeMap<String, String>,
) -> (Requester, Option<ApiError>) {
    let access = Access::of(req.path());
    let mut requester = Requester {
        user: UserInfo::anonymous(),
        impersonator: None,
    };
    let presented = req.headers().contains_key("authorization");
    match shared.tokens.authenticate(req.headers()) {
        Some(user) => requester.user = user,
        None if shared.authorization == Mode::AlwaysAllow || access == Access::Control => {}
        None if access == Access::Public && !presented => {}
        None => return (requester, Some(ApiError::unauthorized())),
    }
    if access != Access::Protected {
        return (requester, None);
    }
    let denied = check(shared, req, query, &mut requester).err();
    (requester, denied)
}

/// Impersonate, then authorize the request as the effective user.
fn check(
    shared: &Shared,
    req: &HttpRequest,
    query: &BTreeMap<String, String>,
    requester: &mut Requester,
) -> Result<(), ApiError> {
    if let Some(impersonation) = Impersonation::from_headers(req.headers())? {
        *requester = impersonate(shared, requester.user.clone(), &impersonation)?;
    }
    if shared.authorization == Mode::AlwaysAllow {
        return Ok(());
    }
    let attrs = Attributes::from_request(req.method().as_str(), req.path(), query);
    let decision = rbac::authorize(shared.authorization, &shared.store, &requester.user, &attrs);
    if decision.allowed {
        Ok(())
    } else {
        Err(attrs.forbidden(&requester.user, &decision.reason))
    }
}

/// Which checks a path needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// `/healthz`, `/readyz`, `/livez` (and their checks), `/version`:
    /// anyone, authenticated or not.
    Public,
    /// `/sandbox/…`: the test controls, outside Kubernetes' API.
    Control,
    /// Everything else: authenticated and authorized.
    Protected,
}

impl Access {
    fn of(path: &str) -> Self {
        match path.trim_start_matches('/').split('/').next() {
            Some("healthz" | "readyz" | "livez" | "version") => Self::Public,
            Some("sandbox") => Self::Control,
            _ => Self::Protected,
        }
    }
}

/// Check every part of an impersonation against `authenticated`'s
/// permissions, in the real filter's order (user, groups, extras, uid).
fn impersonate(
    shared: &Shared,
    authenticated: UserInfo,
    impersonation: &Impersonation,
) -> Result<Requester, ApiError> {
    for attrs in checks(impersonation) {
        let decision = rbac::authorize(shared.authorization, &shared.store, &authenticated, &attrs);
        if !decision.allowed {
            return Err(attrs.forbidden(&authenticated, &decision.reason));
        }
    }
    Ok(Requester {
        user: impersonation.identity(),
        impersonator: Some(authenticated.name),
    })
}

/// The `impersonate` permissions an impersonation needs: on the user (or
/// the ServiceAccount, in its namespace), each group, each extra value and the uid.
fn checks(impersonation: &Impersonation) -> Vec<Attributes> {
    let impersonate = |group: &str, resource: &str, namespace: &str, name: &str| {
        Attributes::resource("impersonate", group, resource, namespace, name)
    };
    let mut checks = vec![match service_account(&impersonation.user) {
        Some((namespace, name)) => impersonate("", "serviceaccounts", namespace, name),
        None => impersonate("", "users", "", &impersonation.user),
    }];
    for group in &impersonation.groups {
        checks.push(impersonate("", "groups", "", group));
    }
    for (key, values) in &impersonation.extra {
        for value in values {
            let mut extra = impersonate("authentication.k8s.io", "userextras", "", value);
            extra.subresource = key.clone();
            checks.push(extra);
        }
    }
    if let Some(uid) = &impersonation.uid {
        checks.push(impersonate("authentication.k8s.io", "uids", "", uid));
    }
    checks
}
