//! The orchestrator's data model: resource kinds, Rancher-style ids
//! (`1a5`, `1h3`, `1i42`), resources as plain data, and the state machines
//! that decide which actions a resource offers in its current state.
//!
//! Desired vs actual: a container instance carries `desiredState` (what the
//! API asked for) and `state` (what its host's agent last reported). Agents
//! converge their docker to the desired state of the instances assigned to
//! their host (`hostId`); re-sending the same desired state is harmless, so
//! every loop is level-triggered. Part 2 (stacks, services, scheduler) adds
//! kinds that produce instances; it does not change this contract.

use serde_json::{Map, Value};

use crate::cluster::plan::lifecycle;

/// Every kind of resource the store holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An environment (Rancher "project"): the unit of isolation.
    Project,
    /// A user or admin account.
    Account,
    /// A host registered by an agent.
    Host,
    /// A registration token of a project.
    RegistrationToken,
    /// An API key scoped to a project.
    ApiKey,
    /// Credentials an agent received at registration (never listed).
    AgentKey,
    /// A container instance assigned to a host.
    Container,
    /// A stack (Rancher 1.x "environment" of services).
    Stack,
    /// A service: `scale` containers of one launch config.
    Service,
    /// A TLS certificate and key load balancers terminate with.
    Certificate,
}

impl Kind {
    /// Every kind, for schemas and migrations.
    pub const ALL: [Kind; 10] = [
        Kind::Project,
        Kind::Account,
        Kind::Host,
        Kind::RegistrationToken,
        Kind::ApiKey,
        Kind::AgentKey,
        Kind::Container,
        Kind::Stack,
        Kind::Service,
        Kind::Certificate,
    ];

    /// The API type name (`registrationToken`).
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::Project => "project",
            Kind::Account => "account",
            Kind::Host => "host",
            Kind::RegistrationToken => "registrationToken",
            Kind::ApiKey => "apiKey",
            Kind::AgentKey => "agentKey",
            Kind::Container => "container",
            Kind::Stack => "stack",
            Kind::Service => "service",
            Kind::Certificate => "certificate",
        }
    }

    /// The collection path segment (`registrationtokens`).
    pub fn collection(self) -> String {
        format!("{}s", self.type_name().to_ascii_lowercase())
    }

    /// Kind from a collection segment, case-insensitive (`apiKeys`, `apikeys`).
    /// `instances` is an alias of `containers`.
    pub fn from_collection(seg: &str) -> Option<Kind> {
        let s = seg.to_ascii_lowercase();
        if s == "instances" {
            return Some(Kind::Container);
        }
        if s == "environments" {
            return Some(Kind::Stack);
        }
        Kind::ALL
            .into_iter()
            .filter(|k| *k != Kind::AgentKey)
            .find(|k| k.collection() == s)
    }

    /// Kind from a type name (`registrationToken`), case-insensitive.
    pub fn from_type(name: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .filter(|k| *k != Kind::AgentKey)
            .find(|k| k.type_name().eq_ignore_ascii_case(name))
    }

    /// The id prefix letters: the base type's initial plus its capitals
    /// (credentials share `c`, accounts and projects share `a`).
    pub fn id_prefix(self) -> &'static str {
        match self {
            Kind::Project | Kind::Account => "a",
            Kind::Host => "h",
            Kind::RegistrationToken | Kind::ApiKey | Kind::AgentKey | Kind::Certificate => "c",
            Kind::Container => "i",
            Kind::Stack => "st",
            Kind::Service => "s",
        }
    }

    /// True for kinds that live inside a project.
    pub fn project_scoped(self) -> bool {
        !matches!(self, Kind::Project | Kind::Account)
    }
}

/// The id of the Default project every tutorial uses.
pub const DEFAULT_PROJECT: u64 = 5;
/// The id of the admin account.
pub const ADMIN_ACCOUNT: u64 = 1;

/// `1` + prefix + number: `format_id(Kind::Project, 5) == "1a5"`.
pub fn format_id(kind: Kind, n: u64) -> String {
    format!("1{}{}", kind.id_prefix(), n)
}

/// The number in an id of `kind`; `None` when it is not such an id.
pub fn parse_id(kind: Kind, id: &str) -> Option<u64> {
    let rest = id.strip_prefix('1')?.strip_prefix(kind.id_prefix())?;
    if rest.is_empty() || rest.len() > 18 || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok().filter(|n| *n > 0)
}

/// One stored resource: the fixed columns plus its fields.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    /// Its kind.
    pub kind: Kind,
    /// Its number (the id without prefix).
    pub id: u64,
    /// Owning project (0 for projects and accounts).
    pub project: u64,
    /// Host it is assigned to (containers, agent keys), else 0.
    pub host: u64,
    /// Lifecycle state (`active`, `running` …).
    pub state: String,
    /// Creation time, milliseconds since the epoch.
    pub created_ms: i64,
    /// Every other field, as the API shows it (secrets excluded).
    pub data: Map<String, Value>,
}

impl Resource {
    /// A new resource in `state`.
    pub fn new(kind: Kind, id: u64, project: u64, state: &str) -> Resource {
        Resource {
            kind,
            id,
            project,
            host: 0,
            state: state.to_string(),
            created_ms: now_ms(),
            data: Map::new(),
        }
    }

    /// The API id (`1h3`).
    pub fn api_id(&self) -> String {
        format_id(self.kind, self.id)
    }

    /// A string field.
    pub fn str(&self, field: &str) -> Option<&str> {
        self.data.get(field).and_then(Value::as_str)
    }

    /// Set a field.
    pub fn set(&mut self, field: &str, v: impl Into<Value>) {
        self.data.insert(field.to_string(), v.into());
    }

    /// True once removed (kept for history, hidden from nothing).
    pub fn is_removed(&self) -> bool {
        self.state == "removed" || self.state == "purged"
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Every container state (the `state` enum of the schema): Rancher's
/// exact set (`test_api.py::test_state_enum`); `updating-*` and
/// `migrating` are listed for clients but never entered here.
pub const CONTAINER_STATES: &[&str] = &[
    "requested",
    "creating",
    "starting",
    "running",
    "updating-running",
    "restarting",
    "stopping",
    "stopped",
    "updating-stopped",
    "migrating",
    "erroring",
    "error",
    "removing",
    "removed",
    "purging",
    "purged",
];

/// Agent connection states of a host.
pub const AGENT_STATES: &[&str] = &["active", "reconnecting", "disconnected"];

/// An action and the state it leads to (`None`: handled specially).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// Action name (`deactivate`).
    pub action: &'static str,
    /// States it is offered in.
    pub from: &'static [&'static str],
    /// State right after the action is accepted.
    pub to: &'static str,
}

const GENERIC: &[Transition] = &[
    Transition {
        action: "deactivate",
        from: &["active"],
        to: "inactive",
    },
    Transition {
        action: "activate",
        from: &["inactive"],
        to: "active",
    },
    Transition {
        action: "remove",
        from: &["active", "inactive"],
        to: "removed",
    },
];

const HOST: &[Transition] = &[
    Transition {
        action: "deactivate",
        from: &["active"],
        to: "inactive",
    },
    Transition {
        action: "activate",
        from: &["inactive"],
        to: "active",
    },
    // As in Rancher, a host must be deactivated before it can be removed.
    Transition {
        action: "remove",
        from: &["inactive", "error"],
        to: "removed",
    },
];

/// The transition table of a kind that has a plain string table (services,
/// stacks and containers use [`lifecycle`], the one source of their rules).
pub fn transitions(kind: Kind) -> &'static [Transition] {
    match kind {
        Kind::Host => HOST,
        Kind::Container => lifecycle::CONTAINER_ACTIONS,
        Kind::Service | Kind::Stack | Kind::Account | Kind::AgentKey => &[],
        _ => GENERIC,
    }
}

/// The lifecycle machine of a kind, when it has one.
fn machine(kind: Kind) -> Option<lifecycle::Kind> {
    match kind {
        Kind::Service => Some(lifecycle::Kind::Service),
        Kind::Stack => Some(lifecycle::Kind::Stack),
        _ => None,
    }
}

/// Stack actions the server carries out (stack-wide upgrades are done per
/// service, so the stack's own upgrade family is valid in the machine but
/// not offered).
const STACK_ACTIONS: &[lifecycle::Action] = &[
    lifecycle::Action::ActivateServices,
    lifecycle::Action::DeactivateServices,
    lifecycle::Action::Remove,
];

fn offered(kind: Kind, a: lifecycle::Action) -> bool {
    kind != Kind::Stack || STACK_ACTIONS.contains(&a)
}

/// Every action name of a kind (the schema's `resourceActions`).
pub fn action_names(kind: Kind) -> Vec<&'static str> {
    match machine(kind) {
        Some(m) => lifecycle::ALL_ACTIONS
            .iter()
            .copied()
            .filter(|a| offered(kind, *a))
            .filter(|a| {
                lifecycle::ALL_STATES
                    .iter()
                    .any(|s| lifecycle::apply(m, *s, *a).is_ok())
            })
            .map(lifecycle::Action::as_str)
            .collect(),
        None => {
            let mut v: Vec<&'static str> = Vec::new();
            for t in transitions(kind) {
                if !v.contains(&t.action) {
                    v.push(t.action);
                }
            }
            v
        }
    }
}

/// Actions valid for `kind` in `state`, in table order.
pub fn actions_in(kind: Kind, state: &str) -> Vec<&'static str> {
    match machine(kind) {
        Some(m) => match state.parse::<lifecycle::State>() {
            Ok(st) => lifecycle::actions(m, st)
                .into_iter()
                .filter(|a| offered(kind, *a))
                .map(lifecycle::Action::as_str)
                .collect(),
            Err(_) => Vec::new(),
        },
        None if kind == Kind::Container => lifecycle::container_actions(state),
        None => transitions(kind)
            .iter()
            .filter(|t| t.from.contains(&state))
            .map(|t| t.action)
            .collect(),
    }
}

/// Why an action was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The kind has the action, not in this state (`ActionNotAvailable`).
    NotNow,
    /// The kind has no such action (`InvalidAction`).
    Unknown,
}

/// The state a resource of `kind` in `state` enters at once when `action`
/// is accepted.
pub fn transition(kind: Kind, state: &str, action: &str) -> Result<&'static str, Refused> {
    if let Some(m) = machine(kind) {
        let a = action
            .parse::<lifecycle::Action>()
            .ok()
            .filter(|a| action_names(kind).contains(&a.as_str()))
            .ok_or(Refused::Unknown)?;
        let st = state
            .parse::<lifecycle::State>()
            .map_err(|_| Refused::NotNow)?;
        return lifecycle::apply(m, st, a)
            .map(|t| t.transitioning.as_str())
            .map_err(|_| Refused::NotNow);
    }
    let mut known = false;
    for t in transitions(kind) {
        if t.action == action {
            known = true;
            if t.from.contains(&state) {
                return Ok(t.to);
            }
        }
    }
    Err(if known {
        Refused::NotNow
    } else {
        Refused::Unknown
    })
}

/// Label holding the instance id on a managed docker container.
pub const LABEL_INSTANCE: &str = "io.ros.instance.id";
/// Label holding the project id on a managed docker container.
pub const LABEL_PROJECT: &str = "io.ros.project.id";
/// Label holding the host id on a managed docker container.
pub const LABEL_HOST: &str = "io.ros.host.id";

/// The docker name of an instance: `r-<stack>-<service>-<n>` for service
/// containers (their instance name is `<stack>-<service>-<n>`), `r-<name>`
/// for standalone ones.
pub fn docker_name(instance_name: &str) -> String {
    format!("r-{instance_name}")
}

/// True when `name` may name a resource (Rancher's valid characters).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name.as_bytes()[0].is_ascii_alphanumeric()
}

/// `ms` since the epoch as RFC 3339 UTC (`2026-01-02T03:04:05Z`).
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        assert_eq!(format_id(Kind::Project, 5), "1a5");
        assert_eq!(format_id(Kind::Host, 3), "1h3");
        assert_eq!(parse_id(Kind::Project, "1a5"), Some(5));
        for bad in [
            "",
            "1",
            "1a",
            "a5",
            "1h5",
            "1a-1",
            "1a0",
            "1a99999999999999999999",
            "1a5x",
        ] {
            assert_eq!(parse_id(Kind::Project, bad), None, "{bad}");
        }
    }

    #[test]
    fn actions_follow_state() {
        assert_eq!(actions_in(Kind::Host, "active"), vec!["deactivate"]);
        assert_eq!(
            actions_in(Kind::Host, "inactive"),
            vec!["activate", "remove"]
        );
        assert_eq!(
            actions_in(Kind::Container, "running"),
            vec!["stop", "restart", "remove"]
        );
        assert_eq!(
            actions_in(Kind::Container, "stopped"),
            vec!["start", "remove"]
        );
        assert_eq!(
            transition(Kind::Host, "active", "remove"),
            Err(Refused::NotNow)
        );
        assert_eq!(
            transition(Kind::Host, "active", "fly"),
            Err(Refused::Unknown)
        );
    }

    /// Services and stacks answer exactly what `plan::lifecycle` decides:
    /// every (state, action) pair, accepted with its transitional state or
    /// refused as not-now; unknown names refused as unknown.
    #[test]
    fn service_and_stack_actions_come_from_lifecycle() {
        for (kind, m) in [
            (Kind::Service, lifecycle::Kind::Service),
            (Kind::Stack, lifecycle::Kind::Stack),
        ] {
            for st in lifecycle::ALL_STATES {
                for a in lifecycle::ALL_ACTIONS {
                    let got = transition(kind, st.as_str(), a.as_str());
                    let want = match lifecycle::apply(m, *st, *a) {
                        _ if kind == Kind::Stack && !STACK_ACTIONS.contains(a) => {
                            Err(Refused::Unknown)
                        }
                        Ok(t) => Ok(t.transitioning.as_str()),
                        Err(_) if action_names(kind).contains(&a.as_str()) => Err(Refused::NotNow),
                        Err(_) => Err(Refused::Unknown),
                    };
                    assert_eq!(got, want, "{kind:?} {st} {a}");
                    assert_eq!(
                        actions_in(kind, st.as_str()).contains(&a.as_str()),
                        want.is_ok(),
                        "{kind:?} {st} {a}"
                    );
                }
            }
            assert_eq!(transition(kind, "active", "fly"), Err(Refused::Unknown));
            assert_eq!(transition(kind, "bogus", "remove"), Err(Refused::NotNow));
        }
        for (state, action, to) in [
            ("upgrading", "cancelupgrade", Ok("canceling-upgrade")),
            ("canceled-upgrade", "continueupgrade", Ok("upgrading")),
            ("canceled-upgrade", "rollback", Ok("rolling-back")),
            ("canceled-upgrade", "finishupgrade", Err(Refused::NotNow)),
            ("upgraded", "finishupgrade", Ok("finishing-upgrade")),
            ("active", "restart", Ok("restarting")),
            ("restarting", "restart", Err(Refused::NotNow)),
            ("upgrading", "upgrade", Err(Refused::NotNow)),
            ("canceling-upgrade", "continueupgrade", Err(Refused::NotNow)),
        ] {
            assert_eq!(
                transition(Kind::Service, state, action),
                to,
                "{state} {action}"
            );
        }
        assert_eq!(
            action_names(Kind::Stack),
            ["remove", "activateservices", "deactivateservices"]
        );
        assert_eq!(
            transition(Kind::Stack, "active", "upgrade"),
            Err(Refused::Unknown)
        );
    }

    #[test]
    fn collections_parse() {
        assert_eq!(Kind::from_collection("apiKeys"), Some(Kind::ApiKey));
        assert_eq!(
            Kind::from_collection("registrationtokens"),
            Some(Kind::RegistrationToken)
        );
        assert_eq!(Kind::from_collection("instances"), Some(Kind::Container));
        assert_eq!(Kind::from_collection("agentkeys"), None);
        assert!(valid_name("web-1"));
        assert!(!valid_name("we b"));
        assert!(!valid_name("-x"));
    }
}
