//! `pushsync app …`: Applications read from and acted on through the API
//! server. Actions are the annotations and fields the workers read
//! (`pushsync.dev/sync`, `/refresh`, `/rollback`, `spec.suspend`, the
//! resources finalizer), so a sync asked for here goes through the queue
//! like any other.

use clap::Subcommand;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use pushsync_api::Application;
use pushsync_proto::{ResourceSelector, SyncRequest};
use serde_json::json;

use crate::cluster::{Cluster, ClusterArgs};
use crate::output::{self, Format};
use crate::show::{get, history, list};
use crate::wait::{self, Goal, Until};
use crate::{CliError, Status};

/// The Application commands.
#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// List Applications with their sync and health.
    #[command(visible_alias = "ls")]
    List {
        /// In every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// Only those with these labels (`team=a,tier!=web`).
        #[arg(short = 'l', long)]
        selector: Option<String>,
        #[command(flatten)]
        output: OutputArg,
        /// Keep printing changes until interrupted.
        #[arg(short = 'w', long)]
        watch: bool,
    },
    /// Show one Application: source, status, conditions and resources.
    Get {
        /// The Application.
        name: String,
        #[command(flatten)]
        output: OutputArg,
    },
    /// What a sync would change: the render of targetRevision, or of a local checkout, against the live cluster (server-side dry runs; nothing changes). Exit code 5 when something differs.
    Diff {
        /// The Application.
        name: String,
        /// Render this local checkout (its root: the Application's path is read inside it) instead of targetRevision — a pull request's preview.
        #[arg(long, value_name = "DIR")]
        local: Option<std::path::PathBuf>,
        /// The `kubectl` (for Kustomize) the render runs.
        #[arg(long, env = "PUSHSYNC_KUBECTL", default_value = "kubectl")]
        kubectl: std::path::PathBuf,
        /// The `helm` the render runs.
        #[arg(long, env = "PUSHSYNC_HELM", default_value = "helm")]
        helm: std::path::PathBuf,
        /// Where pushsync is installed (its Projects live there).
        #[arg(long, env = "PUSHSYNC_NAMESPACE", default_value = "pushsync")]
        install_namespace: String,
    },
    /// The revisions an Application deployed, newest first.
    History {
        /// The Application.
        name: String,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Sync now (applies even without automated sync) and wait for the result.
    Sync {
        /// The Application.
        name: String,
        /// Apply only this resource (repeatable): `[GROUP]:KIND:[NAMESPACE/]NAME`; hooks do not run, nothing is pruned.
        #[arg(long = "resource", value_name = "[GROUP]:KIND:[NAMESPACE/]NAME")]
        resources: Vec<String>,
        /// Delete what Git no longer has, even when automated.prune is off.
        #[arg(long, conflicts_with_all = ["no_prune", "resources"])]
        prune: bool,
        /// Delete nothing, even when automated.prune is on.
        #[arg(long, conflicts_with = "resources")]
        no_prune: bool,
        /// Sync this revision (refused while automated sync would undo it: roll back instead).
        #[arg(long)]
        revision: Option<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Compare with Git now; apply only as the sync policy says.
    Refresh {
        /// The Application.
        name: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Deploy an earlier revision of the history; automated sync is turned off until `resume`.
    Rollback {
        /// The Application.
        name: String,
        /// A revision of `pushsync app history` (7 or more characters of it).
        revision: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Wait until the Application is synced and healthy (or what --for says).
    Wait {
        /// The Application.
        name: String,
        /// What to wait for, comma-separated: synced, healthy, suspended, operation (the last sync finished).
        #[arg(
            long = "for",
            value_enum,
            value_delimiter = ',',
            default_value = "synced,healthy"
        )]
        goals: Vec<Goal>,
        /// Give up after this long (exit code 3).
        #[arg(long, default_value = "5m", value_parser = pushsync_service::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Stop automated sync and self-heal (manual syncs still apply).
    Suspend {
        /// The Application.
        name: String,
    },
    /// Turn automated sync back on (after `suspend` or a rollback).
    Resume {
        /// The Application.
        name: String,
    },
    /// Delete an Application and, unless --cascade=orphan, what it applied.
    Delete {
        /// The Application.
        name: String,
        /// foreground: wait until its objects are gone; background: do not wait for them; orphan: leave them.
        #[arg(long, value_enum, default_value = "foreground")]
        cascade: Cascade,
        /// Return at once instead of waiting until the Application is gone.
        #[arg(long = "async")]
        no_wait: bool,
        /// Give up waiting after this long (exit code 3).
        #[arg(long, default_value = "5m", value_parser = pushsync_service::parse_duration)]
        timeout: std::time::Duration,
    },
}

/// `-o`.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArg {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    format: Format,
}

/// Waiting for an asked-for operation.
#[derive(Debug, Clone, clap::Args)]
pub struct WaitArgs {
    /// Return once the request is made instead of waiting for its result.
    #[arg(long = "async")]
    no_wait: bool,
    /// Give up waiting after this long (exit code 3).
    #[arg(long, default_value = "5m", value_parser = pushsync_service::parse_duration)]
    timeout: std::time::Duration,
}

/// What deleting does to the Application's objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Cascade {
    /// Delete them and wait until they are gone.
    Foreground,
    /// Delete them without waiting.
    Background,
    /// Leave them.
    Orphan,
}

/// Run `command`.
pub async fn run(args: &ClusterArgs, command: AppCommand) -> Result<Status, CliError> {
    let watching = matches!(command, AppCommand::List { watch: true, .. });
    let cluster = args.connect_for(watching).await?;
    let apps: Api<Application> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    match command {
        AppCommand::List {
            all_namespaces,
            selector,
            output,
            watch,
        } => list(&cluster, all_namespaces, selector, output.format, watch).await,
        AppCommand::Get { name, output } => {
            let app = read(&cluster, &name).await?;
            get(&app, output.format)?;
            Ok(Status::Ok)
        }
        AppCommand::Diff {
            name,
            local,
            kubectl,
            helm,
            install_namespace,
        } => {
            let app = read(&cluster, &name).await?;
            let tools = crate::diff::Tools {
                kubectl,
                helm,
                install_namespace,
            };
            crate::diff::run(&cluster, &app, local.as_deref(), tools).await
        }
        AppCommand::History { name, output } => {
            history(&read(&cluster, &name).await?, output.format)?;
            Ok(Status::Ok)
        }
        AppCommand::Sync {
            name,
            resources,
            prune,
            no_prune,
            revision,
            wait,
        } => {
            let resources = resources
                .iter()
                .map(|r| {
                    ResourceSelector::parse(r).ok_or_else(|| {
                        CliError::Invalid(format!(
                            "--resource {r:?}: write [GROUP]:KIND:[NAMESPACE/]NAME (apps:Deployment:web, :ConfigMap:team/settings)"
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(revision) = &revision
                && (revision.is_empty()
                    || revision.len() > 255
                    || revision.contains(|c: char| c == ',' || c.is_whitespace() || c.is_control()))
            {
                return Err(CliError::Invalid(format!(
                    "--revision {revision:?}: a commit, branch or tag (no spaces or commas, at most 255 characters)"
                )));
            }
            let request = SyncRequest {
                resources,
                prune: (prune || no_prune).then_some(prune),
                revision,
            };
            let value = request.annotation(&nonce());
            ask(
                &cluster,
                &apps,
                &name,
                pushsync_api::SYNC_ANNOTATION,
                &value,
                &wait,
            )
            .await
        }
        AppCommand::Refresh { name, wait } => {
            ask(
                &cluster,
                &apps,
                &name,
                pushsync_api::REFRESH_ANNOTATION,
                &nonce(),
                &wait,
            )
            .await
        }
        AppCommand::Rollback {
            name,
            revision,
            wait,
        } => {
            let app = read(&cluster, &name).await?;
            let known = app.status.as_ref().is_some_and(|s| {
                s.history
                    .iter()
                    .any(|h| h.revision.starts_with(&revision.to_ascii_lowercase()))
            });
            if !known || revision.len() < 7 {
                return Err(CliError::Invalid(format!(
                    "{revision:?} is not a revision {name} deployed: see `pushsync app history {name}` (7 or more characters of one)"
                )));
            }
            ask(
                &cluster,
                &apps,
                &name,
                pushsync_api::ROLLBACK_ANNOTATION,
                &revision,
                &wait,
            )
            .await
        }
        AppCommand::Wait {
            name,
            goals,
            timeout,
        } => wait::until(&cluster, &name, Until::Goals(goals), timeout).await,
        AppCommand::Suspend { name } => suspend(&apps, &name, true).await,
        AppCommand::Resume { name } => suspend(&apps, &name, false).await,
        AppCommand::Delete {
            name,
            cascade,
            no_wait,
            timeout,
        } => delete(&cluster, &apps, &name, cascade, no_wait, timeout).await,
    }
}

/// A value that makes an annotation new each time it is set.
fn nonce() -> String {
    jiff::Timestamp::now().to_string()
}

/// Read `name` in the cluster's namespace.
pub async fn read(cluster: &Cluster, name: &str) -> Result<Application, CliError> {
    let apps: Api<Application> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    apps.get_opt(name)
        .await
        .map_err(CliError::kube(format!("reading application {name}")))?
        .ok_or_else(|| CliError::NotFound {
            namespace: cluster.namespace.clone(),
            name: name.to_owned(),
        })
}

/// Set `annotation: value` on `name` and, unless told not to, wait for the
/// worker to act on it.
async fn ask(
    cluster: &Cluster,
    apps: &Api<Application>,
    name: &str,
    annotation: &str,
    value: &str,
    wait: &WaitArgs,
) -> Result<Status, CliError> {
    // Exists first: a merge patch of a missing object says only "not found".
    let app = read(cluster, name).await?;
    let before = wait::Before::of(cluster, &app, annotation).await?;
    let patch = json!({"metadata": {"annotations": {annotation: value}}});
    apps.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(CliError::kube(format!("annotating application {name}")))?;
    eprintln!("{annotation}={value} set on {}/{name}", cluster.namespace);
    if wait.no_wait {
        return Ok(Status::Ok);
    }
    let until = if annotation == pushsync_api::REFRESH_ANNOTATION {
        Until::Compared(before)
    } else {
        Until::Operated(before)
    };
    wait::until(cluster, name, until, wait.timeout).await
}

async fn suspend(apps: &Api<Application>, name: &str, suspend: bool) -> Result<Status, CliError> {
    let patch = json!({"spec": {"suspend": suspend}});
    apps.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| match e {
            kube::Error::Api(s) if s.code == 404 => CliError::NotFound {
                namespace: apps.namespace().unwrap_or_default().to_owned(),
                name: name.to_owned(),
            },
            other => CliError::kube(format!("patching application {name}"))(other),
        })?;
    output::write_out(&format!(
        "application {name} {}\n",
        if suspend { "suspended" } else { "resumed" }
    ))?;
    Ok(Status::Ok)
}

async fn delete(
    cluster: &Cluster,
    apps: &Api<Application>,
    name: &str,
    cascade: Cascade,
    no_wait: bool,
    timeout: std::time::Duration,
) -> Result<Status, CliError> {
    let ours = [
        pushsync_api::RESOURCES_FINALIZER,
        pushsync_api::RESOURCES_FINALIZER_BACKGROUND,
    ];
    // The resourceVersion makes each patch a compare-and-set: a finalizer
    // list someone changed meanwhile is not overwritten. The worker writes
    // status all the time, so a conflict is read again and retried.
    let mut attempts = 0;
    loop {
        let app = read(cluster, name).await?;
        let mut finalizers: Vec<String> = app
            .metadata
            .finalizers
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|f| !ours.contains(&f.as_str()))
            .collect();
        match cascade {
            Cascade::Foreground => finalizers.push(pushsync_api::RESOURCES_FINALIZER.to_owned()),
            Cascade::Background => {
                finalizers.push(pushsync_api::RESOURCES_FINALIZER_BACKGROUND.to_owned());
            }
            Cascade::Orphan => {}
        }
        let patch = json!({"metadata": {
            "finalizers": finalizers,
            "resourceVersion": app.metadata.resource_version,
        }});
        attempts += 1;
        match apps
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => break,
            Err(kube::Error::Api(status)) if status.code == 409 && attempts < 8 => continue,
            Err(error) => {
                return Err(CliError::kube(format!("setting the finalizers of {name}"))(
                    error,
                ));
            }
        }
    }
    apps.delete(name, &DeleteParams::default())
        .await
        .map_err(CliError::kube(format!("deleting application {name}")))?;
    eprintln!(
        "application {}/{name} deleted ({})",
        cluster.namespace,
        match cascade {
            Cascade::Foreground => "its objects are deleted first",
            Cascade::Background => "its objects are deleted in the background",
            Cascade::Orphan => "its objects stay",
        }
    );
    if no_wait {
        return Ok(Status::Ok);
    }
    wait::until(cluster, name, Until::Gone, timeout).await
}
