//! Rollback: a manual sync to a revision the Application deployed before
//! (one of `status.history`), with automated sync turned off first — as
//! Argo CD does — so the next push does not bring the newer commit back.
//! Automation stays off (`spec.suspend: true`) until someone sets it back;
//! meanwhile the Application's `AutoSyncDisabled` condition says why (the
//! `pushsync.dev/rolled-back-to` annotation records the revision, and is
//! dropped once `spec.suspend` is false again).

use kube::api::{Api, Patch, PatchParams};
use pushsync_api::Application;
use serde_json::json;

/// Annotation naming the revision an Application was rolled back to.
pub const ROLLED_BACK_TO: &str = "pushsync.dev/rolled-back-to";

/// What a job does before its sync.
#[derive(Debug)]
pub enum Prepared {
    /// Sync `Application` (as now stored); for a rollback, the full commit
    /// it resolved to.
    Go(Application, Option<String>),
    /// A rollback that cannot be done: why (nothing was changed).
    Refused(Application, String),
}

/// Before a sync of `app`: for a rollback to `revision`, check it is in the
/// history and turn automated sync off; otherwise drop a stale rollback
/// annotation of a resumed Application.
pub async fn prepare(
    client: &kube::Client,
    app: Application,
    revision: Option<&str>,
    rollback: bool,
) -> Result<Prepared, kube::Error> {
    if !rollback {
        let stale = !app.spec.suspend && rolled_back_to(&app).is_some();
        let app = if stale {
            patch(
                client,
                &app,
                json!({"metadata": {"annotations": {ROLLED_BACK_TO: null}}}),
            )
            .await?
        } else {
            app
        };
        return Ok(Prepared::Go(app, None));
    }
    let Some(wanted) = revision.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(Prepared::Refused(
            app,
            "a rollback names no revision".to_owned(),
        ));
    };
    let history = app
        .status
        .as_ref()
        .map(|s| s.history.as_slice())
        .unwrap_or_default();
    // A revision the Application deployed: a full commit id or a prefix of
    // at least seven characters, as `git` abbreviates them.
    let found = (wanted.len() >= 7 && wanted.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| {
            history
                .iter()
                .rev()
                .find(|h| h.revision.starts_with(&wanted.to_ascii_lowercase()))
        })
        .flatten();
    let found = found.map(|entry| entry.revision.clone());
    let Some(resolved) = found else {
        let known: Vec<String> = history
            .iter()
            .rev()
            .map(|h| crate::status::short_revision(&h.revision).to_owned())
            .collect();
        let why = format!(
            "{wanted:?} is not a revision this Application deployed (its history: {})",
            if known.is_empty() {
                "empty".to_owned()
            } else {
                known.join(", ")
            }
        );
        return Ok(Prepared::Refused(app, why));
    };
    let app = patch(
        client,
        &app,
        json!({
            "metadata": {"annotations": {ROLLED_BACK_TO: resolved}},
            "spec": {"suspend": true},
        }),
    )
    .await?;
    tracing::info!(application = %crate::tenancy::app_key(&app), revision = %resolved, "rolling back: automated sync is off until spec.suspend is false");
    Ok(Prepared::Go(app, Some(resolved)))
}

/// The revision `app` was rolled back to, while that holds.
pub fn rolled_back_to(app: &Application) -> Option<&str> {
    app.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ROLLED_BACK_TO))
        .map(String::as_str)
}

async fn patch(
    client: &kube::Client,
    app: &Application,
    patch: serde_json::Value,
) -> Result<Application, kube::Error> {
    let namespace = app.metadata.namespace.as_deref().unwrap_or_default();
    let name = app.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Application> = Api::namespaced(client.clone(), namespace);
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
}
