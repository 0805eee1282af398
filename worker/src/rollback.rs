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
    /// A rollback (or a sync of a named revision) that cannot be done: the
    /// Event's reason and why (nothing was changed).
    Refused(Application, &'static str, String),
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
        if let Some(why) = revision.and_then(|r| automation_would_undo(&app, r)) {
            return Ok(Prepared::Refused(app, "SyncRefused", why));
        }
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
            FAILED,
            "a rollback names no revision".to_owned(),
        ));
    };
    let history = app
        .status
        .as_ref()
        .map(|s| s.history.as_slice())
        .unwrap_or_default();
    let resolved = match deployed(history, wanted) {
        Ok(resolved) => resolved,
        Err(why) => return Ok(Prepared::Refused(app, FAILED, why)),
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

/// The Event reason of a refused rollback.
const FAILED: &str = "RollbackFailed";

/// Why a sync of `revision` would not last: automated sync is on and would
/// bring `targetRevision` back at the next push or poll (Argo CD refuses the
/// same). A rollback turns it off first; a sync of the revision
/// `targetRevision` names is no change.
fn automation_would_undo(app: &Application, revision: &str) -> Option<String> {
    let automated = app
        .spec
        .sync_policy
        .as_ref()
        .is_some_and(|p| p.automated.is_some());
    (automated && !app.spec.suspend && revision != app.spec.source.target_revision).then(|| {
        format!(
            "cannot sync {revision:?} while automated sync follows {:?}: it would be undone; roll back to it, suspend the Application or change targetRevision",
            app.spec.source.target_revision
        )
    })
}

/// The revision of `history` that `wanted` names: a full commit id or an
/// unambiguous prefix of at least seven characters, as `git` abbreviates
/// them; otherwise why not.
fn deployed(history: &[pushsync_api::RevisionHistory], wanted: &str) -> Result<String, String> {
    let prefix = wanted.to_ascii_lowercase();
    let plausible = wanted.len() >= 7 && wanted.bytes().all(|b| b.is_ascii_hexdigit());
    let mut matching: Vec<&str> = history
        .iter()
        .map(|h| h.revision.as_str())
        .filter(|r| plausible && r.starts_with(&prefix))
        .collect();
    matching.sort_unstable();
    matching.dedup();
    match matching.as_slice() {
        [one] => Ok((*one).to_owned()),
        [] => {
            let known: Vec<&str> = history
                .iter()
                .rev()
                .map(|h| crate::status::short_revision(&h.revision))
                .collect();
            Err(format!(
                "{wanted:?} is not a revision this Application deployed (its history: {})",
                if known.is_empty() {
                    "empty".to_owned()
                } else {
                    known.join(", ")
                }
            ))
        }
        many => Err(format!(
            "{wanted:?} is ambiguous: {} revisions of the history begin with it ({}); give more of it",
            many.len(),
            many.join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use pushsync_api::RevisionHistory;

    use super::{automation_would_undo, deployed};

    fn history(revisions: &[&str]) -> Vec<RevisionHistory> {
        revisions
            .iter()
            .map(|r| RevisionHistory {
                revision: (*r).to_owned(),
                ..RevisionHistory::default()
            })
            .collect()
    }

    #[test]
    fn a_rollback_names_one_deployed_revision_unambiguously() {
        let a = "0d1a26e7a2b4c6d8e0f1a2b3c4d5e6f708192a3b";
        let b = "0d1a26e7ffffffffffffffffffffffffffffffff";
        let c = "9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b";
        let history = history(&[a, c, a, b]);
        assert_eq!(deployed(&history, c).as_deref(), Ok(c));
        assert_eq!(
            deployed(&history, "9C8B7A6").as_deref(),
            Ok(c),
            "case does not matter"
        );
        assert_eq!(
            deployed(&history, "0d1a26e7a").as_deref(),
            Ok(a),
            "deployed twice is one"
        );
        let ambiguous = deployed(&history, "0d1a26e").unwrap_err();
        assert!(ambiguous.contains("ambiguous: 2 revisions"), "{ambiguous}");
        for unknown in ["0d1a26", "main", "1234567", ""] {
            let why = deployed(&history, unknown).unwrap_err();
            assert!(
                why.contains("is not a revision this Application deployed"),
                "{why}"
            );
        }
        assert!(
            deployed(&[], "1234567")
                .unwrap_err()
                .contains("history: empty")
        );
    }

    #[test]
    fn a_named_revision_is_refused_while_automated_sync_would_undo_it() {
        let mut app = pushsync_api::Application::new(
            "web",
            pushsync_api::ApplicationSpec {
                source: pushsync_api::Source {
                    target_revision: "main".into(),
                    ..Default::default()
                },
                sync_policy: Some(pushsync_api::SyncPolicy {
                    automated: Some(pushsync_api::Automated::default()),
                    ..Default::default()
                }),
                project: pushsync_api::DEFAULT_PROJECT.to_owned(),
                destination: Default::default(),
                ignore_differences: Vec::new(),
                suspend: false,
            },
        );
        let why = automation_would_undo(&app, "0d1a26e").unwrap();
        assert!(why.contains("automated sync follows \"main\""), "{why}");
        assert_eq!(automation_would_undo(&app, "main"), None);
        app.spec.suspend = true;
        assert_eq!(automation_would_undo(&app, "0d1a26e"), None, "suspended");
        app.spec.suspend = false;
        app.spec.sync_policy = None;
        assert_eq!(automation_would_undo(&app, "0d1a26e"), None, "manual only");
    }
}
