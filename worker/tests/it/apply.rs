//! Against the sandbox (a real Kubernetes REST API on loopback).

use pushsync_sandbox::{Fault, Sandbox};
use serde_json::json;

use pushsync_worker::apply::{ApplyError, ApplyOptions, Cluster, diff};
use pushsync_worker::render::Manifest;
use serde_json::Value;

fn manifest(object: Value) -> Manifest {
    Manifest {
        object,
        source: "test.yaml#0".into(),
    }
}

fn deployment(image: &str) -> Manifest {
    manifest(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 80}]}]}}}
    }))
}

#[tokio::test]
async fn apply_is_idempotent_and_a_dry_run_diff_shows_only_real_changes() {
    let sandbox = Sandbox::start().await.unwrap();
    let cluster = Cluster::new(sandbox.client());
    let first = cluster
        .apply(&deployment("nginx:1"), "default", ApplyOptions::default())
        .await
        .unwrap();
    assert_eq!(
        first.pointer("/metadata/namespace"),
        Some(&json!("default"))
    );
    let again = cluster
        .apply(&deployment("nginx:1"), "default", ApplyOptions::default())
        .await
        .unwrap();
    assert_eq!(
        first.pointer("/metadata/resourceVersion"),
        again.pointer("/metadata/resourceVersion")
    );

    let live = cluster
        .get(&deployment("nginx:1"), "default")
        .await
        .unwrap();
    // Server defaults (replicas, protocol) are in both sides: no drift.
    let same = cluster
        .apply(
            &deployment("nginx:1"),
            "default",
            ApplyOptions { dry_run: true },
        )
        .await
        .unwrap();
    assert_eq!(diff(live.as_ref(), &same, &[]), None);
    let changed = cluster
        .apply(
            &deployment("nginx:2"),
            "default",
            ApplyOptions { dry_run: true },
        )
        .await
        .unwrap();
    let text = diff(live.as_ref(), &changed, &[]).expect("a diff");
    assert!(
        text.contains("-                image: nginx:1")
            || text.contains("- image: nginx:1")
            || text.contains("nginx:1"),
        "{text}"
    );
    assert!(text.contains("nginx:2"), "{text}");
    // The dry run stored nothing.
    let still = cluster
        .get(&deployment("nginx:1"), "default")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        still.pointer("/spec/template/spec/containers/0/image"),
        Some(&json!("nginx:1"))
    );
    // Ignored pointers do not count.
    let mut scaled = changed.clone();
    scaled["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1");
    scaled["spec"]["replicas"] = json!(7);
    assert!(diff(live.as_ref(), &scaled, &[]).is_some());
    assert_eq!(
        diff(live.as_ref(), &scaled, &["/spec/replicas".to_owned()]),
        None
    );
}

#[tokio::test]
async fn rejections_are_user_errors_and_server_failures_are_transient() {
    let sandbox = Sandbox::start().await.unwrap();
    let cluster = Cluster::new(sandbox.client());

    let unknown = manifest(
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}),
    );
    let error = cluster
        .apply(&unknown, "default", ApplyOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(error, ApplyError::UnknownKind { .. }), "{error}");
    assert!(!error.is_transient());

    let bad_name = manifest(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Not_Valid"}}),
    );
    let error = cluster
        .apply(&bad_name, "default", ApplyOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(error, ApplyError::Rejected { code: 422, .. }),
        "{error}"
    );
    assert!(!error.is_transient());
    assert!(error.to_string().contains("test.yaml#0"), "{error}");

    // A field the kind's schema does not declare (a typo in Git): the real
    // server's server-side apply answers 500 "field not declared in schema",
    // which is the manifest's fault, not the server's, so no retry.
    let typo = manifest(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "typo"},
        "dataa": {"a": "1"},
    }));
    for options in [ApplyOptions { dry_run: true }, ApplyOptions::default()] {
        let error = cluster.apply(&typo, "default", options).await.unwrap_err();
        assert!(
            matches!(error, ApplyError::Rejected { code: 500, .. }),
            "{error}"
        );
        assert!(!error.is_transient());
        assert!(
            error
                .to_string()
                .contains(".dataa: field not declared in schema"),
            "{error}"
        );
    }

    cluster
        .apply(&deployment("nginx:1"), "default", ApplyOptions::default())
        .await
        .unwrap();
    let mut reselected = deployment("nginx:1");
    reselected.object["spec"]["selector"]["matchLabels"]["app"] = json!("other");
    reselected.object["spec"]["template"]["metadata"]["labels"]["app"] = json!("other");
    let error = cluster
        .apply(&reselected, "default", ApplyOptions::default())
        .await
        .unwrap_err();
    assert!(error.is_immutable_field(), "{error}");

    // A 500 surfaces as transient; a 429 is retried by kube's client itself.
    sandbox.inject(Fault {
        path: "/deployments/web".into(),
        verb: Some("patch".into()),
        count: 1,
        status: 500,
        delay_ms: 0,
    });
    let error = cluster
        .apply(&deployment("nginx:3"), "default", ApplyOptions::default())
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error}");
    sandbox.inject(Fault {
        path: "/deployments/web".into(),
        verb: Some("patch".into()),
        count: 1,
        status: 429,
        delay_ms: 0,
    });
    cluster
        .apply(&deployment("nginx:3"), "default", ApplyOptions::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn delete_tolerates_absence_and_cluster_scoped_kinds_ignore_the_namespace() {
    let sandbox = Sandbox::start().await.unwrap();
    let cluster = Cluster::new(sandbox.client());
    let namespace =
        manifest(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}));
    let applied = cluster
        .apply(&namespace, "default", ApplyOptions::default())
        .await
        .unwrap();
    assert_eq!(applied.pointer("/metadata/namespace"), None);
    cluster.delete(&namespace, "default").await.unwrap();
    cluster.delete(&namespace, "default").await.unwrap();
    assert_eq!(cluster.get(&namespace, "default").await.unwrap(), None);
}
