//! The worker's loops wired as one: dispatch, the syncer, and — when
//! polling — the poller with its drift watch, all fed by one Application
//! index. `main.rs`, `pushsync-local` and the benchmark start the same thing.

use std::sync::Arc;
use std::time::Duration;

use pushsync_broker::Broker;
use pushsync_proto::{AppRef, Topology};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::drift::DriftWatch;
use crate::index::ClusterIndex;
use crate::lease::Leases;
use crate::metrics::Metrics;
use crate::pipeline::dispatch_loop;
use crate::poll::{AppsFn, PollSettings, Poller};
use crate::sync::SyncContext;
use crate::syncer::{SyncSettings, Syncer};

/// Everything a worker runs with.
#[derive(Clone)]
pub struct Parts {
    /// The queue.
    pub broker: Broker,
    /// Its exchange and queue names.
    pub topology: Topology,
    /// The cluster.
    pub client: kube::Client,
    /// What a sync needs.
    pub ctx: SyncContext,
    /// The Applications known.
    pub index: ClusterIndex,
    /// Sync locks and leader election.
    pub leases: Leases,
    /// Metrics.
    pub metrics: Metrics,
    /// Push events handled at once.
    pub dispatch_prefetch: u16,
    /// The sync side.
    pub sync: SyncSettings,
    /// The fallback poll, manual triggers and fast self-heal; `None` runs
    /// none of them.
    pub poll: Option<PollSettings>,
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parts")
            .field("topology", &self.topology)
            .field("sync", &self.sync)
            .field("poll", &self.poll)
            .finish_non_exhaustive()
    }
}

impl Parts {
    /// Start every loop; the handles finish once `stop` is cancelled (the
    /// syncer after its drain).
    pub fn spawn(self, stop: &CancellationToken) -> Vec<JoinHandle<()>> {
        let index = self.index;
        let apps: AppsFn = {
            let index = index.clone();
            Arc::new(move || index.applications())
        };
        let mut handles = vec![tokio::spawn(dispatch_loop(
            self.broker.clone(),
            self.topology.clone(),
            self.dispatch_prefetch,
            {
                let index = index.clone();
                move || index.sources()
            },
            self.client.clone(),
            self.metrics.clone(),
            stop.clone(),
        ))];
        if let Some(settings) = self.poll {
            let poller = Poller::new(
                self.broker.clone(),
                self.topology.clone(),
                self.ctx.git.clone(),
                apps.clone(),
                self.client.clone(),
                self.leases.clone(),
                self.metrics.clone(),
                settings,
            );
            handles.push(tokio::spawn(
                DriftWatch::new(
                    self.broker.clone(),
                    self.topology.clone(),
                    self.client.clone(),
                    apps.clone(),
                    poller.leading(),
                    self.metrics.clone(),
                )
                .run(stop.clone()),
            ));
            handles.push(tokio::spawn(poller.run(stop.clone())));
        }
        handles.push(tokio::spawn({
            let (metrics, stop) = (self.metrics.clone(), stop.clone());
            async move {
                loop {
                    metrics.count_applications(apps().iter().map(|a| a.as_ref()));
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(15)) => {}
                    }
                }
            }
        }));
        handles.push(tokio::spawn(
            Syncer::new(
                self.broker,
                self.topology,
                self.ctx,
                self.client,
                self.leases,
                self.metrics,
                self.sync,
            )
            .with_index(Arc::new(move |app: &AppRef| index.get(app)))
            .run(stop.clone()),
        ));
        handles
    }
}
