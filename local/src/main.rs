//! `pushsync-local` (`make run`): the whole product in one process on a fresh
//! machine — the webhook receiver and a worker sharing an in-memory queue, the
//! embedded Kubernetes API sandbox as the cluster, and a sample Git
//! repository (built from real-world manifests) served by `git daemon`, with
//! two Applications synced at start.
//!
//! Test and trial support: it links the sandbox and the test kit (for the
//! git daemon), so it is never shipped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use kube::api::{Api, PostParams};
use pushsync_api::{Application, ApplicationSpec, DEFAULT_PROJECT, ProjectSpec};
use pushsync_broker::{Broker, MemoryQueue};
use pushsync_proto::Topology;
use pushsync_receiver::secrets::{SecretSource, SecretSources};
use pushsync_receiver::{Config, QueueConfig};
use pushsync_sandbox::{Sandbox, SandboxConfig};
use pushsync_testkit::git::GitDaemon;
use pushsync_worker::apply::Cluster;
use pushsync_worker::context::{Leadership, Shared};
use pushsync_worker::git::GitCache;
use pushsync_worker::index::{Index, Namespaces};
use pushsync_worker::lease::Leases;
use pushsync_worker::loops::Settings;
use pushsync_worker::loops::poll::PollSettings;
use pushsync_worker::loops::sync::SyncSettings;
use pushsync_worker::sync::SyncContext;
use pushsync_worker::tenancy::Projects;
use tokio_util::sync::CancellationToken;

/// Run pushsync locally with no cluster and no broker.
#[derive(Debug, Parser)]
struct Args {
    /// Address of the webhook receiver.
    #[arg(long, env = "PUSHSYNC_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Port of the Kubernetes API sandbox.
    #[arg(long, default_value_t = 6443)]
    api_port: u16,
    /// Where to keep the sample repository, kubeconfig and git cache.
    #[arg(long, default_value = ".pushsync-local")]
    state_dir: PathBuf,
    /// Address of the web UI.
    #[arg(long, env = "PUSHSYNC_UI_LISTEN", default_value = "127.0.0.1:8090")]
    ui_listen: String,
    /// The webhook secret (for every forge).
    #[arg(
        long,
        env = "PUSHSYNC_DEV_SECRET",
        default_value = "pushsync-dev-secret"
    )]
    secret: String,
}

const SAMPLE_APPS: [(&str, &str); 2] = [
    ("guestbook", "argocd-example-apps/guestbook"),
    ("podinfo", "podinfo/deploy"),
];

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .context("running git")?;
    if !output.status.success() {
        bail!("git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The sample repository: guestbook (plain directory) and podinfo (Kustomize
/// overlay reaching its bases).
fn sample_repository(state: &Path) -> anyhow::Result<PathBuf> {
    let repo = state.join("repos/sample");
    if repo.join(".git").exists() {
        return Ok(repo);
    }
    std::fs::create_dir_all(repo.join("apps"))?;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/manifests");
    for (name, from) in SAMPLE_APPS {
        let status = Command::new("cp")
            .arg("-r")
            .arg(fixtures.join(from))
            .arg(repo.join("apps").join(name))
            .status()?;
        if !status.success() {
            bail!("copying the sample manifests failed");
        }
    }
    git(&repo, &["init", "-q", "-b", "main"])?;
    git(&repo, &["config", "user.name", "pushsync local"])?;
    git(&repo, &["config", "user.email", "local@pushsync.dev"])?;
    git(&repo, &["add", "-A"])?;
    git(&repo, &["commit", "-q", "-m", "sample applications"])?;
    Ok(repo)
}

/// A sample Application: automated with prune, its own namespace created.
fn application(name: &str, url: &str, path: &str) -> Application {
    let spec = ApplicationSpec::automated(url, "main", path, name)
        .with_sync_option("CreateNamespace=true");
    Application::namespaced("default", name, spec)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    pushsync_service::init_logging(pushsync_service::LogFormat::Text);
    // Ctrl-C and SIGTERM end everything this process started (the git
    // daemon, the receiver, the sandbox) before it exits.
    let stop = CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            pushsync_service::cancel_on_signal(stop).await;
            // A second Ctrl-C does not wait for the clean shutdown.
            let _ = tokio::signal::ctrl_c().await;
            std::process::exit(130);
        }
    });
    std::fs::create_dir_all(&args.state_dir)?;
    let state = args.state_dir.canonicalize()?;

    // The cluster.
    let kubeconfig = state.join("kubeconfig");
    let sandbox = Sandbox::start_with(SandboxConfig {
        port: args.api_port,
        controller_delay: Duration::from_millis(500),
        kubeconfig_out: Some(kubeconfig.clone()),
        ..SandboxConfig::default()
    })
    .await
    .context("starting the Kubernetes API sandbox")?;
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(sandbox.client());
    for (_, crd) in pushsync_api::crds() {
        crds.create(&PostParams::default(), &crd).await?;
    }
    // One tenant here: the default project allows anything, as the worker.
    pushsync_worker::tenancy::ensure_project(
        sandbox.client(),
        "default",
        DEFAULT_PROJECT,
        ProjectSpec::unrestricted(),
    )
    .await?;

    // The sample repository and its Applications.
    let repo = sample_repository(&state)?;
    let daemon = GitDaemon::start(&state.join("repos")).context("starting git daemon")?;
    let url = daemon.url_of_path(&repo);
    let apps: Api<Application> = Api::namespaced(sandbox.client(), "default");
    apps.create(
        &PostParams::default(),
        &application("guestbook", &url, "apps/guestbook"),
    )
    .await?;
    apps.create(
        &PostParams::default(),
        &application("podinfo", &url, "apps/podinfo/overlays/dev"),
    )
    .await?;

    // The queue, the receiver and a worker.
    let queue = MemoryQueue::new(10_000);
    let secrets = SecretSources {
        github: SecretSource::inline("PUSHSYNC_GITHUB_SECRET", &args.secret),
        gitlab_token: SecretSource::inline("PUSHSYNC_GITLAB_TOKEN", &args.secret),
        gitea: SecretSource::inline("PUSHSYNC_GITEA_SECRET", &args.secret),
        bitbucket: SecretSource::inline("PUSHSYNC_BITBUCKET_SECRET", &args.secret),
        ..SecretSources::default()
    };
    let mut config = Config::new(QueueConfig::Memory(queue.clone()), secrets);
    config.http.workers = 2;
    let listener = TcpListener::bind(&args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let receiver = tokio::spawn(pushsync_receiver::run(config, listener, stop.clone()));

    // The web UI, with one local user who may do everything (its password
    // is new each run and printed on the banner).
    let ui_password = pushsync_server::auth::random_secret()?;
    let mut ui_users = pushsync_server::auth::LocalUsers::default();
    ui_users.add(
        pushsync_server::policy::User {
            name: "admin".to_owned(),
            groups: vec!["admins".to_owned()],
        },
        &ui_password,
    );
    let ui_config = pushsync_server::Config {
        namespaces: vec!["default".to_owned()],
        policy: pushsync_server::policy::Policy::parse("admins: [admins]\n")?,
        tokens: pushsync_server::auth::Tokens::default(),
        local_users: ui_users,
        session_key: actix_web::cookie::Key::generate(),
        secure_cookies: true,
        session_ttl: Duration::from_secs(8 * 3600),
        oidc: None,
    };
    let ui_listener = TcpListener::bind(&args.ui_listen)
        .with_context(|| format!("cannot listen on {}", args.ui_listen))?;
    let ui = tokio::spawn(pushsync_server::run(
        ui_config,
        sandbox.client(),
        ui_listener,
        stop.clone(),
    ));

    let broker = Broker::memory(queue);
    let topology = Topology::default();
    let index = Index::watch(sandbox.client(), &Namespaces::one("default"), stop.clone());
    let projects = Projects::watch(sandbox.client(), "default", stop.clone());
    tokio::select! {
        () = stop.cancelled() => {}
        _ = index.ready() => {}
    }
    let git = GitCache::new(state.join("git-cache"), Duration::from_secs(60))
        .with_policy(pushsync_worker::git::RemotePolicy::permissive());
    let ctx = SyncContext {
        health_timeout: Duration::from_secs(60),
        health_poll: Duration::from_millis(250),
        ..SyncContext::new(git.clone(), Cluster::new(sandbox.client()), projects)
    };
    let shared = Shared {
        broker: broker.clone(),
        topology: topology.clone(),
        client: sandbox.client(),
        index: index.clone(),
        git,
        leases: Leases::new(
            sandbox.client(),
            "default",
            "local",
            Duration::from_secs(15),
        ),
        metrics: pushsync_worker::metrics::Metrics::new()?,
        leadership: Leadership::default(),
    };
    // Dispatch, sync, the fallback poll (every minute here) with manual
    // triggers and fast self-heal.
    pushsync_worker::loops::spawn(
        &shared,
        ctx,
        Settings {
            dispatch_prefetch: 32,
            sync: SyncSettings {
                lock_poll: Duration::from_millis(100),
                ..SyncSettings::default()
            },
            poll: Some(PollSettings {
                interval: Duration::from_secs(60),
                ..PollSettings::default()
            }),
        },
        &stop,
    );

    // The poller's first cycle syncs every Application through the queue;
    // the banner waits for it (each Application has a status).
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while std::time::Instant::now() < deadline
        && !stop.is_cancelled()
        && !index.applications().iter().all(|app| {
            app.status
                .as_ref()
                .is_some_and(|s| s.reconciled_at.is_some())
        })
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    println!();
    println!(
        "  pushsync is running locally: receiver, worker, in-memory queue, Kubernetes API sandbox."
    );
    println!();
    println!(
        "  Webhooks:   http://{}/hooks/gitea   (secret: {})",
        args.listen, args.secret
    );
    println!(
        "  Web UI:     http://{}/   (user: admin, password: {ui_password})",
        args.ui_listen
    );
    println!("  Repository: {} (served at {url})", repo.display());
    println!(
        "  Cluster:    kubectl --kubeconfig {} get applications,deploy -A",
        kubeconfig.display()
    );
    println!();
    println!(
        "  Change something and push it (commits in the sample repository, then sends a signed Gitea push):"
    );
    println!(
        "      scripts/local-push.sh {} {url} http://{} {}",
        repo.display(),
        args.listen,
        args.secret
    );
    println!();
    println!("  Stop with Ctrl-C.");

    stop.cancelled().await;
    let _ = receiver.await;
    let _ = ui.await;
    drop(daemon);
    sandbox.stop().await;
    // Everything this process started is gone; do not wait for a git fetch
    // still blocking a thread of the runtime.
    std::process::exit(0)
}
