//! `decide` as a table: one row per branch, each row an instance (wanted
//! state, reported state, docker id), the container docker shows (none,
//! stopped, running), what the agent remembers (drain deadline relative to
//! *now*, pull status) and the step expected.

use std::collections::BTreeMap;

use super::*;

#[derive(Default)]
struct Row {
    what: &'static str,
    /// `desired_state`.
    want: &'static str,
    /// `state` as last reported.
    state: &'static str,
    /// The instance's docker id, as the server knows it.
    external_id: Option<&'static str>,
    /// The container `c1`: `Some(running)`, or none.
    container: Option<bool>,
    drain_timeout_ms: u64,
    /// Drain deadline relative to now (negative: passed).
    drain_left_ms: Option<i64>,
    pull_always: bool,
    pull: PullStatus,
    step: Step,
}

fn stop(ends_drain: bool) -> Step {
    Step::Stop {
        id: "c1".into(),
        ends_drain,
    }
}

fn remove(ends_drain: bool) -> Step {
    Step::Remove {
        id: "c1".into(),
        ends_drain,
    }
}

fn said(state: &'static str, id: Option<&str>, message: Option<&'static str>) -> Step {
    Step::Report {
        state,
        external_id: id.map(str::to_string),
        message,
    }
}

const GONE: Option<&str> = Some("container removed outside ros");
const STOPPED: Option<&str> = Some("container stopped outside ros");

fn rows() -> Vec<Row> {
    vec![
        // removed
        Row {
            what: "removed with a container: remove it",
            want: "removed",
            state: "running",
            external_id: Some("c1"),
            container: Some(false),
            step: remove(false),
            ..Default::default()
        },
        Row {
            what: "removed, container running, no drain: remove at once",
            want: "removed",
            state: "removing",
            external_id: Some("c1"),
            container: Some(true),
            step: remove(false),
            ..Default::default()
        },
        Row {
            what: "removed without a container: report removed",
            want: "removed",
            state: "removing",
            external_id: Some("c1"),
            step: said("removed", None, None),
            ..Default::default()
        },
        // running, no container
        Row {
            what: "new instance: create and start",
            want: "running",
            state: "requested",
            step: Step::CreateAndStart,
            ..Default::default()
        },
        Row {
            what: "creating with a docker id already: still fresh",
            want: "running",
            state: "creating",
            external_id: Some("c1"),
            step: Step::CreateAndStart,
            ..Default::default()
        },
        Row {
            what: "no docker id yet, whatever the state: fresh",
            want: "running",
            state: "starting",
            step: Step::CreateAndStart,
            ..Default::default()
        },
        Row {
            what: "running instance whose container vanished",
            want: "running",
            state: "running",
            external_id: Some("c1"),
            step: said("removed", None, GONE),
            ..Default::default()
        },
        // stopped, no container
        Row {
            what: "new instance wanted stopped: create only",
            want: "stopped",
            state: "requested",
            step: Step::Create,
            ..Default::default()
        },
        Row {
            what: "stopped instance whose container vanished",
            want: "stopped",
            state: "stopped",
            external_id: Some("c1"),
            step: said("removed", None, GONE),
            ..Default::default()
        },
        // running, stopped container
        Row {
            what: "starting with a created container: start it",
            want: "running",
            state: "starting",
            external_id: Some("c1"),
            container: Some(false),
            step: Step::Start { id: "c1".into() },
            ..Default::default()
        },
        Row {
            what: "requested with a leftover container: start it",
            want: "running",
            state: "requested",
            container: Some(false),
            step: Step::Start { id: "c1".into() },
            ..Default::default()
        },
        Row {
            what: "restarting a stopped container: start it",
            want: "running",
            state: "restarting",
            external_id: Some("c1"),
            container: Some(false),
            step: Step::Start { id: "c1".into() },
            ..Default::default()
        },
        Row {
            what: "running instance whose container stopped: report it",
            want: "running",
            state: "running",
            external_id: Some("c1"),
            container: Some(false),
            step: said("stopped", Some("c1"), STOPPED),
            ..Default::default()
        },
        Row {
            // As the code has always done: no start, a `running` report.
            what: "wanted running, reported stopped, container stopped",
            want: "running",
            state: "stopped",
            external_id: Some("c1"),
            container: Some(false),
            step: said("running", Some("c1"), None),
            ..Default::default()
        },
        // running, running container
        Row {
            what: "restarting a running container: restart it",
            want: "running",
            state: "restarting",
            external_id: Some("c1"),
            container: Some(true),
            step: Step::Restart { id: "c1".into() },
            ..Default::default()
        },
        Row {
            what: "running container, instance says starting: report running",
            want: "running",
            state: "starting",
            external_id: Some("c1"),
            container: Some(true),
            step: said("running", Some("c1"), None),
            ..Default::default()
        },
        Row {
            what: "running as wanted: nothing to do",
            want: "running",
            state: "running",
            external_id: Some("c1"),
            container: Some(true),
            ..Default::default()
        },
        // stopped
        Row {
            what: "stop a running container",
            want: "stopped",
            state: "stopping",
            external_id: Some("c1"),
            container: Some(true),
            step: stop(false),
            ..Default::default()
        },
        Row {
            what: "stopped container, instance says stopping: report stopped",
            want: "stopped",
            state: "stopping",
            external_id: Some("c1"),
            container: Some(false),
            step: said("stopped", Some("c1"), None),
            ..Default::default()
        },
        Row {
            what: "stopped as wanted: nothing to do",
            want: "stopped",
            state: "stopped",
            external_id: Some("c1"),
            container: Some(false),
            ..Default::default()
        },
        // states the agent does not act on
        Row {
            what: "unknown wanted state with a container: nothing",
            want: "purged",
            state: "removed",
            external_id: Some("c1"),
            container: Some(true),
            ..Default::default()
        },
        Row {
            what: "unknown wanted state without a container: nothing",
            want: "",
            state: "requested",
            ..Default::default()
        },
        // drains
        Row {
            what: "drain: first look sets the deadline",
            want: "stopped",
            state: "stopping",
            external_id: Some("c1"),
            container: Some(true),
            drain_timeout_ms: 150,
            step: Step::StartDrain {
                until: now() + Duration::from_millis(150),
            },
            ..Default::default()
        },
        Row {
            what: "drain: deadline ahead, wait",
            want: "stopped",
            state: "stopping",
            external_id: Some("c1"),
            container: Some(true),
            drain_timeout_ms: 150,
            drain_left_ms: Some(1),
            step: Step::Draining,
            ..Default::default()
        },
        Row {
            what: "drain: deadline reached, stop and forget it",
            want: "stopped",
            state: "stopping",
            external_id: Some("c1"),
            container: Some(true),
            drain_timeout_ms: 150,
            drain_left_ms: Some(0),
            step: stop(true),
            ..Default::default()
        },
        Row {
            what: "drain before remove: wait",
            want: "removed",
            state: "removing",
            external_id: Some("c1"),
            container: Some(true),
            drain_timeout_ms: 150,
            drain_left_ms: Some(100),
            step: Step::Draining,
            ..Default::default()
        },
        Row {
            what: "drain before remove: passed, remove and forget it",
            want: "removed",
            state: "removing",
            external_id: Some("c1"),
            container: Some(true),
            drain_timeout_ms: 150,
            drain_left_ms: Some(-5),
            step: remove(true),
            ..Default::default()
        },
        Row {
            what: "drain: a stopped container needs none",
            want: "stopped",
            state: "stopping",
            external_id: Some("c1"),
            container: Some(false),
            drain_timeout_ms: 150,
            step: said("stopped", Some("c1"), None),
            ..Default::default()
        },
        Row {
            what: "drain: a deadline left over while wanted running is ignored",
            want: "running",
            state: "running",
            external_id: Some("c1"),
            container: Some(true),
            drain_timeout_ms: 150,
            drain_left_ms: Some(100),
            ..Default::default()
        },
        // pull_image: always
        Row {
            what: "pull always: start the pull before the create",
            want: "running",
            state: "requested",
            pull_always: true,
            step: Step::StartPull,
            ..Default::default()
        },
        Row {
            what: "pull always: still pulling",
            want: "running",
            state: "requested",
            pull_always: true,
            pull: PullStatus::Pulling,
            step: Step::Pulling,
            ..Default::default()
        },
        Row {
            what: "pull always: failed, the instance errs",
            want: "running",
            state: "requested",
            pull_always: true,
            pull: PullStatus::Failed("pull busybox: denied".into()),
            step: Step::PullFailed("pull busybox: denied".into()),
            ..Default::default()
        },
        Row {
            what: "pull always: pulled, create and start",
            want: "running",
            state: "requested",
            pull_always: true,
            pull: PullStatus::Pulled,
            step: Step::CreateAndStart,
            ..Default::default()
        },
        Row {
            what: "pull always: pulled, create wanted stopped",
            want: "stopped",
            state: "requested",
            pull_always: true,
            pull: PullStatus::Pulled,
            step: Step::Create,
            ..Default::default()
        },
        Row {
            what: "pull always: no pull for an existing container",
            want: "running",
            state: "starting",
            external_id: Some("c1"),
            container: Some(false),
            pull_always: true,
            step: Step::Start { id: "c1".into() },
            ..Default::default()
        },
        Row {
            what: "pull always: no pull for a vanished container",
            want: "running",
            state: "running",
            external_id: Some("c1"),
            pull_always: true,
            step: said("removed", None, GONE),
            ..Default::default()
        },
        Row {
            what: "pull always: no pull before a remove",
            want: "removed",
            state: "removing",
            pull_always: true,
            step: said("removed", None, None),
            ..Default::default()
        },
    ]
}

/// One fixed instant: `decide` never reads the clock, so rows may name
/// deadlines relative to it.
fn now() -> Instant {
    static NOW: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *NOW.get_or_init(Instant::now)
}

fn at(left_ms: i64) -> Instant {
    let d = Duration::from_millis(left_ms.unsigned_abs());
    if left_ms >= 0 {
        now() + d
    } else {
        now() - d
    }
}

#[test]
fn decide_covers_every_branch() {
    for r in rows() {
        let d = DesiredInstance {
            id: "1i1".into(),
            docker_name: "r-a-web-1".into(),
            image: "busybox".into(),
            desired_state: r.want.into(),
            state: r.state.into(),
            external_id: r.external_id.map(str::to_string),
            drain_timeout_ms: r.drain_timeout_ms,
            labels: if r.pull_always {
                BTreeMap::from([(LABEL_PULL_IMAGE.to_string(), "always".to_string())])
            } else {
                BTreeMap::new()
            },
            ..DesiredInstance::default()
        };
        let a = r.container.map(|running| Actual {
            id: "c1".into(),
            running,
        });
        let progress = Progress {
            drain_until: r.drain_left_ms.map(at),
            pull: r.pull,
        };
        assert_eq!(
            decide(&d, a.as_ref(), &progress, now()),
            r.step,
            "{}",
            r.what
        );
    }
}

#[test]
fn pull_label_must_say_always() {
    let d = DesiredInstance {
        id: "1i1".into(),
        desired_state: "running".into(),
        state: "requested".into(),
        labels: BTreeMap::from([(LABEL_PULL_IMAGE.to_string(), "never".to_string())]),
        ..DesiredInstance::default()
    };
    assert_eq!(
        decide(&d, None, &Progress::default(), now()),
        Step::CreateAndStart
    );
}

#[test]
fn orphans_are_containers_no_instance_wants() {
    let actual = HashMap::from([
        (
            "1i1".to_string(),
            Actual {
                id: "c1".into(),
                running: true,
            },
        ),
        (
            "1i2".to_string(),
            Actual {
                id: "c2".into(),
                running: false,
            },
        ),
    ]);
    let desired = vec![DesiredInstance {
        id: "1i1".into(),
        ..DesiredInstance::default()
    }];
    let o = orphans(&desired, &actual);
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].0, "1i2");
    assert_eq!(o[0].1.id, "c2");
    assert_eq!(orphans(&[], &actual).len(), 2);
}
