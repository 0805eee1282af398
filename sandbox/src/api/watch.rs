//! Watch streams: newline-delimited JSON events, the current objects first
//! (or the history after a resourceVersion), until the timeout.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use bytes::Bytes;
use serde_json::{Value, json};

use super::Shared;
use crate::registry::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::WatchEvent;

/// A watch stream: newline-delimited JSON events until the timeout.
pub(super) fn watch(
    shared: web::Data<Shared>,
    rt: ResourceType,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    query: &BTreeMap<String, String>,
    table: bool,
) -> Result<HttpResponse, ApiError> {
    let since = query
        .get("resourceVersion")
        .filter(|v| !v.is_empty() && *v != "0");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    let store = &shared.store;
    let (initial, receiver) = match since {
        Some(since) => {
            let since: u64 = since
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {since:?}")))?;
            let (replay, receiver) = store.watch_from(since)?;
            (replay, receiver)
        }
        None => {
            // Current objects first, as ADDED, then changes after them.
            let rv = store.resource_version();
            let (replay, receiver) = store.watch_from(rv)?;
            let (items, _) = store.list(&rt, namespace.as_deref(), &labels, &fields);
            let mut initial: Vec<Arc<WatchEvent>> = items
                .into_iter()
                .map(|object| {
                    Arc::new(WatchEvent {
                        rv,
                        kind: "ADDED",
                        key: rt.storage_key(),
                        object,
                    })
                })
                .collect();
            initial.extend(replay);
            (initial, receiver)
        }
    };
    let filter = Arc::new(move |event: &WatchEvent| -> Option<Bytes> {
        if event.key != rt.storage_key() {
            return None;
        }
        let object = &event.object;
        let ns = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if namespace.as_deref().is_some_and(|n| n != ns)
            || !labels.matches(object)
            || !fields.matches(object)
        {
            return None;
        }
        let mut object = object.clone();
        object["apiVersion"] = json!(rt.api_version());
        let object = if table {
            let rv = event.rv;
            crate::discovery::table(&rt, std::slice::from_ref(&object), rv)
        } else {
            object
        };
        let mut line = serde_json::to_vec(&json!({"type": event.kind, "object": object})).ok()?;
        line.push(b'\n');
        Some(Bytes::from(line))
    });
    let deadline = tokio::time::Instant::now() + timeout;
    struct WatchState {
        initial: std::vec::IntoIter<Arc<WatchEvent>>,
        receiver: tokio::sync::broadcast::Receiver<Arc<WatchEvent>>,
        last_rv: u64,
        done: bool,
    }
    let state = WatchState {
        initial: initial.into_iter(),
        receiver,
        last_rv: 0,
        done: false,
    };
    let stream = futures_util::stream::unfold(state, move |mut state| {
        let filter = filter.clone();
        async move {
            if state.done {
                return None;
            }
            loop {
                if let Some(event) = state.initial.next() {
                    state.last_rv = state.last_rv.max(event.rv);
                    if let Some(line) = filter(&event) {
                        return Some((Ok::<_, actix_web::Error>(line), state));
                    }
                    continue;
                }
                let next = tokio::time::timeout_at(deadline, state.receiver.recv()).await;
                match next {
                    Ok(Ok(event)) => {
                        if event.rv <= state.last_rv {
                            continue;
                        }
                        state.last_rv = event.rv;
                        if let Some(line) = filter(&event) {
                            return Some((Ok(line), state));
                        }
                    }
                    // Lagged: the client must re-list, as after a real 410.
                    Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {
                        let gone = json!({"type": "ERROR", "object": ApiError::gone("watch fell behind; re-list").status()});
                        let mut line = serde_json::to_vec(&gone).unwrap_or_default();
                        line.push(b'\n');
                        state.done = true;
                        return Some((Ok(Bytes::from(line)), state));
                    }
                    Ok(Err(_)) | Err(_) => return None,
                }
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .streaming(stream))
}
