//! The cluster an end-to-end test runs against: the project's API sandbox by
//! default, or a real cluster when `PUSHSYNC_TEST_KUBECONFIG` names its
//! kubeconfig. Each test gets its own namespace (Applications, their
//! objects and the workers' Leases), deleted at the end on a real cluster.
//!
//! What only the sandbox can give (its audit log, injected faults, simulated
//! controller delays) is `Option`al: checks built on it run on the sandbox
//! and are skipped, with a line on stderr, on a real cluster.

use std::path::PathBuf;
use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use pushsync_sandbox::{AuditEntry, Sandbox, SandboxConfig};

/// A cluster and a namespace of its own.
pub struct TestCluster {
    sandbox: Option<Sandbox>,
    client: kube::Client,
    kubeconfig: PathBuf,
    namespace: String,
}

impl TestCluster {
    /// The sandbox (workloads become available after `controller_delay`),
    /// or the cluster of `PUSHSYNC_TEST_KUBECONFIG`.
    pub async fn start(controller_delay: Duration) -> Self {
        let (sandbox, client, kubeconfig) = match std::env::var_os("PUSHSYNC_TEST_KUBECONFIG") {
            Some(path) => {
                let path = PathBuf::from(path);
                let config = kube::config::Kubeconfig::read_from(&path)
                    .unwrap_or_else(|e| panic!("PUSHSYNC_TEST_KUBECONFIG {}: {e}", path.display()));
                let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
                    .await
                    .unwrap();
                (None, kube::Client::try_from(config).unwrap(), path)
            }
            None => {
                let sandbox = Sandbox::start_with(SandboxConfig {
                    controller_delay,
                    ..SandboxConfig::default()
                })
                .await
                .unwrap();
                let (client, kubeconfig) = (sandbox.client(), sandbox.kubeconfig().to_path_buf());
                (Some(sandbox), client, kubeconfig)
            }
        };
        install_crds(&client).await;
        let namespace = format!("e2e-{:08x}", rand_u64() & 0xffff_ffff);
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        namespaces
            .create(
                &Default::default(),
                &serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}}))
                    .unwrap(),
            )
            .await
            .unwrap();
        ensure_default_project(&client, &namespace).await;
        Self {
            sandbox,
            client,
            kubeconfig,
            namespace,
        }
    }

    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    pub fn kubeconfig(&self) -> &std::path::Path {
        &self.kubeconfig
    }

    /// The test's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The sandbox's audit log; `None` on a real cluster.
    pub fn audit(&self) -> Option<Vec<AuditEntry>> {
        let audit = self.sandbox.as_ref().map(Sandbox::audit);
        if audit.is_none() {
            eprintln!("a real cluster keeps no audit log here: the check built on it is skipped");
        }
        audit
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if self.sandbox.is_none() {
            let _ = std::process::Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(["delete", "namespace", &self.namespace, "--wait=false"])
                .status();
        }
    }
}

/// pushsync's CRDs, applied (a real cluster may have them already).
pub async fn install_crds(client: &kube::Client) {
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> = Api::all(client.clone());
    for (_, crd) in pushsync_api::crds() {
        let name = crd.metadata.name.clone().unwrap();
        crds.patch(
            &name,
            &PatchParams::apply("pushsync-e2e").force(),
            &Patch::Apply(crd),
        )
        .await
        .unwrap();
    }
}

/// An unrestricted `default` project in `namespace` (the workers' install
/// namespace in these tests), as a single-tenant install has.
pub async fn ensure_default_project(client: &kube::Client, namespace: &str) {
    let projects: Api<pushsync_api::Project> = Api::namespaced(client.clone(), namespace);
    let project = pushsync_api::Project::namespaced(
        namespace,
        pushsync_api::DEFAULT_PROJECT,
        pushsync_api::ProjectSpec::unrestricted(),
    );
    projects
        .patch(
            pushsync_api::DEFAULT_PROJECT,
            &PatchParams::apply("pushsync-e2e").force(),
            &Patch::Apply(project),
        )
        .await
        .unwrap();
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}
