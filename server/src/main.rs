//! `pushsync-server`: the API server and web UI.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use actix_web::cookie::Key;
use clap::{Parser, Subcommand};
use pushsync_server::auth::{LocalUsers, Tokens, random_secret};
use pushsync_server::policy::{Policy, User};
use pushsync_server::{Config, run};
use pushsync_service::{EXIT_USAGE, LogFormat, error_chain, init_logging};
use tokio_util::sync::CancellationToken;

/// The pushsync API server and web UI: every Application's state, live,
/// and the actions the policy gives a user's groups.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to serve the UI, the API and /metrics on.
    #[arg(long, env = "PUSHSYNC_SERVER_LISTEN", default_value = "0.0.0.0:8090")]
    listen: SocketAddr,
    /// Namespace whose Applications are shown (repeat; all namespaces when none).
    #[arg(
        long = "namespace",
        env = "PUSHSYNC_SERVER_NAMESPACES",
        value_delimiter = ','
    )]
    namespaces: Vec<String>,
    /// Policy file (YAML): which groups hold which role in which Project.
    #[arg(long, env = "PUSHSYNC_SERVER_POLICY")]
    policy: Option<PathBuf>,
    /// API tokens file: lines `NAME GROUP[,GROUP…] SHA256-HEX` (see `pushsync-server token`).
    #[arg(long, env = "PUSHSYNC_SERVER_TOKENS")]
    tokens: Option<PathBuf>,
    /// A password user, `NAME:GROUP[,GROUP…]`; the password is read from
    /// --local-password-file, or generated and printed once at start.
    #[arg(long, env = "PUSHSYNC_SERVER_LOCAL_USER")]
    local_user: Option<String>,
    /// File whose first line is the local user's password.
    #[arg(long, env = "PUSHSYNC_SERVER_LOCAL_PASSWORD_FILE")]
    local_password_file: Option<PathBuf>,
    /// File holding the session key (64 bytes or more, the same on every
    /// replica). Without it a key is generated: sessions end at restart and
    /// do not carry across replicas.
    #[arg(long, env = "PUSHSYNC_SERVER_SESSION_KEY_FILE")]
    session_key_file: Option<PathBuf>,
    /// Do not mark the session cookie Secure (plain-http development with a
    /// browser that does not treat the address as secure; never in production).
    #[arg(long, env = "PUSHSYNC_SERVER_INSECURE_COOKIES")]
    insecure_cookies: bool,
    /// How long a login lasts.
    #[arg(long, env = "PUSHSYNC_SERVER_SESSION_TTL", default_value = "8h", value_parser = pushsync_service::parse_duration)]
    session_ttl: Duration,
    /// OpenID Connect issuer URL: turns on single sign-on.
    #[arg(long, env = "PUSHSYNC_SERVER_OIDC_ISSUER")]
    oidc_issuer: Option<String>,
    /// The client id registered at the provider.
    #[arg(
        long,
        env = "PUSHSYNC_SERVER_OIDC_CLIENT_ID",
        default_value = "pushsync"
    )]
    oidc_client_id: String,
    /// File whose first line is the client secret (none: a public client).
    #[arg(long, env = "PUSHSYNC_SERVER_OIDC_CLIENT_SECRET_FILE")]
    oidc_client_secret_file: Option<PathBuf>,
    /// Where the provider sends browsers back: this server's public URL
    /// followed by /auth/callback (registered at the provider).
    #[arg(long, env = "PUSHSYNC_SERVER_OIDC_REDIRECT_URL")]
    oidc_redirect_url: Option<String>,
    /// The ID-token claim holding the user's groups.
    #[arg(
        long,
        env = "PUSHSYNC_SERVER_OIDC_GROUPS_CLAIM",
        default_value = "groups"
    )]
    oidc_groups_claim: String,
    /// Scopes to ask for, comma-separated.
    #[arg(
        long,
        env = "PUSHSYNC_SERVER_OIDC_SCOPES",
        value_delimiter = ',',
        default_value = "openid,profile,email,groups"
    )]
    oidc_scopes: Vec<String>,
    /// Log format.
    #[arg(long, env = "PUSHSYNC_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Make an API token: prints the token (give it to the script) and the
    /// line to add to the tokens file (which keeps only its digest).
    Token {
        /// The token's name (shown as `token:NAME`).
        #[arg(long)]
        name: String,
        /// Its groups, comma-separated.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
    },
}

fn read(path: &PathBuf, what: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("reading the {what} {}: {e}", path.display()))
}

fn config(args: &Args) -> Result<Config, String> {
    let policy = match &args.policy {
        Some(path) => {
            Policy::parse(&read(path, "policy")?).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => Policy::default(),
    };
    let tokens = match &args.tokens {
        Some(path) => Tokens::parse(&read(path, "tokens file")?)
            .map_err(|e| format!("{}: {e}", path.display()))?,
        None => Tokens::default(),
    };
    let mut local_users = LocalUsers::default();
    if let Some(spec) = &args.local_user {
        let (name, groups) = spec.split_once(':').unwrap_or((spec, ""));
        if name.is_empty() {
            return Err("--local-user: write NAME:GROUP[,GROUP…]".to_owned());
        }
        let user = User {
            name: name.to_owned(),
            groups: groups
                .split(',')
                .filter(|g| !g.is_empty())
                .map(str::to_owned)
                .collect(),
        };
        let password = match &args.local_password_file {
            Some(path) => {
                let text = read(path, "password file")?;
                let line = text.lines().next().unwrap_or_default().trim().to_owned();
                if line.is_empty() {
                    return Err(format!("the password file {} is empty", path.display()));
                }
                line
            }
            None => {
                let password = random_secret().map_err(|e| e.to_string())?;
                // The one place a secret is printed: to the operator who
                // started the server without giving one, on its terminal.
                eprintln!("\n  pushsync UI: log in as {name:?} with password {password}\n");
                password
            }
        };
        local_users.add(user, &password);
    }
    let session_key = match &args.session_key_file {
        Some(path) => {
            let bytes = std::fs::read(path)
                .map_err(|e| format!("reading the session key {}: {e}", path.display()))?;
            Key::try_from(bytes.as_slice()).map_err(|_| {
                format!(
                    "the session key {} must hold 64 bytes or more",
                    path.display()
                )
            })?
        }
        None => {
            tracing::warn!(
                "no --session-key-file: sessions end when this process does and do not carry across replicas"
            );
            Key::generate()
        }
    };
    let oidc = match &args.oidc_issuer {
        Some(issuer) => {
            let redirect_url = args.oidc_redirect_url.clone().ok_or(
                "--oidc-issuer needs --oidc-redirect-url (https://<this server>/auth/callback)",
            )?;
            let client_secret = match &args.oidc_client_secret_file {
                Some(path) => Some(
                    read(path, "client secret file")?
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .trim()
                        .to_owned(),
                )
                .filter(|s| !s.is_empty()),
                None => None,
            };
            Some(pushsync_server::oidc::Settings {
                issuer: issuer.clone(),
                client_id: args.oidc_client_id.clone(),
                client_secret,
                redirect_url,
                groups_claim: args.oidc_groups_claim.clone(),
                scopes: args.oidc_scopes.clone(),
            })
        }
        None => None,
    };
    Ok(Config {
        oidc,
        namespaces: args
            .namespaces
            .iter()
            .filter(|n| !n.is_empty())
            .cloned()
            .collect(),
        policy,
        tokens,
        local_users,
        session_key,
        secure_cookies: !args.insecure_cookies,
        session_ttl: args.session_ttl,
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_format);
    if let Some(Command::Token { name, groups }) = &args.command {
        let token = match random_secret() {
            Ok(token) => token,
            Err(error) => {
                eprintln!("pushsync-server: {error}");
                return ExitCode::FAILURE;
            }
        };
        println!("token: {token}");
        println!("tokens file line: {}", Tokens::line(name, groups, &token));
        return ExitCode::SUCCESS;
    }
    let config = match config(&args) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("pushsync-server: invalid configuration: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = match pushsync_service::runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("pushsync-server: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config, args.listen)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error_chain(error.as_ref()), "server failed");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config, listen: SocketAddr) -> anyhow::Result<()> {
    let client = kube::Client::try_default().await.map_err(|e| {
        anyhow::anyhow!("no Kubernetes client (in-cluster config or kubeconfig): {e}")
    })?;
    let listener =
        TcpListener::bind(listen).map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    tracing::info!(listen = %listener.local_addr()?, "server starting");
    let shutdown = CancellationToken::new();
    tokio::spawn(pushsync_service::cancel_on_signal(shutdown.clone()));
    run(config, client, listener, shutdown).await?;
    tracing::info!("server stopped");
    Ok(())
}
