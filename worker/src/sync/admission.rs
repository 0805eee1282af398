//! The Application's Project has its say (see `crate::tenancy`):
//!
//! - [`admit`], before anything is fetched: the project exists and allows
//!   the repository and the destination; the rest of the sync acts as the
//!   destination's ServiceAccount;
//! - [`hold`], after render: every object the revision would write (each
//!   phase's resources and hooks) is within the project's rules, or nothing
//!   is applied; then each is marked as this Application's;
//! - [`shared`], after compare: no object is another Application's;
//! - [`delete_owned`]: deletes touch only objects marked as this
//!   Application's.

use pushsync_api::{Application, Project, SyncPolicy};
use serde_json::Value;

use super::compare::Comparison;
use super::source::Desired;
use super::{Outcome, SyncContext, Target, Transient, Verdict, live, transient_or};
use crate::apply::ApplyError;
use crate::render::Manifest;
use crate::status::condition;
use crate::tenancy::{self, Object, Owner, Violation};

/// Most violations one condition lists.
const LISTED: usize = 10;

/// The first [`LISTED`] of `reasons`, how many more there are, and that
/// nothing was applied.
fn nothing_applied<'a>(reasons: impl ExactSizeIterator<Item = &'a str>) -> String {
    let more = reasons.len().saturating_sub(LISTED);
    let mut message = reasons.take(LISTED).collect::<Vec<_>>().join("; ");
    if more > 0 {
        message.push_str(&format!("; and {more} more"));
    }
    message.push_str("; nothing was applied");
    message
}

/// Stop with a `ProjectViolation` condition.
fn refuse<T>(target: &Target, revision: Option<String>, violations: &[Violation]) -> Verdict<T> {
    let message = nothing_applied(violations.iter().map(|v| v.message.as_str()));
    let reason = violations.first().map_or("ProjectViolation", |v| v.reason);
    Verdict::Stop(Box::new(Outcome::failed(
        revision,
        condition(tenancy::VIOLATION, reason, &message),
        message,
        &target.previous,
    )))
}

/// The project's admission of `app`: the context the rest of the sync runs
/// in (acting as the project's ServiceAccount for the destination), and
/// `target.project` set.
pub(super) async fn admit(
    ctx: &SyncContext,
    app: &Application,
    target: &mut Target,
) -> Result<Verdict<SyncContext>, Transient> {
    let name = &app.spec.project;
    let project = match ctx.projects.get(name).await {
        Ok(Some(project)) => project,
        Ok(None) => {
            let violation = Violation {
                reason: "ProjectNotFound",
                message: format!(
                    "project {name:?} does not exist in namespace {:?}",
                    ctx.projects.namespace()
                ),
            };
            return Ok(refuse(target, None, &[violation]));
        }
        Err(source) => {
            return Err(Transient::Api(Box::new(ApplyError::Transient {
                what: format!("reading project {name:?}"),
                source,
            })));
        }
    };
    let home = ctx.projects.namespace();
    let admission = match tenancy::admit(name, &project.spec, home, app, &target.destination) {
        Ok(admission) => admission,
        Err(violation) => return Ok(refuse(target, None, &[violation])),
    };
    target.project = Some(project);
    target.acting_as.clone_from(&admission.service_account);
    let cluster = match &admission.service_account {
        None => ctx.cluster.clone(),
        Some(user) => match ctx.cluster.impersonating(user) {
            Ok(cluster) => cluster,
            Err(error) => {
                let violation = Violation {
                    reason: "ImpersonationFailed",
                    message: format!("project {name:?}: {error}"),
                };
                return Ok(refuse(target, None, &[violation]));
            }
        },
    };
    Ok(Verdict::Go(SyncContext {
        cluster,
        ..ctx.clone()
    }))
}

/// Hold every object of `desired` to the project's rules, all or nothing;
/// then mark each as this Application's.
pub(super) async fn hold(
    ctx: &SyncContext,
    target: &Target,
    desired: &mut Desired,
) -> Result<Verdict<()>, Transient> {
    let Some(project) = target.project.clone() else {
        // Admission always sets it: fail closed if that ever changes.
        let violation = Violation {
            reason: "ProjectNotFound",
            message: "no project was admitted for this sync".to_owned(),
        };
        return Ok(refuse(target, Some(desired.revision.clone()), &[violation]));
    };
    let defined = desired.plan.defined_kinds();
    let mut scopes = Vec::new();
    for manifest in desired.plan.manifests() {
        // The cluster's word on a kind it serves, never the revision's: a
        // CRD in the repository must not make ClusterRoleBinding look
        // namespaced. Only a kind the cluster does not serve yet takes its
        // scope from the revision's CRD.
        let namespaced = match ctx.cluster.resolve(manifest).await {
            Ok((_, namespaced)) => namespaced,
            Err(error) => {
                transient_or(error)?;
                let key = (manifest.group().to_owned(), manifest.kind().to_owned());
                defined.get(&key).copied().unwrap_or(true)
            }
        };
        scopes.push(namespaced.then(|| {
            manifest
                .namespace()
                .unwrap_or(&target.destination)
                .to_owned()
        }));
    }
    let mut objects: Vec<Object<'_>> = desired
        .plan
        .manifests()
        .zip(&scopes)
        .map(|(manifest, namespace)| Object {
            group: manifest.group(),
            kind: manifest.kind(),
            namespace: namespace.as_deref(),
            name: if manifest.name().is_empty() {
                manifest.generate_name()
            } else {
                manifest.name()
            },
        })
        .collect();
    // `CreateNamespace=true` writes the destination Namespace: the same
    // rules as a Namespace in Git.
    if target.create_namespace {
        objects.push(Object {
            group: "",
            kind: "Namespace",
            namespace: None,
            name: &target.destination,
        });
    }
    let violations = tenancy::check(
        project_name(&project),
        &project.spec,
        target.acting_as.as_deref(),
        &objects,
    );
    if !violations.is_empty() {
        return Ok(refuse(target, Some(desired.revision.clone()), &violations));
    }
    for (manifest, namespace) in desired.plan.manifests_mut().zip(&scopes) {
        let group = manifest.group().to_owned();
        tenancy::mark(
            &target.app,
            &mut manifest.object,
            &group,
            namespace.as_deref(),
        );
    }
    Ok(Verdict::Go(()))
}

fn project_name(project: &Project) -> &str {
    project.metadata.name.as_deref().unwrap_or_default()
}

/// Stop when an object the comparison found is another Application's.
/// With `AllowShared=true` this Application writes it anyway but leaves
/// the owner's mark on it: sharing never takes an object over (this
/// Application will not prune it; its owner still may).
pub(super) fn shared(
    target: &Target,
    policy: Option<&SyncPolicy>,
    desired: &mut Desired,
    comparison: &Comparison,
) -> Option<Outcome> {
    let Comparison::Compared { resources, .. } = comparison else {
        return None;
    };
    if policy.is_some_and(|p| p.option(tenancy::ALLOW_SHARED)) {
        for compared in resources {
            let Some(owner) = &compared.shared_with else {
                continue;
            };
            let r = &compared.status.resource;
            let namespace = (!r.namespace.is_empty()).then_some(r.namespace.as_str());
            for manifest in desired
                .plan
                .manifests_mut()
                .filter(|m| m.identity() == compared.identity)
            {
                tenancy::mark(owner, &mut manifest.object, &r.group, namespace);
            }
        }
        return None;
    }
    let claimed: Vec<String> = resources
        .iter()
        .filter_map(|c| {
            let owner = c.shared_with.as_ref()?;
            let r = &c.status.resource;
            Some(format!(
                "{}/{} {}/{} is managed by Application {owner}",
                if r.group.is_empty() { "core" } else { &r.group },
                r.kind,
                r.namespace,
                r.name
            ))
        })
        .collect();
    if claimed.is_empty() {
        return None;
    }
    let message = format!(
        "{} (the sync option {}=true lets this Application write it anyway)",
        nothing_applied(claimed.iter().map(String::as_str)),
        tenancy::ALLOW_SHARED
    );
    Some(Outcome::failed(
        Some(desired.revision.clone()),
        condition("SharedResource", "SharedResource", &message),
        message,
        &target.previous,
    ))
}

/// Stop when the API server forbids writing any resource (RBAC of the
/// identity the sync acts as): every refusal is named and nothing is
/// applied, rather than half a wave.
pub(super) fn forbidden(
    target: &Target,
    desired: &Desired,
    comparison: &Comparison,
) -> Option<Outcome> {
    let Comparison::Compared { resources, .. } = comparison else {
        return None;
    };
    let refused: Vec<&str> = resources
        .iter()
        .filter_map(|c| c.refused.as_deref())
        .collect();
    if refused.is_empty() {
        return None;
    }
    let message = nothing_applied(refused.into_iter());
    Some(Outcome::failed(
        Some(desired.revision.clone()),
        condition("SyncFailed", "Forbidden", &message),
        message,
        &target.previous,
    ))
}

/// Delete `manifest`'s live object if it is marked as this Application's
/// (`Ok(Err(why))` when it exists and is not; absent is fine).
pub(super) async fn delete_owned(
    ctx: &SyncContext,
    target: &Target,
    manifest: &Manifest,
) -> Result<Result<(), String>, Transient> {
    let namespace = target.destination.as_str();
    let Some(current) = live(ctx, manifest, namespace).await? else {
        return Ok(Ok(()));
    };
    match tenancy::owner_of(&target.app, &current) {
        Owner::This => {}
        owner => return Ok(Err(not_ours(manifest, &owner))),
    }
    let uid = current
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match ctx.cluster.delete_exact(manifest, namespace, uid).await {
        Ok(()) => Ok(Ok(())),
        Err(error) => Ok(Err(transient_or(error)?.to_string())),
    }
}

/// Why an object that is not this Application's is left alone.
pub(super) fn not_ours(manifest: &Manifest, owner: &Owner) -> String {
    let whose = match owner {
        Owner::Other(app) => format!("it is managed by Application {app}"),
        _ => "it does not carry this Application's tracking mark".to_owned(),
    };
    format!(
        "{} {:?} exists and {whose}: it was not deleted",
        manifest.kind(),
        manifest.name()
    )
}
