//! Flags and variables to a validated configuration, and the errors that name them.

use super::*;

#[test]
fn request_asks_for_a_sync_a_refresh_a_revision_or_a_rollback() {
    let trigger = |extra: &[&str]| match config(extra).unwrap().mode {
        Mode::Request { trigger, .. } => trigger,
        Mode::Run(_) => panic!("not a request"),
    };
    let manual =
        |refresh_only, revision: Option<&str>, rollback| pushsync_proto::SyncTrigger::Manual {
            requested_by: Some(format!("cli@{}", default_identity())),
            refresh_only,
            revision: revision.map(str::to_owned),
            rollback,
            resources: Vec::new(),
            prune: None,
        };
    assert_eq!(trigger(&["request", "a/b"]), manual(false, None, false));
    for (flag, prune) in [("--prune", true), ("--no-prune", false)] {
        match trigger(&["request", "a/b", flag]) {
            pushsync_proto::SyncTrigger::Manual { prune: got, .. } => {
                assert_eq!(got, Some(prune), "{flag}");
            }
            other => panic!("{other:?}"),
        }
    }
    match trigger(&[
        "request",
        "a/b",
        "--resource",
        "apps:Deployment:web",
        "--resource",
        ":ConfigMap:team/settings",
    ]) {
        pushsync_proto::SyncTrigger::Manual { resources, .. } => assert_eq!(
            resources,
            [
                pushsync_proto::ResourceSelector::parse("apps:Deployment:web").unwrap(),
                pushsync_proto::ResourceSelector {
                    group: String::new(),
                    kind: "ConfigMap".into(),
                    namespace: Some("team".into()),
                    name: "settings".into(),
                },
            ]
        ),
        other => panic!("{other:?}"),
    }
    let error = config(&["request", "a/b", "--resource", "Deployment/web"]).unwrap_err();
    assert!(error.to_string().contains("[GROUP]:KIND"), "{error}");
    assert_eq!(
        trigger(&["request", "a/b", "--refresh"]),
        manual(true, None, false)
    );
    assert_eq!(
        trigger(&["request", "a/b", "--revision", "v1.2"]),
        manual(false, Some("v1.2"), false)
    );
    assert_eq!(
        trigger(&["request", "a/b", "--rollback", "0d1a26e"]),
        manual(false, Some("0d1a26e"), true)
    );
    for conflicting in [
        &["request", "a/b", "--refresh", "--rollback", "x"][..],
        &["request", "a/b", "--revision", "y", "--rollback", "x"],
        &["request", "a/b", "--prune", "--no-prune"],
        &["request", "a/b", "--refresh", "--prune"],
    ] {
        let mut argv = vec!["pushsync-worker", "--amqp-url", "amqp://h"];
        argv.extend_from_slice(conflicting);
        assert!(Args::try_parse_from(argv).is_err(), "{conflicting:?}");
    }
}

fn config(extra: &[&str]) -> Result<Config, ConfigError> {
    let mut argv = vec!["pushsync-worker", "--amqp-url", "amqp://h"];
    argv.extend_from_slice(extra);
    Args::try_parse_from(argv)
        .map_err(|e| e.to_string())
        .unwrap()
        .into_config()
}

fn run(extra: &[&str]) -> RunConfig {
    match config(extra).unwrap().mode {
        Mode::Run(run) => *run,
        Mode::Request { .. } => panic!("not a run"),
    }
}

#[test]
fn durations_share_one_grammar_and_old_second_counts_still_work() {
    let run = run(&["--health-timeout", "1m30s", "--git-timeout", "45"]);
    assert_eq!(run.health_timeout, Duration::from_secs(90));
    assert_eq!(run.git_timeout, Duration::from_secs(45));
    let config = config(&["--health-timeout-seconds", "20"]).unwrap();
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.starts_with("PUSHSYNC_HEALTH_TIMEOUT_SECONDS is deprecated")),
        "{:?}",
        config.warnings
    );
    let Mode::Run(run) = config.mode else {
        panic!("not a run")
    };
    assert_eq!(run.health_timeout, Duration::from_secs(20));
    assert_eq!(run.git_timeout, Duration::from_secs(120));
    // The new name wins over the old one.
    let run = self::run(&["--health-timeout", "7s", "--health-timeout-seconds", "20"]);
    assert_eq!(run.health_timeout, Duration::from_secs(7));
}

#[test]
fn unusable_values_name_their_variable() {
    let error = config(&["--max-syncs", "0"]).unwrap_err();
    assert!(error.to_string().contains("PUSHSYNC_MAX_SYNCS"), "{error}");
    let error = Args::try_parse_from(["pushsync-worker", "--amqp-url", "http://h"])
        .unwrap()
        .into_config()
        .unwrap_err();
    assert!(error.to_string().contains("PUSHSYNC_AMQP_URL"), "{error}");
    let error = Args::try_parse_from(["pushsync-worker"])
        .unwrap()
        .into_config()
        .unwrap_err();
    assert!(matches!(error, ConfigError::NoAmqpUri), "{error}");
    let error = config(&["request", "no-slash"]).unwrap_err();
    assert!(error.to_string().contains("NAMESPACE/NAME"), "{error}");
    let error = config(&["--git-credentials", "/nonexistent/creds.yaml"]).unwrap_err();
    assert!(
        error.to_string().contains("PUSHSYNC_GIT_CREDENTIALS"),
        "{error}"
    );
    let error = config(&["--helm", "/nonexistent/helm"]).unwrap_err();
    assert!(error.to_string().contains("PUSHSYNC_HELM"), "{error}");
    let error = config(&["--kubectl", "no-such-kubectl-anywhere"]).unwrap_err();
    assert!(error.to_string().contains("PUSHSYNC_KUBECTL"), "{error}");
    let unknown = Args::try_parse_from(["pushsync-worker", "--log-format", "xml"]);
    assert!(unknown.is_err(), "an unknown log format is an error");
    let bad = Args::try_parse_from(["pushsync-worker", "--lock-poll", "5x"]);
    assert!(bad.is_err());
}
