//! Tests of the HAProxy configuration: endpoints, routing order, slots,
//! saved states, custom config and TLS termination.

use super::*;
use crate::cluster::protocol::{EnvContainer, EnvStack};

fn view(lb: LbConfig, web: &[(&str, &str, Option<&str>)]) -> (View, EnvService) {
    let mut v = View::default();
    for (id, name) in [("1st1", "app"), ("1st2", "other")] {
        v.stacks.insert(
            id.into(),
            EnvStack {
                id: id.into(),
                name: name.into(),
                state: "active".into(),
            },
        );
    }
    let svc = |id: &str, name: &str, stack: &str| EnvService {
        id: id.into(),
        name: name.into(),
        stack_id: stack.into(),
        kind: "service".into(),
        ..EnvService::default()
    };
    v.services.insert("1s1".into(), svc("1s1", "web", "1st1"));
    v.services.insert("1s2".into(), svc("1s2", "api", "1st1"));
    v.services.insert("1s3".into(), svc("1s3", "web", "1st2"));
    let lbs = EnvService {
        lb_config: Some(Box::new(lb)),
        kind: "loadBalancerService".into(),
        ..svc("1s9", "lb", "1st1")
    };
    v.services.insert("1s9".into(), lbs.clone());
    for (i, (ip, state, health)) in web.iter().enumerate() {
        let id = format!("1i{}", i + 1);
        v.containers.insert(
            id.clone(),
            EnvContainer {
                id,
                name: format!("app-web-{}", i + 1),
                service_id: Some("1s1".into()),
                state: (*state).into(),
                health_state: health.map(str::to_string),
                primary_ip: Some((*ip).into()),
                service_index: i as u64 + 1,
                ..EnvContainer::default()
            },
        );
    }
    (v, lbs)
}

fn rule(sp: u16, tp: u16, svc: &str) -> PortRule {
    PortRule {
        source_port: sp,
        target_port: Some(tp),
        protocol: "http".into(),
        service: Some(svc.into()),
        ..PortRule::default()
    }
}

#[test]
fn only_running_healthy_or_unchecked_containers_are_endpoints() {
    let (v, lb) = view(
        LbConfig {
            port_rules: vec![rule(80, 8080, "web")],
            ..LbConfig::default()
        },
        &[
            ("10.42.0.2", "running", None),
            ("10.42.0.3", "running", Some("healthy")),
            ("10.42.0.4", "running", Some("initializing")),
            ("10.42.0.5", "running", Some("unhealthy")),
            ("10.42.0.6", "stopping", None),
        ],
    );
    let d = desired(&v, &lb, &[]);
    assert_eq!(d.endpoints["web_1s1_8080"], ["10.42.0.2", "10.42.0.3"]);
    assert_eq!(
        d.layout.frontends[0].default_backend.as_deref(),
        Some("web_1s1_8080")
    );
}

#[test]
fn rules_route_by_priority_then_specificity_and_cross_stack() {
    let mut host = rule(80, 8080, "api");
    host.hostname = Some("api.example.com".into());
    let mut hp = host.clone();
    hp.path = Some("/v1".into());
    hp.priority = Some(1);
    let mut wild = rule(80, 80, "other/web");
    wild.hostname = Some("*.example.org".into());
    let mut tcp = rule(8080, 80, "other/web");
    tcp.protocol = "tcp".into();
    let (v, lb) = view(
        LbConfig {
            port_rules: vec![rule(80, 8080, "web"), wild, host, hp, tcp],
            ..LbConfig::default()
        },
        &[],
    );
    let d = desired(&v, &lb, &[]);
    let fe = &d.layout.frontends[0];
    let order: Vec<_> = fe
        .routes
        .iter()
        .map(|r| (r.0.clone(), r.1.clone(), r.2.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            (
                Some("api.example.com".into()),
                Some("/v1".into()),
                "api_1s2_8080"
            ),
            (Some("api.example.com".into()), None, "api_1s2_8080"),
            (Some("*.example.org".into()), None, "web_1s3_80"),
        ]
    );
    assert_eq!(fe.default_backend.as_deref(), Some("web_1s1_8080"));
    assert_eq!(d.layout.frontends[1].mode, "tcp");
    let cfg = render(&d.layout, &Slots::new());
    assert!(
        cfg.contains("acl r0_host hdr(host),field(1,:) -i -m str api.example.com"),
        "{cfg}"
    );
    assert!(cfg.contains("acl r0_path path_beg /v1"), "{cfg}");
    assert!(
        cfg.contains("use_backend api_1s2_8080 if r0_host r0_path"),
        "{cfg}"
    );
    assert!(
        cfg.contains("acl r2_host hdr(host),field(1,:) -i -m end .example.org"),
        "{cfg}"
    );
    assert!(
        cfg.contains(
            "frontend port_8080\n    bind :8080\n    mode tcp\n    default_backend web_1s3_80_tcp"
        ),
        "{cfg}"
    );
}

#[test]
fn endpoint_churn_is_runtime_commands_with_drain_and_overflow_grows() {
    let (mut v, lb) = view(
        LbConfig {
            port_rules: vec![rule(80, 8080, "web")],
            ..LbConfig::default()
        },
        &[
            ("10.42.0.2", "running", None),
            ("10.42.0.3", "running", None),
        ],
    );
    v.services.get_mut("1s1").unwrap().drain_timeout_ms = 500;
    let d = desired(&v, &lb, &[]);
    let mut slots = Slots::new();
    let t0 = Instant::now();
    let (cmds, full) = assign(&d.layout, &mut slots, &d, t0);
    assert!(!full);
    assert_eq!(
        cmds[0],
        "set server web_1s1_8080/s1 addr 10.42.0.2 port 8080"
    );
    let cfg = render(&d.layout, &slots);
    assert!(cfg.contains("server s1 10.42.0.2:8080\n"), "{cfg}");
    assert!(cfg.contains("server s3 127.0.0.1:8080 disabled\n"), "{cfg}");
    // 10.42.0.2 stops: drained first, freed after the drain time.
    v.containers.get_mut("1i1").unwrap().state = "stopping".into();
    let d2 = desired(&v, &lb, &[]);
    assert_eq!(d2.layout, d.layout, "endpoint churn is no layout change");
    let (cmds, _) = assign(&d.layout, &mut slots, &d2, t0);
    assert_eq!(cmds, ["set server web_1s1_8080/s1 state drain"]);
    assert_eq!(
        next_deadline(&slots),
        Some(t0 + std::time::Duration::from_millis(500))
    );
    let (cmds, _) = assign(
        &d.layout,
        &mut slots,
        &d2,
        t0 + std::time::Duration::from_millis(600),
    );
    assert_eq!(cmds, ["set server web_1s1_8080/s1 state maint"]);
    assert_eq!(slots["web_1s1_8080"][0], Slot::default());
    // More endpoints than slots: the overflow asks for a reload.
    let mut many = d2.clone();
    many.endpoints.insert(
        "web_1s1_8080".into(),
        (0..20).map(|i| format!("10.42.1.{i}")).collect(),
    );
    let (_, full) = assign(&d.layout, &mut slots, &many, t0);
    assert!(full);
    let mut grown = d.layout.clone();
    grow(&mut grown, &slots);
    assert!(grown.backends[0].slots >= 21);
}

#[test]
fn saved_states_of_changed_slots_are_dropped() {
    let states = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state\n\
                  4 api 1 s1 127.0.0.1 0 5\n4 api 2 s2 10.42.0.7 2 0\n4 gone 1 s1 10.42.0.9 2 0\n";
    let mut slots = Slots::new();
    slots.insert(
        "api".into(),
        vec![
            Slot {
                addr: Some("10.42.0.2".into()),
                draining_until: None,
            },
            Slot {
                addr: Some("10.42.0.7".into()),
                draining_until: None,
            },
        ],
    );
    assert_eq!(
        keep_states(states, &slots),
        "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state\n4 api 2 s2 10.42.0.7 2 0\n"
    );
}

#[test]
fn custom_config_merges_into_global_and_defaults() {
    let (v, lb) = view(
        LbConfig {
            port_rules: vec![rule(80, 8080, "web")],
            config: Some(
                "global\n  maxconn 100\ndefaults\n  balance roundrobin\nlisten x\n  bind :9\n"
                    .into(),
            ),
            stickiness_policy: Some(
                [
                    ("cookie".to_string(), "SRV".to_string()),
                    ("mode".into(), "insert".into()),
                ]
                .into(),
            ),
            ..LbConfig::default()
        },
        &[],
    );
    let cfg = render(&desired(&v, &lb, &[]).layout, &Slots::new());
    assert_eq!(cfg.matches("\ndefaults\n").count(), 1, "{cfg}");
    assert!(cfg.contains("    maxconn 100\ndefaults"), "{cfg}");
    assert!(
        cfg.contains("    balance roundrobin\nfrontend lb_health"),
        "{cfg}"
    );
    assert!(cfg.ends_with("listen x\n  bind :9\n"), "{cfg}");
    assert!(cfg.contains("cookie SRV insert"), "{cfg}");
    assert!(
        cfg.contains("server s1 127.0.0.1:8080 disabled cookie s1"),
        "{cfg}"
    );
}

#[test]
fn https_and_tls_terminate_with_the_default_certificate_first() {
    let mut https = rule(443, 80, "web");
    https.protocol = "https".into();
    let mut tls = rule(8443, 80, "web");
    tls.protocol = "tls".into();
    let (v, lb) = view(
        LbConfig {
            port_rules: vec![rule(80, 80, "web"), https, tls],
            ..LbConfig::default()
        },
        &[],
    );
    let certs = [
        LbCertificate {
            name: "other".into(),
            pem: "B".into(),
            default: false,
        },
        LbCertificate {
            name: "site".into(),
            pem: "A".into(),
            default: true,
        },
    ];
    let d = desired(&v, &lb, &certs);
    assert_eq!(
        crt_list(&d.layout),
        "/run/lb/certs/site.pem\n/run/lb/certs/other.pem\n"
    );
    let cfg = render(&d.layout, &Slots::new());
    assert!(
        cfg.contains("frontend port_443\n    bind :443 ssl crt-list /run/lb/crt-list\n    mode http\n    option forwardfor\n    http-request set-header X-Forwarded-Proto https\n"),
        "{cfg}"
    );
    assert!(
        cfg.contains("frontend port_8443\n    bind :8443 ssl crt-list /run/lb/crt-list\n    mode tcp\n    default_backend web_1s1_80_tcp"),
        "{cfg}"
    );
    assert!(cfg.contains("frontend port_80\n    bind :80\n"), "{cfg}");
    // A renewed certificate changes the layout (a reload).
    let mut renewed = certs.clone();
    renewed[1].pem = "A2".into();
    assert_ne!(desired(&v, &lb, &renewed).layout, d.layout);
    // Without certificates the TLS listeners are left out, said why.
    let none = desired(&v, &lb, &[]);
    assert_eq!(none.layout.frontends.len(), 1);
    let cfg = render(&none.layout, &Slots::new());
    assert!(
        cfg.contains(
            "# skipped port_rules[1]: https on port 443 needs a certificate, none was given"
        ),
        "{cfg}"
    );
}

#[test]
fn resync_states_every_slot_and_marks_checked_servers_up_when_asked() {
    let mut slots = Slots::new();
    slots.insert(
        "web".into(),
        vec![
            Slot {
                addr: Some("10.42.0.2".into()),
                draining_until: None,
            },
            Slot {
                addr: Some("10.42.0.3".into()),
                draining_until: Some(Instant::now()),
            },
            Slot::default(),
        ],
    );
    let backend = |check: Option<HealthCheck>| Layout {
        backends: vec![Backend {
            name: "web".into(),
            mode: "http".into(),
            port: 80,
            check,
            slots: 3,
            drain_ms: 0,
        }],
        ..Layout::default()
    };
    let plain = [
        "set server web/s1 addr 10.42.0.2 port 80",
        "set server web/s1 state ready",
        "set server web/s2 addr 10.42.0.3 port 80",
        "set server web/s2 state drain",
        "set server web/s3 state maint",
    ];
    // No check: nothing to mark up, with or without asking.
    assert_eq!(resync(&backend(None), &slots, false), plain);
    assert_eq!(resync(&backend(None), &slots, true), plain);
    // Checked: after a reload the saved states hold (no health line); for
    // a HAProxy that may have started from an older file, the server in
    // service is marked up (the draining one is not).
    let checked = backend(Some(HealthCheck::new(80)));
    assert_eq!(resync(&checked, &slots, false), plain);
    let up = resync(&checked, &slots, true);
    assert_eq!(up.len(), plain.len() + 1);
    assert_eq!(up[2], "set server web/s1 health up");
}
