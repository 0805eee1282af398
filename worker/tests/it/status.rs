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
