//! Tenancy attacks, each performed for real against the sandbox with the
//! Project CRD, a repository served by `git daemon`, and the sync as the
//! worker runs it: nothing out of the project's bounds is applied, nothing
//! not marked as the Application's is deleted or overwritten.

use std::time::Duration;

use kube::api::{Api, PostParams};
use pushsync_api::tracking::TRACKING_ANNOTATION;
use pushsync_api::{
    Application, ApplicationSpec, GroupKind, OperationPhase, Project, ProjectDestination,
    ProjectSpec, ResourceRef, ResultCode,
};
use pushsync_sandbox::Sandbox;
use pushsync_testkit::git::{GitDaemon, GitRepo};
use pushsync_worker::git::GitCache;
use pushsync_worker::sync::{Outcome, SyncContext, sync};
use pushsync_worker::tenancy::Projects;
use serde_json::{Value, json};

use crate::support;

/// Team A: Applications of namespace `team-a`, repositories named
/// `team-a-*`, namespaces `team-a-*`, no cluster-scoped kinds, no
/// NetworkPolicies.
fn team_a() -> ProjectSpec {
    ProjectSpec {
        source_namespaces: vec!["team-a".to_owned()],
        source_repos: vec!["git://127.0.0.1/team-a-*".to_owned()],
        destinations: vec![ProjectDestination {
            namespace: "team-a-*".to_owned(),
            service_account: None,
        }],
        namespace_resource_blacklist: vec![GroupKind::new("networking.k8s.io", "NetworkPolicy")],
        ..ProjectSpec::default()
    }
}

struct Setup {
    sandbox: Sandbox,
    ctx: SyncContext,
    cache: tempfile::TempDir,
}

/// A repository served by its own `git daemon`.
struct Served {
    repo: GitRepo,
    _daemon: GitDaemon,
    url: String,
}

impl Setup {
    async fn new(project: ProjectSpec) -> Self {
        Self::start(pushsync_sandbox::SandboxConfig::default(), project).await
    }

    /// With `config` (RBAC on, …): the CRDs, project `team-a` with
    /// `project`, its namespaces, and a context reading projects for real
    /// and acting through the admin's kube config (so it can impersonate).
    async fn start(config: pushsync_sandbox::SandboxConfig, project: ProjectSpec) -> Self {
        let sandbox = Sandbox::start_with(config).await.unwrap();
        support::install_crds(&sandbox).await;
        let projects: Api<Project> = Api::namespaced(sandbox.client(), support::PROJECTS);
        projects
            .create(
                &PostParams::default(),
                &Project::namespaced(support::PROJECTS, "team-a", project),
            )
            .await
            .unwrap();
        for namespace in ["team-a", "team-a-dev", "team-b"] {
            create(
                &sandbox,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
            )
            .await;
        }
        let cache = tempfile::tempdir().unwrap();
        let ctx = SyncContext {
            cluster: pushsync_worker::apply::Cluster::from_config(sandbox.config()).unwrap(),
            projects: Projects::read(sandbox.client(), support::PROJECTS),
            ..support::sync_context(
                &sandbox,
                GitCache::new(cache.path(), Duration::from_secs(20))
                    .with_policy(pushsync_worker::git::RemotePolicy::permissive()),
            )
        };
        Self {
            sandbox,
            ctx,
            cache,
        }
    }

    /// A repository whose name starts with `name`, `files` committed.
    fn repo(&self, name: &str, files: &[(&str, &str)]) -> Served {
        let repo = GitRepo::init_named(name);
        for (file, contents) in files {
            repo.write(file, contents);
        }
        repo.commit("manifests");
        let daemon = GitDaemon::serve_repo(&repo);
        let url = daemon.url_of(&repo);
        Served {
            repo,
            _daemon: daemon,
            url,
        }
    }

    fn writes(&self) -> usize {
        self.sandbox.audit().iter().filter(|e| e.is_write()).count()
    }

    async fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let manifest = pushsync_worker::render::Manifest {
            object: json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}}),
            source: "test".into(),
        };
        self.ctx
            .cluster
            .get(&manifest, namespace.unwrap_or_default())
            .await
            .unwrap()
    }
}

async fn create(sandbox: &Sandbox, object: Value) {
    let manifest = pushsync_worker::render::Manifest {
        object,
        source: "test".into(),
    };
    pushsync_worker::apply::Cluster::new(sandbox.client())
        .apply(&manifest, "default", Default::default())
        .await
        .unwrap();
}

fn application(name: &str, url: &str, destination: &str) -> Application {
    let mut spec = ApplicationSpec::automated(url, "main", "", destination);
    spec.project = "team-a".to_owned();
    Application::namespaced("team-a", name, spec)
}

fn violation(outcome: &Outcome) -> (String, String) {
    let condition = outcome.condition.as_ref().expect("a condition");
    (
        format!(
            "{}/{}",
            condition.kind,
            condition.reason.as_deref().unwrap_or_default()
        ),
        condition.message.clone().unwrap_or_default(),
    )
}

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: nginx}]}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_role_binding_to_escalate_is_refused_and_nothing_is_applied() {
    let setup = Setup::new(team_a()).await;
    let served = setup.repo(
        "team-a-web",
        &[
            ("web.yaml", DEPLOYMENT),
            (
                "escalate.yaml",
                "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: team-a-admin}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: pushsync-worker-apply}\nsubjects: [{kind: ServiceAccount, name: default, namespace: team-a}]\n",
            ),
        ],
    );
    let before = setup.writes();
    let outcome = sync(&setup.ctx, &application("web", &served.url, "team-a-dev"))
        .await
        .unwrap();
    assert_eq!(outcome.phase, OperationPhase::Failed);
    let (kind, message) = violation(&outcome);
    assert_eq!(kind, "ProjectViolation/ClusterResourceNotPermitted");
    assert!(
        message.contains("rbac.authorization.k8s.io/ClusterRoleBinding team-a-admin"),
        "{message}"
    );
    assert!(message.contains("clusterResourceWhitelist"), "{message}");
    assert!(message.contains("nothing was applied"), "{message}");
    assert_eq!(
        setup.writes(),
        before,
        "not one write, not even the Deployment"
    );
    assert!(
        setup
            .get(
                "rbac.authorization.k8s.io/v1",
                "ClusterRoleBinding",
                None,
                "team-a-admin"
            )
            .await
            .is_none()
    );
    assert!(
        setup
            .get("apps/v1", "Deployment", Some("team-a-dev"), "web")
            .await
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_naming_another_namespace_is_refused_whole() {
    let setup = Setup::new(team_a()).await;
    let served = setup.repo(
        "team-a-miner",
        &[
            ("web.yaml", DEPLOYMENT),
            ("miner.yaml", &DEPLOYMENT.replace("{name: web}", "{name: miner, namespace: kube-system}")),
            ("open.yaml", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: allow-all}\nspec: {podSelector: {}, ingress: [{}]}\n"),
        ],
    );
    let before = setup.writes();
    let outcome = sync(&setup.ctx, &application("miner", &served.url, "team-a-dev"))
        .await
        .unwrap();
    let (kind, message) = violation(&outcome);
    assert!(kind.starts_with("ProjectViolation/"), "{kind}");
    assert!(message.contains("apps/Deployment kube-system/miner: namespace \"kube-system\" is not among its destinations"), "{message}");
    assert!(
        message.contains(
            "networking.k8s.io/NetworkPolicy team-a-dev/allow-all (namespaceResourceBlacklist)"
        ),
        "both violations are named: {message}"
    );
    assert_eq!(setup.writes(), before);
    assert!(
        setup
            .get("apps/v1", "Deployment", Some("team-a-dev"), "web")
            .await
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_outside_the_projects_sources_is_refused_before_fetching() {
    let setup = Setup::new(team_a()).await;
    let outside = setup.repo("team-b-web", &[("web.yaml", DEPLOYMENT)]);
    let climbing = outside
        .url
        .replacen("/team-b-web", "/team-a-x/../team-b-web", 1);
    for url in [&outside.url, &climbing] {
        let outcome = sync(&setup.ctx, &application("b", url, "team-a-dev"))
            .await
            .unwrap();
        assert_eq!(
            violation(&outcome).0,
            "ProjectViolation/SourceNotPermitted",
            "{url}: {}",
            outcome.message
        );
    }
    let inside = setup.repo("team-a-ok", &[("web.yaml", DEPLOYMENT)]);
    let outcome = sync(&setup.ctx, &application("c", &inside.url, "kube-system"))
        .await
        .unwrap();
    assert_eq!(
        violation(&outcome).0,
        "ProjectViolation/DestinationNotPermitted"
    );
    let mut missing = application("d", &inside.url, "team-a-dev");
    missing.spec.project = "nobody".to_owned();
    let (kind, message) = violation(&sync(&setup.ctx, &missing).await.unwrap());
    assert_eq!(kind, "ProjectViolation/ProjectNotFound");
    assert!(message.contains("\"nobody\""), "{message}");

    // An Application of another team naming team A's project borrows
    // nothing.
    let mut borrowed = application("e", &inside.url, "team-a-dev");
    borrowed.metadata.namespace = Some("team-b".to_owned());
    let (kind, message) = violation(&sync(&setup.ctx, &borrowed).await.unwrap());
    assert_eq!(kind, "ProjectViolation/NamespaceNotPermitted", "{message}");

    // The workers' own disk (where every tenant's fetched repositories are
    // cached) is not a repository `*` allows.
    let mut open = team_a();
    open.source_repos = vec!["*".to_owned()];
    let projects: Api<Project> = Api::namespaced(setup.sandbox.client(), support::PROJECTS);
    projects
        .create(
            &PostParams::default(),
            &Project::namespaced(support::PROJECTS, "open", open),
        )
        .await
        .unwrap();
    for url in [
        format!("file://{}", setup.cache.path().display()),
        inside.url.replacen("git://", "git://evil.tld?@", 1),
    ] {
        let mut local = application("f", &url, "team-a-dev");
        local.spec.project = "open".to_owned();
        let (kind, message) = violation(&sync(&setup.ctx, &local).await.unwrap());
        assert_eq!(
            kind, "ProjectViolation/SourceNotPermitted",
            "{url}: {message}"
        );
    }

    let fetched = std::fs::read_dir(setup.cache.path())
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(fetched, 0, "no repository was fetched into the cache");

    // CreateNamespace writes a Namespace: not without the whitelist.
    let mut creating = application("g", &inside.url, "team-a-new");
    creating.spec = creating.spec.with_sync_option("CreateNamespace=true");
    let (kind, message) = violation(&sync(&setup.ctx, &creating).await.unwrap());
    assert_eq!(
        kind, "ProjectViolation/ClusterResourceNotPermitted",
        "{message}"
    );
    assert!(message.contains("core/Namespace team-a-new"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_with_a_forged_inventory_deletes_nothing_foreign() {
    let setup = Setup::new(team_a()).await;
    create(&setup.sandbox, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "precious", "namespace": "team-a-dev"}, "data": {"k": "v"}})).await;
    let served = setup.repo(
        "team-a-cfg",
        &[(
            "cfg.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: mine}\ndata: {k: v}\n",
        )],
    );
    let mut app = application("cfg", &served.url, "team-a-dev");
    let outcome = sync(&setup.ctx, &app).await.unwrap();
    assert_eq!(
        outcome.phase,
        OperationPhase::Succeeded,
        "{}",
        outcome.message
    );
    let mine = setup
        .get("v1", "ConfigMap", Some("team-a-dev"), "mine")
        .await
        .unwrap();
    assert_eq!(
        mine["metadata"]["annotations"][TRACKING_ANNOTATION],
        "team-a/cfg:/ConfigMap:team-a-dev/mine"
    );
    assert_eq!(mine["metadata"]["labels"]["pushsync.dev/app-name"], "cfg");

    // Someone who may write applications/status names a foreign object.
    let forged = ResourceRef {
        group: String::new(),
        version: "v1".into(),
        kind: "ConfigMap".into(),
        namespace: "team-a-dev".into(),
        name: "precious".into(),
    };
    app.status = Some(pushsync_api::ApplicationStatus {
        inventory: vec![outcome.inventory[0].clone(), forged],
        ..Default::default()
    });
    let outcome = sync(&setup.ctx, &app).await.unwrap();
    assert!(
        setup
            .get("v1", "ConfigMap", Some("team-a-dev"), "precious")
            .await
            .is_some(),
        "the foreign object survives"
    );
    assert!(
        !outcome.inventory.iter().any(|r| r.name == "precious"),
        "and leaves the inventory: {:?}",
        outcome.inventory
    );
    assert!(
        !outcome
            .resources
            .iter()
            .any(|r| r.status == ResultCode::Pruned)
    );

    // Its own object leaving Git is pruned, as before.
    app.status = Some(pushsync_api::ApplicationStatus {
        inventory: outcome.inventory.clone(),
        ..Default::default()
    });
    served.repo.remove("cfg.yaml");
    served.repo.write(
        "other.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\n",
    );
    served.repo.commit("replace");
    let outcome = sync(&setup.ctx, &app).await.unwrap();
    assert!(
        outcome
            .resources
            .iter()
            .any(|r| r.status == ResultCode::Pruned && r.resource.name == "mine"),
        "{:?}",
        outcome.resources
    );
    assert!(
        setup
            .get("v1", "ConfigMap", Some("team-a-dev"), "mine")
            .await
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_applications_claiming_one_object_the_second_reports_shared_resource() {
    let setup = Setup::new(team_a()).await;
    let served = setup.repo(
        "team-a-shared",
        &[(
            "cfg.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared}\ndata: {owner: first}\n",
        )],
    );
    let outcome = sync(&setup.ctx, &application("first", &served.url, "team-a-dev"))
        .await
        .unwrap();
    assert_eq!(
        outcome.phase,
        OperationPhase::Succeeded,
        "{}",
        outcome.message
    );

    let second = application("second", &served.url, "team-a-dev");
    let outcome = sync(&setup.ctx, &second).await.unwrap();
    let (kind, message) = violation(&outcome);
    assert_eq!(kind, "SharedResource/SharedResource");
    assert!(
        message.contains("is managed by Application team-a/first"),
        "{message}"
    );
    let live = setup
        .get("v1", "ConfigMap", Some("team-a-dev"), "shared")
        .await
        .unwrap();
    assert_eq!(
        live["metadata"]["annotations"][TRACKING_ANNOTATION],
        "team-a/first:/ConfigMap:team-a-dev/shared",
        "not overwritten"
    );

    // A hook named like the first's object lands on it neither when it is
    // recreated (deleted first) nor when it is not.
    for policy in ["BeforeHookCreation", "HookSucceeded"] {
        let hook = setup.repo(
            "team-a-hook",
            &[
                ("hook.yaml", &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\n  annotations: {{pushsync.dev/hook: PreSync, pushsync.dev/hook-delete-policy: {policy}}}\ndata: {{owner: hook}}\n")),
                ("cfg.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: hooker}\n"),
            ],
        );
        let app = application(
            &format!("hook-{}", policy.to_ascii_lowercase()),
            &hook.url,
            "team-a-dev",
        );
        let outcome = sync(&setup.ctx, &app).await.unwrap();
        assert_eq!(
            outcome.phase,
            OperationPhase::Failed,
            "{policy}: {}",
            outcome.message
        );
        assert!(
            outcome
                .message
                .contains("is managed by Application team-a/first"),
            "{policy}: {}",
            outcome.message
        );
        let live = setup
            .get("v1", "ConfigMap", Some("team-a-dev"), "shared")
            .await
            .unwrap();
        assert_eq!(live["data"]["owner"], "first", "{policy}");
    }

    // Opting in, the second writes it without taking it over: the first's
    // mark stays, so only the first may ever prune it.
    let mut sharing = second.clone();
    sharing.spec = sharing.spec.with_sync_option("AllowShared=true");
    let outcome = sync(&setup.ctx, &sharing).await.unwrap();
    assert_eq!(
        outcome.phase,
        OperationPhase::Succeeded,
        "{}",
        outcome.message
    );
    let live = setup
        .get("v1", "ConfigMap", Some("team-a-dev"), "shared")
        .await
        .unwrap();
    assert_eq!(
        live["metadata"]["annotations"][TRACKING_ANNOTATION],
        "team-a/first:/ConfigMap:team-a-dev/shared"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tightened_project_holds_excess_resources_instead_of_deleting_them() {
    let mut open = team_a();
    open.destinations.push(ProjectDestination {
        namespace: "team-b".to_owned(),
        service_account: None,
    });
    let setup = Setup::new(open).await;
    let served = setup.repo(
        "team-a-two",
        &[
            (
                "b.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: team-b}\n",
            ),
            (
                "a.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
            ),
        ],
    );
    let mut app = application("two", &served.url, "team-a-dev");
    let outcome = sync(&setup.ctx, &app).await.unwrap();
    assert_eq!(
        outcome.phase,
        OperationPhase::Succeeded,
        "{}",
        outcome.message
    );

    // The project no longer allows team-b: the same revision is refused…
    let projects: Api<Project> = Api::namespaced(setup.sandbox.client(), support::PROJECTS);
    projects
        .patch(
            "team-a",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                json!({"spec": {"destinations": [{"namespace": "team-a-*"}]}}),
            ),
        )
        .await
        .unwrap();
    app.status = Some(pushsync_api::ApplicationStatus {
        inventory: outcome.inventory.clone(),
        ..Default::default()
    });
    let outcome = sync(&setup.ctx, &app).await.unwrap();
    assert_eq!(
        violation(&outcome).0,
        "ProjectViolation/DestinationNotPermitted"
    );
    assert!(
        setup
            .get("v1", "ConfigMap", Some("team-b"), "b")
            .await
            .is_some()
    );

    // …and once Git drops it, the leftover is held, not pruned.
    served.repo.remove("b.yaml");
    served.repo.commit("drop b");
    let outcome = sync(&setup.ctx, &app).await.unwrap();
    assert!(
        setup
            .get("v1", "ConfigMap", Some("team-b"), "b")
            .await
            .is_some(),
        "never a silent deletion"
    );
    let held = outcome
        .resources
        .iter()
        .find(|r| r.resource.name == "b")
        .expect("reported");
    assert_eq!(held.status, ResultCode::RequiresPruning);
    assert!(
        held.message
            .as_deref()
            .unwrap_or_default()
            .contains("team-b"),
        "{held:?}"
    );
    assert!(
        outcome.inventory.iter().any(|r| r.name == "b"),
        "still tracked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_run_as_the_projects_service_account_and_its_rbac_decides() {
    let mut project = team_a();
    project.destinations[0].service_account = Some("deployer".to_owned());
    let setup = Setup::start(
        pushsync_sandbox::SandboxConfig {
            rbac: true,
            ..Default::default()
        },
        project,
    )
    .await;
    let (sandbox, ctx) = (&setup.sandbox, &setup.ctx);
    create(sandbox, json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "deployer", "namespace": "team-a-dev"}})).await;
    let role = |resources: Value| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "deployer", "namespace": "team-a-dev"},
            "rules": [{"apiGroups": ["", "apps"], "resources": resources, "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]}]})
    };
    create(sandbox, role(json!(["configmaps"]))).await;
    create(sandbox, json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "deployer", "namespace": "team-a-dev"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "deployer"},
        "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": "team-a-dev"}]})).await;

    let repo = GitRepo::init_named("team-a-rbac");
    repo.write(
        "cfg.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n",
    )
    .write("web.yaml", DEPLOYMENT);
    repo.commit("two kinds");
    let daemon = GitDaemon::serve_repo(&repo);
    let app = application("rbac", &daemon.url_of(&repo), "team-a-dev");
    const DEPLOYER: &str = "system:serviceaccount:team-a-dev:deployer";

    // The ServiceAccount may write ConfigMaps but not Deployments: the
    // refusal is named, and not even the ConfigMap of the same wave lands.
    let outcome = sync(ctx, &app).await.unwrap();
    let (kind, message) = violation(&outcome);
    assert_eq!(kind, "SyncFailed/Forbidden", "{message}");
    assert!(
        message.contains(&format!("User \"{DEPLOYER}\" cannot"))
            && message.contains(
                "resource \"deployments\" in API group \"apps\" in the namespace \"team-a-dev\""
            ),
        "{message}"
    );
    assert!(message.contains("nothing was applied"), "{message}");
    let admin = pushsync_worker::apply::Cluster::new(sandbox.client());
    let configmap = pushsync_worker::render::Manifest {
        object: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}}),
        source: "test".into(),
    };
    assert!(admin.get(&configmap, "team-a-dev").await.unwrap().is_none());

    // Granted Deployments too, the sync applies — every write as the
    // ServiceAccount, none as the worker.
    create(sandbox, role(json!(["configmaps", "deployments"]))).await;
    let outcome = sync(ctx, &app).await.unwrap();
    assert_eq!(
        outcome.phase,
        OperationPhase::Succeeded,
        "{}",
        outcome.message
    );
    let writers: std::collections::BTreeSet<String> = sandbox
        .audit()
        .into_iter()
        .filter(|e| {
            e.path.contains("/namespaces/team-a-dev/")
                && (e.is_write() || e.is_dry_run())
                && e.path.contains("web") | e.path.contains("cfg")
        })
        .map(|e| e.user)
        .collect();
    assert_eq!(
        writers,
        std::collections::BTreeSet::from([DEPLOYER.to_owned()])
    );

    // A worker that may not impersonate that ServiceAccount gets nowhere.
    let powerless = SyncContext {
        cluster: pushsync_worker::apply::Cluster::from_config(
            sandbox.config_as("system:serviceaccount:pushsync:pushsync-worker", &[]),
        )
        .unwrap(),
        ..ctx.clone()
    };
    let outcome = sync(
        &powerless,
        &application("rbac2", &daemon.url_of(&repo), "team-a-dev"),
    )
    .await
    .unwrap();
    let (kind, message) = violation(&outcome);
    assert_eq!(kind, "SyncFailed/Forbidden", "{message}");
    assert!(
        message.contains("cannot impersonate resource \"serviceaccounts\""),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crd_in_the_repository_cannot_make_a_cluster_scoped_kind_look_namespaced() {
    let mut project = team_a();
    project.cluster_resource_whitelist = vec![GroupKind::new(
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
    )];
    let setup = Setup::new(project).await;
    let served = setup.repo(
        "team-a-spoof",
        &[
            (
                "crd.yaml",
                "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: clusterrolebindings.rbac.authorization.k8s.io}\nspec:\n  group: rbac.authorization.k8s.io\n  scope: Namespaced\n  names: {kind: ClusterRoleBinding, plural: clusterrolebindings, singular: clusterrolebinding}\n  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}]\n",
            ),
            (
                "escalate.yaml",
                "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: team-a-admin}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\nsubjects: [{kind: ServiceAccount, name: default, namespace: team-a}]\n",
            ),
        ],
    );
    let before = setup.writes();
    let outcome = sync(&setup.ctx, &application("spoof", &served.url, "team-a-dev"))
        .await
        .unwrap();
    let (kind, message) = violation(&outcome);
    assert_eq!(
        kind, "ProjectViolation/ClusterResourceNotPermitted",
        "{message}"
    );
    assert!(
        message
            .contains("rbac.authorization.k8s.io/ClusterRoleBinding team-a-admin (cluster-scoped)"),
        "{message}"
    );
    assert_eq!(setup.writes(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pre_delete_hook_cannot_do_at_deletion_what_a_sync_may_not() {
    let setup = Setup::new(team_a()).await;
    let served = setup.repo(
        "team-a-web",
        &[(
            "escalate.yaml",
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: team-a-admin, annotations: {argocd.argoproj.io/hook: PreDelete}}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\nsubjects: [{kind: ServiceAccount, name: default, namespace: team-a}]\n",
        )],
    );
    // Being deleted with the resources finalizer, its last deploy the
    // commit holding the hook.
    let mut app = application("web", &served.url, "team-a-dev");
    app.metadata.finalizers = Some(vec![pushsync_api::RESOURCES_FINALIZER.to_owned()]);
    app.status = Some(pushsync_api::ApplicationStatus {
        history: vec![pushsync_api::RevisionHistory {
            revision: served.repo.head(),
            deployed_at: jiff::Timestamp::now().to_string(),
        }],
        ..Default::default()
    });
    let finalized = pushsync_worker::sync::finalize::finalize(&setup.ctx, &app)
        .await
        .unwrap();
    assert_eq!(
        finalized,
        pushsync_worker::sync::finalize::Finalized::Done { deleted: 0 },
        "the hooks are skipped, the deletion goes on"
    );
    assert!(
        setup
            .get(
                "rbac.authorization.k8s.io/v1",
                "ClusterRoleBinding",
                None,
                "team-a-admin"
            )
            .await
            .is_none(),
        "the project's clusterResourceWhitelist holds at deletion too"
    );
}
