//! What the worker's integration tests share: a sandbox with the CRDs, a
//! sync context tuned for tests, and the loops' shared parts.

use std::time::Duration;

use kube::api::{Api, PostParams};
use pushsync_broker::Broker;
use pushsync_proto::Topology;
use pushsync_sandbox::Sandbox;
use pushsync_worker::apply::Cluster;
use pushsync_worker::context::{Leadership, Shared};
use pushsync_worker::git::GitCache;
use pushsync_worker::index::Index;
use pushsync_worker::lease::Leases;
use pushsync_worker::metrics::Metrics;
use pushsync_worker::render::Tools;
use pushsync_worker::sync::SyncContext;
use pushsync_worker::tenancy::Projects;

/// A sandbox that serves Applications.
pub async fn sandbox_with_crds() -> Sandbox {
    let sandbox = Sandbox::start().await.unwrap();
    install_crds(&sandbox).await;
    sandbox
}

/// Where the tests' Projects live (the workers' install namespace).
pub const PROJECTS: &str = "default";

/// Register pushsync's CRDs, with an unrestricted `default` project in
/// [`PROJECTS`] (tests of tenancy make their own).
pub async fn install_crds(sandbox: &Sandbox) {
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(sandbox.client());
    for (_, crd) in pushsync_api::crds() {
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
    pushsync_worker::tenancy::ensure_project(
        sandbox.client(),
        PROJECTS,
        pushsync_api::DEFAULT_PROJECT,
        pushsync_api::ProjectSpec::unrestricted(),
    )
    .await
    .unwrap();
}

/// A sync context against `sandbox`: the pinned helm, short health waits,
/// an unrestricted `default` project (in memory: these tests need no CRD).
pub fn sync_context(sandbox: &Sandbox, git: GitCache) -> SyncContext {
    SyncContext {
        tools: Tools {
            helm: pushsync_testkit::helm_binary(),
            timeout: Duration::from_secs(60),
            ..Tools::default()
        },
        health_timeout: Duration::from_secs(10),
        health_poll: Duration::from_millis(50),
        ..SyncContext::new(
            git,
            Cluster::new(sandbox.client()),
            Projects::fixed(
                PROJECTS,
                vec![pushsync_api::Project::namespaced(
                    PROJECTS,
                    pushsync_api::DEFAULT_PROJECT,
                    pushsync_api::ProjectSpec::unrestricted(),
                )],
            ),
        )
    }
}

/// The loops' shared parts over `sandbox`, Leases in `default` held as
/// `identity` for 15 s.
pub fn shared(
    sandbox: &Sandbox,
    broker: Broker,
    topology: Topology,
    index: Index,
    git: GitCache,
    identity: &str,
) -> Shared {
    Shared {
        broker,
        topology,
        client: sandbox.client(),
        index,
        git,
        leases: Leases::new(
            sandbox.client(),
            "default",
            identity,
            Duration::from_secs(15),
        ),
        metrics: Metrics::new().unwrap(),
        leadership: Leadership::default(),
    }
}
