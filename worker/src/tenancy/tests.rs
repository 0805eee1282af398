use pushsync_api::{Application, ApplicationSpec, GroupKind, ProjectDestination, ProjectSpec};
use serde_json::json;

use super::*;

const HOME: &str = "pushsync";
const DEPLOYER: Option<&str> = Some("system:serviceaccount:team-a-dev:deployer");

fn team_a() -> ProjectSpec {
    ProjectSpec {
        source_repos: vec!["https://github.com/acme/*".to_owned()],
        destinations: vec![ProjectDestination {
            namespace: "team-a-*".to_owned(),
            service_account: Some("deployer".to_owned()),
        }],
        cluster_resource_whitelist: vec![GroupKind::new("", "Namespace")],
        namespace_resource_blacklist: vec![GroupKind::new("", "ResourceQuota")],
        source_namespaces: vec!["team-a".to_owned()],
        ..ProjectSpec::default()
    }
}

fn app(repo: &str, destination: &str) -> Application {
    let mut spec = ApplicationSpec::automated(repo, "main", "", destination);
    spec.project = "team-a".to_owned();
    Application::namespaced("team-a", "web", spec)
}

#[test]
fn the_repository_must_be_among_the_projects_sources_in_any_spelling() {
    let project = team_a();
    for allowed in [
        "https://github.com/acme/web",
        "https://github.com/Acme/Web.git",
        "git@github.com:acme/web.git",
        "ssh://git@github.com:22/acme/web",
        "https://token@github.com/acme/web",
    ] {
        let admission = admit(
            "team-a",
            &project,
            HOME,
            &app(allowed, "team-a-dev"),
            "team-a-dev",
        );
        assert_eq!(
            admission.map(|a| a.service_account),
            Ok(Some("system:serviceaccount:team-a-dev:deployer".to_owned())),
            "{allowed}"
        );
    }
    for refused in [
        "https://github.com/acme-evil/web",
        "https://github.com/acme/web/extra",
        "https://github.com.evil.tld/acme/web",
        "https://evil.tld/github.com/acme/web",
        "https://github.com/acme/../other/web",
        "https://github.com/acme/%2e%2e/other",
        "https://github.com/acme/./web",
        "not a url",
    ] {
        let violation = admit(
            "team-a",
            &project,
            HOME,
            &app(refused, "team-a-dev"),
            "team-a-dev",
        )
        .expect_err(refused);
        assert_eq!(violation.reason, "SourceNotPermitted", "{refused}");
        assert!(
            violation.message.contains("team-a"),
            "{}",
            violation.message
        );
    }
}

#[test]
fn the_destination_must_be_among_the_projects_destinations() {
    let violation = admit(
        "team-a",
        &team_a(),
        HOME,
        &app("https://github.com/acme/web", "kube-system"),
        "kube-system",
    )
    .unwrap_err();
    assert_eq!(violation.reason, "DestinationNotPermitted");
    assert!(
        violation.message.contains("\"kube-system\""),
        "{}",
        violation.message
    );
}

#[test]
fn a_service_account_may_name_its_namespace() {
    let mut project = team_a();
    project.destinations[0].service_account = Some("pushsync:team-a".to_owned());
    let admission = admit(
        "team-a",
        &project,
        HOME,
        &app("https://github.com/acme/web", "team-a-x"),
        "team-a-x",
    );
    assert_eq!(
        admission.unwrap().service_account.as_deref(),
        Some("system:serviceaccount:pushsync:team-a")
    );
    project.destinations[0].service_account = Some("Bad Name".to_owned());
    let violation = admit(
        "team-a",
        &project,
        HOME,
        &app("https://github.com/acme/web", "team-a-x"),
        "team-a-x",
    )
    .unwrap_err();
    assert_eq!(violation.reason, "InvalidProject");
}

#[test]
fn every_object_is_held_to_the_rules() {
    let object = |group, kind, namespace, name| Object {
        group,
        kind,
        namespace,
        name,
    };
    let objects = [
        object("apps", "Deployment", Some("team-a-dev"), "web"),
        object("", "Namespace", None, "team-a-dev"),
        object(
            "rbac.authorization.k8s.io",
            "ClusterRoleBinding",
            None,
            "escalate",
        ),
        object("apps", "Deployment", Some("kube-system"), "miner"),
        object("", "ResourceQuota", Some("team-a-dev"), "unlimited"),
    ];
    let violations = check("team-a", &team_a(), DEPLOYER, &objects);
    let reasons: Vec<&str> = violations.iter().map(|v| v.reason).collect();
    assert_eq!(
        reasons,
        [
            "ClusterResourceNotPermitted",
            "DestinationNotPermitted",
            "NamespacedResourceDenied"
        ]
    );
    assert!(
        violations[0]
            .message
            .contains("rbac.authorization.k8s.io/ClusterRoleBinding escalate")
    );
    assert!(violations[0].message.contains("clusterResourceWhitelist"));
    assert!(violations[1].message.contains("kube-system/miner"));
    assert!(check("team-a", &team_a(), DEPLOYER, &objects[..2]).is_empty());
}

#[test]
fn the_unrestricted_project_allows_everything() {
    let project = ProjectSpec::unrestricted();
    let app = app("file:///tmp/repo", "anywhere");
    assert_eq!(
        admit("default", &project, HOME, &app, "anywhere")
            .unwrap()
            .service_account,
        None
    );
    let cluster = Object {
        group: "rbac.authorization.k8s.io",
        kind: "ClusterRole",
        namespace: None,
        name: "x",
    };
    assert!(check("default", &project, None, &[cluster]).is_empty());
}

#[test]
fn a_mark_makes_an_object_this_applications_and_only_this_object() {
    let app = "team-a/web";
    let mut object = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "team-a-dev"}});
    assert_eq!(owner_of(app, &object), Owner::Unmarked);
    mark(app, &mut object, "apps", Some("team-a-dev"));
    assert_eq!(
        object["metadata"]["annotations"][TRACKING_ANNOTATION],
        "team-a/web:apps/Deployment:team-a-dev/web"
    );
    assert_eq!(object["metadata"]["labels"][APP_NAME_LABEL], "web");
    assert_eq!(owner_of(app, &object), Owner::This);

    let mut copied = object.clone();
    copied["metadata"]["name"] = json!("other");
    assert_eq!(
        owner_of(app, &copied),
        Owner::Unmarked,
        "a copied mark is not ownership"
    );

    assert_eq!(
        owner_of("team-b/api", &object),
        Owner::Other("team-a/web".to_owned())
    );

    let mut cluster =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a-dev"}});
    mark(app, &mut cluster, "", None);
    assert_eq!(owner_of(app, &cluster), Owner::This);

    let mut generated = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"generateName": "migrate-", "namespace": "team-a-dev"}});
    mark(app, &mut generated, "batch", Some("team-a-dev"));
    generated["metadata"]["name"] = json!("migrate-x7k2p");
    assert_eq!(owner_of(app, &generated), Owner::This);
}

#[test]
fn only_the_projects_source_namespaces_may_name_it() {
    let project = team_a();
    let mut stranger = app("https://github.com/acme/web", "team-a-dev");
    stranger.metadata.namespace = Some("team-b".to_owned());
    let violation = admit("team-a", &project, HOME, &stranger, "team-a-dev").unwrap_err();
    assert_eq!(violation.reason, "NamespaceNotPermitted");
    assert!(
        violation.message.contains("\"team-b\""),
        "{}",
        violation.message
    );

    // A project naming no source namespaces serves the install namespace only.
    let mut unlisted = team_a();
    unlisted.source_namespaces.clear();
    let own = app("https://github.com/acme/web", "team-a-dev");
    assert_eq!(
        admit("team-a", &unlisted, HOME, &own, "team-a-dev")
            .unwrap_err()
            .reason,
        "NamespaceNotPermitted"
    );
    let mut platform = own.clone();
    platform.metadata.namespace = Some(HOME.to_owned());
    assert!(admit("team-a", &unlisted, HOME, &platform, "team-a-dev").is_ok());
}

#[test]
fn a_star_never_reaches_local_repositories_nor_hides_a_host_behind_a_query() {
    let mut project = team_a();
    project.source_repos = vec!["*".to_owned()];
    for refused in [
        "file:///tmp/pushsync-git-cache/1234.git",
        "/tmp/pushsync-git-cache/1234.git",
        "https://evil.tld?@github.com/acme/web",
        "https://evil.tld#@github.com/acme/web",
    ] {
        let violation = admit(
            "team-a",
            &project,
            HOME,
            &app(refused, "team-a-dev"),
            "team-a-dev",
        )
        .expect_err(refused);
        assert_eq!(violation.reason, "SourceNotPermitted", "{refused}");
    }
    project.source_repos = vec!["file:///srv/repos/**".to_owned()];
    assert!(
        admit(
            "team-a",
            &project,
            HOME,
            &app("file:///srv/repos/a/b", "team-a-dev"),
            "team-a-dev"
        )
        .is_ok()
    );
    assert!(
        admit(
            "team-a",
            &project,
            HOME,
            &app("file:///tmp/other", "team-a-dev"),
            "team-a-dev"
        )
        .is_err()
    );
}

#[test]
fn a_namespace_is_held_to_the_destinations_by_its_name() {
    let namespace = |name| Object {
        group: "",
        kind: "Namespace",
        namespace: None,
        name,
    };
    let violations = check(
        "team-a",
        &team_a(),
        DEPLOYER,
        &[namespace("kube-system"), namespace("team-a-prod")],
    );
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0].reason, "DestinationNotPermitted");
    assert!(
        violations[0].message.contains("core/Namespace kube-system"),
        "{}",
        violations[0].message
    );
}

#[test]
fn one_application_writes_as_one_identity() {
    // `deployer` names a ServiceAccount per namespace: an object in another
    // allowed namespace would need another identity, and is refused.
    let object = Object {
        group: "",
        kind: "ConfigMap",
        namespace: Some("team-a-prod"),
        name: "x",
    };
    let violations = check("team-a", &team_a(), DEPLOYER, std::slice::from_ref(&object));
    assert_eq!(violations.len(), 1);
    assert!(
        violations[0].message.contains("would be written as system:serviceaccount:team-a-prod:deployer, but this Application acts as system:serviceaccount:team-a-dev:deployer"),
        "{}",
        violations[0].message
    );
    // One ServiceAccount for all of them (NAMESPACE:NAME) is one identity.
    let mut shared = team_a();
    shared.destinations[0].service_account = Some("pushsync:team-a".to_owned());
    assert!(
        check(
            "team-a",
            &shared,
            Some("system:serviceaccount:pushsync:team-a"),
            &[object]
        )
        .is_empty()
    );
}
