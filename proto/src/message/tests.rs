//! Golden-file round trips: the JSON on the queue is a contract, so any change
//! to it shows up here as a diff against a checked-in file.

use std::path::PathBuf;

use jiff::Timestamp;

use super::*;
use crate::{AppRef, ChangedPaths, GitRef, Provider, RepoId, Repository, SyncTrigger};

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("golden")
        .join(name)
}

/// Serialise `message`, compare with the golden file, and decode the golden
/// file back into `message`. Set `PUSHSYNC_UPDATE_GOLDEN=1` to rewrite the files
/// after an intended, backwards-compatible change.
#[track_caller]
fn check_golden(name: &str, message: &Message) {
    let path = golden_path(name);
    let mut encoded = serde_json::to_string_pretty(message).unwrap();
    encoded.push('\n');
    if std::env::var_os("PUSHSYNC_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &encoded).unwrap();
    }
    let golden =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert_eq!(
        encoded, golden,
        "{name} changed: the wire format is a contract"
    );
    let decoded = Message::decode(golden.as_bytes()).unwrap();
    assert_eq!(&decoded, message);
    assert_eq!(decoded.schema(), message.schema());
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn sample_push() -> PushEvent {
    PushEvent {
        provider: Provider::Github,
        delivery_id: "72d3162e-cc78-11e3-81ab-4c9367dc0958".into(),
        repository: Repository {
            id: RepoId::parse("https://github.com/Example/Manifests.git").unwrap(),
            full_name: "Example/Manifests".into(),
            clone_urls: vec![
                "https://github.com/Example/Manifests.git".into(),
                "git@github.com:Example/Manifests.git".into(),
            ],
            web_url: Some("https://github.com/Example/Manifests".into()),
        },
        git_ref: GitRef::branch("main"),
        before: Some("6113728f27ae82c7b1a177c8d03f9e96e0adf246".into()),
        after: Some("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c".into()),
        created: false,
        deleted: false,
        forced: false,
        changed_paths: ChangedPaths::complete(["apps/guestbook/deployment.yaml", "README.md"]),
        pusher: Some("octocat".into()),
        received_at: ts("2026-11-23T10:00:00.123Z"),
    }
}

#[test]
fn push_event_v1_matches_golden_file() {
    check_golden("push-v1.json", &Message::PushV1(sample_push()));
}

#[test]
fn deleted_tag_push_v1_matches_golden_file() {
    let event = PushEvent {
        provider: Provider::Gitlab,
        git_ref: GitRef::tag("v1.0.0"),
        before: Some("6113728f27ae82c7b1a177c8d03f9e96e0adf246".into()),
        after: None,
        deleted: true,
        changed_paths: ChangedPaths::default(),
        pusher: None,
        ..sample_push()
    };
    check_golden("push-v1-tag-deleted.json", &Message::PushV1(event));
}

#[test]
fn sync_job_v1_matches_golden_file() {
    let job = SyncJob {
        job_id: "5f0c6a55-3a51-4b8e-9d2f-2b1b3c4d5e6f".into(),
        application: AppRef {
            namespace: "pushsync".into(),
            name: "guestbook".into(),
        },
        trigger: SyncTrigger::Push {
            delivery_id: "72d3162e-cc78-11e3-81ab-4c9367dc0958".into(),
            revision: Some("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c".into()),
            received_at: ts("2026-11-23T10:00:00.123Z"),
        },
        requested_at: ts("2026-11-23T10:00:00.200Z"),
        failures: 0,
    };
    check_golden("sync-job-v1.json", &Message::SyncJobV1(job));
}

#[test]
fn a_manual_trigger_from_before_refreshes_existed_is_a_sync() {
    let old = r#"{"kind":"manual","requested_by":"alice"}"#;
    let trigger: SyncTrigger = serde_json::from_str(old).unwrap();
    assert_eq!(
        trigger,
        SyncTrigger::Manual {
            requested_by: Some("alice".into()),
            refresh_only: false,
            revision: None,
            rollback: false,
            resources: Vec::new(),
            prune: None,
        }
    );
}

#[test]
fn sync_job_triggers_round_trip() {
    for trigger in [
        SyncTrigger::Poll,
        SyncTrigger::SelfHeal,
        SyncTrigger::Manual {
            requested_by: Some("alice".into()),
            refresh_only: false,
            revision: None,
            rollback: false,
            resources: Vec::new(),
            prune: None,
        },
        SyncTrigger::Manual {
            requested_by: None,
            refresh_only: true,
            revision: None,
            rollback: false,
            resources: Vec::new(),
            prune: None,
        },
        SyncTrigger::Manual {
            requested_by: Some("annotation".into()),
            refresh_only: false,
            revision: Some("0d1a26e".into()),
            rollback: true,
            resources: Vec::new(),
            prune: None,
        },
    ] {
        let job = Message::SyncJobV1(SyncJob {
            job_id: "j".into(),
            application: AppRef {
                namespace: "n".into(),
                name: "a".into(),
            },
            trigger,
            requested_at: ts("2026-01-01T00:00:00Z"),
            failures: 0,
        });
        assert_eq!(Message::decode(&job.encode().unwrap()).unwrap(), job);
    }
}

#[test]
fn fields_added_by_a_newer_v1_producer_are_ignored() {
    let mut value: serde_json::Value =
        serde_json::from_slice(&Message::PushV1(sample_push()).encode().unwrap()).unwrap();
    value["added_in_a_later_release"] = serde_json::json!({"x": 1});
    let decoded = Message::decode(&serde_json::to_vec(&value).unwrap()).unwrap();
    assert_eq!(decoded, Message::PushV1(sample_push()));
}

#[test]
fn optional_fields_may_be_absent() {
    let mut value: serde_json::Value =
        serde_json::from_slice(&Message::PushV1(sample_push()).encode().unwrap()).unwrap();
    value.as_object_mut().unwrap().remove("pusher");
    let decoded = Message::decode(&serde_json::to_vec(&value).unwrap()).unwrap();
    assert_eq!(
        decoded,
        Message::PushV1(PushEvent {
            pusher: None,
            ..sample_push()
        })
    );
}

#[test]
fn unknown_schemas_and_garbage_are_told_apart() {
    let err = Message::decode(br#"{"schema":"push/v2","provider":"github"}"#).unwrap_err();
    assert!(
        matches!(err, DecodeError::UnknownSchema { ref schema } if schema == "push/v2"),
        "{err:?}"
    );

    let err = Message::decode(br#"{"schema":"push/v1","provider":"github"}"#).unwrap_err();
    assert!(
        matches!(err, DecodeError::Invalid { ref schema, .. } if schema == "push/v1"),
        "{err:?}"
    );

    for garbage in [&b"not json"[..], b"[]", b"{}", b"{\"schema\": 1}", b""] {
        let err = Message::decode(garbage).unwrap_err();
        assert!(matches!(err, DecodeError::NotAnEnvelope(_)), "{err:?}");
    }
}
