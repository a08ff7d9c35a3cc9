//! Compose parsing: v1, v2, rancher-compose keys, bad files with positions.

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/src/cluster/plan/testdata/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap()
}

fn parse(stack: &str, docker: &str, rancher: Option<&str>) -> Result<StackSpec, ComposeError> {
    let d = fixture(docker);
    let r = rancher.map(fixture);
    parse_stack(
        stack,
        Source {
            name: docker,
            bytes: &d,
        },
        r.as_deref().map(|bytes| Source {
            name: rancher.unwrap(),
            bytes,
        }),
    )
}

fn inline(docker: &str, rancher: Option<&str>) -> Result<StackSpec, ComposeError> {
    parse_stack(
        "app",
        Source {
            name: "docker-compose.yml",
            bytes: docker.as_bytes(),
        },
        rancher.map(|r| Source {
            name: "rancher-compose.yml",
            bytes: r.as_bytes(),
        }),
    )
}

fn problems(r: Result<StackSpec, ComposeError>) -> Vec<String> {
    r.unwrap_err()
        .problems()
        .iter()
        .map(|p| format!("{p} [{}]", p.code))
        .collect()
}

#[test]
fn v1_with_rancher_compose() {
    let s = parse(
        "app",
        "v1-docker-compose.yml",
        Some("v1-rancher-compose.yml"),
    )
    .unwrap();
    assert_eq!(s.version, ComposeVersion::V1);
    let names: Vec<&str> = s.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["cache", "upgrade-target", "web"]);

    let web = s.service("web").unwrap();
    let lc = &web.launch_config;
    assert_eq!(lc.image, "nginx:1.9-alpine");
    assert_eq!(lc.command, ["nginx", "-g", "daemon off;"]);
    let ports: Vec<String> = lc.ports.iter().map(|p| p.to_string()).collect();
    assert_eq!(ports, ["10086:80/tcp", "443/tcp"]);
    assert_eq!(lc.ports[1].public, None, "443 alone is a random host port");
    assert_eq!(lc.environment["MODE"], "prod");
    assert_eq!(lc.environment["DEBUG"], "");
    assert_eq!(lc.network_mode, fields::NetworkMode::Host);
    assert_eq!(lc.run.restart_policy.as_ref().unwrap().name, "always");
    assert_eq!(lc.run.memory, Some(104_857_600));
    assert_eq!(lc.run.memory_reservation, Some(52_428_800));
    assert_eq!(
        lc.run.log_config, None,
        "log_driver '' and log_opt {{}} mean the default"
    );
    assert!(lc.run.tty && lc.run.stdin_open);
    assert_eq!(web.links[0].service, "cache");
    assert_eq!(web.links[0].alias, "memcached");
    assert_eq!(web.scale, 3);
    assert!(web.start_on_create);
    assert_eq!(
        web.upgrade_strategy,
        UpgradeStrategy {
            batch_size: 2,
            interval_millis: 500,
            start_first: true
        }
    );
    let hc = lc.health_check.as_ref().unwrap();
    assert_eq!(hc.port, 80);
    assert_eq!(hc.request_line.as_deref(), Some("GET /healthz HTTP/1.0"));
    assert_eq!(hc.initializing_timeout, Some(60000));
    assert_eq!(hc.strategy, HealthStrategy::RecreateOnQuorum { quorum: 2 });
    assert_eq!(web.metadata["owner"], "ops");
    assert_eq!(web.metadata["limits"]["rps"], 100);
    assert_eq!(web.kind, ServiceKind::Service);

    let cache = s.service("cache").unwrap();
    let lc = &cache.launch_config;
    assert_eq!(lc.data_volumes.len(), 2);
    assert_eq!(lc.data_volumes[0].kind, fields::VolumeKind::Anonymous);
    assert_eq!(lc.data_volumes[1].kind, fields::VolumeKind::Named);
    assert_eq!(lc.data_volumes[1].mode.as_deref(), Some("ro"));
    assert_eq!(lc.data_volumes_from, ["web"]);
    assert_eq!(lc.run.memory, Some(512 << 20));
    assert_eq!(lc.run.cpu_shares, Some(512));
    assert_eq!(lc.milli_cpu_reservation, Some(250));
    assert_eq!(lc.run.dns, ["8.8.8.8"]);
    assert_eq!(lc.run.user.as_deref(), Some("1000"));
    assert_eq!(lc.network_mode, fields::NetworkMode::Managed);
    assert!(lc.run.privileged);
    assert!(cache.retain_ip);
    assert_eq!(cache.scale, 2);
    assert_eq!(cache.upgrade_strategy, UpgradeStrategy::default());

    let target = s.service("upgrade-target").unwrap();
    assert!(
        target.placeholder,
        "a bare `name:` is a placeholder, not an error"
    );
    assert_eq!(target.scale, 1);
}

#[test]
fn v2_with_rancher_compose() {
    let s = parse(
        "dockercoins",
        "v2-docker-compose.yml",
        Some("v2-rancher-compose.yml"),
    )
    .unwrap();
    assert_eq!(s.version, ComposeVersion::V2);
    assert_eq!(s.volumes["redisdata"].as_deref(), Some("local"));
    assert_eq!(s.networks, ["front"]);
    let rng = s.service("rng").unwrap();
    assert_eq!(rng.scale, 3);
    let hc = rng.launch_config.health_check.as_ref().unwrap();
    assert_eq!(hc.strategy, HealthStrategy::Recreate);
    assert_eq!(hc.reinitializing_timeout, Some(60000));
    assert_eq!(hc.request_line, None, "no request line = TCP check");
    let hasher = s.service("hasher").unwrap();
    assert_eq!(
        hasher.launch_config.run.memory_reservation,
        Some(52_428_800)
    );
    let webui = s.service("webui").unwrap();
    assert_eq!(
        webui.launch_config.network_mode,
        fields::NetworkMode::Bridge
    );
    let log = webui.launch_config.run.log_config.as_ref().unwrap();
    assert_eq!(log.driver.as_deref(), Some("syslog"));
    assert_eq!(log.config["tag"], "webui");
    assert_eq!(webui.depends_on, ["redis"]);
    let worker = s.service("worker").unwrap();
    assert!(worker.global);
    let lb = s.service("lb").unwrap();
    assert_eq!(lb.kind, ServiceKind::LoadBalancerService);
    let rule = &lb.lb_config.as_ref().unwrap().port_rules[0];
    assert_eq!((rule.source_port, rule.target_port), (80, Some(80)));
    assert_eq!(rule.protocol, "http");
    assert_eq!(rule.service.as_deref(), Some("webui"));
    let sticky = lb
        .lb_config
        .as_ref()
        .unwrap()
        .stickiness_policy
        .as_ref()
        .unwrap();
    assert_eq!(sticky["indirect"], "true");
    // The model is what the API stores: it survives a JSON round trip.
    let json = serde_json::to_string(&s).unwrap();
    assert!(json.contains("\"launchConfig\""), "{json}");
    let back: StackSpec = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
}

#[test]
fn docker_compose_alone_gets_defaults() {
    let s = inline("web:\n  image: nginx\n", None).unwrap();
    let web = s.service("web").unwrap();
    assert_eq!(web.scale, 1);
    assert!(!web.start_on_create);
    assert_eq!(web.launch_config.health_check, None);
    assert_eq!(web.upgrade_strategy.batch_size, 1);
    assert_eq!(web.upgrade_strategy.interval_millis, 2000);
}

#[test]
fn bad_files_report_every_problem_with_positions() {
    let got = problems(parse(
        "app",
        "bad-docker-compose.yml",
        Some("bad-rancher-compose.yml"),
    ));
    let want = [
        "bad-docker-compose.yml:1:1: web_1: invalid service name \"web_1\": only letters, digits and '-' are allowed [InvalidCharacters]",
        "bad-docker-compose.yml:3:3: web_1.build: building images is not supported; build and push the image, then use image: [InvalidOption]",
        "bad-docker-compose.yml:5:5: web_1.ports[0]: invalid port \"80/sctp\": unknown protocol \"sctp\" (expected [[IP:]PUBLIC:]PRIVATE[/tcp|udp]) [InvalidFormat]",
        "bad-docker-compose.yml:7:14: web_1.mem_limit: invalid size \"lots\": expected bytes or a number with b, k, m or g (512m) [InvalidFormat]",
        "bad-docker-compose.yml:8:12: web_1.restart: invalid restart policy \"sometimes\": expected no, always, on-failure[:N] or unless-stopped [InvalidOption]",
        "bad-docker-compose.yml:9:3: web_1.bogus: unknown key [InvalidOption]",
        "bad-docker-compose.yml:11:5: web_1.links[0]: link to nowhere: no such service in this stack [InvalidReference]",
        "bad-docker-compose.yml:13:47: web_1.labels.io.rancher.scheduler.affinity:host_lable: unknown scheduling label io.rancher.scheduler.affinity:host_lable (see io.rancher.scheduler.affinity:host_label, container_label, container with _ne, _soft, _soft_ne) [InvalidOption]",
        "bad-docker-compose.yml:14:1: db: image is required [MissingRequired]",
        "bad-docker-compose.yml:15:15: db.privileged: expected a boolean (true or false), found a string \"maybe\" [InvalidFormat]",
        "bad-docker-compose.yml:17:5: db.volumes[0]: invalid volume \"./data:/data\": relative host path \"./data\" has no meaning on a cluster host; use an absolute path [InvalidOption]",
        "bad-docker-compose.yml:19:17: db.network_mode: net and network_mode both set; keep one [InvalidOption]",
        "bad-rancher-compose.yml:2:10: db.scale: expected an integer, found a string \"many\" [InvalidFormat]",
        "bad-rancher-compose.yml:5:18: db.upgrade_strategy.start_first: start_first cannot be used with retain_ip (the new container needs the old one's IP) [InvalidOption]",
        "bad-rancher-compose.yml:6:17: db.upgrade_strategy.batch_size: batch_size 0 must be at least 1 [MinLimitExceeded]",
        "bad-rancher-compose.yml:7:22: db.upgrade_strategy.interval_millis: interval_millis 10 must be at least 100 [MinLimitExceeded]",
        "bad-rancher-compose.yml:8:3: db.health_check: health_check needs a port [MissingRequired]",
        "bad-rancher-compose.yml:10:3: db.load_balancer_config: the v1 load balancer is not supported; use lb_config with port_rules [InvalidOption]",
        "bad-rancher-compose.yml:11:3: db.metadata: metadata must be a map [InvalidFormat]",
        "bad-rancher-compose.yml:12:1: ghost: service ghost is in the rancher-compose file but not in the docker-compose file [InvalidReference]",
        "bad-rancher-compose.yml:17:15: web_1.health_check.strategy: recreateOnQuorum needs a quorum of at least 1 [MissingRequired]",
        "bad-rancher-compose.yml:18:5: web_1.health_check.helthy_threshold: unknown key (did you mean healthy_threshold?) [InvalidOption]",
    ];
    assert_eq!(got, want);
}

#[test]
fn small_bad_inputs_table() {
    let rows: &[(&str, Option<&str>, &str)] = &[
        (
            "version: '3'\nservices:\n  web:\n    image: x\n",
            None,
            "docker-compose.yml:1:10: version: compose file version \"3\" is not supported (use version \"2\" or none) [InvalidOption]",
        ),
        (
            "services:\n  web:\n    image: x\n",
            None,
            "docker-compose.yml:1:1: services: services: needs version: \"2\" at the top of the file [InvalidOption]",
        ),
        (
            "web: [unclosed\n",
            None,
            "docker-compose.yml:2:1",
        ),
        (
            "web:\n  image: x\n  labels:\n    io.rancher.scheduler.global: 'true'\n",
            Some("web:\n  scale: 3\n"),
            "rancher-compose.yml:2:10: web.scale: scale has no effect on a global service (one container per host); remove it [InvalidOption]",
        ),
        (
            "lb:\n  image: rancher/lb-service-haproxy\n",
            Some("lb:\n  lb_config:\n    port_rules:\n    - source_port: 42\n      target_port: 80\n      service: web\n"),
            "rancher-compose.yml:4:20: lb.lb_config.port_rules[0].source_port: port 42 is reserved for the load balancer's health check [InvalidOption]",
        ),
        (
            "lb:\n  image: rancher/lb-service-haproxy\n",
            Some("lb:\n  lb_config:\n    port_rules:\n    - source_port: 80\n      service: web\n"),
            "rancher-compose.yml:5:16: lb.lb_config.port_rules[0].service: target web: no such service in this stack [InvalidReference]",
        ),
        (
            "lb:\n  image: rancher/lb-service-haproxy\nweb:\n  image: x\n",
            Some("lb:\n  lb_config:\n    port_rules:\n    - {source_port: 53, target_port: 53, service: web, protocol: udp}\n"),
            "rancher-compose.yml:4:66: lb.lb_config.port_rules[0].protocol: protocol udp: HAProxy cannot balance UDP (use http, tcp, https, tls or sni) [InvalidOption]",
        ),
        (
            "lb:\n  image: rancher/lb-service-haproxy\nweb:\n  image: x\n",
            Some("lb:\n  lb_config:\n    port_rules:\n    - {source_port: 80, target_port: 80, service: web}\n    - {source_port: 80, target_port: 81, service: web, protocol: tcp}\n"),
            "rancher-compose.yml:5:66: lb.lb_config.port_rules[1].protocol: port_rules[0] (http) and port_rules[1] (tcp) both listen on source_port 80: one port takes one protocol [InvalidOption]",
        ),
        (
            "web:\n  image: x\nWeb:\n  image: y\n",
            None,
            "docker-compose.yml:1:1: web: service name \"web\" is used twice (names ignore case) [NotUnique]",
        ),
        (
            "web:\n  image: x\n  external_links: [db]\n",
            None,
            "docker-compose.yml:3:20: web.external_links[0]: external links are written STACK/SERVICE[:ALIAS] [InvalidFormat]",
        ),
        (
            "web:\n  image: x\n  depends_on: [db]\n",
            None,
            "docker-compose.yml:3:16: web.depends_on[0]: depends on db: no such service in this stack [InvalidReference]",
        ),
        (
            "web:\n  image: x\n  log_driver: syslog\n  logging: {driver: syslog}\n",
            None,
            "docker-compose.yml:4:3: web.logging: log_driver and logging both set; keep one [InvalidOption]",
        ),
        (
            "web:\n  image: x\n",
            Some("web:\n  health_check:\n    port: 70000\n    strategy: sometimes\n"),
            "rancher-compose.yml:4:15: web.health_check.strategy: expected one of recreate, none, recreateOnQuorum, found \"sometimes\" [InvalidFormat]",
        ),
        (
            "web:\n  image: x\n",
            Some("web:\n  health_check:\n    port: 80\n    quorum: 2\n"),
            "rancher-compose.yml:4:13: web.health_check.quorum: quorum is only used with strategy recreateOnQuorum [InvalidOption]",
        ),
        (
            "web:\n  image: x\n",
            Some("version: '2'\nservices:\n  web:\n    vcpu: 2\n"),
            "rancher-compose.yml:4:5: services.web.vcpu: virtual machine services are not supported [InvalidOption]",
        ),
        (
            "web:\n  image: x\n  labels:\n    io.rancher.sidekicks: data\n",
            None,
            "docker-compose.yml:4:27: web.labels.io.rancher.sidekicks: sidekicks are not supported yet",
        ),
        (
            "web: nginx\n",
            None,
            "docker-compose.yml:1:6: web: expected a map, found a string \"nginx\" [InvalidFormat]",
        ),
        (
            "web:\n  imgae: x\n",
            None,
            "docker-compose.yml:2:3: web.imgae: unknown key (did you mean image?) [InvalidOption]",
        ),
        (
            "- a\n",
            None,
            "docker-compose.yml:1:1: a compose file must be a map (of services, or version and services), found a list [InvalidFormat]",
        ),
        (
            "version: 2\nservices:\n  web:\n    image: x\nx-ext: 1\n",
            None,
            "docker-compose.yml:5:1: x-ext: unknown key (expected one of: version, services, volumes, networks) [InvalidOption]",
        ),
    ];
    for (docker, rancher, want) in rows {
        let got = problems(inline(docker, *rancher));
        assert!(
            got.iter().any(|p| p.starts_with(want)),
            "{docker:?}: {got:#?} lacks {want}"
        );
    }
}

#[test]
fn stack_name_is_validated() {
    let got = problems(parse_stack(
        "my_stack",
        Source {
            name: "docker-compose.yml",
            bytes: b"web:\n  image: x\n",
        },
        None,
    ));
    assert_eq!(
        got,
        ["stack name: invalid stack name \"my_stack\": only letters, digits and '-' are allowed [InvalidCharacters]"]
    );
}

#[test]
fn schedule_request_and_digest() {
    let s = parse(
        "app",
        "v1-docker-compose.yml",
        Some("v1-rancher-compose.yml"),
    )
    .unwrap();
    let web = s.service("web").unwrap();
    let r = web.schedule_request("app", 2);
    assert_eq!(r.name, "app-web-2");
    assert_eq!(r.labels["io.rancher.stack_service.name"], "app/web");
    assert_eq!(r.labels["io.rancher.stack.name"], "app");
    assert_eq!(r.ports.len(), 2);
    assert_eq!(r.ports[0].port, Some(10086));
    assert_eq!(r.ports[1].port, None);
    assert_eq!(r.memory_reservation, 52_428_800);
    assert_eq!(
        s.service("cache")
            .unwrap()
            .schedule_request("app", 1)
            .milli_cpu_reservation,
        250
    );

    let d = web.launch_config.digest();
    assert_eq!(d.len(), 16);
    assert_eq!(d, web.launch_config.clone().digest(), "stable");
    let mut changed = web.launch_config.clone();
    changed.image = "nginx:1.10-alpine".into();
    assert_ne!(changed.digest(), d);
}

#[test]
fn never_panics_on_truncated_or_mangled_input() {
    for name in [
        "v1-docker-compose.yml",
        "v2-docker-compose.yml",
        "bad-docker-compose.yml",
        "v1-rancher-compose.yml",
        "v2-rancher-compose.yml",
        "bad-rancher-compose.yml",
    ] {
        let bytes = fixture(name);
        for cut in (0..bytes.len()).step_by(5) {
            let mut b = bytes[..cut].to_vec();
            let _ = parse_stack("app", Source { name, bytes: &b }, None);
            let _ = parse_stack(
                "app",
                Source {
                    name: "d.yml",
                    bytes: b"web:\n  image: x\n",
                },
                Some(Source { name, bytes: &b }),
            );
            if let Some(c) = b.get_mut(cut / 2) {
                *c = b':';
            }
            let _ = parse_stack("app", Source { name, bytes: &b }, None);
        }
    }
}

#[test]
fn empty_files_make_an_empty_stack() {
    let s = inline("", Some("# nothing\n")).unwrap();
    assert!(s.services.is_empty());
}

#[test]
fn v1_load_balancer_labels_become_port_rules() {
    let dc = "lb:\n  image: rancher/load-balancer-service\n  ports: ['80:80', '9000:9000/tcp', '443:443']\n  expose: ['81']\n  links: [web, 'api:backend']\n  external_links: ['other/db']\n  labels:\n    io.rancher.loadbalancer.target.web: 80=8080,81=8081\n    io.rancher.loadbalancer.target.backend: 'api.example.com:80/v1=8000, 443=8443'\n    io.rancher.loadbalancer.ssl.ports: '443'\nweb:\n  image: x\napi:\n  image: y\n";
    let s = inline(dc, None).unwrap();
    let lb = s.service("lb").unwrap();
    assert_eq!(lb.kind, ServiceKind::LoadBalancerService);
    type Row<'a> = (
        u16,
        Option<u16>,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        &'a str,
    );
    let rules: Vec<Row> = lb
        .lb_config
        .as_ref()
        .unwrap()
        .port_rules
        .iter()
        .map(|r| {
            (
                r.source_port,
                r.target_port,
                r.protocol.as_str(),
                r.hostname.as_deref(),
                r.path.as_deref(),
                r.service.as_deref().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rules,
        [
            (80, Some(8080), "http", None, None, "web"),
            (81, Some(8081), "http", None, None, "web"),
            (
                80,
                Some(8000),
                "http",
                Some("api.example.com"),
                Some("/v1"),
                "api"
            ),
            (443, Some(8443), "https", None, None, "api"),
            // No label: every listener on the same port.
            (80, Some(80), "http", None, None, "other/db"),
            (9000, Some(9000), "tcp", None, None, "other/db"),
            (443, Some(443), "https", None, None, "other/db"),
            (81, Some(81), "http", None, None, "other/db"),
        ]
    );
    // rancher-compose's lb_config brings the certificates to v1 rules; a
    // /tcp port in the ssl label terminates TLS then goes on as TCP.
    let s = inline(
        "lb:\n  image: rancher/load-balancer-service\n  ports: ['443:443', '8443:8443/tcp']\n  links: [web]\n  labels: {io.rancher.loadbalancer.ssl.ports: '443,8443'}\nweb:\n  image: x\n",
        Some("lb:\n  lb_config:\n    certs: [site]\n"),
    )
    .unwrap();
    let lb = s.service("lb").unwrap().lb_config.clone().unwrap();
    assert_eq!(lb.certificates, ["site"]);
    let protos: Vec<(u16, &str)> = lb
        .port_rules
        .iter()
        .map(|r| (r.source_port, r.protocol.as_str()))
        .collect();
    assert_eq!(protos, [(443, "https"), (8443, "tls")]);
    // The labels alone make a load balancer of any image.
    let s = inline(
        "lb:\n  image: rancher/lb-service-haproxy\n  ports: ['8080:80']\n  links: [web]\n  labels: {io.rancher.loadbalancer.target.web: '80=8080'}\nweb:\n  image: x\n",
        None,
    )
    .unwrap();
    let lb = s.service("lb").unwrap();
    assert_eq!(lb.kind, ServiceKind::LoadBalancerService);
    assert_eq!(lb.lb_config.as_ref().unwrap().port_rules.len(), 1);
}

#[test]
fn malformed_v1_load_balancer_labels_are_positioned() {
    let head = "lb:\n  image: rancher/load-balancer-service\n  ports: ['80:80']\n  links: [web]\n  labels:\n";
    let rows = [
        (
            "    io.rancher.loadbalancer.target.web: 80=http\n",
            "docker-compose.yml:6:41: lb.labels.io.rancher.loadbalancer.target.web: io.rancher.loadbalancer.target.web: \"80=http\": target port \"http\" is not a port number (1-65535); entries are written [hostname][:source_port][/path][=target_port] [InvalidFormat]",
        ),
        (
            "    io.rancher.loadbalancer.target.web: a.com:81=8080\n",
            "docker-compose.yml:6:41: lb.labels.io.rancher.loadbalancer.target.web: io.rancher.loadbalancer.target.web: source port 81 is not one of the load balancer's ports (80) [InvalidReference]",
        ),
        (
            "    io.rancher.loadbalancer.target.db: 80=8080\n",
            "docker-compose.yml:6:40: lb.labels.io.rancher.loadbalancer.target.db: io.rancher.loadbalancer.target.db: \"db\" is not a linked service (add it to links, or to external_links as stack/service) [InvalidReference]",
        ),
        (
            "    io.rancher.loadbalancer.target.web: '80=8080,'\n",
            "docker-compose.yml:6:41: lb.labels.io.rancher.loadbalancer.target.web: io.rancher.loadbalancer.target.web: an empty entry (two commas, or one at the end) [InvalidFormat]",
        ),
        (
            "    io.rancher.loadbalancer.ssl.ports: '444'\n",
            "docker-compose.yml:6:40: lb.labels.io.rancher.loadbalancer.ssl.ports: io.rancher.loadbalancer.ssl.ports: port 444 is not one of the load balancer's ports or expose [InvalidReference]",
        ),
    ];
    for (label, want) in rows {
        let dc = format!("{head}{label}web:\n  image: x\n");
        let got = problems(inline(&dc, None));
        assert_eq!(got, [want], "{label}");
    }
    let got = problems(inline(
        "lb:\n  image: rancher/load-balancer-service\n  links: [web]\nweb:\n  image: x\n",
        None,
    ));
    assert_eq!(got, ["docker-compose.yml:3:3: lb.links: a v1 load balancer listens on its ports (or expose): add the ports it serves [MissingRequired]"]);
    let got = problems(inline(
        "lb:\n  image: rancher/lb-service-haproxy\n  links: [web]\n  labels: {io.rancher.loadbalancer.target.web: '80'}\nweb:\n  image: x\n",
        Some("lb:\n  lb_config:\n    port_rules: [{source_port: 80, service: web}]\n"),
    ));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("lb.labels: io.rancher.loadbalancer.target.* labels (the v1 load balancer) and lb_config.port_rules are both set; keep one"), "{got:?}");
}

#[test]
fn lb_certificates_by_rancher_name_or_certificates() {
    for key in ["certs", "certificates"] {
        let rc = format!(
            "lb:\n  lb_config:\n    {key}: [site, other]\n    default_cert: site\n    port_rules:\n    - {{source_port: 443, target_port: 80, service: web, protocol: https}}\n"
        );
        let s = inline(
            "lb:\n  image: rancher/lb-service-haproxy\nweb:\n  image: x\n",
            Some(&rc),
        )
        .unwrap();
        let lb = s.service("lb").unwrap().lb_config.as_ref().unwrap();
        assert_eq!(lb.certificates, ["site", "other"], "{key}");
        assert_eq!(lb.default_certificate.as_deref(), Some("site"));
        assert_eq!(lb.port_rules[0].protocol, "https");
    }
}
