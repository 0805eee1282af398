//! What a request path addresses, parsed as the real server routes it, and
//! the verb the audit log records for it.

use std::collections::BTreeMap;

use actix_web::http::Method;

use crate::registry::ResourceType;
use crate::store::Store;

/// What a path addresses.
#[derive(Debug, Clone)]
pub(super) enum Route {
    Version,
    Health,
    CoreVersions,
    Groups,
    Group(String),
    Resources(String, String),
    OpenApiIndex,
    /// `/openapi/v2`.
    OpenApiV2,
    OpenApiDoc(String, String),
    Audit,
    Faults,
    /// `/sandbox/compact`: expire continue tokens and watch history.
    Compact,
    Collection {
        rt: ResourceType,
        namespace: Option<String>,
    },
    Object {
        rt: ResourceType,
        namespace: Option<String>,
        name: String,
        status: bool,
    },
    /// The `scale` subresource of a Deployment, StatefulSet or ReplicaSet.
    Scale {
        rt: ResourceType,
        namespace: String,
        name: String,
    },
    Unknown,
}

impl Route {
    pub(super) fn parse(path: &str, store: &Store) -> Self {
        let segments: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        match segments.as_slice() {
            ["version"] => Self::Version,
            ["healthz" | "readyz" | "livez", ..] => Self::Health,
            ["api"] => Self::CoreVersions,
            ["apis"] => Self::Groups,
            ["apis", group] => Self::Group((*group).to_owned()),
            ["api", version] => Self::Resources(String::new(), (*version).to_owned()),
            ["apis", group, version] => Self::Resources((*group).to_owned(), (*version).to_owned()),
            ["openapi", "v3"] => Self::OpenApiIndex,
            ["openapi", "v2"] => Self::OpenApiV2,
            ["openapi", "v3", "api", version] => {
                Self::OpenApiDoc(String::new(), (*version).to_owned())
            }
            ["openapi", "v3", "apis", group, version] => {
                Self::OpenApiDoc((*group).to_owned(), (*version).to_owned())
            }
            ["sandbox", "audit"] => Self::Audit,
            ["sandbox", "faults"] => Self::Faults,
            ["sandbox", "compact"] => Self::Compact,
            ["api", version, rest @ ..] => Self::resource(store, "", version, rest),
            ["apis", group, version, rest @ ..] => Self::resource(store, group, version, rest),
            _ => Self::Unknown,
        }
    }

    /// Whether the path addresses a create-only resource (the self-reviews,
    /// which are answered and never stored).
    pub(super) fn create_only(&self) -> bool {
        matches!(self, Self::Collection { rt, .. } | Self::Object { rt, .. } if rt.create_only)
    }

    fn resource(store: &Store, group: &str, version: &str, rest: &[&str]) -> Self {
        let resolve = |plural: &str| store.resolve(group, version, plural);
        let namespaced_collection = |plural: &str| resolve(plural).filter(|rt| rt.namespaced);
        match rest {
            ["namespaces", ns, plural] if namespaced_collection(plural).is_some() => {
                Self::Collection {
                    rt: namespaced_collection(plural)
                        .unwrap_or_else(|| unreachable!("checked by the guard")),
                    namespace: Some((*ns).to_owned()),
                }
            }
            ["namespaces", ns, plural, name] => match namespaced_collection(plural) {
                Some(rt) => Self::Object {
                    rt,
                    namespace: Some((*ns).to_owned()),
                    name: (*name).to_owned(),
                    status: false,
                },
                None => Self::Unknown,
            },
            ["namespaces", ns, plural, name, "scale"] => match namespaced_collection(plural) {
                Some(rt) if rt.scalable() => Self::Scale {
                    rt,
                    namespace: (*ns).to_owned(),
                    name: (*name).to_owned(),
                },
                _ => Self::Unknown,
            },
            ["namespaces", ns, plural, name, "status"] => match namespaced_collection(plural) {
                Some(rt) if rt.status => Self::Object {
                    rt,
                    namespace: Some((*ns).to_owned()),
                    name: (*name).to_owned(),
                    status: true,
                },
                _ => Self::Unknown,
            },
            [plural] => match resolve(plural) {
                Some(rt) => Self::Collection {
                    rt,
                    namespace: None,
                },
                None => Self::Unknown,
            },
            [plural, name] => match resolve(plural).filter(|rt| !rt.namespaced) {
                Some(rt) => Self::Object {
                    rt,
                    namespace: None,
                    name: (*name).to_owned(),
                    status: false,
                },
                None => Self::Unknown,
            },
            [plural, name, "status"] => {
                match resolve(plural).filter(|rt| !rt.namespaced && rt.status) {
                    Some(rt) => Self::Object {
                        rt,
                        namespace: None,
                        name: (*name).to_owned(),
                        status: true,
                    },
                    None => Self::Unknown,
                }
            }
            _ => Self::Unknown,
        }
    }
}

pub(super) fn verb(method: &Method, route: &Route, query: &BTreeMap<String, String>) -> String {
    let watch = crate::rbac::is_watch(query);
    match (route, method.as_str()) {
        (Route::Collection { .. }, "GET") if watch => "watch",
        (Route::Collection { .. }, "GET") => "list",
        (Route::Collection { .. }, "POST") => "create",
        (Route::Collection { .. }, "DELETE") => "deletecollection",
        (Route::Object { .. }, "GET") => "get",
        (Route::Object { .. }, "PUT") => "update",
        (Route::Object { .. }, "PATCH") => "patch",
        (Route::Object { .. }, "DELETE") => "delete",
        (Route::Scale { .. }, "GET") => "get",
        (Route::Scale { .. }, "PUT") => "update",
        (Route::Scale { .. }, "PATCH") => "patch",
        (_, method) => return method.to_ascii_lowercase(),
    }
    .to_owned()
}
