//! Upgrade plans: single steps in a table, then whole upgrades driven
//! through a simulated service (stop-first and start-first), rollback,
//! finish, and the volume rules.

use super::*;
use ContainerState::*;

fn u(index: u32, gen: &str, state: ContainerState, ready: bool) -> Unit {
    Unit {
        index,
        name: format!("app-web-{index}{gen}"),
        state,
        ready,
    }
}

fn strat(batch: u32, start_first: bool) -> UpgradeStrategy {
    UpgradeStrategy {
        batch_size: batch,
        interval_millis: 2000,
        start_first,
    }
}

/// (name, strategy, old, new, ms since last batch, expected step).
type StepRow = (
    &'static str,
    UpgradeStrategy,
    Vec<Unit>,
    Vec<Unit>,
    Option<u64>,
    UpgradeStep,
);

#[test]
fn single_steps() {
    let old3 = || {
        vec![
            u(1, "", Running, true),
            u(2, "", Running, true),
            u(3, "", Running, true),
        ]
    };
    let rows: Vec<StepRow> = vec![
        (
            "stop-first begins with the lowest indexes",
            strat(2, false),
            old3(),
            vec![],
            None,
            UpgradeStep::Begin {
                start: vec![1, 2],
                stop: vec!["app-web-1".into(), "app-web-2".into()],
            },
        ),
        (
            "start-first begins by starting",
            strat(1, true),
            old3(),
            vec![],
            None,
            UpgradeStep::Begin {
                start: vec![1],
                stop: vec![],
            },
        ),
        (
            "stop-first: an old one stopped without a replacement (it failed) waits for the interval",
            strat(1, false),
            vec![u(1, "", Stopped, false), u(2, "", Running, true)],
            vec![],
            Some(10),
            UpgradeStep::Wait("next batch in 1990 ms".into()),
        ),
        (
            "stop-first: … then is batched again first",
            strat(1, false),
            vec![u(1, "", Stopped, false), u(2, "", Running, true)],
            vec![],
            Some(2000),
            UpgradeStep::Begin {
                start: vec![1],
                stop: vec![],
            },
        ),
        (
            "old not yet stopped after the last batch",
            strat(1, false),
            vec![u(1, "", Stopping, false)],
            vec![u(1, "n", Running, true)],
            Some(2000),
            UpgradeStep::Wait("waiting for app-web-1 to stop".into()),
        ),
        (
            "new not ready yet",
            strat(1, true),
            old3(),
            vec![u(1, "n", Starting, false)],
            Some(10),
            UpgradeStep::Wait("waiting for app-web-1n to be running and healthy".into()),
        ),
        (
            "start-first: new ready, stop the old",
            strat(1, true),
            old3(),
            vec![u(1, "n", Running, true)],
            Some(10),
            UpgradeStep::StopOld(vec!["app-web-1".into()]),
        ),
        (
            "interval between batches",
            strat(1, true),
            vec![u(1, "", Stopped, false), u(2, "", Running, true)],
            vec![u(1, "n", Running, true)],
            Some(500),
            UpgradeStep::Wait("next batch in 1500 ms".into()),
        ),
        (
            "interval passed",
            strat(1, true),
            vec![u(1, "", Stopped, false), u(2, "", Running, true)],
            vec![u(1, "n", Running, true)],
            Some(2000),
            UpgradeStep::Begin {
                start: vec![2],
                stop: vec![],
            },
        ),
        (
            "failed new container blocks",
            strat(1, true),
            old3(),
            vec![u(1, "n", Error, false)],
            Some(10),
            UpgradeStep::Blocked("new container app-web-1n failed".into()),
        ),
        (
            "all replaced",
            strat(1, false),
            vec![u(1, "", Stopped, false), u(2, "", Stopped, false)],
            vec![u(1, "n", Running, true), u(2, "n", Running, true)],
            Some(0),
            UpgradeStep::Done,
        ),
        (
            "nothing to upgrade",
            strat(1, false),
            vec![],
            vec![],
            None,
            UpgradeStep::Done,
        ),
    ];
    for (name, s, old, new, since, want) in rows {
        assert_eq!(next_step(&s, &old, &new, since), want, "{name}");
    }
}

/// Drive a whole upgrade of `scale` containers, applying every step at
/// once (new containers come up ready) and advancing the clock by the
/// interval when told to wait; returns the steps taken.
fn drive(scale: u32, s: UpgradeStrategy) -> Vec<UpgradeStep> {
    let mut old: Vec<Unit> = (1..=scale).map(|i| u(i, "", Running, true)).collect();
    let mut new: Vec<Unit> = Vec::new();
    let mut since: Option<u64> = None;
    let mut steps = Vec::new();
    for _ in 0..100 {
        let step = next_step(&s, &old, &new, since);
        steps.push(step.clone());
        // Old containers of the running batch are never all stopped at once
        // unless the batch covers the whole service.
        let running_old = old.iter().filter(|u| u.state == Running).count();
        let ready_new = new.iter().filter(|u| u.ready).count();
        assert!(
            running_old + ready_new >= (scale as usize).saturating_sub(s.batch_size as usize),
            "too few serving containers after {step:?}"
        );
        match step {
            UpgradeStep::Begin { start, stop } => {
                since = Some(0);
                new.extend(start.iter().map(|i| u(*i, "n", Running, true)));
                for o in old.iter_mut().filter(|o| stop.contains(&o.name)) {
                    o.state = Stopped;
                }
            }
            UpgradeStep::StopOld(names) => {
                for o in old.iter_mut().filter(|o| names.contains(&o.name)) {
                    o.state = Stopped;
                }
            }
            UpgradeStep::Wait(_) => since = since.map(|t| t + s.interval_millis),
            UpgradeStep::Blocked(_) => panic!("blocked"),
            UpgradeStep::Done => {
                assert_eq!(new.len(), scale as usize);
                assert!(
                    old.iter().all(|o| o.state == Stopped),
                    "old are kept, stopped"
                );
                return steps;
            }
        }
    }
    panic!("upgrade did not finish: {steps:?}")
}

#[test]
fn whole_upgrades() {
    let begins = |steps: &[UpgradeStep]| {
        steps
            .iter()
            .filter(|s| matches!(s, UpgradeStep::Begin { .. }))
            .count()
    };
    let steps = drive(3, strat(1, true));
    assert_eq!(begins(&steps), 3);
    assert_eq!(
        steps[..3],
        [
            UpgradeStep::Begin {
                start: vec![1],
                stop: vec![]
            },
            UpgradeStep::StopOld(vec!["app-web-1".into()]),
            UpgradeStep::Wait("next batch in 2000 ms".into()),
        ]
    );
    assert_eq!(begins(&drive(10, strat(2, false))), 5);
    assert_eq!(begins(&drive(5, strat(2, true))), 3);
    assert_eq!(begins(&drive(2, strat(5, false))), 1);
}

#[test]
fn rollback_and_finish() {
    let old = vec![
        u(1, "", Stopped, false),
        u(2, "", Running, true),
        u(3, "", Removed, false),
    ];
    let new = vec![
        u(1, "n", Running, true),
        u(2, "n", Starting, false),
        u(3, "n", Removed, false),
    ];
    let p = rollback(&old, &new);
    assert_eq!(p.remove_new, ["app-web-1n", "app-web-2n"]);
    assert_eq!(p.start_old, ["app-web-1"]);
    assert_ne!(p, RollbackPlan::default());
    assert_eq!(
        rollback(&[u(1, "", Running, true)], &[u(1, "n", Removed, false)]),
        RollbackPlan::default(),
        "nothing left to do"
    );
    assert_eq!(finish(&old), ["app-web-1", "app-web-2"]);
    assert!(finish(&[u(1, "", Removing, false)]).is_empty());
}

#[test]
fn volumes_follow_the_service_index() {
    let a = anonymous_volume_name("app", "db", 1, "/var/lib/mysql");
    assert!(a.starts_with("app-db-1-var-lib-mysql-"), "{a}");
    assert_eq!(
        a,
        anonymous_volume_name("app", "db", 1, "/var/lib/mysql"),
        "stable"
    );
    assert_ne!(
        anonymous_volume_name("app", "db", 1, "/a/b"),
        anonymous_volume_name("app", "db", 1, "/a-b")
    );
    assert_ne!(a, anonymous_volume_name("app", "db", 2, "/var/lib/mysql"));
}

#[test]
fn to_service_steps() {
    let walk = |a: u32, b: u32, fin: u32, batch: u32| {
        let mut v = vec![format!("{a}/{b}")];
        let (mut a, mut b) = (a, b);
        while let Some((na, nb)) = to_service_step(a, b, fin, batch) {
            (a, b) = (na, nb);
            v.push(format!("{a}/{b}"));
            assert!(v.len() < 100);
        }
        v.join(" ")
    };
    let rows = [
        ((2, 0, 5, 2), "2/0 2/2 2/4 1/4 1/5 0/5"),
        ((3, 0, 3, 1), "3/0 3/1 2/1 2/2 1/2 1/3 0/3"),
        ((4, 0, 2, 2), "4/0 2/0 2/2 0/2"),
        ((2, 0, 2, 5), "2/0 2/2 0/2"),
        ((0, 0, 2, 1), "0/0 0/1 0/2"),
        ((1, 3, 2, 1), "1/3 1/2 0/2"),
        ((0, 2, 2, 1), "0/2"),
    ];
    for ((a, b, fin, batch), want) in rows {
        assert_eq!(
            walk(a, b, fin, batch),
            want,
            "{a}/{b} final {fin} batch {batch}"
        );
    }
}

#[test]
fn rolling_restart_steps() {
    let r = |name: &str, restarted: bool, ready: bool| Restarting {
        name: name.into(),
        restarted,
        ready,
    };
    let rows: Vec<(Vec<Restarting>, Option<u64>, UpgradeStep)> = vec![
        (
            vec![
                r("app-web-2", false, true),
                r("app-web-1", false, true),
                r("app-web-3", false, true),
            ],
            None,
            UpgradeStep::Begin {
                start: vec![],
                stop: vec!["app-web-1".into(), "app-web-2".into()],
            },
        ),
        (
            vec![r("app-web-1", true, false), r("app-web-2", false, true)],
            Some(5000),
            UpgradeStep::Wait("waiting for app-web-1 to be running and healthy".into()),
        ),
        (
            vec![r("app-web-1", true, true), r("app-web-2", false, true)],
            Some(400),
            UpgradeStep::Wait("next batch in 600 ms".into()),
        ),
        (
            vec![r("app-web-1", true, true), r("app-web-2", false, true)],
            Some(1000),
            UpgradeStep::Begin {
                start: vec![],
                stop: vec!["app-web-2".into()],
            },
        ),
        (
            vec![r("app-web-1", true, true), r("app-web-2", true, true)],
            Some(0),
            UpgradeStep::Done,
        ),
    ];
    for (i, (members, since, want)) in rows.into_iter().enumerate() {
        assert_eq!(restart_step(2, 1000, &members, since), want, "row {i}");
    }
}
