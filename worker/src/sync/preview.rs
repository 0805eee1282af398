//! What a sync would change, changing nothing: the render of a commit (or
//! of a local checkout, for a pull request's preview) compared with the
//! cluster through server-side dry runs, exactly as a sync compares. What
//! `pushsync app diff` shows.

use std::path::Path;

use pushsync_api::{Application, ResourceRef, ResourceStatus, ResourceSyncCode};

use super::compare::{self, Comparison};
use super::{Request, SyncContext, Target, Transient, Verdict, admission, source};
use crate::plan::Phase;
use crate::render::Manifest;

/// The comparison.
#[derive(Debug, Clone)]
pub struct Preview {
    /// The commit rendered, or `local` for a checkout.
    pub revision: String,
    /// Every desired resource, with its sync status and, when it differs, a
    /// unified diff (live → desired, bounded as in the status).
    pub resources: Vec<ResourceStatus>,
    /// Objects the last sync applied that the render no longer has (a sync
    /// with pruning deletes them).
    pub leftovers: Vec<ResourceRef>,
}

/// Render `app`'s source — the files of `checkout` (a local clone, its
/// root) when given, else the commit `targetRevision` names — and compare
/// it with the cluster. `Ok(Err(why))`: the source could not be rendered
/// (why, as the status would say it).
pub async fn preview(
    ctx: &SyncContext,
    app: &Application,
    checkout: Option<&Path>,
) -> Result<Result<Preview, String>, Transient> {
    // The project's rules hold as in a sync, and objects carry the same
    // tracking marks; the dry runs are made as this caller, not as the
    // project's ServiceAccount (a caller may not impersonate it).
    let mut target = Target::of(app);
    target.full_diffs = true;
    if let Verdict::Stop(outcome) = admission::admit(ctx, app, &mut target).await? {
        return Ok(Err(outcome.message));
    }
    let revision = match checkout {
        Some(_) => "local".to_owned(),
        None => match source::resolve(ctx, app, &target, None).await? {
            Verdict::Go(revision) => revision,
            Verdict::Stop(outcome) => return Ok(Err(outcome.message)),
        },
    };
    let mut desired =
        match source::render_from(ctx, app, &target, revision.clone(), checkout).await? {
            Verdict::Go(desired) => desired,
            Verdict::Stop(outcome) => return Ok(Err(outcome.message)),
        };
    if let Verdict::Stop(outcome) = admission::hold(ctx, &target, &mut desired).await? {
        return Ok(Err(outcome.message));
    }
    // A manual request compares every resource (no shortcut through the
    // last in-sync comparison).
    let request = Request {
        manual: true,
        ..Request::default()
    };
    let comparison = compare::compare(ctx, app, &request, &target, &desired).await?;
    let mut preview = match comparison {
        Comparison::Unchanged(live) => Preview {
            revision,
            resources: live.into_iter().map(|(status, _)| status).collect(),
            leftovers: Vec::new(),
        },
        Comparison::Compared {
            resources,
            leftovers,
        } => Preview {
            revision,
            resources: resources.into_iter().map(|c| c.status).collect(),
            leftovers: leftovers
                .into_iter()
                .filter(|l| !l.ignored)
                .map(|l| l.resource)
                .collect(),
        },
    };
    // A missing object's diff is the whole manifest, as it would be created
    // (Secret values masked as everywhere).
    let steps: Vec<&Manifest> = desired
        .plan
        .waves(Phase::Sync)
        .iter()
        .flat_map(|w| w.steps.iter().filter(|s| !s.hook).map(|s| &s.manifest))
        .collect();
    for status in &mut preview.resources {
        if status.status != ResourceSyncCode::Missing || status.diff.is_some() {
            continue;
        }
        let r = &status.resource;
        let manifest = steps.iter().find(|m| {
            m.group() == r.group
                && m.kind() == r.kind
                && m.name() == r.name
                && (r.namespace.is_empty()
                    || m.namespace().unwrap_or(&target.destination) == r.namespace)
        });
        if let Some(manifest) = manifest {
            status.diff = crate::apply::diff(None, &manifest.object, &[]);
        }
    }
    Ok(Ok(preview))
}
