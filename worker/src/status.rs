//! Writing an Application's status through the `status` subresource.

use kube::api::{Api, Patch, PatchParams};
use pushsync_api::{Application, Condition};
use pushsync_proto::AppRef;
use serde_json::{Value, json};

use crate::sync::{Outcome, status_patch};

/// The field manager status writes use.
pub const STATUS_MANAGER: &str = "pushsync-status";

/// Why a status write failed.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The Application has no name or namespace (not read from the API).
    #[error("the Application has no name or namespace")]
    Unnamed,
    /// The API server refused or failed.
    #[error("writing the status of {namespace}/{name} failed")]
    Write {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

/// Merge-patch the outcome of a sync into `app`'s status.
pub async fn write(
    client: &kube::Client,
    app: &Application,
    outcome: &Outcome,
) -> Result<Application, StatusError> {
    let (Some(name), Some(namespace)) = (
        app.metadata.name.as_deref(),
        app.metadata.namespace.as_deref(),
    ) else {
        return Err(StatusError::Unnamed);
    };
    merge(client, namespace, name, &status_patch(app, outcome)).await
}

/// Report `condition` on the Application `app` outside a sync (a deleted
/// ref, a job given up), with `status` fields merged beside it (its
/// `conditions` replaced by this one).
pub async fn report(
    client: &kube::Client,
    app: &AppRef,
    condition: Condition,
    mut status: Value,
) -> Result<Application, StatusError> {
    status["conditions"] = json!([condition]);
    merge(
        client,
        &app.namespace,
        &app.name,
        &json!({ "status": status }),
    )
    .await
}

async fn merge(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    patch: &Value,
) -> Result<Application, StatusError> {
    let api: Api<Application> = Api::namespaced(client.clone(), namespace);
    let params = PatchParams {
        field_manager: Some(STATUS_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    api.patch_status(name, &params, &Patch::Merge(patch))
        .await
        .map_err(|source| StatusError::Write {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;
    use kube::api::PostParams;
    use pushsync_api::{ApplicationSpec, Destination, Source};
    use pushsync_sandbox::Sandbox;

    use super::*;
    use crate::health::{Assessment, Health};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn outcomes_land_in_the_status_subresource_and_history_is_bounded() {
        let sandbox = Sandbox::start().await.unwrap();
        let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
            Api::all(sandbox.client());
        crds.create(&PostParams::default(), &Application::crd())
            .await
            .unwrap();
        let apps: Api<Application> = Api::namespaced(sandbox.client(), "default");
        let spec = ApplicationSpec {
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
                phase: "Succeeded",
                sync_status: "Synced",
                message: "2 resources synced".into(),
                resources: Vec::new(),
                inventory: Vec::new(),
                health: Assessment {
                    health: Health::Healthy,
                    message: String::new(),
                },
                condition: None,
                ..Outcome::default()
            };
            app = write(&sandbox.client(), &app, &outcome).await.unwrap();
        }
        let status = apps.get("a").await.unwrap().status.unwrap();
        assert_eq!(status.sync.unwrap().status, "Synced");
        assert_eq!(status.health.unwrap().status, "Healthy");
        assert_eq!(status.history.len(), 10, "history is bounded");
        assert_eq!(
            status.history.last().unwrap().revision,
            format!("{:040}", 11)
        );
        assert_eq!(status.operation_state.unwrap().phase, "Succeeded");
        // The spec is untouched by status writes.
        assert_eq!(
            apps.get("a").await.unwrap().spec.source.repo_url,
            "https://example.com/r.git"
        );
    }
}
