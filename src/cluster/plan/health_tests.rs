//! Health tables: check sequences, service and stack aggregation, strategies.

use super::*;
use ContainerHealth::*;

fn hc() -> HealthCheck {
    HealthCheck {
        healthy_threshold: 2,
        unhealthy_threshold: 3,
        initializing_timeout: Some(10_000),
        reinitializing_timeout: Some(5_000),
        ..HealthCheck::new(80)
    }
}

/// Feed (ok, age_ms) results from `start`; compare the state after each.
fn run(start: Tally, seq: &[(bool, u64)]) -> Vec<ContainerHealth> {
    let mut t = start;
    seq.iter()
        .map(|(ok, age)| {
            t = observe(t, *ok, *age, &hc());
            t.health
        })
        .collect()
}

/// (name, start, (ok, age_ms) results, states after each).
type Sequence<'a> = (&'a str, Tally, &'a [(bool, u64)], &'a [ContainerHealth]);

#[test]
fn check_sequences() {
    let rows: &[Sequence] = &[
        (
            "healthy after healthy_threshold successes",
            Tally::default(),
            &[(true, 1), (true, 2)],
            &[Initializing, Healthy],
        ),
        (
            "failures ignored while initializing",
            Tally::default(),
            &[
                (false, 1),
                (false, 2),
                (false, 3),
                (false, 4),
                (true, 5),
                (true, 6),
            ],
            &[
                Initializing,
                Initializing,
                Initializing,
                Initializing,
                Initializing,
                Healthy,
            ],
        ),
        (
            "never green within initializing_timeout",
            Tally::default(),
            &[(false, 9_999), (false, 10_000)],
            &[Initializing, Unhealthy],
        ),
        (
            "unhealthy after unhealthy_threshold consecutive failures",
            Tally {
                health: Healthy,
                ..Tally::default()
            },
            &[
                (false, 1),
                (false, 2),
                (true, 3),
                (false, 4),
                (false, 5),
                (false, 6),
            ],
            &[Healthy, Healthy, Healthy, Healthy, Healthy, Unhealthy],
        ),
        (
            "recovers after healthy_threshold successes",
            Tally {
                health: Unhealthy,
                ..Tally::default()
            },
            &[(true, 1), (false, 2), (true, 3), (true, 4)],
            &[Unhealthy, Unhealthy, Unhealthy, Healthy],
        ),
        (
            "restart reinitializes, with its own timeout",
            Tally::restarted(),
            &[(false, 4_999), (false, 5_000)],
            &[Reinitializing, Unhealthy],
        ),
    ];
    for (name, start, seq, want) in rows {
        assert_eq!(run(*start, seq), *want, "{name}");
    }
    // Without a timeout a slow starter just stays initializing.
    let no_timeout = HealthCheck::new(80);
    let t = observe(Tally::default(), false, u64::MAX, &no_timeout);
    assert_eq!(t.health, Initializing);
}

fn mh(running: bool, health: Option<ContainerHealth>) -> MemberHealth {
    MemberHealth { running, health }
}

#[test]
fn service_aggregation() {
    let rows: &[(&str, &[MemberHealth], u32, bool, ServiceHealth)] = &[
        (
            "all healthy",
            &[mh(true, Some(Healthy)), mh(true, Some(Healthy))],
            2,
            false,
            ServiceHealth::Healthy,
        ),
        (
            "no checks, running",
            &[mh(true, None)],
            1,
            false,
            ServiceHealth::Healthy,
        ),
        ("scale 0", &[], 0, false, ServiceHealth::Healthy),
        (
            "one unhealthy",
            &[mh(true, Some(Healthy)), mh(true, Some(Unhealthy))],
            2,
            false,
            ServiceHealth::Degraded,
        ),
        (
            "one stopped",
            &[mh(true, None), mh(false, None)],
            2,
            false,
            ServiceHealth::Degraded,
        ),
        (
            "one missing",
            &[mh(true, Some(Healthy))],
            2,
            false,
            ServiceHealth::Degraded,
        ),
        (
            "none healthy",
            &[mh(true, Some(Unhealthy)), mh(false, None)],
            2,
            false,
            ServiceHealth::Unhealthy,
        ),
        ("nothing running", &[], 2, false, ServiceHealth::Unhealthy),
        (
            "starting",
            &[mh(true, Some(Initializing)), mh(true, Some(Reinitializing))],
            2,
            false,
            ServiceHealth::Initializing,
        ),
        (
            "a replacement starting beside a healthy one",
            &[mh(true, Some(Initializing)), mh(true, Some(Healthy))],
            2,
            false,
            ServiceHealth::Degraded,
        ),
        (
            "starting and failing",
            &[mh(true, Some(Initializing)), mh(true, Some(Unhealthy))],
            2,
            false,
            ServiceHealth::Degraded,
        ),
        (
            "start_once ran",
            &[mh(false, None), mh(false, None)],
            2,
            true,
            ServiceHealth::StartedOnce,
        ),
        (
            "start_once running",
            &[mh(true, None)],
            1,
            true,
            ServiceHealth::Healthy,
        ),
    ];
    for (name, members, scale, once, want) in rows {
        assert_eq!(service_health(members, *scale, *once), *want, "{name}");
    }
    assert_eq!(ServiceHealth::StartedOnce.as_str(), "started-once");
    assert_eq!(Reinitializing.to_string(), "reinitializing");
}

#[test]
fn stack_aggregation() {
    use ServiceHealth as S;
    let rows: &[(&[ServiceHealth], ServiceHealth)] = &[
        (&[S::Healthy, S::StartedOnce], S::Healthy),
        (&[], S::Healthy),
        (&[S::Unhealthy, S::Unhealthy], S::Unhealthy),
        (&[S::Healthy, S::Initializing], S::Initializing),
        (&[S::Healthy, S::Unhealthy], S::Degraded),
        (&[S::Degraded], S::Degraded),
    ];
    for (services, want) in rows {
        assert_eq!(stack_health(services), *want, "{services:?}");
    }
}

#[test]
fn recreate_decisions() {
    let members = |spec: &[ContainerHealth]| -> Vec<(String, ContainerHealth)> {
        spec.iter()
            .enumerate()
            .map(|(i, h)| (format!("app-web-{}", i + 1), *h))
            .collect()
    };
    let rows: &[(HealthStrategy, &[ContainerHealth], &[&str])] = &[
        (
            HealthStrategy::Recreate,
            &[Healthy, Unhealthy, Unhealthy],
            &["app-web-2", "app-web-3"],
        ),
        (HealthStrategy::Recreate, &[Healthy, Initializing], &[]),
        (HealthStrategy::None, &[Unhealthy, Unhealthy], &[]),
        (
            HealthStrategy::RecreateOnQuorum { quorum: 2 },
            &[Healthy, Healthy, Unhealthy],
            &["app-web-3"],
        ),
        (
            HealthStrategy::RecreateOnQuorum { quorum: 2 },
            &[Healthy, Unhealthy, Unhealthy],
            &[],
        ),
        (
            HealthStrategy::RecreateOnQuorum { quorum: 1 },
            &[Unhealthy],
            &[],
        ),
        // Exactly at quorum: replaced (Rancher: healthy count >= quorum).
        (
            HealthStrategy::RecreateOnQuorum { quorum: 3 },
            &[Healthy, Healthy, Healthy, Unhealthy],
            &["app-web-4"],
        ),
        // Initializing and reinitializing ones do not count as healthy.
        (
            HealthStrategy::RecreateOnQuorum { quorum: 2 },
            &[Healthy, Initializing, Reinitializing, Unhealthy],
            &[],
        ),
        // Every unhealthy one goes once the quorum holds.
        (
            HealthStrategy::RecreateOnQuorum { quorum: 2 },
            &[Healthy, Unhealthy, Healthy, Unhealthy],
            &["app-web-2", "app-web-4"],
        ),
        (HealthStrategy::Recreate, &[Unhealthy], &["app-web-1"]),
        (
            HealthStrategy::None,
            &[Healthy, Healthy, Healthy, Unhealthy],
            &[],
        ),
    ];
    for (strategy, spec, want) in rows {
        assert_eq!(
            to_recreate(*strategy, &members(spec)),
            *want,
            "{strategy:?} {spec:?}"
        );
    }
}
