//! The `kube` crate against the sandbox: typed and dynamic APIs, apply with
//! dry-run, watchers, concurrency and the test controls.

use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::{Discovery, Scope};
use kube::runtime::watcher::{self, Event};
use pushsync_sandbox::{Fault, HEALTH_ANNOTATION, Sandbox};
use serde_json::json;

fn deployment(name: &str, image: &str) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": image}]}}
        }
    })
}

#[tokio::test]
async fn typed_api_round_trips_and_defaults_like_the_real_server() {
    let sandbox = Sandbox::start().await.unwrap();
    let api: Api<Deployment> = Api::namespaced(sandbox.client(), "default");
    let created = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(deployment("web", "nginx:1")).unwrap(),
        )
        .await
        .unwrap();
    let meta = &created.metadata;
    assert!(meta.uid.is_some() && meta.creation_timestamp.is_some());
    assert_eq!(meta.generation, Some(1));
    assert_eq!(
        created.spec.as_ref().and_then(|s| s.replicas),
        Some(1),
        "defaulted"
    );

    let fetched = api.get("web").await.unwrap();
    assert_eq!(fetched.metadata.resource_version, meta.resource_version);

    // A stale resourceVersion is a 409.
    let mut stale = fetched.clone();
    let mut current = fetched.clone();
    current.spec.as_mut().unwrap().replicas = Some(2);
    let updated = api
        .replace("web", &PostParams::default(), &current)
        .await
        .unwrap();
    assert_eq!(updated.metadata.generation, Some(2));
    stale.spec.as_mut().unwrap().replicas = Some(5);
    let error = api
        .replace("web", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert!(
        matches!(error, kube::Error::Api(ref s) if s.code == 409),
        "{error:?}"
    );

    let error = api.get("missing").await.unwrap_err();
    assert!(
        matches!(error, kube::Error::Api(ref s) if s.code == 404 && s.reason == "NotFound"),
        "{error:?}"
    );
}

#[tokio::test]
async fn apply_with_dry_run_changes_nothing_and_a_no_op_apply_keeps_the_version() {
    let sandbox = Sandbox::start().await.unwrap();
    let api: Api<DynamicObject> = Api::namespaced_with(
        sandbox.client(),
        "default",
        &kube::discovery::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
            "apps",
            "v1",
            "Deployment",
        )),
    );
    let params = PatchParams::apply("pushsync").force();
    let first = api
        .patch("web", &params, &Patch::Apply(deployment("web", "nginx:1")))
        .await
        .unwrap();
    let again = api
        .patch("web", &params, &Patch::Apply(deployment("web", "nginx:1")))
        .await
        .unwrap();
    assert_eq!(
        first.metadata.resource_version, again.metadata.resource_version,
        "no-op apply bumped the version"
    );

    let dry = api
        .patch(
            "web",
            &params.clone().dry_run(),
            &Patch::Apply(deployment("web", "nginx:2")),
        )
        .await
        .unwrap();
    assert_eq!(
        dry.data["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:2"
    );
    let live = api.get("web").await.unwrap();
    assert_eq!(
        live.data["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1"
    );
    // Dry-run of an object that does not exist creates nothing either.
    api.patch(
        "ghost",
        &params.clone().dry_run(),
        &Patch::Apply(deployment("ghost", "x")),
    )
    .await
    .unwrap();
    assert!(api.get_opt("ghost").await.unwrap().is_none());
}

#[tokio::test]
async fn discovery_finds_every_served_kind_for_dynamic_objects() {
    let sandbox = Sandbox::start().await.unwrap();
    let discovery = Discovery::new(sandbox.client()).run().await.unwrap();
    let (resource, caps) = discovery
        .resolve_gvk(&kube::core::GroupVersionKind::gvk(
            "apps",
            "v1",
            "Deployment",
        ))
        .expect("deployments discovered");
    assert_eq!(resource.plural, "deployments");
    assert!(matches!(caps.scope, Scope::Namespaced));
    let (namespace, caps) = discovery
        .resolve_gvk(&kube::core::GroupVersionKind::gvk("", "v1", "Namespace"))
        .unwrap();
    assert!(matches!(caps.scope, Scope::Cluster));
    let api: Api<DynamicObject> = Api::all_with(sandbox.client(), &namespace);
    let names: Vec<String> = api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|o| o.metadata.name)
        .collect();
    assert!(names.contains(&"default".to_owned()), "{names:?}");
}

#[tokio::test]
async fn a_watcher_sees_create_update_and_delete() {
    let sandbox = Sandbox::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(sandbox.client(), "default");
    let mut events = watcher::watcher(api.clone(), watcher::Config::default()).boxed();
    // Initial (empty) listing.
    loop {
        match tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            Event::InitDone => break,
            _ => continue,
        }
    }
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "w"}, "data": {"a": "1"}})).unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"a": "2"}})),
    )
    .await
    .unwrap();
    api.delete("w", &DeleteParams::default()).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            Event::Apply(cm) => seen.push(format!("apply {}", cm.data.unwrap_or_default()["a"])),
            Event::Delete(_) => seen.push("delete".to_owned()),
            _ => {}
        }
    }
    assert_eq!(seen, ["apply 1", "apply 2", "delete"]);
}

#[tokio::test]
async fn owners_take_their_dependents_and_finalizers_hold_deletion() {
    let sandbox = Sandbox::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(sandbox.client(), "default");
    let owner = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "owner"}})).unwrap(),
        )
        .await
        .unwrap();
    let uid = owner.metadata.uid.clone().unwrap();
    let dependent: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "dependent", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}
        ]}}),
    )
    .unwrap();
    cms.create(&PostParams::default(), &dependent)
        .await
        .unwrap();
    cms.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    assert!(
        cms.get_opt("dependent").await.unwrap().is_none(),
        "dependent survived its owner"
    );

    let held: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}),
    )
    .unwrap();
    cms.create(&PostParams::default(), &held).await.unwrap();
    cms.delete("held", &DeleteParams::default()).await.unwrap();
    let terminating = cms.get("held").await.unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(cms.get_opt("held").await.unwrap().is_none());
}

#[tokio::test]
async fn simulated_controllers_report_health_and_tests_can_steer_them() {
    let sandbox = Sandbox::start().await.unwrap();
    let api: Api<Deployment> = Api::namespaced(sandbox.client(), "default");
    api.create(
        &PostParams::default(),
        &serde_json::from_value(deployment("good", "nginx")).unwrap(),
    )
    .await
    .unwrap();
    let mut stuck = deployment("stuck", "nginx");
    stuck["metadata"]["annotations"] = json!({HEALTH_ANNOTATION: "progressing"});
    api.create(
        &PostParams::default(),
        &serde_json::from_value(stuck).unwrap(),
    )
    .await
    .unwrap();
    let mut available = None;
    for _ in 0..500 {
        let good = api.get("good").await.unwrap();
        if good.status.as_ref().and_then(|s| s.available_replicas) == Some(1) {
            available = Some(good);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let good = available.expect("the deployment never became available");
    assert_eq!(good.status.unwrap().observed_generation, Some(1));
    let stuck = api.get("stuck").await.unwrap();
    assert_eq!(
        stuck.status.and_then(|s| s.available_replicas).unwrap_or(0),
        0
    );
}

#[tokio::test]
async fn faults_are_injected_and_every_request_is_audited() {
    let sandbox = Sandbox::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(sandbox.client(), "default");
    sandbox.inject(Fault {
        path: "/configmaps/flaky".into(),
        verb: Some("get".into()),
        count: 2,
        status: 500,
        delay_ms: 0,
    });
    for _ in 0..2 {
        let error = api.get("flaky").await.unwrap_err();
        assert!(
            matches!(error, kube::Error::Api(ref s) if s.code == 500),
            "{error:?}"
        );
    }
    let error = api.get("flaky").await.unwrap_err();
    assert!(
        matches!(error, kube::Error::Api(ref s) if s.code == 404),
        "fault outlived its count: {error:?}"
    );

    api.patch(
        "audited",
        &PatchParams::apply("auditor"),
        &Patch::Apply(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "audited"}}),
        ),
    )
    .await
    .unwrap();
    let audit = sandbox.audit();
    let entry = audit
        .iter()
        .find(|e| e.verb == "patch" && e.path.ends_with("/configmaps/audited"))
        .expect("patch audited");
    assert_eq!(entry.field_manager.as_deref(), Some("auditor"));
    assert_eq!(entry.status, 201, "an apply that creates answers 201");
    assert!(entry.end_ms >= entry.start_ms);
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.path.ends_with("/configmaps/flaky"))
            .count(),
        3
    );
}

#[tokio::test]
async fn creating_a_custom_resource_named_like_a_review_is_a_write() {
    let sandbox = Sandbox::start().await.unwrap();
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "codereviews.example.com"},
        "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": "codereviews", "singular": "codereview", "kind": "CodeReview"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}],
        },
    }))
    .unwrap();
    Api::<CustomResourceDefinition>::all(sandbox.client())
        .create(&PostParams::default(), &crd)
        .await
        .unwrap();
    let resource = ApiResource {
        group: "example.com".into(),
        version: "v1".into(),
        api_version: "example.com/v1".into(),
        kind: "CodeReview".into(),
        plural: "codereviews".into(),
    };
    let review: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "CodeReview", "metadata": {"name": "r1"},
    }))
    .unwrap();
    Api::<DynamicObject>::namespaced_with(sandbox.client(), "default", &resource)
        .create(&PostParams::default(), &review)
        .await
        .unwrap();
    let audit = sandbox.audit();
    let created = audit
        .iter()
        .find(|e| e.verb == "create" && e.path.ends_with("/codereviews"))
        .expect("create audited");
    assert!(created.is_write(), "a stored CodeReview is a write");
}

#[tokio::test]
async fn selectors_patches_and_collections_behave_like_the_real_server() {
    let sandbox = Sandbox::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(sandbox.client(), "default");
    for (name, tier) in [("a", "web"), ("b", "web"), ("c", "db")] {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": {"tier": tier}}}))
                .unwrap();
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
    let names = |list: kube::core::ObjectList<ConfigMap>| {
        list.items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect::<Vec<_>>()
    };
    let web = api
        .list(&kube::api::ListParams::default().labels("tier=web"))
        .await
        .unwrap();
    assert_eq!(names(web), ["a", "b"]);
    let not_a = api
        .list(&kube::api::ListParams::default().fields("metadata.name!=a"))
        .await
        .unwrap();
    assert_eq!(names(not_a), ["b", "c"]);

    // JSON patch, and a failing `test` operation is 422 with nothing changed.
    let patch: json_patch::Patch =
        serde_json::from_value(json!([{"op": "add", "path": "/data", "value": {"k": "v"}}]))
            .unwrap();
    let patched = api
        .patch("a", &PatchParams::default(), &Patch::<()>::Json(patch))
        .await
        .unwrap();
    assert_eq!(patched.data.unwrap()["k"], "v");
    let failing: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/data/k", "value": "other"}]))
            .unwrap();
    let error = api
        .patch("a", &PatchParams::default(), &Patch::<()>::Json(failing))
        .await
        .unwrap_err();
    assert!(
        matches!(error, kube::Error::Api(ref s) if s.code == 422),
        "{error:?}"
    );

    // The wrong kind for the path is a 400.
    let deployments: Api<DynamicObject> = Api::namespaced_with(
        sandbox.client(),
        "default",
        &kube::discovery::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
            "apps",
            "v1",
            "Deployment",
        )),
    );
    let error = deployments
        .patch(
            "x",
            &PatchParams::apply("t"),
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}),
            ),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, kube::Error::Api(ref s) if s.code == 400),
        "{error:?}"
    );

    // deletecollection with a selector.
    api.delete_collection(
        &DeleteParams::default(),
        &kube::api::ListParams::default().labels("tier=web"),
    )
    .await
    .unwrap();
    assert_eq!(names(api.list(&Default::default()).await.unwrap()), ["c"]);
}

#[tokio::test]
async fn deleting_a_namespace_deletes_what_it_holds() {
    let sandbox = Sandbox::start().await.unwrap();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(sandbox.client());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "doomed"}})).unwrap(),
        )
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(sandbox.client(), "doomed");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap(),
    )
    .await
    .unwrap();
    namespaces
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    assert!(cms.get_opt("x").await.unwrap().is_none());
    let error = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "y"}})).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, kube::Error::Api(ref s) if s.code == 404),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_watch_resumes_from_a_resource_version() {
    let sandbox = Sandbox::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(sandbox.client(), "default");
    let first = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "one"}})).unwrap(),
        )
        .await
        .unwrap();
    let since = first.metadata.resource_version.unwrap();
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "two"}})).unwrap(),
    )
    .await
    .unwrap();
    let mut stream = api
        .watch(&kube::api::WatchParams::default().timeout(2), &since)
        .await
        .unwrap()
        .boxed();
    let event = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match event {
        kube::api::WatchEvent::Added(cm) => assert_eq!(cm.metadata.name.as_deref(), Some("two")),
        other => panic!("{other:?}"),
    }
}

/// A resourceVersion in a merge patch is a precondition, as in an update:
/// what compare-and-set writes (finalizers, trigger annotations, the
/// receiver's Secret) rely on.
#[tokio::test]
async fn a_patch_naming_a_stale_resource_version_conflicts() {
    let sandbox = Sandbox::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(sandbox.client(), "default");
    let created = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "cas"}, "data": {"a": "1"}}))
                .unwrap(),
        )
        .await
        .unwrap();
    let read_at = created.metadata.resource_version.clone().unwrap();
    let patch = |value: &str, version: &str| {
        Patch::Merge(json!({"metadata": {"resourceVersion": version}, "data": {"a": value}}))
    };
    api.patch("cas", &PatchParams::default(), &patch("2", &read_at))
        .await
        .unwrap();
    let stale = api
        .patch("cas", &PatchParams::default(), &patch("3", &read_at))
        .await
        .unwrap_err();
    assert!(
        matches!(&stale, kube::Error::Api(status) if status.code == 409 && status.message.contains("the object has been modified")),
        "{stale:?}"
    );
    assert_eq!(api.get("cas").await.unwrap().data.unwrap()["a"], "2");
    // In a server-side apply too.
    let applied = Patch::Apply(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cas", "resourceVersion": read_at}, "data": {"a": "4"},
    }));
    let stale = api
        .patch("cas", &PatchParams::apply("someone"), &applied)
        .await
        .unwrap_err();
    assert!(
        matches!(&stale, kube::Error::Api(status) if status.code == 409),
        "{stale:?}"
    );
}
