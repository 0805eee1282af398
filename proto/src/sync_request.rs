//! The value of the `pushsync.dev/sync` annotation: the contract between
//! whoever asks for a sync (the `pushsync` CLI, a person with `kubectl
//! annotate`, the UI) and the worker that turns it into a sync job.
//!
//! Words separated by spaces or commas: `resource=[GROUP]:KIND:[NAMESPACE/]NAME`
//! (repeatable; as `argocd app sync --resource` writes it), `prune=true` /
//! `prune=false` (also `prune` and `no-prune`), `revision=REV`. Any other
//! word without `=` (`now`, a timestamp) only makes the value new, so the
//! same request can be made again. Everything else is refused whole.

use std::fmt;

use crate::ResourceSelector;

/// What a `pushsync.dev/sync` annotation asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncRequest {
    /// Apply only these (empty: all).
    pub resources: Vec<ResourceSelector>,
    /// Prune (or not) regardless of `automated.prune`; `None`: as it says.
    pub prune: Option<bool>,
    /// Sync this revision instead of the one `targetRevision` names.
    pub revision: Option<String>,
}

impl SyncRequest {
    /// Read an annotation value; the error says which word is wrong and why.
    pub fn parse(value: &str) -> Result<Self, String> {
        fn prune(request: &mut SyncRequest, wanted: bool) -> Result<(), String> {
            match request.prune {
                Some(asked) if asked != wanted => Err("prune is asked both on and off".to_owned()),
                _ => {
                    request.prune = Some(wanted);
                    Ok(())
                }
            }
        }
        let mut request = Self::default();
        for word in value
            .split([',', ' ', '\t', '\n'])
            .filter(|w| !w.is_empty())
        {
            match word.split_once('=') {
                Some(("resource", selector)) => {
                    let selector = ResourceSelector::parse(selector).ok_or_else(|| {
                        format!("{selector:?} is not a resource: write resource=[GROUP]:KIND:[NAMESPACE/]NAME")
                    })?;
                    request.resources.push(selector);
                }
                Some(("prune", "true")) => prune(&mut request, true)?,
                Some(("prune", "false")) => prune(&mut request, false)?,
                Some(("prune", other)) => {
                    return Err(format!("prune={other:?}: prune is true or false"));
                }
                Some(("revision", revision)) => {
                    if revision.is_empty() || revision.len() > 255 || request.revision.is_some() {
                        return Err(format!(
                            "revision={revision:?}: one commit, branch or tag of at most 255 characters"
                        ));
                    }
                    request.revision = Some(revision.to_owned());
                }
                Some((key, _)) => {
                    return Err(format!(
                        "{key:?} is not a sync option (resource, prune, revision)"
                    ));
                }
                None if word == "prune" => prune(&mut request, true)?,
                None if word == "no-prune" => prune(&mut request, false)?,
                // A resource written without `resource=` would otherwise be
                // taken for a nonce, and everything would sync.
                None if ResourceSelector::parse(word)
                    .is_some_and(|s| s.kind.starts_with(|c: char| c.is_ascii_uppercase())) =>
                {
                    return Err(format!("{word:?}: write resource={word}"));
                }
                None => {}
            }
        }
        Ok(request)
    }

    /// The annotation value asking for this, made new by `nonce` (which
    /// must hold no `=`, space or comma).
    pub fn annotation(&self, nonce: &str) -> String {
        let mut words = vec![nonce.to_owned()];
        words.extend(self.resources.iter().map(|r| format!("resource={r}")));
        if let Some(prune) = self.prune {
            words.push(format!("prune={prune}"));
        }
        if let Some(revision) = &self.revision {
            words.push(format!("revision={revision}"));
        }
        words.join(" ")
    }
}

impl fmt::Display for ResourceSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:", self.group, self.kind)?;
        if let Some(namespace) = &self.namespace {
            write!(f, "{namespace}/")?;
        }
        f.write_str(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_ask_for_a_whole_sync() {
        for plain in ["", "now", "true", "1764633600", "2026-12-02T10:00:00.123Z"] {
            assert_eq!(
                SyncRequest::parse(plain),
                Ok(SyncRequest::default()),
                "{plain:?}"
            );
        }
    }

    #[test]
    fn a_value_round_trips_through_its_annotation() {
        let request = SyncRequest {
            resources: vec![
                ResourceSelector::parse("apps:Deployment:web").unwrap(),
                ResourceSelector::parse(":ConfigMap:team/settings").unwrap(),
            ],
            prune: Some(false),
            revision: Some("v1.2".to_owned()),
        };
        let value = request.annotation("2026-12-02T10:00:00Z");
        assert_eq!(
            value,
            "2026-12-02T10:00:00Z resource=apps:Deployment:web resource=:ConfigMap:team/settings prune=false revision=v1.2"
        );
        assert_eq!(SyncRequest::parse(&value), Ok(request));
        assert_eq!(
            SyncRequest::parse("prune,resource=:Service:api")
                .unwrap()
                .prune,
            Some(true)
        );
    }

    #[test]
    fn malformed_words_are_refused_whole() {
        for (bad, says) in [
            ("resource=Deployment:web", "is not a resource"),
            ("resource=apps::web", "is not a resource"),
            ("prune=yes", "prune is true or false"),
            ("prune no-prune", "both on and off"),
            ("revision=", "one commit"),
            ("revision=a revision=b", "one commit"),
            ("force=true", "is not a sync option"),
            ("apps:Deployment:web", "write resource=apps:Deployment:web"),
        ] {
            let error = SyncRequest::parse(bad).unwrap_err();
            assert!(error.contains(says), "{bad:?}: {error}");
        }
    }
}
