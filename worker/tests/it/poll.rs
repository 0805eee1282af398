//! The poll against real repositories served by `git daemon`, the sandbox's
//! Leases and Applications, and the in-memory queue as the job sink.

use std::time::Duration;

use kube::api::{Api, PostParams};
use pushsync_api::{
    Application, ApplicationSpec, ApplicationStatus, Automated, OperationPhase, OperationState,
    Source, SyncPolicy, SyncStatus, SyncStatusCode,
};
use pushsync_broker::{Broker, MemoryQueue};
use pushsync_proto::{Message, SyncTrigger, Topology};
use pushsync_sandbox::Sandbox;
use pushsync_testkit::git::{GitDaemon, GitRepo};
use pushsync_worker::context::Shared;
use pushsync_worker::git::GitCache;
use pushsync_worker::index::{Index, Namespaces};
use pushsync_worker::lease::Leases;
use pushsync_worker::loops::poll::{Cycle, PollSettings, Poller, SYNC_ANNOTATION};
use pushsync_worker::metrics::Metrics;
use tokio_util::sync::CancellationToken;

use crate::support;

fn application(
    name: &str,
    url: &str,
    synced: Option<&str>,
    phase: OperationPhase,
    self_heal: bool,
) -> Application {
    let mut app = Application::new(
        name,
        ApplicationSpec {
            project: pushsync_api::DEFAULT_PROJECT.to_owned(),
            source: Source {
                repo_url: url.to_owned(),
                target_revision: "main".into(),
                ..Source::default()
            },
            destination: Default::default(),
            sync_policy: Some(SyncPolicy {
                automated: Some(Automated {
                    prune: false,
                    self_heal,
                }),
                ..SyncPolicy::default()
            }),
            ignore_differences: Vec::new(),
            suspend: false,
        },
    );
    app.metadata.namespace = Some("default".into());
    if let Some(revision) = synced {
        app.status = Some(ApplicationStatus {
            reconciled_at: Some(jiff::Timestamp::now().to_string()),
            sync: Some(SyncStatus {
                status: SyncStatusCode::Synced,
                revision: Some(revision.to_owned()),
                desired_digest: None,
                short_revision: None,
            }),
            operation_state: Some(OperationState {
                phase,
                ..OperationState::default()
            }),
            ..ApplicationStatus::default()
        });
    }
    app
}

fn enqueued(queue: &MemoryQueue) -> Vec<String> {
    let mut names = Vec::new();
    while let Some(message) = queue.try_pop() {
        if let Ok(Message::SyncJobV1(job)) = Message::decode(&message.body) {
            names.push(job.application.name);
        }
    }
    names.sort();
    names
}

struct Setup {
    sandbox: Sandbox,
    queue: MemoryQueue,
    git: GitCache,
    _cache: tempfile::TempDir,
}

impl Setup {
    async fn new() -> Self {
        let sandbox = Sandbox::start().await.unwrap();
        let cache = tempfile::tempdir().unwrap();
        Self {
            sandbox,
            queue: MemoryQueue::new(10_000),
            git: GitCache::new(cache.path(), Duration::from_secs(20))
                .with_policy(pushsync_worker::git::RemotePolicy::permissive()),
            _cache: cache,
        }
    }

    fn poller(&self, identity: &str, index: Index) -> (Poller, Metrics) {
        let shared = Shared {
            leases: Leases::new(
                self.sandbox.client(),
                "default",
                identity,
                Duration::from_secs(2),
            ),
            ..support::shared(
                &self.sandbox,
                Broker::memory(self.queue.clone()),
                Topology::default(),
                index,
                self.git.clone(),
                identity,
            )
        };
        let metrics = shared.metrics.clone();
        let poller = Poller::new(
            shared,
            PollSettings {
                interval: Duration::from_secs(3600),
                tick: Duration::from_millis(50),
                ..PollSettings::default()
            },
        );
        (poller, metrics)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_asks_each_repository_once_and_enqueues_only_what_moved_or_failed() {
    let setup = Setup::new().await;
    let one = GitRepo::init();
    one.write("a.yaml", "x: 1\n");
    let old = one.commit("old");
    one.write("a.yaml", "x: 2\n");
    let new = one.commit("new");
    let two = GitRepo::init();
    two.write("b.yaml", "y: 1\n");
    let head_two = two.commit("only");
    let (daemon_one, daemon_two) = (GitDaemon::serve_repo(&one), GitDaemon::serve_repo(&two));
    let (url_one, url_two) = (daemon_one.url_of(&one), daemon_two.url_of(&two));
    let apps = vec![
        application(
            "moved",
            &url_one,
            Some(&old),
            OperationPhase::Succeeded,
            false,
        ),
        application(
            "current",
            &url_one,
            Some(&new),
            OperationPhase::Succeeded,
            false,
        ),
        application(
            "failed",
            &url_one,
            Some(&new),
            OperationPhase::Failed,
            false,
        ),
        application(
            "never-synced",
            &url_one,
            None,
            OperationPhase::Failed,
            false,
        ),
        application(
            "heals",
            &url_two,
            Some(&head_two),
            OperationPhase::Succeeded,
            true,
        ),
        application(
            "quiet",
            &url_two,
            Some(&head_two),
            OperationPhase::Succeeded,
            false,
        ),
        {
            let mut app = application(
                "stale",
                &url_two,
                Some(&head_two),
                OperationPhase::Succeeded,
                false,
            );
            if let Some(status) = app.status.as_mut() {
                status.reconciled_at = Some("2020-01-01T00:00:00Z".into());
            }
            app
        },
    ];
    let (poller, _) = setup.poller("p", Index::fixed(apps));
    let calls = setup.git.remote_calls();
    let cycle = poller.cycle().await;
    assert_eq!(
        setup.git.remote_calls() - calls,
        2,
        "one ls-remote per repository"
    );
    assert_eq!(
        cycle,
        Cycle {
            repositories: 2,
            unreachable: 0,
            applications: 7,
            enqueued: 5,
            published: true,
        }
    );
    assert_eq!(
        enqueued(&setup.queue),
        ["failed", "heals", "moved", "never-synced", "stale"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_repository_is_reported_and_the_others_still_polled() {
    let setup = Setup::new().await;
    let repo = GitRepo::init();
    repo.write("a.yaml", "x: 1\n");
    repo.commit("one");
    let daemon = GitDaemon::serve_repo(&repo);
    let apps = vec![
        application(
            "up",
            &daemon.url_of(&repo),
            None,
            OperationPhase::Failed,
            false,
        ),
        application(
            "down",
            "git://127.0.0.1:9/nothing.git",
            None,
            OperationPhase::Failed,
            false,
        ),
    ];
    let (poller, metrics) = setup.poller("p", Index::fixed(apps));
    let cycle = poller.cycle().await;
    assert_eq!((cycle.unreachable, cycle.enqueued), (1, 1));
    assert_eq!(enqueued(&setup.queue), ["up"]);
    assert!(
        metrics
            .render()
            .contains("pushsync_worker_polls_total{result=\"failed\"} 1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_poller_leads_a_standby_takes_over_and_annotations_become_jobs() {
    let setup = Setup::new().await;
    support::install_crds(&setup.sandbox).await;
    let api: Api<Application> = Api::namespaced(setup.sandbox.client(), "default");
    let mut app = application(
        "web",
        "https://example.com/r.git",
        None,
        OperationPhase::Failed,
        false,
    );
    app.metadata.annotations = Some([(SYNC_ANNOTATION.to_owned(), "now".to_owned())].into());
    api.create(&PostParams::default(), &app).await.unwrap();
    let index_stop = CancellationToken::new();
    let index = Index::watch(setup.sandbox.client(), &Namespaces::All, index_stop.clone());
    assert!(index.ready().await);
    let (leader, first) = setup.poller("a", index.clone());
    let (standby, second) = setup.poller("b", index);
    let leader_stop = CancellationToken::new();
    let standby_stop = CancellationToken::new();
    tokio::spawn(leader.run(leader_stop.clone()));
    wait(|| first.poll_leader.get() == 1).await;
    tokio::spawn(standby.run(standby_stop.clone()));

    // The leader turns the annotation into a manual sync job and removes it.
    let job = setup
        .queue
        .pop_from(&Topology::default().jobs_exchange())
        .await;
    let Ok(Message::SyncJobV1(job)) = Message::decode(&job.body) else {
        panic!("not a sync job");
    };
    assert_eq!(job.application.name, "web");
    assert_eq!(
        job.trigger,
        SyncTrigger::Manual {
            requested_by: Some("annotation".into()),
            refresh_only: false,
            revision: None,
            rollback: false,
            resources: Vec::new(),
            prune: None,
        }
    );
    wait_async(|| {
        let api = api.clone();
        async move {
            api.get("web")
                .await
                .unwrap()
                .metadata
                .annotations
                .is_none_or(|a| !a.contains_key(SYNC_ANNOTATION))
        }
    })
    .await;
    assert_eq!(second.poll_leader.get(), 0, "one poller at a time");

    // The leader stops: the standby takes over.
    leader_stop.cancel();
    wait(|| second.poll_leader.get() == 1).await;
    assert_eq!(first.poll_leader.get(), 0);
    standby_stop.cancel();
    index_stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_annotation_names_resources_and_pruning_and_a_malformed_one_is_refused() {
    let setup = Setup::new().await;
    support::install_crds(&setup.sandbox).await;
    let api: Api<Application> = Api::namespaced(setup.sandbox.client(), "default");
    for (name, value) in [
        ("bad", "resource=apps:Deployment"),
        (
            "good",
            "now prune resource=apps:Deployment:web, resource=:ConfigMap:team/settings",
        ),
    ] {
        let mut app = application(
            name,
            "https://example.com/r.git",
            None,
            OperationPhase::Failed,
            false,
        );
        app.metadata.annotations = Some([(SYNC_ANNOTATION.to_owned(), value.to_owned())].into());
        api.create(&PostParams::default(), &app).await.unwrap();
    }
    let index_stop = CancellationToken::new();
    let index = Index::watch(setup.sandbox.client(), &Namespaces::All, index_stop.clone());
    assert!(index.ready().await);
    let (poller, _) = setup.poller("a", index);
    let stop = CancellationToken::new();
    tokio::spawn(poller.run(stop.clone()));

    let job = setup
        .queue
        .pop_from(&Topology::default().jobs_exchange())
        .await;
    let Ok(Message::SyncJobV1(job)) = Message::decode(&job.body) else {
        panic!("not a sync job");
    };
    assert_eq!(job.application.name, "good");
    let SyncTrigger::Manual {
        resources, prune, ..
    } = job.trigger
    else {
        panic!("{:?}", job.trigger);
    };
    assert_eq!(prune, Some(true));
    let names: Vec<_> = resources
        .iter()
        .map(|r| {
            (
                r.group.as_str(),
                r.kind.as_str(),
                r.namespace.as_deref(),
                r.name.as_str(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("apps", "Deployment", None, "web"),
            ("", "ConfigMap", Some("team"), "settings")
        ]
    );

    // The malformed request: an Event says why, the annotation goes, no job.
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(setup.sandbox.client(), "default");
    wait_async(|| {
        let events = events.clone();
        async move {
            events
                .list(&kube::api::ListParams::default().fields("involvedObject.name=bad"))
                .await
                .unwrap()
                .items
                .iter()
                .any(|e| {
                    e.reason.as_deref() == Some("SyncRefused")
                        && e.message
                            .as_deref()
                            .is_some_and(|m| m.contains("\"apps:Deployment\" is not a resource"))
                })
        }
    })
    .await;
    for name in ["bad", "good"] {
        wait_async(|| {
            let api = api.clone();
            async move {
                api.get(name)
                    .await
                    .unwrap()
                    .metadata
                    .annotations
                    .is_none_or(|a| !a.contains_key(SYNC_ANNOTATION))
            }
        })
        .await;
    }
    assert!(
        enqueued(&setup.queue).is_empty(),
        "a refused request enqueues nothing"
    );
    stop.cancel();
    index_stop.cancel();
}

async fn wait(done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "never happened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_async<F: std::future::Future<Output = bool>>(done: impl Fn() -> F) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(std::time::Instant::now() < deadline, "never happened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
