//! `pushsync webhook …`: repository push webhooks registered on the forge
//! (through `pushsync_forge`) and their secret kept in the receiver's
//! Kubernetes Secret, one line per valid secret, which the receiver
//! re-reads — so registering alone makes pushes verify, and a rotation adds
//! the new secret before the hook uses it and drops the old one after.
//!
//! The forge token comes from a file or an environment variable, never a
//! flag value (flags are visible in `ps` and shell history). No secret or
//! token is ever printed.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use kube::api::{Api, ListParams};
use pushsync_api::Application;
use pushsync_forge::{Ensured, Forge, ForgeKind, Target, WantedHook, same_url};
use secrecy::SecretString;

use crate::cluster::{Cluster, ClusterArgs};
use crate::output;
use crate::secrets::{Store, generate, read_first_line};
use crate::{CliError, Status};

/// The webhook commands.
#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Create or update the push webhook of each repository (idempotent: never a duplicate).
    Register {
        #[command(flatten)]
        forge: ForgeArgs,
        #[command(flatten)]
        targets: TargetArgs,
        /// The receiver's webhook URL, e.g. https://hooks.example.com/hooks/github.
        #[arg(long)]
        url: String,
        /// Use the secret in this file (first line) instead of the receiver Secret's newest or a generated one.
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
        /// When the secret is new to the receiver: how long it needs to see the changed Secret (kubelet sync plus PUSHSYNC_SECRET_RELOAD_INTERVAL) before hooks send it.
        #[arg(long, default_value = "90s", value_parser = pushsync_service::parse_duration)]
        reload_wait: Duration,
    },
    /// List the hooks of each repository.
    List {
        #[command(flatten)]
        forge: ForgeArgs,
        #[command(flatten)]
        targets: TargetArgs,
    },
    /// Ask the forge to send its test delivery to the hook pointing at URL.
    Ping {
        #[command(flatten)]
        forge: ForgeArgs,
        #[command(flatten)]
        targets: TargetArgs,
        /// The hook's URL.
        #[arg(long)]
        url: String,
    },
    /// Delete the hooks pointing at URL.
    Delete {
        #[command(flatten)]
        forge: ForgeArgs,
        #[command(flatten)]
        targets: TargetArgs,
        /// The hook's URL.
        #[arg(long)]
        url: String,
    },
    /// Switch the hooks pointing at URL to a new secret without dropping a delivery.
    Rotate {
        #[command(flatten)]
        forge: ForgeArgs,
        #[command(flatten)]
        targets: TargetArgs,
        /// The hook's URL.
        #[arg(long)]
        url: String,
        #[command(flatten)]
        store: StoreArgs,
        /// How long the receiver needs to see a changed Secret (kubelet sync plus PUSHSYNC_SECRET_RELOAD_INTERVAL).
        #[arg(long, default_value = "90s", value_parser = pushsync_service::parse_duration)]
        reload_wait: Duration,
        /// Remove the old secrets from the receiver even when not every hook was rotated (--all does it anyway): hooks not named here that still use them then fail.
        #[arg(long)]
        drop_old: bool,
    },
}

/// Which forge, and how to reach it.
#[derive(Debug, Clone, Args)]
pub struct ForgeArgs {
    /// The forge: github, gitlab or gitea (forgejo too).
    #[arg(long, value_parser = parse_kind)]
    forge: ForgeKind,
    /// The API base: GitHub Enterprise `https://HOST/api/v3`, self-managed GitLab `https://HOST/api/v4`, Gitea `https://HOST/api/v1` (default: github.com / gitlab.com).
    #[arg(long, value_name = "URL")]
    api_url: Option<String>,
    /// Read the forge token from this file.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Read the forge token from this environment variable (default GITHUB_TOKEN, GITLAB_TOKEN or GITEA_TOKEN).
    #[arg(long, value_name = "NAME", conflicts_with = "token_file")]
    token_env: Option<String>,
    /// Allow a plain-http --api-url to a host other than this machine (the token then travels unencrypted).
    #[arg(long)]
    insecure_http: bool,
}

/// Which repositories.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// A repository: OWNER/NAME (GitLab: the project's full path). Repeatable.
    #[arg(long = "repo", value_name = "OWNER/NAME")]
    repos: Vec<String>,
    /// An organisation (GitLab: a group) instead of repositories: one hook for all of its repositories.
    #[arg(long, conflicts_with_all = ["repos", "all"])]
    org: Option<String>,
    /// Every repository on this forge that an Application references (all namespaces), once each.
    #[arg(long, conflicts_with = "repos")]
    all: bool,
}

/// The receiver's Secret.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// The Secret the receiver reads webhook secrets from.
    #[arg(long, default_value = "pushsync-webhook-secrets")]
    pub(crate) secret_name: String,
    /// Its namespace.
    #[arg(long, env = "PUSHSYNC_NAMESPACE", default_value = "pushsync")]
    pub(crate) secret_namespace: String,
}

fn parse_kind(text: &str) -> Result<ForgeKind, String> {
    text.parse::<ForgeKind>()
        .map_err(|_| format!("{text:?}: one of github, gitlab, gitea, forgejo"))
}

/// Run `command`.
pub async fn run(args: &ClusterArgs, command: WebhookCommand) -> Result<Status, CliError> {
    match command {
        WebhookCommand::Register {
            forge,
            targets,
            url,
            secret_file,
            store,
            reload_wait,
        } => {
            let cluster = args.connect().await?;
            let client = forge.client()?;
            let targets = targets.resolve(&cluster, &forge, &client).await?;
            let store = Store::new(&cluster, &store, forge.forge);
            let (secret, fresh) = match secret_file {
                Some(path) => (read_first_line(&path, "the secret file")?, true),
                None => match store.lines().await?.pop() {
                    Some(newest) => (SecretString::from(newest), false),
                    None => (generate()?, true),
                },
            };
            // The receiver must know the secret before any hook sends it.
            let added = store.add(&secret).await?;
            if added {
                eprintln!(
                    "the secret was added to Secret {}/{} (key {}); waiting {}s for the receiver to reload it",
                    store.namespace,
                    store.name,
                    store.key,
                    reload_wait.as_secs()
                );
                tokio::time::sleep(reload_wait).await;
            }
            let wanted = WantedHook {
                url,
                secret,
                // A secret the hooks may not have yet is written to them.
                rewrite_secret: fresh || added,
            };
            let mut failed = false;
            for target in &targets {
                match client.ensure(target, &wanted).await {
                    Ok(ensured) => output::write_out(&(describe(target, &ensured) + "\n"))?,
                    Err(error) => {
                        failed = true;
                        eprintln!("{}: {}", target.name(), output::clean(&chain(&error)));
                    }
                }
            }
            Ok(if failed { Status::Failed } else { Status::Ok })
        }
        WebhookCommand::List { forge, targets } => {
            let client = forge.client()?;
            let targets = resolve_without_cluster(args, targets, &forge, &client).await?;
            let mut rows = Vec::new();
            for target in &targets {
                let hooks = client
                    .hooks(target)
                    .await
                    .map_err(|e| CliError::Invalid(format!("{}: {}", target.name(), chain(&e))))?;
                for hook in hooks {
                    rows.push(vec![
                        target.name().to_owned(),
                        hook.id.to_string(),
                        hook.url,
                        hook.events.join(","),
                        hook.active.to_string(),
                        match hook.has_secret {
                            Some(true) => "yes",
                            Some(false) => "no",
                            None => "unknown",
                        }
                        .to_owned(),
                    ]);
                }
            }
            output::table(
                &["REPOSITORY", "ID", "URL", "EVENTS", "ACTIVE", "SECRET"],
                &rows,
            )?;
            Ok(Status::Ok)
        }
        WebhookCommand::Ping {
            forge,
            targets,
            url,
        } => {
            let client = forge.client()?;
            let targets = resolve_without_cluster(args, targets, &forge, &client).await?;
            each_hook(&client, &targets, &url, |client, target, id| async move {
                client.ping(&target, id).await.map(|()| "pinged")
            })
            .await
        }
        WebhookCommand::Delete {
            forge,
            targets,
            url,
        } => {
            let client = forge.client()?;
            let targets = resolve_without_cluster(args, targets, &forge, &client).await?;
            each_hook(&client, &targets, &url, |client, target, id| async move {
                client.delete(&target, id).await.map(|()| "deleted")
            })
            .await
        }
        WebhookCommand::Rotate {
            forge,
            targets,
            url,
            store,
            reload_wait,
            drop_old,
        } => {
            let cluster = args.connect().await?;
            let client = forge.client()?;
            let every = targets.all;
            let targets = targets.resolve(&cluster, &forge, &client).await?;
            let store = Store::new(&cluster, &store, forge.forge);
            let secret = generate()?;
            // 1. The receiver accepts the new secret as well as the old ones.
            store.add(&secret).await?;
            eprintln!(
                "new secret added to {}/{}; waiting {}s for the receiver to reload it",
                store.namespace,
                store.name,
                reload_wait.as_secs()
            );
            tokio::time::sleep(reload_wait).await;
            // 2. The hooks switch to it.
            let status = each_hook(&client, &targets, &url, |client, target, id| {
                let secret = secret.clone();
                async move {
                    client
                        .set_secret(&target, id, &secret)
                        .await
                        .map(|()| "secret rotated")
                }
            })
            .await?;
            // 3. The old ones are dropped only when every hook switched and
            // no other hook can still use them: the key is shared by every
            // hook of this forge.
            if status != Status::Ok {
                eprintln!(
                    "some hooks were not switched: the old secrets stay valid; run rotate again"
                );
            } else if every || drop_old {
                store.keep_only(&secret).await?;
                eprintln!(
                    "old secrets removed from {}/{}",
                    store.namespace, store.name
                );
            } else {
                eprintln!(
                    "the old secrets stay valid for hooks not named here; rotate those too, then run with --all or --drop-old to remove them"
                );
            }
            Ok(status)
        }
    }
}

/// `resolve` when `--all` is not used needs no cluster.
async fn resolve_without_cluster(
    args: &ClusterArgs,
    targets: TargetArgs,
    forge: &ForgeArgs,
    client: &Forge,
) -> Result<Vec<Target>, CliError> {
    if targets.all {
        let cluster = args.connect().await?;
        targets.resolve(&cluster, forge, client).await
    } else {
        targets.resolve_given()
    }
}

/// Run `action` on each target's hook(s) pointing at `url`.
async fn each_hook<F, Fut>(
    client: &Forge,
    targets: &[Target],
    url: &str,
    action: F,
) -> Result<Status, CliError>
where
    F: Fn(Forge, Target, u64) -> Fut,
    Fut: std::future::Future<Output = Result<&'static str, pushsync_forge::ForgeError>>,
{
    let mut failed = false;
    for target in targets {
        let hooks = match client.hooks(target).await {
            Ok(hooks) => hooks,
            Err(error) => {
                failed = true;
                eprintln!("{}: {}", target.name(), output::clean(&chain(&error)));
                continue;
            }
        };
        let ours: Vec<u64> = hooks
            .iter()
            .filter(|h| same_url(&h.url, url))
            .map(|h| h.id)
            .collect();
        if ours.is_empty() {
            failed = true;
            eprintln!("{}: no hook points at {url}", target.name());
        }
        for id in ours {
            match action(client.clone(), target.clone(), id).await {
                Ok(done) => output::write_out(&format!("{}: hook {id} {done}\n", target.name()))?,
                Err(error) => {
                    failed = true;
                    eprintln!(
                        "{}: hook {id}: {}",
                        target.name(),
                        output::clean(&chain(&error))
                    );
                }
            }
        }
    }
    Ok(if failed { Status::Failed } else { Status::Ok })
}

fn host_is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
        url::Host::Domain(_) => false,
    }
}

/// An error with its causes (a transport error's reason: TLS, timeout, refused).
fn chain(error: &pushsync_forge::ForgeError) -> String {
    pushsync_service::error_chain(error)
}

fn describe(target: &Target, ensured: &Ensured) -> String {
    let (what, duplicates) = match ensured {
        Ensured::Created { id } => (format!("created    hook {id}"), &[][..]),
        Ensured::Updated {
            id,
            changed,
            duplicates,
        } => (
            format!("updated    hook {id} ({})", changed.join(", ")),
            duplicates.as_slice(),
        ),
        Ensured::Unchanged { id, duplicates } => {
            (format!("unchanged  hook {id}"), duplicates.as_slice())
        }
    };
    let mut line = format!("{what}  {}", target.name());
    if !duplicates.is_empty() {
        let ids: Vec<String> = duplicates.iter().map(u64::to_string).collect();
        line.push_str(&format!(
            "  (other hooks point at the same URL: {}; `pushsync webhook delete` removes them all)",
            ids.join(", ")
        ));
    }
    line
}

impl ForgeArgs {
    fn client(&self) -> Result<Forge, CliError> {
        let token = match (&self.token_file, &self.token_env) {
            (Some(path), _) => read_first_line(path, "the token file")?,
            (None, variable) => {
                let variable = variable.clone().unwrap_or_else(|| {
                    match self.forge {
                        ForgeKind::Github => "GITHUB_TOKEN",
                        ForgeKind::Gitlab => "GITLAB_TOKEN",
                        ForgeKind::Gitea => "GITEA_TOKEN",
                    }
                    .to_owned()
                });
                match std::env::var(&variable) {
                    Ok(token) if !token.trim().is_empty() => {
                        SecretString::from(token.trim().to_owned())
                    }
                    _ => {
                        return Err(CliError::Invalid(format!(
                            "no {} token: set {variable} or pass --token-file",
                            self.forge.as_str()
                        )));
                    }
                }
            }
        };
        let forge = Forge::new(self.forge, self.api_url.as_deref(), token)
            .map_err(|e| CliError::Invalid(e.to_string()))?;
        let base = forge.api_base();
        let local = base
            .host()
            .is_some_and(|h| matches!(h, url::Host::Domain("localhost")) || host_is_loopback(&h));
        if base.scheme() == "http" && !local && !self.insecure_http {
            return Err(CliError::Invalid(format!(
                "--api-url {}: plain http would send the token unencrypted; use https (or --insecure-http)",
                base.host_str().unwrap_or_default()
            )));
        }
        Ok(forge)
    }

    /// The host repositories of this forge have in Applications' URLs.
    fn repo_host(&self, client: &Forge) -> String {
        let host = client.api_base().host_str().unwrap_or_default().to_owned();
        // github.com's API lives on api.github.com.
        host.strip_prefix("api.")
            .map_or(host.clone(), str::to_owned)
    }
}

impl TargetArgs {
    fn resolve_given(&self) -> Result<Vec<Target>, CliError> {
        if let Some(org) = &self.org {
            return Ok(vec![Target::Org(org.clone())]);
        }
        if self.repos.is_empty() {
            return Err(CliError::Invalid(
                "name repositories with --repo OWNER/NAME, an organisation with --org, or --all"
                    .to_owned(),
            ));
        }
        self.repos
            .iter()
            .map(|r| {
                let r = r.trim().trim_matches('/');
                if r.split('/').filter(|s| !s.is_empty()).count() < 2 {
                    return Err(CliError::Invalid(format!(
                        "--repo {r:?}: write OWNER/NAME (GitLab: the project's full path)"
                    )));
                }
                Ok(Target::Repo(r.to_owned()))
            })
            .collect()
    }

    /// The targets, with `--all` read from the cluster's Applications.
    async fn resolve(
        &self,
        cluster: &Cluster,
        forge: &ForgeArgs,
        client: &Forge,
    ) -> Result<Vec<Target>, CliError> {
        if !self.all {
            return self.resolve_given();
        }
        let apps: Api<Application> = Api::all(cluster.client.clone());
        let list = apps
            .list(&ListParams::default())
            .await
            .map_err(CliError::kube("listing applications"))?;
        let host = forge.repo_host(client);
        let repositories: BTreeSet<String> = list
            .items
            .iter()
            .filter_map(|app| pushsync_proto::RepoId::parse(&app.spec.source.repo_url).ok())
            .filter(|id| id.host() == host)
            .filter_map(|id| {
                id.to_string()
                    .strip_prefix(&format!("{host}/"))
                    .map(str::to_owned)
            })
            .collect();
        if repositories.is_empty() {
            return Err(CliError::Invalid(format!(
                "no Application references a repository on {host}"
            )));
        }
        Ok(repositories.into_iter().map(Target::Repo).collect())
    }
}
