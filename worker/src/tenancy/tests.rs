use pushsync_api::{Application, ApplicationSpec, GroupKind, ProjectDestination, ProjectSpec};
use serde_json::json;

use super::*;

fn team_a() -> ProjectSpec {
    ProjectSpec {
        source_repos: vec!["https://github.com/acme/*".to_owned()],
        destinations: vec![ProjectDestination {
            namespace: "team-a-*".to_owned(),
            service_account: Some("deployer".to_owned()),
        }],
        cluster_resource_whitelist: vec![GroupKind::new("", "Namespace")],
        namespace_resource_blacklist: vec![GroupKind::new("", "ResourceQuota")],
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
    let violations = check("team-a", &team_a(), &objects);
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
    assert!(check("team-a", &team_a(), &objects[..2]).is_empty());
}

#[test]
fn the_unrestricted_project_allows_everything() {
    let project = ProjectSpec::unrestricted();
    let app = app("file:///tmp/repo", "anywhere");
    assert_eq!(
        admit("default", &project, &app, "anywhere")
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
    assert!(check("default", &project, &[cluster]).is_empty());
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
