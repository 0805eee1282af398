//! `pushsync app diff`: the worker's own render and comparison
//! (`pushsync_worker::sync::preview`), run here with this user's
//! credentials. Nothing is written: every comparison is a server-side dry
//! run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pushsync_api::{Application, ResourceSyncCode};
use pushsync_worker::apply::Cluster as Writer;
use pushsync_worker::git::{GitCache, RemotePolicy};
use pushsync_worker::sync::SyncContext;
use pushsync_worker::tenancy::Projects;

use crate::cluster::Cluster;
use crate::output::{self, paint};
use crate::{CliError, Status};

/// The programs a render runs, and where the Projects are.
#[derive(Debug, Clone)]
pub struct Tools {
    /// `kubectl` (its `kustomize`).
    pub kubectl: PathBuf,
    /// `helm`.
    pub helm: PathBuf,
    /// The install namespace.
    pub install_namespace: String,
}

/// Show what a sync of `app` would change.
pub async fn run(
    cluster: &Cluster,
    app: &Application,
    local: Option<&Path>,
    tools: Tools,
) -> Result<Status, CliError> {
    let cache = tempfile::tempdir()
        .map_err(|e| CliError::Invalid(format!("a temporary git cache: {e}")))?;
    // This user's own machine and credentials: no remote is off limits
    // that the user could not reach with git anyway.
    let git = GitCache::new(cache.path(), Duration::from_secs(120))
        .with_policy(RemotePolicy::permissive());
    let mut ctx = SyncContext::new(
        git,
        Writer::new(cluster.client.clone()),
        Projects::read(cluster.client.clone(), &tools.install_namespace),
    );
    ctx.tools.kubectl = tools.kubectl;
    ctx.tools.helm = tools.helm;
    let preview = pushsync_worker::sync::preview::preview(&ctx, app, local)
        .await
        .map_err(|e| {
            CliError::Invalid(format!(
                "comparing with the cluster: {}",
                pushsync_service::error_chain(&e)
            ))
        })?
        .map_err(|why| CliError::Invalid(format!("cannot compare: {why}")))?;
    let colour = output::colour();
    let mut out = String::new();
    let mut differs = false;
    for resource in &preview.resources {
        if resource.status == ResourceSyncCode::Synced {
            continue;
        }
        differs = true;
        let r = &resource.resource;
        out.push_str(&format!(
            "===== {} ({})\n",
            heading(r),
            paint(resource.status.as_str(), colour)
        ));
        if let Some(diff) = &resource.diff {
            for line in diff.lines() {
                let painted = match line.chars().next() {
                    Some('+') if colour => format!("\x1b[32m{line}\x1b[0m"),
                    Some('-') if colour => format!("\x1b[31m{line}\x1b[0m"),
                    _ => line.to_owned(),
                };
                out.push_str(&painted);
                out.push('\n');
            }
        }
    }
    for leftover in &preview.leftovers {
        differs = true;
        out.push_str(&format!(
            "===== {} (no longer in Git: {})\n",
            heading(leftover),
            if app
                .spec
                .sync_policy
                .as_ref()
                .and_then(|p| p.automated.as_ref())
                .is_some_and(|a| a.prune)
            {
                "a sync prunes it"
            } else {
                "kept unless a sync prunes"
            }
        ));
    }
    output::write_out(&out)?;
    eprintln!(
        "{}: {} of {} resources differ from {}{}",
        app.metadata.name.as_deref().unwrap_or_default(),
        preview
            .resources
            .iter()
            .filter(|r| r.status != ResourceSyncCode::Synced)
            .count(),
        preview.resources.len(),
        if local.is_some() {
            "the local checkout".to_owned()
        } else {
            format!("commit {}", preview.revision)
        },
        if preview.leftovers.is_empty() {
            String::new()
        } else {
            format!(", {} left Git", preview.leftovers.len())
        }
    );
    Ok(if differs { Status::Differs } else { Status::Ok })
}

/// `[GROUP/]KIND [NAMESPACE/]NAME`, as a diff's heading names an object.
fn heading(r: &pushsync_api::ResourceRef) -> String {
    let group = if r.group.is_empty() {
        String::new()
    } else {
        format!("{}/", r.group)
    };
    let namespace = if r.namespace.is_empty() {
        String::new()
    } else {
        format!("{}/", r.namespace)
    };
    format!("{group}{} {namespace}{}", r.kind, r.name)
}
