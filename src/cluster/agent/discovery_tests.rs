//! The DNS server and the metadata service for real: bound on loopback
//! addresses and free ports, asked by `dig` (UDP and TCP, with the
//! querier's source address picked by `-b`) and `curl` (`--interface`),
//! forwarding to an upstream DNS server the test runs.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::process::Command;
use tokio::sync::watch;

use super::dns::{self, DnsConfig, Resolver};
use super::envview::View;
use super::features::Assigned;
use super::metadata::{self, Meta};
use super::names::{tests::sample, Index};
use crate::cluster::protocol::{EnvHost, EnvInfo};

const META: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 250);
/// The address the `client` container (1i5) queries from.
const CLIENT: &str = "127.0.0.5";

/// The sample environment with the client container on a loopback
/// address, one host and the client service's metadata.
fn view() -> View {
    let mut v = sample();
    v.containers.get_mut("1i5").unwrap().primary_ip = Some(CLIENT.into());
    for c in v.containers.values_mut() {
        c.host_id = "1h1".into();
    }
    let client = v.services.get_mut("1s3").unwrap();
    client.metadata.insert("answer".into(), json!(42));
    client.metadata.insert("nested".into(), json!({"a": "b"}));
    client.labels.insert("tier".into(), "front".into());
    v.hosts.insert(
        "1h1".into(),
        EnvHost {
            id: "1h1".into(),
            name: "node1".into(),
            hostname: "node1".into(),
            agent_ip: "10.9.9.1".into(),
            agent_state: "active".into(),
            state: "active".into(),
            labels: [("zone".to_string(), "z".to_string())].into(),
            ..EnvHost::default()
        },
    );
    v.environment = EnvInfo {
        id: "1a5".into(),
        name: "Default".into(),
    };
    v.revision = 7;
    v
}

/// An upstream resolver: every A question answers 192.0.2.99, over UDP
/// and TCP; counts the questions.
async fn upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = udp.local_addr().unwrap();
    let tcp = TcpListener::bind(addr).await.unwrap();
    let n = Arc::new(AtomicUsize::new(0));
    fn answer(q: &[u8], n: &AtomicUsize) -> Vec<u8> {
        n.fetch_add(1, Ordering::Relaxed);
        let req = Message::from_vec(q).unwrap();
        let mut m = Message::new();
        m.set_id(req.id())
            .set_message_type(MessageType::Response)
            .set_recursion_available(true);
        m.add_queries(req.queries().iter().cloned());
        let name = req.queries()[0].name().clone();
        m.add_answer(Record::from_rdata(
            name,
            60,
            RData::A(A(Ipv4Addr::new(192, 0, 2, 99))),
        ));
        m.to_vec().unwrap()
    }
    let n1 = n.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let (len, from) = udp.recv_from(&mut buf).await.unwrap();
            let b = answer(&buf[..len], &n1);
            udp.send_to(&b, from).await.unwrap();
        }
    });
    let n2 = n.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = tcp.accept().await.unwrap();
            let n2 = n2.clone();
            tokio::spawn(async move {
                while let Ok(len) = s.read_u16().await {
                    let mut q = vec![0u8; usize::from(len)];
                    s.read_exact(&mut q).await.unwrap();
                    let b = answer(&q, &n2);
                    let mut f = u16::try_from(b.len()).unwrap().to_be_bytes().to_vec();
                    f.extend_from_slice(&b);
                    s.write_all(&f).await.unwrap();
                }
            });
        }
    });
    (addr, n)
}

async fn start_dns(upstreams: Vec<SocketAddr>) -> (SocketAddr, Arc<Resolver>) {
    let r = Resolver::new(
        Index::build(&view(), None, META),
        upstreams,
        Duration::from_millis(300),
    );
    let cfg = DnsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstreams: Vec::new(),
        timeout: Duration::from_millis(300),
    };
    (dns::start(&cfg, r.clone()).await.unwrap(), r)
}

/// `dig` at the server, from `src`: its full output.
async fn dig(server: SocketAddr, src: &str, tcp: bool, args: &[&str]) -> String {
    let mut cmd = Command::new("dig");
    cmd.arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string(), "-b", src])
        .args(["+time=2", "+tries=1"]);
    if tcp {
        cmd.arg("+tcp");
    }
    let out = cmd.args(args).output().await.expect("dig (dnsutils) runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn short(server: SocketAddr, src: &str, tcp: bool, name: &str) -> Vec<String> {
    let out = dig(server, src, tcp, &["+short", name]).await;
    let mut v: Vec<String> = out.lines().map(str::to_string).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_over_udp_and_tcp_and_forwarding() {
    let (up, asked) = upstream().await;
    let (srv, resolver) = start_dns(vec![up]).await;
    for tcp in [false, true] {
        let web = ["10.42.0.1", "10.42.0.2"];
        assert_eq!(short(srv, CLIENT, tcp, "web").await, web, "tcp={tcp}");
        assert_eq!(short(srv, CLIENT, tcp, "web.app").await, web);
        assert_eq!(
            short(srv, "127.0.0.1", tcp, "WEB.App.Rancher.Internal").await,
            web
        );
        assert_eq!(short(srv, CLIENT, tcp, "web.other").await, ["10.42.1.1"]);
        assert_eq!(
            short(srv, CLIENT, tcp, "log.web.app.rancher.internal").await,
            ["10.42.0.6"]
        );
        assert_eq!(short(srv, CLIENT, tcp, "app-db-1").await, ["10.42.0.4"]);
        assert_eq!(
            short(srv, CLIENT, tcp, "app-db-1.rancher.internal").await,
            ["10.42.0.4"]
        );
        // Links are per querier: `mysql` is the client's alias of db.
        assert_eq!(short(srv, CLIENT, tcp, "mysql").await, ["10.42.0.4"]);
        assert_eq!(
            short(srv, CLIENT, tcp, "both.app").await,
            ["10.42.0.1", "10.42.0.2", "10.42.0.4"]
        );
        assert_eq!(
            short(srv, CLIENT, tcp, "ext.app").await,
            ["192.0.2.7", "192.0.2.8"]
        );
        // External hostname: the CNAME, then its target chased upstream.
        assert_eq!(
            short(srv, CLIENT, tcp, "cn.app").await,
            ["192.0.2.99", "example.com."]
        );
        let nx = dig(srv, CLIENT, tcp, &["nope.app.rancher.internal"]).await;
        assert!(nx.contains("status: NXDOMAIN"), "{nx}");
        assert!(nx.contains(" aa"), "authoritative: {nx}");
        let v6 = dig(srv, CLIENT, tcp, &["AAAA", "web.app"]).await;
        assert!(
            v6.contains("status: NOERROR") && v6.contains("ANSWER: 0"),
            "{v6}"
        );
        // Everything else goes to the upstream.
        let before = asked.load(Ordering::Relaxed);
        assert_eq!(short(srv, CLIENT, tcp, "example.org").await, ["192.0.2.99"]);
        assert_eq!(short(srv, "127.0.0.1", tcp, "mysql").await, ["192.0.2.99"]);
        assert_eq!(asked.load(Ordering::Relaxed), before + 2);
    }
    // A view change is answered at once.
    let mut v = view();
    v.containers.get_mut("1i2").unwrap().health_state = Some("unhealthy".into());
    let prev = resolver.index();
    resolver.set_index(Index::build(&v, Some(&prev), META));
    assert_eq!(short(srv, CLIENT, false, "web.app").await, ["10.42.0.1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_upstream_is_servfail_after_the_timeout() {
    // A port nobody answers on.
    let dead = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (srv, _) = start_dns(vec![dead.local_addr().unwrap()]).await;
    let t = std::time::Instant::now();
    let out = dig(srv, CLIENT, false, &["example.org"]).await;
    assert!(out.contains("status: SERVFAIL"), "{out}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // Local names still answer.
    assert_eq!(
        short(srv, CLIENT, false, "web.app").await,
        ["10.42.0.1", "10.42.0.2"]
    );
}

async fn start_meta() -> SocketAddr {
    let (_vt, view) = watch::channel(Arc::new(view()));
    let (_at, assigned) = watch::channel(Assigned {
        host_id: "1h1".into(),
        instances: Vec::new(),
        overlay: None,
    });
    // The senders may go: the receivers keep the last value.
    std::mem::forget((_vt, _at));
    metadata::start("127.0.0.1:0".parse().unwrap(), Meta { view, assigned })
        .await
        .unwrap()
}

/// `curl` from `src`: (status, body).
async fn curl(srv: SocketAddr, src: &str, path: &str, json: bool) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-w", "\n%{http_code}", "--interface", src]);
    if json {
        cmd.args(["-H", "Accept: application/json"]);
    }
    let out = cmd
        .arg(format!("http://{srv}{path}"))
        .output()
        .await
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_in_text_and_json_with_self_by_source_address() {
    let srv = start_meta().await;
    let text = |p: &'static str| async move { curl(srv, CLIENT, p, false).await };
    assert_eq!(
        text("/latest/self/container/primary_ip").await,
        (200, CLIENT.into())
    );
    assert_eq!(
        text("/latest/self/container/name").await,
        (200, "app-client-1".into())
    );
    assert_eq!(
        text("/2016-07-29/self/service/name").await,
        (200, "client".into())
    );
    assert_eq!(
        text("/2015-12-19/self/stack/name").await,
        (200, "app".into())
    );
    assert_eq!(
        text("/latest/self/stack/environment_name").await,
        (200, "Default".into())
    );
    assert_eq!(
        text("/latest/self/host/agent_ip").await,
        (200, "10.9.9.1".into())
    );
    assert_eq!(
        text("/latest/self/service/metadata/answer").await,
        (200, "42".into())
    );
    assert_eq!(
        text("/latest/self/service/labels/tier").await,
        (200, "front".into())
    );
    assert_eq!(
        text("/latest/self/container/ips").await,
        (200, format!("0={CLIENT}\n"))
    );
    // A map lists its keys (`key/` for a map or a list).
    let (s, keys) = text("/latest/self/container").await;
    assert_eq!(s, 200);
    assert!(
        keys.lines().any(|l| l == "labels/") && keys.lines().any(|l| l == "primary_ip"),
        "{keys}"
    );
    // Lists index by number or by name.
    let (_, list) = text("/latest/stacks").await;
    assert_eq!(list, "0=Other\n1=app\n");
    assert_eq!(
        text("/latest/stacks/app/services/web/containers/1/primary_ip").await,
        (200, "10.42.0.2".into())
    );
    assert_eq!(text("/latest/hosts/0/name").await, (200, "node1".into()));
    assert_eq!(text("/latest/version").await, (200, "7".into()));
    let (_, root) = text("/").await;
    assert_eq!(root, "0=2015-12-19\n1=2016-07-29\n2=latest\n");

    // JSON: the same data as objects.
    let (s, body) = curl(srv, CLIENT, "/latest/self/service", true).await;
    assert_eq!(s, 200);
    let svc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(svc["metadata"], json!({"answer": 42, "nested": {"a": "b"}}));
    assert_eq!(svc["labels"], json!({"tier": "front"}));
    assert_eq!(svc["containers"][0]["name"], "app-client-1");
    assert_eq!(svc["containers"][0]["primary_ip"], CLIENT);
    assert_eq!(svc["links"]["app/db"], "mysql");
    let (_, body) = curl(srv, CLIENT, "/latest/self/host", true).await;
    let host: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(host["agent_ip"], "10.9.9.1");
    assert_eq!(host["labels"], json!({"zone": "z"}));

    // Not a container of the environment (a host-network container):
    // its host, and a clear 404 for self/container.
    let (s, ip) = curl(srv, "127.0.0.9", "/latest/self/host/agent_ip", false).await;
    assert_eq!((s, ip.as_str()), (200, "10.9.9.1"));
    let (s, why) = curl(srv, "127.0.0.9", "/latest/self/container", false).await;
    assert_eq!(s, 404);
    assert!(
        why.contains("127.0.0.9") && why.contains("host-network"),
        "{why}"
    );
    let (s, why) = curl(srv, "127.0.0.9", "/latest/self/service", true).await;
    assert_eq!(s, 404);
    let err: Value = serde_json::from_str(&why).unwrap();
    assert_eq!(err["code"], 404);
    // Unknown paths and versions.
    for p in [
        "/latest/nope",
        "/latest/self/container/nope",
        "/1999-01-01/self",
        "/latest/stacks/zzz",
    ] {
        let (s, _) = curl(srv, CLIENT, p, false).await;
        assert_eq!(s, 404, "{p}");
    }
}
