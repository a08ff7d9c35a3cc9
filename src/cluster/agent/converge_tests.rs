//! Converge passes over the recording fake runtime: the docker calls made
//! for each step, the reports sent on the way and at the end, errors,
//! orphans, drains and pulls across passes. Plus the background pull
//! through the real bollard runtime, against an engine that is not there.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use super::*;
use crate::cluster::agent::decide::LABEL_PULL_IMAGE;
use crate::cluster::agent::fake::FakeRuntime;
use crate::cluster::agent::runtime::DockerRuntime;

fn inst(id: &str, want: &str, state: &str, external_id: Option<&str>) -> DesiredInstance {
    DesiredInstance {
        id: id.into(),
        docker_name: format!("r-{id}"),
        image: "busybox".into(),
        desired_state: want.into(),
        state: state.into(),
        external_id: external_id.map(str::to_string),
        ..DesiredInstance::default()
    }
}

/// `(instance, state, docker id, message)` of reports, sorted: instances
/// converge side by side, so only each instance's own order is fixed.
type Seen = (String, String, Option<String>, Option<String>);

fn seen(reports: &[Report]) -> Vec<Seen> {
    let mut v: Vec<Seen> = reports
        .iter()
        .map(|r| {
            (
                r.instance_id.clone(),
                r.state.clone(),
                r.external_id.clone(),
                r.message.clone(),
            )
        })
        .collect();
    v.sort();
    v
}

fn row(i: &str, state: &str, id: Option<&str>, message: Option<&str>) -> Seen {
    (
        i.into(),
        state.into(),
        id.map(str::to_string),
        message.map(str::to_string),
    )
}

/// One pass over `rt`: `(final reports, reports sent on the way)`.
async fn pass(
    rt: &FakeRuntime,
    desired: &[DesiredInstance],
    local: &mut Local,
) -> (Vec<Report>, Vec<Report>) {
    let sent = Mutex::new(Vec::new());
    let send = |r: Vec<Report>| sent.lock().unwrap().extend(r);
    let out = converge(rt, "1h1", desired, local, &send).await.unwrap();
    (out, sent.into_inner().unwrap())
}

#[tokio::test]
async fn converge_carries_out_each_step_through_the_runtime() {
    let rt = FakeRuntime::default();
    rt.add("c1", "1i1", true);
    rt.add("c3", "1i3", true);
    rt.add("c4", "1i4", false);
    rt.add("c6", "1i6", true);
    rt.add("c9", "1i9", false);
    let desired = vec![
        inst("1i1", "running", "running", Some("c1")),
        inst("1i2", "running", "requested", None),
        inst("1i3", "stopped", "stopping", Some("c3")),
        inst("1i4", "removed", "removing", Some("c4")),
        inst("1i5", "stopped", "requested", None),
        inst("1i6", "running", "restarting", Some("c6")),
        inst("1i7", "running", "running", Some("c7")),
    ];
    let mut local = Local::default();
    let (out, sent) = pass(&rt, &desired, &mut local).await;
    assert_eq!(
        seen(&sent),
        vec![
            row("1i2", "creating", None, None),
            row("1i2", "starting", Some("new1"), None),
            row("1i3", "stopping", Some("c3"), None),
        ]
    );
    assert_eq!(
        seen(&out),
        vec![
            row("1i2", "running", Some("new1"), None),
            row("1i3", "stopped", Some("c3"), None),
            row("1i4", "removed", None, None),
            row("1i5", "stopped", Some("new2"), None),
            row("1i6", "running", Some("c6"), None),
            row(
                "1i7",
                "removed",
                None,
                Some("container removed outside ros")
            ),
        ]
    );
    let calls = rt.calls();
    assert_eq!(calls.first().map(String::as_str), Some("list 1h1"));
    assert_eq!(
        calls.last().map(String::as_str),
        Some("remove c9"),
        "orphans go last"
    );
    let mut docker_work: Vec<&str> = calls[1..calls.len() - 1]
        .iter()
        .map(String::as_str)
        .collect();
    // Each instance's own calls stay in order.
    let create = docker_work.iter().position(|c| *c == "create r-1i2");
    let start = docker_work.iter().position(|c| *c == "start new1");
    assert!(create < start, "{calls:?}");
    docker_work.sort_unstable();
    assert_eq!(
        docker_work,
        vec![
            "create r-1i2",
            "create r-1i5",
            "remove c4",
            "restart c6",
            "start new1",
            "stop c3"
        ]
    );
    let names: Vec<(String, bool)> = rt
        .containers()
        .into_values()
        .map(|c| (c.name, c.running))
        .collect();
    assert_eq!(
        names,
        vec![
            ("r-1i1".to_string(), true),
            ("r-1i3".to_string(), false),
            ("r-1i6".to_string(), true),
            ("r-1i2".to_string(), true),
            ("r-1i5".to_string(), false),
        ]
    );
    // The instances as reported: a second pass has nothing left to do.
    let mut after = desired.clone();
    crate::cluster::agent::note_reports(&mut after, &out);
    after.retain(|d| !matches!(d.id.as_str(), "1i4" | "1i7"));
    let (out, sent) = pass(&rt, &after, &mut local).await;
    assert!(out.is_empty() && sent.is_empty(), "{out:?} {sent:?}");
    assert_eq!(rt.calls().len(), calls.len() + 1, "only a list");
}

#[tokio::test]
async fn docker_errors_leave_the_instance_in_error() {
    for (op, sent_want) in [
        ("create", vec![row("1i2", "creating", None, None)]),
        (
            "start",
            vec![
                row("1i2", "creating", None, None),
                row("1i2", "starting", Some("new1"), None),
            ],
        ),
    ] {
        let rt = FakeRuntime::default();
        rt.fail(op, "no space left on device");
        let desired = vec![inst("1i2", "running", "requested", None)];
        let (out, sent) = pass(&rt, &desired, &mut Local::default()).await;
        assert_eq!(seen(&sent), sent_want, "{op}");
        assert_eq!(
            seen(&out),
            vec![row(
                "1i2",
                "error",
                None,
                Some("docker: no space left on device")
            )],
            "{op}"
        );
    }
    let rt = FakeRuntime::default();
    rt.fail("list", "engine down");
    let send = |_: Vec<Report>| {};
    assert!(converge(&rt, "1h1", &[], &mut Local::default(), &send)
        .await
        .is_err());
}

#[tokio::test]
async fn drains_span_passes_and_end_with_the_stop() {
    let rt = FakeRuntime::default();
    rt.add("c1", "1i1", true);
    let mut d = inst("1i1", "stopped", "stopping", Some("c1"));
    d.drain_timeout_ms = 60_000;
    let desired = vec![d];
    let mut local = Local::default();
    for _ in 0..2 {
        let (out, sent) = pass(&rt, &desired, &mut local).await;
        assert!(out.is_empty() && sent.is_empty());
        assert!(local.drains.contains_key("1i1"));
    }
    assert_eq!(rt.calls(), vec!["list 1h1", "list 1h1"]);
    // The deadline reached: the next pass stops the container.
    local.drains.insert("1i1".into(), Instant::now());
    let (out, _) = pass(&rt, &desired, &mut local).await;
    assert_eq!(seen(&out), vec![row("1i1", "stopped", Some("c1"), None)]);
    assert!(rt.calls().contains(&"stop c1".to_string()));
    assert!(local.drains.is_empty());
    // Wanted running again: a drain under way is forgotten.
    local.drains.insert("1i1".into(), Instant::now());
    let mut up = desired.clone();
    up[0].desired_state = "running".into();
    pass(&rt, &up, &mut local).await;
    assert!(local.drains.is_empty());
}

/// Until the background pull of `1i1` has finished.
async fn pulled(local: &Local) {
    while !matches!(local.pulls.lock().unwrap().get("1i1"), Some(Some(_))) {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn pull_always_pulls_in_the_background_before_each_create() {
    let rt = FakeRuntime::default();
    let mut d = inst("1i1", "running", "requested", None);
    d.labels = BTreeMap::from([(LABEL_PULL_IMAGE.to_string(), "always".to_string())]);
    let desired = vec![d];
    let mut local = Local::default();
    let (out, sent) = pass(&rt, &desired, &mut local).await;
    assert!(out.is_empty() && sent.is_empty(), "waits for the pull");
    pulled(&local).await;
    let (out, _) = pass(&rt, &desired, &mut local).await;
    assert_eq!(seen(&out), vec![row("1i1", "running", Some("new1"), None)]);
    assert!(
        local.pulls.lock().unwrap().is_empty(),
        "a pull is used once"
    );
    assert_eq!(
        rt.calls(),
        vec![
            "list 1h1",
            "pull busybox",
            "list 1h1",
            "create r-1i1",
            "start new1"
        ]
    );

    // A failed pull: `error` with docker's message; the next create pulls
    // again.
    let rt = FakeRuntime::default();
    rt.fail("pull", "denied");
    let mut local = Local::default();
    pass(&rt, &desired, &mut local).await;
    pulled(&local).await;
    let (out, _) = pass(&rt, &desired, &mut local).await;
    assert_eq!(
        seen(&out),
        vec![row("1i1", "error", None, Some("pull busybox: denied"))]
    );
    pass(&rt, &desired, &mut local).await;
    pulled(&local).await;
    assert_eq!(
        rt.calls(),
        vec![
            "list 1h1",
            "pull busybox",
            "list 1h1",
            "list 1h1",
            "pull busybox"
        ]
    );
    // An instance no longer assigned: its pull is forgotten.
    pass(&rt, &[], &mut local).await;
    assert!(local.pulls.lock().unwrap().is_empty());
}

#[test]
fn drains_wait_without_blocking() {
    let rt = FakeRuntime::default();
    let mut local = Local::default();
    let running = Actual {
        id: "c1".into(),
        running: true,
    };
    let mut d = inst("1i1", "stopped", "stopping", Some("c1"));
    let now = Instant::now();
    let drained = |local: &mut Local, d: &DesiredInstance, at: Instant| {
        matches!(local.plan(&rt, d, Some(&running), at), Step::Stop { .. })
    };
    assert!(drained(&mut local, &d, now), "no drain timeout: at once");
    d.drain_timeout_ms = 150;
    assert!(!drained(&mut local, &d, now), "first look starts the drain");
    assert!(
        !drained(&mut local, &d, now + Duration::from_millis(100)),
        "still draining"
    );
    assert!(
        drained(&mut local, &d, now + Duration::from_millis(170)),
        "deadline passed"
    );
    assert!(local.drains.is_empty());
    assert!(rt.calls().is_empty(), "deciding touches no docker");
}

#[tokio::test]
async fn pulls_run_in_the_background_and_report_failure() {
    // An engine that is not there: the pull fails, but only in the
    // background task; the converge pass is never held up.
    let not_a_socket = tempfile::NamedTempFile::new().unwrap();
    let docker =
        crate::cluster::agent::docker::connect(not_a_socket.path().to_str().unwrap()).unwrap();
    let rt = DockerRuntime::new(docker, None);
    let mut local = Local::default();
    let mut d = inst("1i1", "running", "requested", None);
    d.labels = BTreeMap::from([(LABEL_PULL_IMAGE.to_string(), "always".to_string())]);
    let t = std::time::Instant::now();
    assert_eq!(local.plan(&rt, &d, None, Instant::now()), Step::StartPull);
    assert!(t.elapsed() < std::time::Duration::from_millis(100));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let msg = loop {
        match local.plan(&rt, &d, None, Instant::now()) {
            Step::Pulling => {
                assert!(std::time::Instant::now() < deadline, "pull never finished");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Step::PullFailed(m) => break m,
            Step::CreateAndStart => panic!("a pull from no engine succeeded"),
            other => panic!("{other:?}"),
        }
    };
    assert!(msg.starts_with("pull busybox: "), "{msg}");
    assert!(
        local.pulls.lock().unwrap().is_empty(),
        "a finished pull is forgotten"
    );
}
