//! Stage 2: the desired state against the cluster. Each resource is read
//! and dry-run applied over its live object (so server defaults are not
//! drift), 8 at a time, and the two are diffed; objects of the previous
//! inventory that left Git are found. When the commit, the desired digest
//! and every live object's resourceVersion are what the last in-sync
//! comparison recorded, one list per kind and namespace replaces all that.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures_util::{StreamExt, TryStreamExt};
use pushsync_api::{
    Application, ApplicationStatus, HealthStatusCode, IgnoreDifference, OperationPhase,
    ResourceRef, ResourceStatus, ResourceSyncCode, SyncStatusCode,
};
use serde_json::Value;

use super::source::Desired;
use super::{
    Read, RefKey, Request, SyncContext, Target, Transient, is_namespaced, key, manifest_of, read,
    reference, transient_or,
};
use crate::apply::ApplyOptions;
use crate::health::{self, Assessment};
use crate::ignore;
use crate::plan::{Phase, Step};
use crate::render::Manifest;
use crate::tenancy::{self, Owner};

/// What the comparison found.
#[derive(Debug)]
pub enum Comparison {
    /// Nothing can have changed since the last comparison found everything
    /// in sync: the resources as listed now, with their health.
    Unchanged(Vec<(ResourceStatus, Assessment)>),
    /// Compared resource by resource.
    Compared {
        /// Each desired resource (not hooks) against its live object.
        resources: Vec<Compared>,
        /// Objects of the previous inventory that left Git but still exist.
        leftovers: Vec<Leftover>,
    },
}

/// One desired resource compared with its live object.
#[derive(Debug, Clone)]
pub struct Compared {
    /// `group/kind/namespace/name` of the manifest.
    pub identity: String,
    /// What the status reports for it.
    pub status: ResourceStatus,
    /// Its health now.
    pub health: Assessment,
    /// The Application whose tracking mark the live object carries, when
    /// it is another's.
    pub shared_with: Option<String>,
    /// Why the API server forbids writing it (RBAC of the identity the sync
    /// acts as), found by reading it or by a dry run.
    pub refused: Option<String>,
}

impl Compared {
    /// Whether it differs from Git (or is missing).
    pub fn differs(&self) -> bool {
        self.status.status != ResourceSyncCode::Synced
    }
}

/// An object of the previous inventory that left Git but still exists.
#[derive(Debug, Clone)]
pub struct Leftover {
    /// The object.
    pub resource: ResourceRef,
    /// Protected from pruning (`Prune=false`, see [`super::options`]).
    pub protected: bool,
    /// Out of Git without making the Application out of sync
    /// (`IgnoreExtraneous`).
    pub ignored: bool,
    /// The live object's uid (it is deleted only while it is that object).
    pub uid: String,
    /// Why the project does not let it be pruned (its rules tightened
    /// since it was applied).
    pub held: Option<String>,
}

/// Longest diff kept per resource in the status.
const DIFF_LIMIT: usize = 4096;

/// How many comparisons run at once.
const COMPARE_CONCURRENCY: usize = 8;

/// Compare `desired` with the cluster (a manual sync always compares fully).
pub(super) async fn compare(
    ctx: &SyncContext,
    app: &Application,
    request: &Request,
    target: &Target,
    desired: &Desired,
) -> Result<Comparison, Transient> {
    let status = app.status.clone().unwrap_or_default();
    if !request.manual
        && let Some(live) = unchanged(ctx, &status, desired, &target.destination).await?
    {
        return Ok(Comparison::Unchanged(live));
    }
    let resources = resources(ctx, desired, target).await?;
    let wanted: BTreeSet<RefKey> = resources.iter().map(|c| key(&c.status.resource)).collect();
    let leftovers = leftovers(ctx, target, &wanted).await?;
    Ok(Comparison::Compared {
        resources,
        leftovers,
    })
}

/// Compare every resource (not hooks) of the plan with the cluster.
async fn resources(
    ctx: &SyncContext,
    desired: &Desired,
    target: &Target,
) -> Result<Vec<Compared>, Transient> {
    // The futures are made up front (not yet run): a stream mapping borrowed
    // items makes the sync future lose `Send` (rust-lang/rust#102211).
    let comparisons: Vec<_> = desired
        .plan
        .waves(Phase::Sync)
        .iter()
        .flat_map(|w| w.steps.iter().filter(|s| !s.hook))
        .map(|step| one(ctx, step, target))
        .collect();
    futures_util::stream::iter(comparisons)
        .buffered(COMPARE_CONCURRENCY)
        .try_collect()
        .await
}

/// Compare one desired resource with the cluster: what a server-side dry-run
/// apply would make of the live object, against the live object.
async fn one(ctx: &SyncContext, step: &Step, target: &Target) -> Result<Compared, Transient> {
    let (namespace, ignore_differences) = (target.destination.as_str(), &target.ignore_differences);
    let manifest = &step.manifest;
    // Its CRD is not there yet and it says that is expected: it compares
    // as missing, and the apply finds out.
    if super::options::ResourceOptions::of(&manifest.object).skip_dry_run_on_missing
        && let Err(error) = ctx.cluster.resolve(manifest).await
    {
        transient_or(error)?;
        return Ok(unknown_kind(manifest, target));
    }
    let namespaced = is_namespaced(ctx, manifest).await?;
    let resource = reference(manifest, namespace, namespaced);
    let identity = manifest.identity();
    let missing = |refused: Option<String>| Compared {
        identity: identity.clone(),
        status: ResourceStatus {
            resource: resource.clone(),
            status: ResourceSyncCode::Missing,
            health: Some(HealthStatusCode::Missing),
            diff: None,
            resource_version: None,
        },
        health: health::assess(None),
        shared_with: None,
        refused,
    };
    let current = match read(ctx, manifest, namespace).await? {
        Read::Found(current) => Some(current),
        Read::Forbidden(refused) => return Ok(missing(Some(refused))),
        Read::Absent => None,
    };
    let Some(current) = current else {
        // Acting as a project's ServiceAccount, a missing object is tried
        // too: a write RBAC forbids is found before anything is applied.
        if ctx.cluster.is_impersonating()
            && let Err(error) = ctx
                .cluster
                .apply(manifest, namespace, ApplyOptions { dry_run: true })
                .await
            && let error = transient_or(error)?
            && error.is_forbidden()
        {
            return Ok(missing(Some(error.to_string())));
        }
        return Ok(missing(None));
    };
    let shared_with = match tenancy::owner_of(&target.app, &current) {
        Owner::Other(app) => Some(app),
        Owner::This | Owner::Unmarked => None,
    };
    let rules: Vec<&IgnoreDifference> = ignore_differences
        .iter()
        .filter(|r| ignore::matches(r, manifest, namespace))
        .collect();
    let stripped = Manifest {
        object: ignore::strip(&manifest.object, Some(&current), &rules),
        source: manifest.source.clone(),
    };
    let pointers: Vec<String> = rules
        .iter()
        .flat_map(|r| r.json_pointers.iter().cloned())
        .collect();
    let verdict = health::assess(Some(&current));
    let mut refused = None;
    let difference = match ctx
        .cluster
        .apply(&stripped, namespace, ApplyOptions { dry_run: true })
        .await
    {
        Ok(after) => crate::apply::diff(Some(&current), &after, &pointers),
        Err(error) => {
            let error = transient_or(error)?;
            if error.is_forbidden() {
                refused = Some(error.to_string());
            }
            Some(format!("the dry run failed: {error}"))
        }
    };
    let resource_version = difference
        .is_none()
        .then(|| current.pointer("/metadata/resourceVersion"))
        .flatten()
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(Compared {
        identity,
        status: ResourceStatus {
            resource,
            resource_version,
            status: if difference.is_some() {
                ResourceSyncCode::OutOfSync
            } else {
                ResourceSyncCode::Synced
            },
            health: crate::health::known(verdict.health),
            diff: difference.map(|d| if target.full_diffs { d } else { truncate(d) }),
        },
        health: verdict,
        shared_with,
        refused,
    })
}

/// A diff cut to [`DIFF_LIMIT`] bytes (on a character boundary), marked so.
fn truncate(mut text: String) -> String {
    if text.len() > DIFF_LIMIT {
        let mut end = DIFF_LIMIT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("\n… (truncated)\n");
    }
    text
}

/// Objects of the previous inventory that left Git but still exist and are
/// this Application's (by tracking mark: an inventory entry naming anything
/// else is dropped, whoever wrote it), each with whether it is protected
/// from pruning by annotation or held by the project's rules.
async fn leftovers(
    ctx: &SyncContext,
    target: &Target,
    desired: &BTreeSet<RefKey>,
) -> Result<Vec<Leftover>, Transient> {
    let mut found = Vec::new();
    for gone in target
        .previous
        .iter()
        .filter(|r| !desired.contains(&key(r)))
    {
        let live = match read(ctx, &manifest_of(gone), &target.destination).await? {
            Read::Found(live) => live,
            Read::Absent => continue,
            // Unreadable as this identity: kept (never pruned blind).
            Read::Forbidden(refused) => {
                found.push(Leftover {
                    resource: gone.clone(),
                    protected: false,
                    ignored: false,
                    uid: String::new(),
                    held: Some(refused),
                });
                continue;
            }
        };
        let owner = tenancy::owner_of(&target.app, &live);
        if owner != Owner::This {
            tracing::info!(
                application = %target.app,
                object = %format!("{}/{} {}/{}", gone.group, gone.kind, gone.namespace, gone.name),
                owner = ?owner,
                "an inventory entry names an object that is not this Application's: it is not pruned and leaves the inventory"
            );
            continue;
        }
        let options = super::options::ResourceOptions::of(&live);
        let (protected, ignored) = (options.no_prune, options.ignore_extraneous);
        let held = target.project.as_ref().and_then(|project| {
            let object = tenancy::Object {
                group: &gone.group,
                kind: &gone.kind,
                namespace: (!gone.namespace.is_empty()).then_some(gone.namespace.as_str()),
                name: &gone.name,
            };
            let name = project.metadata.name.as_deref().unwrap_or_default();
            tenancy::check(name, &project.spec, target.acting_as.as_deref(), &[object])
                .into_iter()
                .next()
                .map(|v| v.message)
        });
        found.push(Leftover {
            resource: gone.clone(),
            protected,
            ignored,
            uid: live
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            held,
        });
    }
    Ok(found)
}

/// When nothing can have changed since the last comparison found `status`
/// in sync, the resources as they are now (listed, one request per kind and
/// namespace) with their health; `None` when a full comparison is needed.
async fn unchanged(
    ctx: &SyncContext,
    status: &ApplicationStatus,
    desired: &Desired,
    destination: &str,
) -> Result<Option<Vec<(ResourceStatus, Assessment)>>, Transient> {
    let Some(sync) = &status.sync else {
        return Ok(None);
    };
    let same = sync.status == SyncStatusCode::Synced
        && sync.revision.as_deref() == Some(desired.revision.as_str())
        && sync.desired_digest.as_deref() == Some(desired.digest.as_str())
        && status
            .operation_state
            .as_ref()
            .is_none_or(|o| o.phase == OperationPhase::Succeeded)
        && status.resources.len() == desired.plan.resources().count()
        && status.inventory.len() == status.resources.len()
        && status
            .resources
            .iter()
            .all(|r| r.status == ResourceSyncCode::Synced && r.resource_version.is_some());
    if !same {
        return Ok(None);
    }
    let mut groups: BTreeMap<(&str, &str, &str, &str), Vec<&ResourceStatus>> = BTreeMap::new();
    for resource in &status.resources {
        let r = &resource.resource;
        groups
            .entry((&r.group, &r.version, &r.kind, &r.namespace))
            .or_default()
            .push(resource);
    }
    let mut found = Vec::with_capacity(status.resources.len());
    for resources in groups.values() {
        let probe = manifest_of(&resources[0].resource);
        let listed = match ctx.cluster.list(&probe, destination).await {
            Ok(listed) => listed,
            Err(error) => {
                transient_or(error)?;
                return Ok(None);
            }
        };
        let by_name: HashMap<&str, &Value> = listed
            .iter()
            .filter_map(|o| Some((o.pointer("/metadata/name")?.as_str()?, o)))
            .collect();
        for resource in resources {
            let Some(object) = by_name.get(resource.resource.name.as_str()) else {
                return Ok(None);
            };
            let version = object
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str);
            if version != resource.resource_version.as_deref() {
                return Ok(None);
            }
            let verdict = health::assess(Some(object));
            found.push((
                ResourceStatus {
                    health: crate::health::known(verdict.health),
                    ..(*resource).clone()
                },
                verdict,
            ));
        }
    }
    Ok(Some(found))
}

/// A resource whose kind the cluster does not serve (yet), compared as missing.
fn unknown_kind(manifest: &Manifest, target: &Target) -> Compared {
    // Namespaced unless it names none and no namespace applies: the kind's
    // scope is unknown until its CRD exists.
    let resource = reference(manifest, &target.destination, true);
    Compared {
        identity: manifest.identity(),
        status: ResourceStatus {
            resource,
            status: ResourceSyncCode::Missing,
            health: Some(HealthStatusCode::Missing),
            diff: None,
            resource_version: None,
        },
        health: health::assess(None),
        shared_with: None,
        refused: None,
    }
}
