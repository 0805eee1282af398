//! HTTP routes: the webhook endpoints, `/healthz`, `/readyz` and `/metrics`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix_web::http::header::{CONTENT_LENGTH, HeaderMap};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use futures_util::StreamExt;
use jiff::Timestamp;
use pushsync_broker::{Broker, Outgoing};
use pushsync_proto::{Message, PushEvent, Topology};

use crate::Error;
use crate::budget::{BodyBudget, Reservation};
use crate::dedup::Dedup;
use crate::metrics::Metrics;
use crate::providers::{Action, Route, VerifyOptions};
use crate::secrets::SecretStore;

/// Everything a request handler needs, shared by all HTTP workers.
#[derive(Debug)]
pub struct State {
    /// Where events are published.
    pub broker: Broker,
    /// Current webhook secrets.
    pub secrets: SecretStore,
    /// Recently published delivery ids.
    pub dedup: Dedup,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Exchange names.
    pub topology: Topology,
    /// Largest accepted body.
    pub max_body_bytes: usize,
    /// Body bytes all requests together may hold.
    pub body_budget: BodyBudget,
    /// How long a client may take to send a whole body.
    pub request_deadline: Duration,
    /// `Retry-After` on 503.
    pub retry_after: Duration,
    /// Accepted skew of signed timestamps.
    pub timestamp_tolerance: Duration,
    /// Set when shutdown begins, so `/readyz` turns the pod out of rotation.
    pub shutting_down: AtomicBool,
}

/// Register every route.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/hooks/github", web::post().to(github))
        .route("/hooks/gitlab", web::post().to(gitlab))
        .route("/hooks/gitea", web::post().to(gitea))
        .route("/hooks/bitbucket", web::post().to(bitbucket))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}

async fn github(req: HttpRequest, body: web::Payload, state: web::Data<State>) -> HttpResponse {
    handle(Route::Github, req, body, state).await
}

async fn gitlab(req: HttpRequest, body: web::Payload, state: web::Data<State>) -> HttpResponse {
    handle(Route::Gitlab, req, body, state).await
}

async fn gitea(req: HttpRequest, body: web::Payload, state: web::Data<State>) -> HttpResponse {
    handle(Route::Gitea, req, body, state).await
}

async fn bitbucket(req: HttpRequest, body: web::Payload, state: web::Data<State>) -> HttpResponse {
    handle(Route::Bitbucket, req, body, state).await
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(state: web::Data<State>) -> HttpResponse {
    if state.shutting_down.load(Ordering::Relaxed) {
        return HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({ "status": "shutting_down" }));
    }
    if state.broker.is_ready() {
        HttpResponse::Ok().json(serde_json::json!({ "status": "ready" }))
    } else {
        HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({ "status": "broker_unavailable" }))
    }
}

async fn metrics(state: web::Data<State>) -> HttpResponse {
    match state.metrics.render() {
        Ok(text) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(text),
        Err(error) => {
            tracing::error!(error = %error, "rendering metrics failed");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// What a successful request did, for the answer, the log and the metrics.
#[derive(Debug)]
enum Answer {
    Accepted { events: usize },
    Duplicate,
    Ping,
    Ignored,
}

impl Answer {
    fn outcome(&self) -> &'static str {
        match self {
            Self::Accepted { .. } => "accepted",
            Self::Duplicate => "duplicate",
            Self::Ping => "ping",
            Self::Ignored => "ignored",
        }
    }
}

/// What the log line of a request says besides the outcome.
#[derive(Debug, Default)]
struct Seen {
    delivery_id: Option<String>,
    repository: Option<String>,
    git_ref: Option<String>,
}

async fn handle(
    route: Route,
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<State>,
) -> HttpResponse {
    let started = Instant::now();
    let received_at = Timestamp::now();
    let envelope = route.describe(req.headers());
    let mut seen = Seen {
        delivery_id: envelope.delivery_id.clone(),
        ..Seen::default()
    };
    let result = process(route, &envelope, &req, body, &state, received_at, &mut seen).await;
    let elapsed = started.elapsed();
    let (outcome, response) = match &result {
        Ok(answer) => (
            answer.outcome(),
            respond(
                answer,
                seen.delivery_id.as_deref(),
                envelope.event.as_deref(),
            ),
        ),
        Err(error) => (error.kind(), error.error_response()),
    };
    state.metrics.observe_request(
        route.name(),
        envelope.event_label,
        outcome,
        elapsed.as_secs_f64(),
    );
    let status = response.status().as_u16();
    let duration_ms = elapsed.as_micros() as f64 / 1000.0;
    let (delivery_id, repository, git_ref) = (
        seen.delivery_id.as_deref().unwrap_or("-"),
        seen.repository.as_deref().unwrap_or("-"),
        seen.git_ref.as_deref().unwrap_or("-"),
    );
    let event = envelope.event.as_deref().unwrap_or("-");
    match &result {
        Ok(_) => tracing::info!(
            provider = route.name(),
            event,
            delivery_id,
            repository,
            git_ref,
            outcome,
            status,
            duration_ms,
            "webhook handled"
        ),
        // Publish failures are ours to fix: log the whole chain once, here.
        Err(error @ Error::Publish { source, .. }) => tracing::error!(
            provider = route.name(), event, delivery_id, repository, git_ref, outcome, status, duration_ms,
            error = %error, cause = %source, "webhook not stored; the forge will retry"
        ),
        Err(error) => {
            tracing::warn!(provider = route.name(), event, delivery_id, repository, git_ref, outcome, status, duration_ms, error = %error, "webhook rejected")
        }
    }
    response
}

fn respond(answer: &Answer, delivery_id: Option<&str>, event: Option<&str>) -> HttpResponse {
    match answer {
        Answer::Accepted { events } => HttpResponse::Accepted()
            .json(serde_json::json!({ "status": "accepted", "delivery_id": delivery_id, "events": events })),
        Answer::Duplicate => HttpResponse::Ok()
            .json(serde_json::json!({ "status": "duplicate", "delivery_id": delivery_id })),
        Answer::Ping => HttpResponse::Ok().json(serde_json::json!({ "status": "pong" })),
        Answer::Ignored => HttpResponse::Accepted().json(serde_json::json!({ "status": "ignored", "event": event })),
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "one linear pipeline; splitting it would only move the arguments"
)]
async fn process(
    route: Route,
    envelope: &crate::providers::Envelope,
    req: &HttpRequest,
    body: web::Payload,
    state: &State,
    received_at: Timestamp,
    seen: &mut Seen,
) -> Result<Answer, Error> {
    // Only the body read is under the deadline: it is the part the client
    // paces. What follows is bounded without it (verification by the body
    // size, the publish by the broker's confirm timeout), and cutting a
    // publish short would answer an error for an event that may be stored.
    let body = tokio::time::timeout(
        state.request_deadline,
        read_body(
            req.headers(),
            body,
            state.max_body_bytes,
            &state.body_budget,
            state.retry_after,
        ),
    )
    .await
    .map_err(|_elapsed| Error::RequestTimeout {
        deadline: state.request_deadline,
    })??;
    state
        .metrics
        .payload_size
        .with_label_values(&[route.name()])
        .observe(body.len() as f64);

    let options = VerifyOptions {
        timestamp_tolerance: state.timestamp_tolerance,
        now: received_at,
    };
    route.verify(req.headers(), &body, &state.secrets.current(), options)?;

    let delivery_id = envelope
        .delivery_id
        .clone()
        .unwrap_or_else(|| format!("pushsync-{}", uuid::Uuid::new_v4()));
    seen.delivery_id = Some(delivery_id.clone());
    let events = match route.parse(envelope, req.headers(), &body, &delivery_id, received_at)? {
        Action::Ping => return Ok(Answer::Ping),
        Action::Ignore => return Ok(Answer::Ignored),
        Action::Publish(events) => events,
    };
    if let Some(first) = events.first() {
        seen.repository = Some(first.repository.id.to_string());
        seen.git_ref = Some(first.git_ref.full.clone());
    }

    // Only ids the forge chose can repeat; made-up ones are unique anyway.
    let dedup_key = envelope
        .delivery_id
        .as_ref()
        .map(|id| format!("{}:{id}", route.name()));
    if let Some(key) = &dedup_key
        && state.dedup.contains(key, Instant::now())
    {
        return Ok(Answer::Duplicate);
    }

    let messages = outgoing(&state.topology, &delivery_id, &events)?;
    let publish_started = Instant::now();
    let published = state.broker.publish_all(&messages).await;
    let result_label = match &published {
        Ok(()) => "ok",
        Err(error) => error.kind(),
    };
    state
        .metrics
        .publish_histogram(result_label)
        .observe(publish_started.elapsed().as_secs_f64());
    published.map_err(|source| Error::Publish {
        retry_after: state.retry_after,
        source,
    })?;

    for event in &events {
        state
            .metrics
            .events_published
            .with_label_values(&[event.provider.as_str()])
            .inc();
    }
    if let Some(key) = &dedup_key {
        state.dedup.record(key, Instant::now());
    }
    Ok(Answer::Accepted {
        events: events.len(),
    })
}

/// Largest encoded push event published (RabbitMQ's default
/// `max_message_size` is 128 MiB; events are normally a few KiB).
const MAX_EVENT_BYTES: usize = 1024 * 1024;

fn outgoing(
    topology: &Topology,
    delivery_id: &str,
    events: &[PushEvent],
) -> Result<Vec<Outgoing>, Error> {
    let exchange = topology.events_exchange();
    events
        .iter()
        .enumerate()
        .map(|(index, event)| {
            let message = Message::PushV1(event.clone());
            let body = message
                .encode()
                .map_err(|e| Error::malformed(format!("event cannot be encoded: {e}")))?;
            // Paths are bounded already; what is left comes from the
            // payload's names and URLs. Never hand the broker a message it
            // would refuse by closing the shared publish channel.
            if body.len() > MAX_EVENT_BYTES {
                return Err(Error::malformed(format!(
                    "the push event would be {} bytes, more than the {MAX_EVENT_BYTES} an event may carry",
                    body.len()
                )));
            }
            Ok(Outgoing {
                exchange: exchange.clone(),
                routing_key: Topology::push_routing_key(event.provider),
                message_id: if events.len() == 1 {
                    delivery_id.to_owned()
                } else {
                    format!("{delivery_id}#{index}")
                },
                schema: message.schema(),
                body,
            })
        })
        .collect()
}

/// A request body, with the budget it holds until it is dropped.
struct Body<'a> {
    // Fields drop in order: the memory is freed before the budget is.
    bytes: Vec<u8>,
    _reservation: Reservation<'a>,
}

impl std::ops::Deref for Body<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

/// The first buffer of a body of unknown length: enough for most pushes.
const INITIAL_BODY_CAPACITY: usize = 16 * 1024;

/// Read the whole body, refusing more than `limit` bytes (early, from
/// `Content-Length`, when the client declares it) and more than the shared
/// `budget` has room for.
///
/// The budget is charged for the buffer's capacity, which grows by doubling
/// (up to the declared length or the limit) only as bytes arrive: a declared
/// `Content-Length` costs nothing until it is sent.
async fn read_body<'a>(
    headers: &HeaderMap,
    mut payload: web::Payload,
    limit: usize,
    budget: &'a BodyBudget,
    retry_after: Duration,
) -> Result<Body<'a>, Error> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(Error::PayloadTooLarge { limit });
    }
    let ceiling = declared.unwrap_or(limit);
    let busy = || Error::Busy { retry_after };
    let mut reservation = budget.reservation();
    let mut bytes = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(Error::BodyRead)?;
        let needed = bytes.len() + chunk.len();
        if needed > limit {
            return Err(Error::PayloadTooLarge { limit });
        }
        if needed > reservation.bytes() {
            let capacity = needed
                .max(reservation.bytes().saturating_mul(2))
                .max(INITIAL_BODY_CAPACITY)
                .min(ceiling.max(needed));
            reservation
                .grow(capacity - reservation.bytes())
                .map_err(|_exhausted| busy())?;
            // An allocation failure is answered like a full budget rather
            // than aborting the process.
            bytes
                .try_reserve_exact(capacity - bytes.len())
                .map_err(|_| busy())?;
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Body {
        bytes,
        _reservation: reservation,
    })
}
