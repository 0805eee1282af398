//! Paged lists (`limit`/`continue`): every page of a list is read from a
//! copy-on-write snapshot of the first page's objects, continue tokens in
//! the real server's format, 410 Expired after a compaction.

use super::*;

/// How many paged lists can be continued at once (older ones get 410).
const SNAPSHOTS: usize = 64;

/// The objects of one resource as a paged list's first page saw them.
#[derive(Debug)]
pub(super) struct Snapshot {
    rv: u64,
    key: String,
    objects: Arc<Objects>,
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct Page {
    /// The items.
    pub items: Vec<Value>,
    /// The resourceVersion the whole list is consistent at.
    pub rv: u64,
    /// Where the next page starts, when there is one.
    pub continue_token: Option<String>,
    /// How many matching items the later pages hold (not counted with
    /// selectors, as the real server does not).
    pub remaining: Option<u64>,
}

/// The continue token: what the real server puts in it (base64 of JSON).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    v: String,
    rv: i64,
    start: String,
}

fn encode_token(rv: i64, last: &(String, String)) -> String {
    use base64::Engine as _;
    let token = ContinueToken {
        v: "meta.k8s.io/v1".to_owned(),
        rv,
        start: format!("{}/{}\u{0}", last.0, last.1),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&token).unwrap_or_default())
}

/// The resourceVersion and last key of a continue token, or why it does not
/// decode (worded as the real server words it).
fn decode_token(token: &str) -> Result<(i64, (String, String)), String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|e| format!("continue key is not valid: {e}"))?;
    let token: ContinueToken =
        serde_json::from_slice(&bytes).map_err(|e| format!("continue key is not valid: {e}"))?;
    if token.v != "meta.k8s.io/v1" {
        return Err("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)".to_owned());
    }
    let start = token.start.strip_suffix('\u{0}').unwrap_or(&token.start);
    let (namespace, name) = start
        .split_once('/')
        .ok_or_else(|| "continue key is not valid: no key".to_owned())?;
    Ok((token.rv, (namespace.to_owned(), name.to_owned())))
}

impl Store {
    /// A page of the objects matching the selectors: at most `limit`
    /// (`None`: all), continuing after `token` when given, every page
    /// consistent at the first page's resourceVersion. A token whose
    /// snapshot is gone (compacted, or too many lists paged since) is 410
    /// Expired; one that does not decode is 400.
    pub fn list_page(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        limit: Option<usize>,
        token: Option<&str>,
    ) -> Result<Page, ApiError> {
        let mut state = self.lock();
        let key = rt.storage_key();
        // `fresh`: this page starts a consistent list (its snapshot is kept).
        let (rv, objects, after, fresh) = match token.filter(|t| !t.is_empty()) {
            Some(token) => {
                let (rv, last) = decode_token(token).map_err(|why| {
                    ApiError::bad_request(format!("invalid continue token: {why}"))
                })?;
                let snapshot = u64::try_from(rv)
                    .ok()
                    .filter(|rv| *rv >= state.compacted)
                    .and_then(|rv| state.snapshots.iter().find(|s| s.rv == rv && s.key == key));
                match snapshot {
                    Some(snapshot) => (snapshot.rv, snapshot.objects.clone(), Some(last), false),
                    None if rv == -1 => {
                        // The token a 410 hands out: continue with what is there now.
                        let objects = state.objects.get(&key).cloned().unwrap_or_default();
                        (state.rv, objects, Some(last), true)
                    }
                    None => {
                        let mut gone = ApiError::gone(
                            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                        );
                        gone.metadata = Some(json!({"continue": encode_token(-1, &last)}));
                        return Err(gone);
                    }
                }
            }
            None => (
                state.rv,
                state.objects.get(&key).cloned().unwrap_or_default(),
                None,
                true,
            ),
        };
        let range = match &after {
            Some(last) => objects.range((
                std::ops::Bound::Excluded(last.clone()),
                std::ops::Bound::Unbounded,
            )),
            None => objects.range::<(String, String), _>(..),
        };
        let mut matching = range
            .filter(|((ns, _), _)| namespace.is_none_or(|n| n == ns))
            .filter(|(_, o)| labels.matches(o) && fields.matches(o));
        let limit = limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let mut items = Vec::new();
        let mut last = None;
        for (object_key, object) in matching.by_ref().take(limit) {
            items.push(with_version(object, rt));
            last = Some(object_key.clone());
        }
        let remaining = matching.count() as u64;
        if remaining == 0 {
            return Ok(Page {
                items,
                rv,
                continue_token: None,
                remaining: None,
            });
        }
        let continue_token =
            last.map(|last| encode_token(i64::try_from(rv).unwrap_or(i64::MAX), &last));
        if fresh {
            state.snapshots.push_back(Snapshot { rv, key, objects });
            while state.snapshots.len() > SNAPSHOTS {
                state.snapshots.pop_front();
            }
        }
        let selected = !labels.is_empty() || !fields.is_empty();
        Ok(Page {
            items,
            rv,
            continue_token,
            remaining: (!selected).then_some(remaining),
        })
    }

    /// Forget every paged list's snapshot and the watch history, as an etcd
    /// compaction does: continue tokens and watches from before now are 410.
    pub fn compact(&self) {
        let mut state = self.lock();
        state.snapshots.clear();
        state.history.clear();
        state.compacted = state.rv + 1;
    }
}
