//! Scheduler tables beyond placement: soft drops, random ports, global
//! services, rule parsing.

use super::*;

#[test]
fn soft_drops_are_reported() {
    let r = req(
        &format!("{AFF}host_label_soft=>zone=z;{AFF}container_soft=>nothing-here"),
        &[],
    );
    let p = place(&three_hosts(), &[], &r).unwrap();
    let dropped: Vec<String> = p.dropped.iter().map(|r| r.to_string()).collect();
    assert_eq!(
        dropped,
        [
            "io.rancher.scheduler.affinity:host_label_soft=zone=z",
            "io.rancher.scheduler.affinity:container_soft=nothing-here",
        ]
    );
}

#[test]
fn random_ports_take_the_lowest_free_in_range() {
    let hosts = vec![host("h1", "")];
    let instances = vec![inst("x", "h1", "", "", &["49153/tcp", "49155/tcp"])];
    let r = Request {
        ports: vec![port("random/tcp"), port("random/tcp"), port("random/udp")],
        ..req("", &[])
    };
    let p = place(&hosts, &instances, &r).unwrap();
    let got: Vec<String> = p.ports.iter().map(|p| p.to_string()).collect();
    assert_eq!(got, ["49154/tcp", "49156/tcp", "49153/udp"]);

    let full = Request {
        port_range: (49153, 49153),
        ports: vec![port("random/tcp")],
        ..req("", &[])
    };
    let e = place(&hosts, &instances, &full).unwrap_err();
    assert!(
        e.to_string().contains("no free tcp port in 49153-49153"),
        "{e}"
    );
}

#[test]
fn global_services_follow_hard_host_labels_only() {
    let mut hosts = three_hosts();
    hosts.push(HostView {
        active: false,
        ..host("h4", "zone=a")
    });
    let rows: &[(&str, &[&str])] = &[
        ("", &["h1", "h2", "h3"]),
        (&format!("{AFF}host_label=>disk"), &["h1", "h2"]),
        (&format!("{AFF}host_label_ne=>zone=a"), &["h2", "h3"]),
        // Soft and container rules are ignored for global services.
        (
            &format!("{AFF}host_label_soft=>zone=a;{AFF}container_ne=>x"),
            &["h1", "h2", "h3"],
        ),
    ];
    for (l, want) in rows {
        let mut r = req(l, &[]);
        r.labels.insert(rules::LABEL_GLOBAL.into(), "true".into());
        assert!(is_global(&r.labels));
        assert_eq!(global_hosts(&hosts, &r), *want, "labels {l}");
    }
    assert!(!is_global(&labels("io.rancher.scheduler.global=false")));
}

#[test]
fn rule_parsing_every_key_form() {
    let forms = [
        ("host_label", Field::HostLabel, false, false),
        ("host_label_ne", Field::HostLabel, false, true),
        ("host_label_soft", Field::HostLabel, true, false),
        ("host_label_soft_ne", Field::HostLabel, true, true),
        ("container_label", Field::ContainerLabel, false, false),
        ("container_label_ne", Field::ContainerLabel, false, true),
        ("container_label_soft", Field::ContainerLabel, true, false),
        ("container_label_soft_ne", Field::ContainerLabel, true, true),
        ("container", Field::Container, false, false),
        ("container_ne", Field::Container, false, true),
        ("container_soft", Field::Container, true, false),
        ("container_soft_ne", Field::Container, true, true),
    ];
    for (suffix, field, soft, negate) in forms {
        let l = labels(&format!("{AFF}{suffix}=>K=${{service_name}}"));
        let (rules, bad) = rules::parse_rules(&l, "app", "Web");
        assert!(bad.is_empty(), "{suffix}");
        assert_eq!(rules.len(), 1, "{suffix}");
        let r = &rules[0];
        assert_eq!(
            (r.field, r.soft, r.negate),
            (field, soft, negate),
            "{suffix}"
        );
        match field {
            Field::Container => assert_eq!(r.key, "k=web"),
            _ => assert_eq!((r.key.as_str(), r.value.as_deref()), ("k", Some("web"))),
        }
    }
    let (_, bad) = rules::parse_rules(&labels(&format!("{AFF}host_label_hard=>a")), "s", "v");
    assert_eq!(bad, [format!("{AFF}host_label_hard")]);
}
