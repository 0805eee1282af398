//! What `pushsync app list`, `get` and `history` print: kubectl-style
//! tables (colour only on a terminal), JSON/YAML `List`s, and `list --watch`
//! as a row per change.

use futures_util::StreamExt;
use kube::api::{Api, ListParams};
use pushsync_api::{Application, ConditionStatus};

use crate::cluster::Cluster;
use crate::output::{self, Format, paint};
use crate::{CliError, Status};

/// `app list`.
pub(crate) async fn list(
    cluster: &Cluster,
    all: bool,
    selector: Option<String>,
    format: Format,
    watch: bool,
) -> Result<Status, CliError> {
    let apps: Api<Application> = if all {
        Api::all(cluster.client.clone())
    } else {
        Api::namespaced(cluster.client.clone(), &cluster.namespace)
    };
    let mut params = ListParams::default();
    if let Some(selector) = &selector {
        params = params.labels(selector);
    }
    let list = apps
        .list(&params)
        .await
        .map_err(CliError::kube("listing applications"))?;
    let mut items = list.items;
    items.sort_by(|a, b| {
        (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
    });
    match format {
        Format::Json | Format::Yaml => {
            let values = items
                .iter()
                .map(|a| serde_json::to_value(a).map_err(|e| CliError::Output(e.to_string())))
                .collect::<Result<Vec<_>, _>>()?;
            output::list_document(values, format)?;
        }
        Format::Name => {
            let names: String = items
                .iter()
                .map(|a| format!("application.pushsync.dev/{}\n", name_of(a)))
                .collect();
            output::write_out(&names)?;
        }
        Format::Table | Format::Wide => {
            if items.is_empty() && !watch {
                eprintln!(
                    "No applications found{}.",
                    if all {
                        String::new()
                    } else {
                        format!(" in namespace {}", cluster.namespace)
                    }
                );
            } else {
                let (header, rows) = rows(&items, all, format == Format::Wide);
                output::table(&header, &rows)?;
            }
        }
    }
    if !watch {
        return Ok(Status::Ok);
    }
    // Then every change, one row each, as `kubectl get -w` prints them.
    let config = kube::runtime::watcher::Config {
        label_selector: selector,
        ..Default::default()
    };
    // Transient watch errors (an API server restart) are retried with
    // backoff, as kubectl does.
    let mut stream = std::pin::pin!(kube::runtime::WatchStreamExt::default_backoff(
        kube::runtime::watcher(apps, config)
    ));
    let mut seen = std::collections::HashMap::new();
    while let Some(event) = stream.next().await {
        let event = event.map_err(|e| CliError::Invalid(format!("watching applications: {e}")))?;
        if let kube::runtime::watcher::Event::Apply(app)
        | kube::runtime::watcher::Event::InitApply(app) = event
        {
            let (_, row) = rows(std::slice::from_ref(&app), all, format == Format::Wide);
            let key = (app.metadata.namespace.clone(), name_of(&app).to_owned());
            if seen.get(&key) != row.first() {
                output::write_out(&(row[0].join("   ") + "\n"))?;
                seen.insert(key, row[0].clone());
            }
        }
    }
    Ok(Status::Ok)
}

fn name_of(app: &Application) -> &str {
    app.metadata.name.as_deref().unwrap_or_default()
}

/// The list's columns.
fn rows(items: &[Application], all: bool, wide: bool) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let colour = output::colour();
    let now = jiff::Timestamp::now();
    let mut header = Vec::new();
    if all {
        header.push("NAMESPACE");
    }
    header.extend(["NAME", "PROJECT", "SYNC", "HEALTH", "REVISION", "AGE"]);
    if wide {
        header.extend(["SUSPENDED", "REPO", "PATH", "TARGET", "MESSAGE"]);
    }
    let rows = items
        .iter()
        .map(|app| {
            let status = app.status.as_ref();
            let sync = status.and_then(|s| s.sync.as_ref());
            let mut row = Vec::new();
            if all {
                row.push(app.metadata.namespace.clone().unwrap_or_default());
            }
            row.push(name_of(app).to_owned());
            row.push(app.spec.project.clone());
            row.push(paint(sync.map_or("Unknown", |s| s.status.as_str()), colour));
            row.push(paint(
                status
                    .and_then(|s| s.health.as_ref())
                    .map_or("Unknown", |h| h.status.as_str()),
                colour,
            ));
            row.push(
                sync.and_then(|s| s.short_revision.clone())
                    .unwrap_or_else(|| "-".to_owned()),
            );
            row.push(output::age(
                app.metadata.creation_timestamp.as_ref().map(|t| &t.0),
                now,
            ));
            if wide {
                row.push(app.spec.suspend.to_string());
                row.push(app.spec.source.repo_url.clone());
                row.push(app.spec.source.path.clone());
                row.push(app.spec.source.target_revision.clone());
                row.push(ready_message(app));
            }
            row
        })
        .collect();
    (header, rows)
}

/// The `Ready` condition's message, else the last operation's.
fn ready_message(app: &Application) -> String {
    let status = app.status.as_ref();
    status
        .and_then(|s| s.conditions.iter().find(|c| c.kind == "Ready"))
        .and_then(|c| c.message.clone())
        .or_else(|| {
            status
                .and_then(|s| s.operation_state.as_ref())
                .and_then(|o| o.message.clone())
        })
        .unwrap_or_default()
        .replace('\n', " ")
}

/// `app get`.
pub(crate) fn get(app: &Application, format: Format) -> Result<(), CliError> {
    match format {
        Format::Json | Format::Yaml => return output::document(app, format),
        Format::Name => {
            return output::write_out(&format!("application.pushsync.dev/{}\n", name_of(app)));
        }
        Format::Table | Format::Wide => {}
    }
    let colour = output::colour();
    let status = app.status.clone().unwrap_or_default();
    let source = &app.spec.source;
    let sync = status.sync.clone().unwrap_or_default();
    let mut out = String::new();
    let mut field = |label: &str, value: String| {
        out.push_str(&format!("{label:<14}{value}\n"));
    };
    field(
        "Name:",
        format!(
            "{}/{}",
            app.metadata.namespace.as_deref().unwrap_or_default(),
            name_of(app)
        ),
    );
    field("Project:", app.spec.project.clone());
    field("Repository:", source.repo_url.clone());
    field(
        "Path:",
        if source.path.is_empty() {
            ".".to_owned()
        } else {
            source.path.clone()
        },
    );
    field("Target:", source.target_revision.clone());
    field(
        "Destination:",
        app.spec
            .destination
            .namespace
            .clone()
            .unwrap_or_else(|| "(the Application's namespace)".to_owned()),
    );
    field(
        "Sync:",
        format!(
            "{}{}",
            paint(sync.status.as_str(), colour),
            sync.revision
                .as_ref()
                .map(|r| format!(" to {r}"))
                .unwrap_or_default()
        ),
    );
    field(
        "Health:",
        status.health.as_ref().map_or_else(
            || paint("Unknown", colour),
            |h| {
                format!(
                    "{}{}",
                    paint(h.status.as_str(), colour),
                    h.message
                        .as_ref()
                        .filter(|m| !m.is_empty())
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default()
                )
            },
        ),
    );
    field("Suspended:", app.spec.suspend.to_string());
    if let Some(operation) = &status.operation_state {
        field(
            "Last sync:",
            format!(
                "{} {}{}",
                paint(operation.phase.as_str(), colour),
                operation.finished_at.clone().unwrap_or_default(),
                operation
                    .message
                    .as_ref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ),
        );
    }
    output::write_out(&out)?;
    if !status.conditions.is_empty() {
        output::write_out("\nConditions:\n")?;
        let rows: Vec<Vec<String>> = status
            .conditions
            .iter()
            .map(|c| {
                vec![
                    c.kind.clone(),
                    paint(
                        match c.status {
                            ConditionStatus::True => "True",
                            ConditionStatus::False => "False",
                            _ => "Unknown",
                        },
                        colour,
                    ),
                    c.reason.clone().unwrap_or_default(),
                    c.message.clone().unwrap_or_default().replace('\n', " "),
                ]
            })
            .collect();
        output::table(&["TYPE", "STATUS", "REASON", "MESSAGE"], &rows)?;
    }
    if !status.resources.is_empty() {
        output::write_out("\nResources:\n")?;
        let rows: Vec<Vec<String>> = status
            .resources
            .iter()
            .map(|r| {
                vec![
                    r.resource.group.clone(),
                    r.resource.kind.clone(),
                    r.resource.namespace.clone(),
                    r.resource.name.clone(),
                    paint(r.status.as_str(), colour),
                    r.health
                        .map_or_else(String::new, |h| paint(h.as_str(), colour)),
                ]
            })
            .collect();
        output::table(
            &["GROUP", "KIND", "NAMESPACE", "NAME", "SYNC", "HEALTH"],
            &rows,
        )?;
    }
    Ok(())
}

/// `app history`.
pub(crate) fn history(app: &Application, format: Format) -> Result<(), CliError> {
    let history = app
        .status
        .as_ref()
        .map(|s| s.history.clone())
        .unwrap_or_default();
    match format {
        Format::Json | Format::Yaml => output::document(&history, format),
        _ => {
            let rows: Vec<Vec<String>> = history
                .iter()
                .rev()
                .enumerate()
                .map(|(i, h)| {
                    vec![
                        i.to_string(),
                        h.revision.chars().take(7).collect(),
                        h.deployed_at.clone(),
                        h.revision.clone(),
                    ]
                })
                .collect();
            if rows.is_empty() {
                eprintln!("{} has deployed nothing yet.", name_of(app));
                return Ok(());
            }
            output::table(&["#", "REVISION", "DEPLOYED AT", "COMMIT"], &rows)
        }
    }
}
