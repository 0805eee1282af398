//! Status writes through the sandbox's status subresource.

use kube::api::{Api, PostParams};
use pushsync_api::{
    Application, ApplicationSpec, Destination, HealthStatusCode, OperationPhase, Source,
};
use pushsync_worker::health::Assessment;
use pushsync_worker::status::write;
use pushsync_worker::sync::Outcome;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_land_in_the_status_subresource_and_history_is_bounded() {
    let sandbox = crate::support::sandbox_with_crds().await;
    let apps: Api<Application> = Api::namespaced(sandbox.client(), "default");
    let spec = ApplicationSpec {
        project: pushsync_api::DEFAULT_PROJECT.to_owned(),
        source: Source {
            repo_url: "https://example.com/r.git".into(),
            ..Source::default()
        },
        destination: Destination::default(),
        sync_policy: None,
        ignore_differences: Vec::new(),
        suspend: false,
    };
    let mut app = apps
        .create(&PostParams::default(), &Application::new("a", spec))
        .await
        .unwrap();
    for n in 0..12 {
        let outcome = Outcome {
            revision: Some(format!("{n:040}")),
            phase: OperationPhase::Succeeded,
            sync_status: pushsync_api::SyncStatusCode::Synced,
            message: "2 resources synced".into(),
            resources: Vec::new(),
            inventory: Vec::new(),
            health: Assessment {
                health: HealthStatusCode::Healthy,
                message: String::new(),
            },
            condition: None,
            ..Outcome::default()
        };
        app = write(&sandbox.client(), &app, &outcome).await.unwrap();
    }
    let status = apps.get("a").await.unwrap().status.unwrap();
    assert_eq!(
        status.sync.unwrap().status,
        pushsync_api::SyncStatusCode::Synced
    );
    assert_eq!(status.health.unwrap().status, HealthStatusCode::Healthy);
    assert_eq!(status.history.len(), 10, "history is bounded");
    assert_eq!(
        status.history.last().unwrap().revision,
        format!("{:040}", 11)
    );
    assert_eq!(
        status.operation_state.unwrap().phase,
        OperationPhase::Succeeded
    );
    // The spec is untouched by status writes.
    assert_eq!(
        apps.get("a").await.unwrap().spec.source.repo_url,
        "https://example.com/r.git"
    );
}

/// `kubectl ARGS` against `kubeconfig`, on a blocking thread.
async fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new("kubectl");
    command.arg("--kubeconfig").arg(kubeconfig).args(args);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn outcome(health: HealthStatusCode, condition: Option<pushsync_api::Condition>) -> Outcome {
    Outcome {
        revision: Some("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c".into()),
        phase: if condition.is_some() {
            OperationPhase::Failed
        } else {
            OperationPhase::Succeeded
        },
        sync_status: pushsync_api::SyncStatusCode::Synced,
        message: "1 resource synced".into(),
        health: Assessment {
            health,
            message: String::new(),
        },
        condition,
        ..Outcome::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_waits_for_ready_and_get_shows_sync_health_and_revision() {
    let sandbox = crate::support::sandbox_with_crds().await;
    let apps: Api<Application> = Api::namespaced(sandbox.client(), "default");
    let spec = ApplicationSpec::automated("https://example.com/r.git", "main", "", "web");
    let mut app = apps
        .create(&PostParams::default(), &Application::new("web", spec))
        .await
        .unwrap();
    app = write(
        &sandbox.client(),
        &app,
        &outcome(HealthStatusCode::Progressing, None),
    )
    .await
    .unwrap();
    let conditions = &app.status.as_ref().unwrap().conditions;
    let kinds: Vec<(&str, pushsync_api::ConditionStatus)> = conditions
        .iter()
        .map(|c| (c.kind.as_str(), c.status))
        .collect();
    assert_eq!(
        kinds,
        [
            ("Ready", pushsync_api::ConditionStatus::False),
            ("Reconciling", pushsync_api::ConditionStatus::True)
        ]
    );
    assert_eq!(conditions[0].observed_generation, app.metadata.generation);

    // The real kubectl waits until the rollout is over.
    let kubeconfig = sandbox.kubeconfig().to_path_buf();
    let waiter = tokio::spawn(async move {
        kubectl(
            &kubeconfig,
            &[
                "wait",
                "--for=condition=Ready",
                "psapp/web",
                "--timeout=60s",
            ],
        )
        .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(
        !waiter.is_finished(),
        "kubectl wait returned while not ready"
    );
    app = write(
        &sandbox.client(),
        &app,
        &outcome(HealthStatusCode::Healthy, None),
    )
    .await
    .unwrap();
    let waited = waiter.await.unwrap();
    assert!(
        waited.status.success(),
        "{}",
        String::from_utf8_lossy(&waited.stderr)
    );
    let ready_since = app.status.as_ref().unwrap().conditions[0]
        .last_transition_time
        .clone();

    // Another healthy sync later: no transition, the time stays.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    app = write(
        &sandbox.client(),
        &app,
        &outcome(HealthStatusCode::Healthy, None),
    )
    .await
    .unwrap();
    let status = app.status.as_ref().unwrap();
    assert_eq!(status.conditions.len(), 1, "{:?}", status.conditions);
    assert_eq!(status.conditions[0].last_transition_time, ready_since);

    // kubectl get answers "is it OK" (and `app` stays Argo CD's).
    let get = kubectl(sandbox.kubeconfig(), &["get", "psapps"]).await;
    let table = String::from_utf8_lossy(&get.stdout).to_string();
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "SYNC", "HEALTH", "REVISION", "AGE"],
        "{table}"
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..4],
        ["web", "Synced", "Healthy", "0d1a26e"],
        "{table}"
    );

    // A problem: not ready, stalled, and the problem itself, with its message.
    let problem =
        pushsync_worker::status::condition("RenderFailed", "InvalidManifests", "bad yaml");
    app = write(
        &sandbox.client(),
        &app,
        &outcome(HealthStatusCode::Healthy, Some(problem)),
    )
    .await
    .unwrap();
    let conditions = &app.status.as_ref().unwrap().conditions;
    let kinds: Vec<&str> = conditions.iter().map(|c| c.kind.as_str()).collect();
    assert_eq!(kinds, ["Ready", "Stalled", "RenderFailed"]);
    assert_eq!(conditions[0].status, pushsync_api::ConditionStatus::False);
    assert_eq!(conditions[0].reason.as_deref(), Some("InvalidManifests"));
    let wide = kubectl(sandbox.kubeconfig(), &["get", "psapp", "web", "-o", "wide"]).await;
    assert!(String::from_utf8_lossy(&wide.stdout).contains("bad yaml"));
}
