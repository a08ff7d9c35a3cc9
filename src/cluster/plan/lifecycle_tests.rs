//! Every (state, action) pair of both machines: the accepted ones with their
//! states, and every other pair rejected with `InvalidState`.

use super::*;

/// (from, action, transitioning, done) — written by hand from reference §1.4.
const SERVICE_OK: &[(&str, &str, &str, &str)] = &[
    ("inactive", "activate", "activating", "active"),
    ("active", "deactivate", "deactivating", "inactive"),
    ("activating", "deactivate", "deactivating", "inactive"),
    ("restarting", "deactivate", "deactivating", "inactive"),
    ("active", "upgrade", "upgrading", "upgraded"),
    ("activating", "upgrade", "upgrading", "upgraded"),
    ("inactive", "upgrade", "upgrading", "upgraded"),
    ("upgraded", "finishupgrade", "finishing-upgrade", "active"),
    (
        "upgrading",
        "cancelupgrade",
        "canceling-upgrade",
        "canceled-upgrade",
    ),
    (
        "finishing-upgrade",
        "cancelupgrade",
        "canceling-upgrade",
        "canceled-upgrade",
    ),
    (
        "canceled-upgrade",
        "continueupgrade",
        "upgrading",
        "upgraded",
    ),
    ("upgrading", "rollback", "rolling-back", "active"),
    ("upgraded", "rollback", "rolling-back", "active"),
    ("canceled-upgrade", "rollback", "rolling-back", "active"),
    ("active", "restart", "restarting", "active"),
];

const STACK_OK: &[(&str, &str, &str, &str)] = &[
    ("active", "activateservices", "active", "active"),
    ("active", "deactivateservices", "active", "active"),
    ("active", "upgrade", "upgrading", "upgraded"),
    ("canceled-upgrade", "upgrade", "upgrading", "upgraded"),
    ("upgraded", "finishupgrade", "finishing-upgrade", "active"),
    (
        "upgrading",
        "cancelupgrade",
        "canceling-upgrade",
        "canceled-upgrade",
    ),
    (
        "finishing-upgrade",
        "cancelupgrade",
        "canceling-upgrade",
        "canceled-upgrade",
    ),
    ("upgrading", "rollback", "rolling-back", "active"),
    ("upgraded", "rollback", "rolling-back", "active"),
    ("canceled-upgrade", "rollback", "rolling-back", "active"),
];

fn check_machine(kind: Kind, ok: &[(&str, &str, &str, &str)]) {
    for &state in ALL_STATES {
        for &action in ALL_ACTIONS {
            let want = ok
                .iter()
                .find(|(f, a, _, _)| *f == state.as_str() && *a == action.as_str())
                .map(|(_, _, t, d)| Transition {
                    transitioning: t.parse().unwrap(),
                    done: d.parse().unwrap(),
                })
                .or_else(|| {
                    (action == Action::Remove && !matches!(state, State::Removing | State::Removed))
                        .then_some(Transition {
                            transitioning: State::Removing,
                            done: State::Removed,
                        })
                });
            let got = apply(kind, state, action);
            match want {
                Some(t) => assert_eq!(got, Ok(t), "{kind:?} {state} {action}"),
                None => {
                    let err = got.expect_err(&format!("{kind:?} {state} {action} accepted"));
                    assert_eq!(
                        err.to_string(),
                        format!("{} in state {state} cannot {action}", kind.name())
                    );
                }
            }
        }
    }
}

#[test]
fn service_machine_every_pair() {
    check_machine(Kind::Service, SERVICE_OK);
}

#[test]
fn stack_machine_every_pair() {
    check_machine(Kind::Stack, STACK_OK);
}

#[test]
fn actions_listed_per_state() {
    let rows: &[(Kind, &str, &[&str])] = &[
        (
            Kind::Service,
            "inactive",
            &["activate", "upgrade", "remove"],
        ),
        (
            Kind::Service,
            "active",
            &["deactivate", "upgrade", "restart", "remove"],
        ),
        (
            Kind::Service,
            "upgrading",
            &["cancelupgrade", "rollback", "remove"],
        ),
        (
            Kind::Service,
            "upgraded",
            &["finishupgrade", "rollback", "remove"],
        ),
        (
            Kind::Service,
            "canceled-upgrade",
            &["continueupgrade", "rollback", "remove"],
        ),
        (
            Kind::Service,
            "finishing-upgrade",
            &["cancelupgrade", "remove"],
        ),
        (Kind::Service, "rolling-back", &["remove"]),
        (Kind::Service, "removing", &[]),
        (Kind::Service, "removed", &[]),
        (
            Kind::Stack,
            "active",
            &[
                "upgrade",
                "remove",
                "activateservices",
                "deactivateservices",
            ],
        ),
        (
            Kind::Stack,
            "upgraded",
            &["finishupgrade", "rollback", "remove"],
        ),
    ];
    for (kind, state, want) in rows {
        let got: Vec<&str> = actions(*kind, state.parse().unwrap())
            .iter()
            .map(|a| a.as_str())
            .collect();
        assert_eq!(&got, want, "{kind:?} {state}");
    }
}

#[test]
fn names_round_trip_and_transitional_states_complete() {
    let names = [
        "requested",
        "registering",
        "inactive",
        "activating",
        "active",
        "deactivating",
        "upgrading",
        "upgraded",
        "finishing-upgrade",
        "canceling-upgrade",
        "canceled-upgrade",
        "rolling-back",
        "restarting",
        "erroring",
        "error",
        "removing",
        "removed",
    ];
    let got: Vec<&str> = ALL_STATES.iter().map(|s| s.as_str()).collect();
    assert_eq!(got, names);
    for s in ALL_STATES {
        assert_eq!(s.as_str().parse::<State>(), Ok(*s));
        if let Some(next) = complete(*s) {
            assert!(!next.is_transitioning(), "{s} → {next} is final");
        }
    }
    for a in ALL_ACTIONS {
        assert_eq!(a.as_str().parse::<Action>(), Ok(*a));
    }
    assert!("bogus".parse::<State>().is_err());
    assert!("finish-upgrade".parse::<Action>().is_err());
    let c: Vec<&str> = ALL_CONTAINER_STATES.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        c,
        [
            "requested",
            "creating",
            "starting",
            "running",
            "stopping",
            "stopped",
            "removing",
            "removed",
            "error"
        ]
    );
    for s in ALL_CONTAINER_STATES {
        assert_eq!(s.as_str().parse::<ContainerState>(), Ok(*s));
    }
    assert!(ContainerState::Stopped.is_live());
    assert!(!ContainerState::Error.is_live());
    assert!(ContainerState::Starting.is_transitioning());
}

#[test]
fn create_states_are_the_served_ones() {
    assert_eq!(on_create(false).transitioning, State::Inactive);
    assert_eq!(on_create(false).done, State::Inactive);
    assert_eq!(on_create(true).transitioning, State::Activating);
    assert_eq!(on_create(true).done, State::Active);
}

#[test]
fn container_actions_per_state() {
    // The table the API serves (logs are a link, not an action).
    let rows: &[(&str, &[&str])] = &[
        ("running", &["stop", "restart", "remove"]),
        ("stopped", &["start", "remove"]),
        ("error", &["stop", "remove"]),
        ("requested", &["stop", "remove"]),
        ("creating", &["stop", "remove"]),
        ("starting", &["stop", "remove"]),
        ("stopping", &["remove"]),
        ("removing", &[]),
        ("removed", &[]),
    ];
    assert_eq!(rows.len(), ALL_CONTAINER_STATES.len());
    for (state, want) in rows {
        assert_eq!(container_actions(state), *want, "{state}");
        assert_eq!(
            crate::cluster::model::actions_in(crate::cluster::model::Kind::Container, state),
            *want,
            "the API offers the same on a {state} container"
        );
    }
    assert_eq!(container_actions("restarting"), ["remove"]);
}
