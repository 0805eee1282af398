//! How an object in the cluster says which Application it belongs to.
//!
//! Every object pushsync applies carries the annotation
//! [`TRACKING_ANNOTATION`] = `<app namespace>/<app name>:<group>/<kind>:<namespace>/<name>`
//! (Argo CD's annotation tracking is the model): the Application, and the
//! object the mark was written for, so a mark copied onto another object
//! does not make it the Application's. Pruning deletes only objects whose
//! mark is this Application's and names them, whatever `status.inventory`
//! says. The labels [`APP_NAME_LABEL`] and [`APP_NAMESPACE_LABEL`] make
//! the objects findable with `kubectl get -l`; they are not trusted.

/// The annotation that marks an object as an Application's.
pub const TRACKING_ANNOTATION: &str = "pushsync.dev/tracking-id";

/// The owning Application's name (a label, for lookups only; absent when
/// the name is longer than a label value may be).
pub const APP_NAME_LABEL: &str = "pushsync.dev/app-name";

/// The owning Application's namespace (a label, for lookups only).
pub const APP_NAMESPACE_LABEL: &str = "pushsync.dev/app-namespace";

/// The mark for object `group`/`kind` `namespace`/`name` (namespace empty
/// for cluster-scoped objects) of Application `app_namespace`/`app_name`.
pub fn tracking_id(
    app_namespace: &str,
    app_name: &str,
    group: &str,
    kind: &str,
    namespace: &str,
    name: &str,
) -> String {
    format!("{app_namespace}/{app_name}:{group}/{kind}:{namespace}/{name}")
}

/// The Application (`namespace/name`) a mark names, when it is one.
pub fn tracked_application(tracking_id: &str) -> Option<&str> {
    let (app, _) = tracking_id.split_once(':')?;
    app.contains('/').then_some(app)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_names_the_application_and_the_object() {
        let id = tracking_id("team-a", "web", "", "ConfigMap", "team-a", "cfg");
        assert_eq!(id, "team-a/web:/ConfigMap:team-a/cfg");
        assert_eq!(tracked_application(&id), Some("team-a/web"));
        let cluster = tracking_id(
            "ops",
            "crds",
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            "",
            "x.y",
        );
        assert_eq!(tracked_application(&cluster), Some("ops/crds"));
        assert_eq!(tracked_application("garbage"), None);
        assert_eq!(tracked_application("no-slash:x"), None);
    }
}
