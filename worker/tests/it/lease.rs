//! The ticket protocol and leader election against the sandbox's Lease API.

use std::time::Duration;

use pushsync_sandbox::Sandbox;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use pushsync_proto::AppRef;
use pushsync_worker::lease::{Claim, Finish, Leases, Renewal};

fn app() -> AppRef {
    AppRef {
        namespace: "team-a".into(),
        name: "web".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_during_a_sync_are_served_by_one_more_sync() {
    let sandbox = Sandbox::start().await.unwrap();
    let a = Leases::new(
        sandbox.client(),
        "default",
        "worker-a",
        Duration::from_secs(30),
    );
    let b = Leases::new(
        sandbox.client(),
        "default",
        "worker-b",
        Duration::from_secs(30),
    );

    assert_eq!(
        a.request(&app(), Some("c1"), true).await.unwrap(),
        (Claim::Acquired, 1)
    );
    // Two more pushes while a syncs: both wait on one follow-up sync.
    assert_eq!(
        b.request(&app(), Some("c2"), true).await.unwrap(),
        (Claim::Busy { ticket: 2 }, 2)
    );
    assert_eq!(
        b.request(&app(), Some("c3"), true).await.unwrap(),
        (Claim::Busy { ticket: 3 }, 3)
    );
    assert_eq!(
        b.check(&app(), 2, true).await.unwrap(),
        Claim::Busy { ticket: 2 }
    );
    assert_eq!(
        a.renew(&app()).await.unwrap(),
        Renewal::Held {
            newer: Some(Some("c3".into()))
        }
    );
    assert_eq!(a.finish(&app()).await.unwrap(), Finish::Again);
    assert_eq!(
        a.renew(&app()).await.unwrap(),
        Renewal::Held { newer: None }
    );
    assert_eq!(a.finish(&app()).await.unwrap(), Finish::Released);
    assert_eq!(b.check(&app(), 2, true).await.unwrap(), Claim::Covered);
    assert_eq!(b.check(&app(), 3, true).await.unwrap(), Claim::Covered);

    // Free again: the next request takes it.
    assert_eq!(
        b.request(&app(), None, true).await.unwrap(),
        (Claim::Acquired, 4)
    );
    // The same process is no exception: a second job of one worker waits too.
    assert_eq!(
        b.request(&app(), None, true).await.unwrap(),
        (Claim::Busy { ticket: 5 }, 5)
    );
    // A transient failure gives the lock up without serving anything.
    b.abandon(&app()).await.unwrap();
    // A job without a free sync slot keeps its ticket and leaves the lock.
    assert_eq!(b.check(&app(), 5, false).await.unwrap(), Claim::Free);
    assert_eq!(
        a.request(&app(), None, false).await.unwrap(),
        (Claim::Free, 6)
    );
    assert_eq!(b.check(&app(), 5, true).await.unwrap(), Claim::Acquired);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_stops_renewing_loses_the_lock() {
    let sandbox = Sandbox::start().await.unwrap();
    let a = Leases::new(
        sandbox.client(),
        "default",
        "worker-a",
        Duration::from_secs(1),
    );
    let b = Leases::new(
        sandbox.client(),
        "default",
        "worker-b",
        Duration::from_secs(1),
    );
    assert_eq!(
        a.request(&app(), None, true).await.unwrap().0,
        Claim::Acquired
    );
    assert_eq!(
        b.request(&app(), None, true).await.unwrap().0,
        Claim::Busy { ticket: 2 }
    );
    // a "dies": no renewal. b takes over once the lease expired.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match b.check(&app(), 2, true).await.unwrap() {
            Claim::Acquired => break,
            Claim::Busy { .. } => {
                assert!(std::time::Instant::now() < deadline, "never expired");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Claim::Covered | Claim::Free => {
                panic!("nothing served ticket 2, and the lock was taken by acquire")
            }
        }
    }
    assert_eq!(a.renew(&app()).await.unwrap(), Renewal::Lost);
    // a's late finish changes nothing; b's counts.
    assert_eq!(a.finish(&app()).await.unwrap(), Finish::Released);
    assert_eq!(b.finish(&app()).await.unwrap(), Finish::Released);
    assert_eq!(b.check(&app(), 2, true).await.unwrap(), Claim::Covered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_at_a_time_and_a_resignation_hands_over_at_once() {
    let sandbox = Sandbox::start().await.unwrap();
    let a = Leases::new(
        sandbox.client(),
        "default",
        "worker-a",
        Duration::from_secs(30),
    );
    let b = Leases::new(
        sandbox.client(),
        "default",
        "worker-b",
        Duration::from_secs(30),
    );
    assert!(a.lead("poller").await.unwrap());
    assert!(!b.lead("poller").await.unwrap());
    assert!(a.lead("poller").await.unwrap(), "the leader renews");
    a.resign("poller").await.unwrap();
    assert!(b.lead("poller").await.unwrap());
    assert!(!a.lead("poller").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_of_deleted_applications_are_collected_unless_held() {
    let sandbox = Sandbox::start().await.unwrap();
    let a = Leases::new(
        sandbox.client(),
        "default",
        "worker-a",
        Duration::from_secs(30),
    );
    let gone = AppRef {
        namespace: "team-a".into(),
        name: "gone".into(),
    };
    let busy = AppRef {
        namespace: "team-a".into(),
        name: "busy".into(),
    };
    a.request(&gone, None, true).await.unwrap();
    a.finish(&gone).await.unwrap();
    a.request(&busy, None, true).await.unwrap();
    a.request(&app(), None, true).await.unwrap();
    a.finish(&app()).await.unwrap();
    // "web" still exists; "gone" and "busy" do not, but "busy" is held.
    let removed = a.collect(|app| app.name == "web").await.unwrap();
    assert_eq!(removed, 1);
    let api: Api<Lease> = Api::namespaced(sandbox.client(), "default");
    let mut names: Vec<String> = api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|l| l.metadata.name)
        .collect();
    names.sort();
    assert_eq!(names, ["sync.team-a.busy", "sync.team-a.web"]);
}
