//! The worker's own HTTP endpoint (actix-web): `/metrics` (Prometheus text),
//! `/healthz` (the process answers) and `/readyz` (the Application index has
//! its first listing and the worker is not shutting down).

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::{App, HttpResponse, HttpServer, web};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Whether the worker is ready; set once the index is ready, cleared on
/// shutdown.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Record whether the worker is ready.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }

    fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Serve the endpoint on `listener` until `stop`.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    ready: Readiness,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(metrics.clone()))
            .app_data(web::Data::new(ready.clone()))
            .route("/metrics", web::get().to(exposition))
            .route(
                "/healthz",
                web::get().to(|| async { HttpResponse::Ok().body("ok") }),
            )
            .route("/readyz", web::get().to(readiness))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::spawn(async move {
        stop.cancelled().await;
        handle.stop(true).await;
    });
    server.await
}

async fn exposition(metrics: web::Data<Metrics>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(metrics.render())
}

async fn readiness(ready: web::Data<Readiness>) -> HttpResponse {
    if ready.get() {
        HttpResponse::Ok().body("ready")
    } else {
        HttpResponse::ServiceUnavailable().body("not ready")
    }
}
