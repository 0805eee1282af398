//! What a request asks to do, read from its method, path and query the way
//! kube-apiserver's `RequestInfoFactory` reads it — before and independently
//! of routing, so a forbidden request to a resource nobody serves is still a 403.

use std::collections::BTreeMap;

use crate::auth::UserInfo;
use crate::status::ApiError;

/// The authorization attributes of one request (`authorizer.Attributes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`, `impersonate`, …; the lower-case HTTP method for
    /// non-resource requests.
    pub verb: String,
    /// Whether the request addresses an API resource (else a plain path).
    pub resource_request: bool,
    /// API group (`""` for core).
    pub api_group: String,
    /// API version.
    pub api_version: String,
    /// Resource plural (`deployments`).
    pub resource: String,
    /// Subresource (`status`, `scale`), or empty.
    pub subresource: String,
    /// Namespace, or empty for cluster scope.
    pub namespace: String,
    /// Object name, or empty.
    pub name: String,
    /// Request path (what non-resource rules match).
    pub path: String,
}

/// Whether a request's query asks to watch (`watch=true` or `watch=1`).
pub fn is_watch(query: &BTreeMap<String, String>) -> bool {
    query.get("watch").is_some_and(|w| w == "true" || w == "1")
}

/// Subresources of a namespace that stay subresources (`/namespaces/x/status`).
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

impl Attributes {
    /// A resource request's attributes.
    pub fn resource(verb: &str, group: &str, resource: &str, namespace: &str, name: &str) -> Self {
        Self {
            verb: verb.to_owned(),
            resource_request: true,
            api_group: group.to_owned(),
            resource: resource.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            ..Self::default()
        }
    }

    /// Read the attributes of an HTTP request.
    pub fn from_request(method: &str, path: &str, query: &BTreeMap<String, String>) -> Self {
        let mut attrs = Self {
            verb: method.to_ascii_lowercase(),
            path: path.to_owned(),
            ..Self::default()
        };
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let rest = match parts.as_slice() {
            ["api", version, rest @ ..] if !rest.is_empty() => {
                attrs.api_version = (*version).to_owned();
                rest
            }
            ["apis", group, version, rest @ ..] if !rest.is_empty() => {
                attrs.api_group = (*group).to_owned();
                attrs.api_version = (*version).to_owned();
                rest
            }
            _ => return attrs,
        };
        attrs.resource_request = true;
        attrs.resource_parts(method, rest, query);
        attrs
    }

    /// `[watch|proxy/][namespaces/NS/]resource[/name[/subresource]]`.
    fn resource_parts(
        &mut self,
        method: &str,
        mut rest: &[&str],
        query: &BTreeMap<String, String>,
    ) {
        self.verb = match method {
            "POST" => "create",
            "GET" | "HEAD" => "get",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" => "delete",
            _ => "",
        }
        .to_owned();
        if let [special @ ("watch" | "proxy"), tail @ ..] = rest
            && !tail.is_empty()
        {
            self.verb = (*special).to_owned();
            rest = tail;
        }
        if let ["namespaces", namespace, tail @ ..] = rest {
            self.namespace = (*namespace).to_owned();
            if let [next, ..] = tail
                && !NAMESPACE_SUBRESOURCES.contains(next)
            {
                rest = tail;
            }
        }
        if let Some(resource) = rest.first() {
            self.resource = (*resource).to_owned();
        }
        if let Some(name) = rest.get(1) {
            self.name = (*name).to_owned();
        }
        if let Some(subresource) = rest.get(2).filter(|_| self.verb != "proxy") {
            self.subresource = (*subresource).to_owned();
        }
        if self.name.is_empty() && self.verb == "get" {
            self.verb = if is_watch(query) { "watch" } else { "list" }.to_owned();
            // A list or watch of one name is authorized as that name.
            if let Some(name) = query.get("fieldSelector").and_then(|s| exact_name(s)) {
                self.name = name;
            }
        }
        if self.name.is_empty() && self.verb == "delete" {
            self.verb = "deletecollection".to_owned();
        }
    }

    /// The 403 the real server answers, in its words:
    /// `User "alice" cannot list resource "deployments" in API group "apps" in the namespace "team-a"`,
    /// followed by the authorizer's reason when it gave one.
    pub fn forbidden(&self, user: &UserInfo, reason: &str) -> ApiError {
        let what = if self.resource_request {
            let resource = if self.subresource.is_empty() {
                self.resource.clone()
            } else {
                format!("{}/{}", self.resource, self.subresource)
            };
            let scope = if self.namespace.is_empty() {
                "at the cluster scope".to_owned()
            } else {
                format!("in the namespace {:?}", self.namespace)
            };
            format!(
                "User {:?} cannot {} resource {resource:?} in API group {:?} {scope}",
                user.name, self.verb, self.api_group
            )
        } else {
            format!(
                "User {:?} cannot {} path {:?}",
                user.name, self.verb, self.path
            )
        };
        let why = if reason.is_empty() {
            what
        } else {
            format!("{what}: {reason}")
        };
        if self.resource_request {
            ApiError::forbidden(&self.api_group, &self.resource, &self.name, &why)
        } else {
            ApiError::forbidden("", "", "", &why)
        }
    }
}

/// The name a field selector pins (`metadata.name=x` or `metadata.name==x`).
fn exact_name(selector: &str) -> Option<String> {
    selector.split(',').find_map(|term| {
        let (key, value) = term.split_once("==").or_else(|| term.split_once('='))?;
        (key.trim() == "metadata.name" && !value.is_empty()).then(|| value.trim().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(method, path, query)` → `verb group resource subresource namespace name`.
    #[track_caller]
    fn check(method: &str, path: &str, query: &str, expected: &str) {
        let parsed: BTreeMap<String, String> = serde_urlencoded::from_str(query).unwrap();
        let a = Attributes::from_request(method, path, &parsed);
        let got = if a.resource_request {
            format!(
                "{} {:?} {} {:?} {:?} {:?}",
                a.verb, a.api_group, a.resource, a.subresource, a.namespace, a.name
            )
        } else {
            format!("{} path {}", a.verb, a.path)
        };
        assert_eq!(got, expected, "{method} {path}?{query}");
    }

    #[test]
    fn requests_are_read_like_the_request_info_factory() {
        check(
            "GET",
            "/api/v1/namespaces/team-a/pods",
            "",
            r#"list "" pods "" "team-a" """#,
        );
        check(
            "GET",
            "/api/v1/pods",
            "watch=true",
            r#"watch "" pods "" "" """#,
        );
        check(
            "POST",
            "/apis/apps/v1/namespaces/a/deployments",
            "",
            r#"create "apps" deployments "" "a" """#,
        );
        check(
            "PATCH",
            "/apis/apps/v1/namespaces/a/deployments/web",
            "",
            r#"patch "apps" deployments "" "a" "web""#,
        );
        check(
            "PUT",
            "/apis/apps/v1/namespaces/a/deployments/web/scale",
            "",
            r#"update "apps" deployments "scale" "a" "web""#,
        );
        check(
            "DELETE",
            "/api/v1/namespaces/a/configmaps",
            "",
            r#"deletecollection "" configmaps "" "a" """#,
        );
        check(
            "DELETE",
            "/api/v1/namespaces/a/configmaps/x",
            "",
            r#"delete "" configmaps "" "a" "x""#,
        );
        check(
            "GET",
            "/api/v1/namespaces/a/configmaps",
            "fieldSelector=metadata.name%3Dsettings",
            r#"list "" configmaps "" "a" "settings""#,
        );
        check(
            "GET",
            "/api/v1/namespaces/a/configmaps",
            "fieldSelector=metadata.name%21%3Dx",
            r#"list "" configmaps "" "a" """#,
        );
        check(
            "GET",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/view",
            "",
            r#"get "rbac.authorization.k8s.io" clusterroles "" "" "view""#,
        );
        check(
            "GET",
            "/api/v1/watch/namespaces/a/pods/p",
            "",
            r#"watch "" pods "" "a" "p""#,
        );
    }

    #[test]
    fn a_namespace_is_its_own_namespace() {
        check(
            "GET",
            "/api/v1/namespaces/team-a",
            "",
            r#"get "" namespaces "" "team-a" "team-a""#,
        );
        check(
            "PUT",
            "/api/v1/namespaces/team-a/status",
            "",
            r#"update "" namespaces "status" "team-a" "team-a""#,
        );
        check(
            "GET",
            "/api/v1/namespaces",
            "",
            r#"list "" namespaces "" "" """#,
        );
    }

    #[test]
    fn discovery_and_other_paths_are_not_resource_requests() {
        for path in [
            "/api",
            "/api/v1",
            "/apis",
            "/apis/apps",
            "/apis/apps/v1",
            "/openapi/v3",
            "/version",
        ] {
            check("GET", path, "", &format!("get path {path}"));
        }
        check("POST", "/sandbox/faults", "", "post path /sandbox/faults");
    }

    #[test]
    fn forbidden_messages_are_worded_like_the_real_server() {
        let user = UserInfo::authenticated("alice", &[]);
        let named = Attributes::resource("patch", "apps", "deployments", "team-a", "web");
        let error = named.forbidden(&user, "");
        assert_eq!(
            error.message,
            r#"deployments.apps "web" is forbidden: User "alice" cannot patch resource "deployments" in API group "apps" in the namespace "team-a""#
        );
        assert_eq!(
            error.details,
            Some(serde_json::json!({"name": "web", "group": "apps", "kind": "deployments"}))
        );
        let mut scale = named.clone();
        scale.verb = "get".into();
        scale.subresource = "scale".into();
        assert!(
            scale
                .forbidden(&user, "")
                .message
                .contains(r#"cannot get resource "deployments/scale""#)
        );
        let cluster = Attributes::resource(
            "create",
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            "",
            "",
        );
        assert_eq!(
            cluster.forbidden(&user, "").message,
            r#"clusterrolebindings.rbac.authorization.k8s.io is forbidden: User "alice" cannot create resource "clusterrolebindings" in API group "rbac.authorization.k8s.io" at the cluster scope"#
        );
        let core = Attributes::resource("list", "", "secrets", "b", "");
        let error = core.forbidden(
            &user,
            r#"RBAC: role.rbac.authorization.k8s.io "gone" not found"#,
        );
        assert_eq!(
            error.message,
            r#"secrets is forbidden: User "alice" cannot list resource "secrets" in API group "" in the namespace "b": RBAC: role.rbac.authorization.k8s.io "gone" not found"#
        );
        assert_eq!(error.details, Some(serde_json::json!({"kind": "secrets"})));
        let path = Attributes::from_request("GET", "/metrics", &BTreeMap::new());
        assert_eq!(
            path.forbidden(&user, "").message,
            r#"forbidden: User "alice" cannot get path "/metrics""#
        );
    }
}
