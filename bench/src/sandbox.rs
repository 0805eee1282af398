//! The Kubernetes API sandbox: start-up time, server-side applies per second
//! through `kube`, and `kubectl apply --server-side` of 100 objects.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use pushsync_sandbox::Sandbox;
use serde_json::json;

pub async fn run(window: Duration) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!();
    println!("pushsync bench: Kubernetes API sandbox — {cores} cores");

    let mut startups = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let sandbox = Sandbox::start().await?;
        startups.push(started.elapsed());
        sandbox.stop().await;
    }
    startups.sort();
    println!(
        "  start-up (median of 5): {:.1} ms",
        startups[2].as_secs_f64() * 1000.0
    );

    let sandbox = Sandbox::start().await?;
    let resource = ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(sandbox.client(), "default", &resource);
    for (label, changing) in [("changing", true), ("no-op re-apply", false)] {
        for concurrency in [1usize, 8] {
            let rate = applies(&api, concurrency, window, changing).await?;
            println!(
                "  server-side applies via kube ({label}, {concurrency} in flight): {rate:.0}/s"
            );
        }
    }

    // kubectl apply --server-side of 100 objects, against the same server.
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("objects.yaml");
    let documents: Vec<String> = (0..100)
        .map(|i| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kubectl-{i}\n  labels: {{bench: \"true\"}}\ndata:\n  index: \"{i}\"\n"))
        .collect();
    std::fs::write(&file, documents.join("---\n"))?;
    for round in ["first apply", "re-apply (no change)"] {
        let started = Instant::now();
        let output = tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(sandbox.kubeconfig())
            .args(["apply", "--server-side", "-f"])
            .arg(&file)
            .output()
            .await
            .context("running kubectl")?;
        if !output.status.success() {
            bail!(
                "kubectl apply failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        println!(
            "  kubectl apply --server-side, 100 objects ({round}): {:.0} ms wall",
            started.elapsed().as_secs_f64() * 1000.0
        );
    }
    let requests = sandbox.audit().len();
    println!("  ({requests} requests served in this section)");
    sandbox.stop().await;
    Ok(())
}

async fn applies(
    api: &Api<DynamicObject>,
    concurrency: usize,
    window: Duration,
    changing: bool,
) -> anyhow::Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + window;
    let started = Instant::now();
    let params = PatchParams::apply("bench").force();
    let tasks: Vec<_> = (0..concurrency)
        .map(|task| {
            let (api, done, params) = (api.clone(), done.clone(), params.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let name = format!("bench-{task}-{}", i % 50);
                    let value = if changing { i.to_string() } else { "fixed".to_owned() };
                    let object = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"value": value}});
                    api.patch(&name, &params, &Patch::Apply(object)).await?;
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}
