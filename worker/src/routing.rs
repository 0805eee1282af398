//! Dispatch: which Applications a push event affects.
//!
//! Pure rules, no I/O: the caller supplies what it knows about each
//! Application ([`AppSource`]) and gets back what to do ([`Decision`]).
//!
//! - The repository must be the Application's, under any of the push's clone
//!   URLs ([`pushsync_proto::Repository::is`]).
//! - The pushed ref must be the Application's `targetRevision`: a branch or tag
//!   by short or full name. Commit-pinned Applications ignore pushes. `HEAD`
//!   follows the default branch, which push payloads do not name, so it
//!   matches any branch push (a needless sync costs one no-op; a missed one
//!   costs correctness).
//! - A deleted ref affects its Applications without a path check: they get a
//!   condition, and nothing is applied.
//! - Otherwise at least one changed path must lie under the Application's path
//!   or one of its extra paths (annotation `pushsync.dev/paths`, `;`-separated,
//!   relative to the Application's path unless they start with `/`, like
//!   Argo CD's `manifest-generate-paths`). When the push cannot list every
//!   change, every Application on that ref is affected.

use pushsync_proto::{AppRef, PushEvent, RefKind, RepoId};

/// The annotation listing extra paths whose changes affect an Application.
pub const PATHS_ANNOTATION: &str = "pushsync.dev/paths";

/// What dispatch needs to know about one Application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSource {
    /// The Application.
    pub app: AppRef,
    /// Its source repository.
    pub repo: RepoId,
    /// Branch, tag, full ref, commit or `HEAD`.
    pub target_revision: String,
    /// Directory in the repository (`""` or `.` for the root).
    pub path: String,
    /// The raw value of [`PATHS_ANNOTATION`], if set.
    pub extra_paths: Option<String>,
}

/// What a push means for one Application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Its source may have changed: sync it.
    Sync(AppRef),
    /// The ref it follows was deleted: report it, apply nothing.
    RefDeleted(AppRef),
}

/// The Applications `event` affects, in the order of `apps`.
pub fn affected(event: &PushEvent, apps: &[AppSource]) -> Vec<Decision> {
    apps.iter()
        .filter(|app| event.repository.is(&app.repo) && follows(app, event))
        .filter_map(|app| {
            if event.deleted {
                Some(Decision::RefDeleted(app.app.clone()))
            } else if event.changed_paths.incomplete || touches(app, &event.changed_paths.paths) {
                Some(Decision::Sync(app.app.clone()))
            } else {
                None
            }
        })
        .collect()
}

/// Whether `revision` names a commit rather than a ref.
pub fn is_commit(revision: &str) -> bool {
    (revision.len() == 40 || revision.len() == 64)
        && revision.bytes().all(|b| b.is_ascii_hexdigit())
}

fn follows(app: &AppSource, event: &PushEvent) -> bool {
    let revision = app.target_revision.trim();
    let git_ref = &event.git_ref;
    if is_commit(revision) {
        return false;
    }
    if revision.is_empty() || revision == "HEAD" {
        return git_ref.kind == RefKind::Branch;
    }
    if revision == git_ref.full {
        return true;
    }
    match git_ref.kind {
        RefKind::Branch | RefKind::Tag => revision == git_ref.name,
        RefKind::Other => false,
    }
}

/// The directories (repository-relative, no leading or trailing `/`) whose
/// changes affect `app`; `""` is the whole repository. A path that climbs
/// out of the repository watches the whole of it: the sync then reports the
/// path as invalid, rather than a push being missed.
pub fn watched_dirs(app: &AppSource) -> Vec<String> {
    let normalise = |path: &str| crate::paths::normalise(path).unwrap_or_default();
    let base = normalise(&app.path);
    let mut dirs = vec![base.clone()];
    for extra in app.extra_paths.iter().flat_map(|v| v.split(';')) {
        let extra = extra.trim();
        if extra.is_empty() {
            continue;
        }
        let joined = match extra.strip_prefix('/') {
            Some(absolute) => normalise(absolute),
            None if base.is_empty() => normalise(extra),
            None => normalise(&format!("{base}/{extra}")),
        };
        if !dirs.contains(&joined) {
            dirs.push(joined);
        }
    }
    dirs
}

fn touches(app: &AppSource, changed: &[String]) -> bool {
    let dirs = watched_dirs(app);
    changed.iter().any(|path| {
        let path = path.trim_start_matches('/');
        dirs.iter().any(|dir| {
            dir.is_empty()
                || path == dir
                || path
                    .strip_prefix(dir.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    })
}

#[cfg(test)]
mod tests {
    use pushsync_proto::{ChangedPaths, GitRef, Provider, Repository};

    use super::*;

    fn event(git_ref: GitRef, paths: &[&str], incomplete: bool, deleted: bool) -> PushEvent {
        PushEvent {
            provider: Provider::Github,
            delivery_id: "d".into(),
            repository: Repository {
                id: RepoId::parse("https://github.com/org/manifests").unwrap(),
                full_name: "org/manifests".into(),
                clone_urls: vec!["git@github.com:org/manifests.git".into()],
                web_url: None,
            },
            git_ref,
            before: Some("a".repeat(40)),
            after: (!deleted).then(|| "b".repeat(40)),
            created: false,
            deleted,
            forced: false,
            changed_paths: ChangedPaths {
                paths: paths.iter().map(|p| (*p).to_owned()).collect(),
                incomplete,
            },
            pusher: None,
            received_at: "2026-11-23T00:00:00Z".parse().unwrap(),
        }
    }

    fn app(name: &str, repo: &str, revision: &str, path: &str, extra: Option<&str>) -> AppSource {
        AppSource {
            app: AppRef {
                namespace: "apps".into(),
                name: name.into(),
            },
            repo: RepoId::parse(repo).unwrap(),
            target_revision: revision.into(),
            path: path.into(),
            extra_paths: extra.map(str::to_owned),
        }
    }

    fn names(decisions: &[Decision]) -> Vec<String> {
        decisions
            .iter()
            .map(|d| match d {
                Decision::Sync(a) => a.name.clone(),
                Decision::RefDeleted(a) => format!("deleted:{}", a.name),
            })
            .collect()
    }

    #[track_caller]
    fn check(event: &PushEvent, apps: &[AppSource], expected: &[&str]) {
        assert_eq!(names(&affected(event, apps)), expected);
    }

    const REPO: &str = "git@github.com:Org/Manifests.git";

    #[test]
    fn only_applications_whose_paths_changed_sync() {
        let apps = [
            app("guestbook", REPO, "main", "apps/guestbook", None),
            app("podinfo", REPO, "main", "./apps/podinfo/", None),
            app("root", REPO, "main", ".", None),
            app(
                "other-repo",
                "https://github.com/org/other",
                "main",
                "apps/guestbook",
                None,
            ),
            app("other-branch", REPO, "release", "apps/guestbook", None),
            app("prefix-trap", REPO, "main", "apps/guest", None),
        ];
        let push = event(
            GitRef::branch("main"),
            &["apps/guestbook/deploy.yaml"],
            false,
            false,
        );
        check(&push, &apps, &["guestbook", "root"]);
        let push = event(GitRef::branch("main"), &["README.md"], false, false);
        check(&push, &apps, &["root"]);
    }

    #[test]
    fn an_incomplete_change_list_wakes_every_application_on_the_ref() {
        let apps = [
            app("a", REPO, "main", "apps/a", None),
            app("b", REPO, "main", "apps/b", None),
            app("c", REPO, "dev", "apps/c", None),
        ];
        check(
            &event(GitRef::branch("main"), &[], true, false),
            &apps,
            &["a", "b"],
        );
    }

    #[test]
    fn revisions_match_by_short_or_full_name_and_commits_ignore_pushes() {
        let apps = [
            app("short", REPO, "main", "", None),
            app("full", REPO, "refs/heads/main", "", None),
            app("head", REPO, "HEAD", "", None),
            app("empty", REPO, "", "", None),
            app("pinned", REPO, &"c".repeat(40), "", None),
            app("tag", REPO, "v1.0", "", None),
        ];
        check(
            &event(GitRef::branch("main"), &["x"], false, false),
            &apps,
            &["short", "full", "head", "empty"],
        );
        check(
            &event(GitRef::tag("v1.0"), &["x"], true, false),
            &apps,
            &["tag"],
        );
        check(
            &event(GitRef::from_full("refs/notes/commits"), &["x"], true, false),
            &apps,
            &[],
        );
    }

    #[test]
    fn extra_paths_follow_the_annotation() {
        let apps = [
            app(
                "shared",
                REPO,
                "main",
                "apps/web",
                Some("../common; /charts/base"),
            ),
            app("plain", REPO, "main", "apps/web", None),
        ];
        check(
            &event(
                GitRef::branch("main"),
                &["apps/common/values.yaml"],
                false,
                false,
            ),
            &apps,
            &["shared"],
        );
        check(
            &event(
                GitRef::branch("main"),
                &["charts/base/Chart.yaml"],
                false,
                false,
            ),
            &apps,
            &["shared"],
        );
        check(
            &event(GitRef::branch("main"), &["apps/web/x.yaml"], false, false),
            &apps,
            &["shared", "plain"],
        );
        assert_eq!(
            watched_dirs(&apps[0]),
            ["apps/web", "apps/common", "charts/base"]
        );
    }

    #[test]
    fn a_deleted_branch_marks_its_applications_without_a_path_check() {
        let apps = [
            app("a", REPO, "main", "apps/a", None),
            app("b", REPO, "dev", "apps/b", None),
        ];
        check(
            &event(GitRef::branch("main"), &[], false, true),
            &apps,
            &["deleted:a"],
        );
    }

    #[test]
    fn a_path_that_climbs_out_watches_the_whole_repository() {
        let climbing = app("x", REPO, "main", "../../etc", None);
        assert_eq!(watched_dirs(&climbing), [""]);
        let extras = app("y", REPO, "main", "apps/web", Some("../common; ../../../x"));
        assert_eq!(watched_dirs(&extras), ["apps/web", "apps/common", ""]);
        assert!(is_commit(&"0123456789abcdef".repeat(4)[..40]));
        assert!(!is_commit("main"));
    }
}
