//! Per-resource sync and compare options, as annotations on an object
//! (in Git, or live for objects that left Git), in Argo CD's spelling so
//! repositories migrate unchanged — `argocd.argoproj.io/sync-options` and
//! `argocd.argoproj.io/compare-options` — or ours (`pushsync.dev/…`, and the
//! older `pushsync.dev/prune: "false"`). Values are comma-separated
//! `Name=value` pairs; unknown names are ignored, as Argo CD does.
//!
//! - `Prune=false` (or `Prune=confirm`): never pruned; reported as
//!   `PruneSkipped` and the Application stays in sync.
//! - `Delete=false` (or `Delete=confirm`): left in place when the
//!   Application is deleted with the resources finalizer.
//! - `Replace=true`: an apply an immutable field refuses deletes and
//!   recreates the object (as the Application-level option does).
//! - `SkipDryRunOnMissingResource=true`: a kind the cluster does not serve
//!   yet (its CRD comes with another Application) is not an error before the
//!   apply; the object compares as missing.
//! - `ServerSideApply=true`, `CreateNamespace=true`: accepted; pushsync
//!   always applies server-side, and creating the namespace is an
//!   Application-level option.
//! - compare option `IgnoreExtraneous`: an object that left Git does not make
//!   the Application out of sync (still pruned when pruning is on, unless
//!   `Prune=false`).

use serde_json::Value;

use super::PRUNE_ANNOTATION;

const ARGO_SYNC_OPTIONS: &str = "argocd.argoproj.io/sync-options";
const SYNC_OPTIONS: &str = "pushsync.dev/sync-options";
const ARGO_COMPARE_OPTIONS: &str = "argocd.argoproj.io/compare-options";
const COMPARE_OPTIONS: &str = "pushsync.dev/compare-options";

/// What an object's annotations ask of a sync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResourceOptions {
    /// Never pruned.
    pub no_prune: bool,
    /// Kept when the Application is deleted.
    pub no_delete: bool,
    /// Recreated when an immutable field changes.
    pub replace: bool,
    /// An unknown kind is not an error before the apply.
    pub skip_dry_run_on_missing: bool,
    /// Out of Git but not out of sync.
    pub ignore_extraneous: bool,
}

impl ResourceOptions {
    /// The options `object` (a manifest or a live object) carries.
    pub fn of(object: &Value) -> Self {
        let Some(annotations) = object
            .pointer("/metadata/annotations")
            .and_then(Value::as_object)
        else {
            return Self::default();
        };
        let text = |key: &str| annotations.get(key).and_then(Value::as_str).unwrap_or("");
        let mut options = Self {
            no_prune: text(PRUNE_ANNOTATION) == "false",
            ..Self::default()
        };
        for pair in [text(ARGO_SYNC_OPTIONS), text(SYNC_OPTIONS)]
            .into_iter()
            .flat_map(|value| value.split(','))
        {
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let value = value.trim();
            let off = value.eq_ignore_ascii_case("false") || value.eq_ignore_ascii_case("confirm");
            let on = value.eq_ignore_ascii_case("true");
            match name.trim() {
                "Prune" => options.no_prune |= off,
                "Delete" => options.no_delete |= off,
                "Replace" => options.replace |= on,
                "SkipDryRunOnMissingResource" => options.skip_dry_run_on_missing |= on,
                _ => {}
            }
        }
        options.ignore_extraneous = [text(ARGO_COMPARE_OPTIONS), text(COMPARE_OPTIONS)]
            .into_iter()
            .flat_map(|value| value.split(','))
            .any(|option| option.trim() == "IgnoreExtraneous");
        options
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with(annotations: Value) -> ResourceOptions {
        ResourceOptions::of(&json!({"metadata": {"annotations": annotations}}))
    }

    #[test]
    fn argo_cd_and_pushsync_spellings_are_read() {
        assert_eq!(with(json!({})), ResourceOptions::default());
        assert!(with(json!({"argocd.argoproj.io/sync-options": "Prune=false"})).no_prune);
        assert!(with(json!({"argocd.argoproj.io/sync-options": "Prune=confirm"})).no_prune);
        assert!(with(json!({"pushsync.dev/prune": "false"})).no_prune);
        let many = with(json!({
            "argocd.argoproj.io/sync-options": "Delete=false, Replace=true,ServerSideApply=true,SkipDryRunOnMissingResource=true",
            "argocd.argoproj.io/compare-options": "IgnoreExtraneous",
        }));
        assert_eq!(
            many,
            ResourceOptions {
                no_prune: false,
                no_delete: true,
                replace: true,
                skip_dry_run_on_missing: true,
                ignore_extraneous: true,
            }
        );
        assert!(with(json!({"pushsync.dev/sync-options": "Delete=confirm"})).no_delete);
        assert!(
            !with(json!({"argocd.argoproj.io/sync-options": "Replace=false,Nonsense"})).replace
        );
    }
}
