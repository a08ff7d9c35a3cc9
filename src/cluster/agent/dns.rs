//! The per-host DNS server (Rancher's 169.254.169.250:53), UDP and TCP:
//! names of the environment from the agent's own [`Index`] (no round trip
//! to the server per query), everything else forwarded to the host's
//! resolvers with a short timeout.
//!
//! Written on `hickory-proto`'s message codec rather than
//! `hickory-server`: the server needs one zone computed per querier (link
//! aliases depend on the source address), which `hickory-server`'s
//! authority model does not fit, and the codec alone is a much smaller
//! addition to the node image. The UDP path answers local names inline in
//! one task (no allocation beyond the message); forwarded queries run in
//! their own tasks, at most [`MAX_FORWARDS`] at once (beyond that the
//! client gets SERVFAIL at once rather than an fd exhaustion).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;

use super::names::{Answer, Index, Lookup};

/// Forwarded queries in flight at most.
pub const MAX_FORWARDS: usize = 1024;

/// TTL of the environment's names: short, so a client that caches still
/// sees a container leave within about a second.
const TTL: u32 = 1;

/// How the DNS server runs.
#[derive(Clone, Debug)]
pub struct DnsConfig {
    /// Where it listens (UDP and TCP).
    pub listen: SocketAddr,
    /// Where it forwards other names.
    pub upstreams: Vec<SocketAddr>,
    /// How long one upstream gets.
    pub timeout: Duration,
}

/// The nameservers of a resolv.conf, minus `skip` (our own address:
/// forwarding to ourselves would loop).
pub fn resolv_conf_upstreams(text: &str, skip: &[IpAddr]) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next())?
        })
        .filter_map(|a| a.split('%').next()?.parse::<IpAddr>().ok())
        .filter(|ip| !skip.contains(ip))
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// The resolver shared by the listeners.
pub struct Resolver {
    index: RwLock<Arc<Index>>,
    upstreams: Vec<SocketAddr>,
    timeout: Duration,
    forwards: Semaphore,
    /// Where the next answer's address list starts: each query gets the
    /// list rotated by one, so clients that take the first address (most
    /// do) spread over a service's containers, as Rancher's DNS did.
    turn: std::sync::atomic::AtomicUsize,
}

/// What to do with one query.
enum Step {
    /// Send these bytes back.
    Reply(Vec<u8>),
    /// Forward the query as it came.
    Forward,
    /// Answer a CNAME and chase its target upstream.
    Chase(Box<Message>, Name),
    /// Nothing (unparseable, no id to answer).
    Drop,
}

impl Resolver {
    /// A resolver over `index`.
    pub fn new(index: Index, upstreams: Vec<SocketAddr>, timeout: Duration) -> Arc<Resolver> {
        Arc::new(Resolver {
            index: RwLock::new(Arc::new(index)),
            upstreams,
            timeout,
            forwards: Semaphore::new(MAX_FORWARDS),
            turn: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Replace the index (after a view change).
    pub fn set_index(&self, ix: Index) {
        if let Ok(mut i) = self.index.write() {
            *i = Arc::new(ix);
        }
    }

    /// The current index.
    pub fn index(&self) -> Arc<Index> {
        self.index
            .read()
            .map(|i| i.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    fn step(&self, buf: &[u8], from: IpAddr) -> Step {
        let req = match Message::from_vec(buf) {
            Ok(m) => m,
            Err(_) if buf.len() >= 2 => {
                let id = u16::from_be_bytes([buf[0], buf[1]]);
                let m = Message::error_msg(id, OpCode::Query, ResponseCode::FormErr);
                return m.to_vec().map_or(Step::Drop, Step::Reply);
            }
            Err(_) => return Step::Drop,
        };
        if req.message_type() != MessageType::Query {
            return Step::Drop;
        }
        if req.op_code() != OpCode::Query || req.queries().len() != 1 {
            let m = Message::error_msg(req.id(), req.op_code(), ResponseCode::NotImp);
            return m.to_vec().map_or(Step::Drop, Step::Reply);
        }
        let q = &req.queries()[0];
        let ascii = q.name().to_lowercase().to_ascii();
        let name = ascii.trim_end_matches('.');
        let from4 = match from {
            IpAddr::V4(ip) => Some(ip),
            IpAddr::V6(ip) => ip.to_ipv4_mapped(),
        };
        let ix = self.index();
        let mut resp = reply_to(&req);
        match ix.lookup(name, from4) {
            Lookup::Forward => return Step::Forward,
            Lookup::NxDomain => {
                resp.set_response_code(ResponseCode::NXDomain);
            }
            Lookup::Found(Answer::A(ips)) => {
                if matches!(q.query_type(), RecordType::A | RecordType::ANY) && !ips.is_empty() {
                    let first =
                        self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % ips.len();
                    for ip in ips[first..].iter().chain(&ips[..first]) {
                        resp.add_answer(Record::from_rdata(
                            q.name().clone(),
                            TTL,
                            RData::A(A(*ip)),
                        ));
                    }
                }
            }
            Lookup::Found(Answer::Cname(target)) => {
                let Ok(mut t) = Name::from_ascii(target) else {
                    resp.set_response_code(ResponseCode::ServFail);
                    return resp.to_vec().map_or(Step::Drop, Step::Reply);
                };
                t.set_fqdn(true);
                resp.add_answer(Record::from_rdata(
                    q.name().clone(),
                    TTL,
                    RData::CNAME(CNAME(t.clone())),
                ));
                if matches!(q.query_type(), RecordType::A | RecordType::AAAA) {
                    return Step::Chase(Box::new(resp), t);
                }
            }
        }
        resp.to_vec().map_or(Step::Drop, Step::Reply)
    }

    /// Answer one query (`tcp`: it came over TCP, so forward over TCP).
    pub async fn answer(self: &Arc<Self>, buf: &[u8], from: IpAddr, tcp: bool) -> Option<Vec<u8>> {
        match self.step(buf, from) {
            Step::Reply(b) => Some(b),
            Step::Drop => None,
            Step::Forward => Some(self.forward_or_fail(buf, tcp).await),
            Step::Chase(resp, target) => Some(self.chase(*resp, target, tcp).await),
        }
    }

    /// Forward, or SERVFAIL when no upstream answers.
    async fn forward_or_fail(&self, buf: &[u8], tcp: bool) -> Vec<u8> {
        if let Some(r) = self.forward(buf, tcp).await {
            return r;
        }
        let id = u16::from_be_bytes([buf[0], buf[1]]);
        let mut m = Message::error_msg(id, OpCode::Query, ResponseCode::ServFail);
        if let Ok(req) = Message::from_vec(buf) {
            m = reply_to(&req);
            m.set_response_code(ResponseCode::ServFail);
        }
        m.to_vec().unwrap_or_default()
    }

    /// Ask the upstreams in turn; their answer as it came.
    pub async fn forward(&self, buf: &[u8], tcp: bool) -> Option<Vec<u8>> {
        let _permit = self.forwards.try_acquire().ok()?;
        for up in &self.upstreams {
            let got = if tcp {
                tokio::time::timeout(self.timeout, forward_tcp(*up, buf)).await
            } else {
                tokio::time::timeout(self.timeout, forward_udp(*up, buf)).await
            };
            match got {
                Ok(Ok(r)) => return Some(r),
                Ok(Err(e)) => tracing::debug!(upstream = %up, error = %e, "dns forward"),
                Err(_) => tracing::debug!(upstream = %up, "dns forward timed out"),
            }
        }
        None
    }

    /// The CNAME answer plus the target's records from upstream.
    async fn chase(&self, mut resp: Message, target: Name, tcp: bool) -> Vec<u8> {
        let qtype = resp.queries()[0].query_type();
        let mut q = Message::new();
        q.set_id(rand::random());
        q.set_recursion_desired(true);
        q.add_query(hickory_proto::op::Query::query(target, qtype));
        if let Ok(bytes) = q.to_vec() {
            if let Some(up) = self.forward(&bytes, tcp).await {
                if let Ok(m) = Message::from_vec(&up) {
                    resp.add_answers(m.answers().iter().cloned());
                }
            }
        }
        resp.to_vec().unwrap_or_default()
    }
}

fn reply_to(req: &Message) -> Message {
    let mut m = Message::new();
    m.set_id(req.id())
        .set_message_type(MessageType::Response)
        .set_op_code(OpCode::Query)
        .set_authoritative(true)
        .set_recursion_desired(req.recursion_desired())
        .set_recursion_available(true);
    m.add_queries(req.queries().iter().cloned());
    m
}

async fn forward_udp(up: SocketAddr, buf: &[u8]) -> std::io::Result<Vec<u8>> {
    let bind: SocketAddr = if up.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = UdpSocket::bind(bind).await?;
    s.connect(up).await?;
    s.send(buf).await?;
    let mut out = vec![0u8; 4096];
    loop {
        let n = s.recv(&mut out).await?;
        // An answer to something else (a late one): keep waiting.
        if n >= 2 && out[..2] == buf[..2] {
            out.truncate(n);
            return Ok(out);
        }
    }
}

async fn forward_tcp(up: SocketAddr, buf: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(up).await?;
    let len = u16::try_from(buf.len()).map_err(std::io::Error::other)?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(buf);
    s.write_all(&framed).await?;
    let n = s.read_u16().await?;
    let mut out = vec![0u8; usize::from(n)];
    s.read_exact(&mut out).await?;
    Ok(out)
}

/// Serve UDP on `sock` until it fails.
pub async fn serve_udp(sock: Arc<UdpSocket>, r: Arc<Resolver>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "dns udp receive");
                continue;
            }
        };
        let q = &buf[..n];
        match r.step(q, from.ip()) {
            Step::Reply(b) => {
                let _ = sock.send_to(&b, from).await;
            }
            Step::Drop => {}
            Step::Forward => {
                let (r, sock, q) = (r.clone(), sock.clone(), q.to_vec());
                tokio::spawn(async move {
                    let b = r.forward_or_fail(&q, false).await;
                    let _ = sock.send_to(&b, from).await;
                });
            }
            Step::Chase(resp, target) => {
                let (r, sock) = (r.clone(), sock.clone());
                tokio::spawn(async move {
                    let b = r.chase(*resp, target, false).await;
                    let _ = sock.send_to(&b, from).await;
                });
            }
        }
    }
}

/// Serve TCP on `l` until the process ends (one task per connection,
/// several queries per connection).
pub async fn serve_tcp(l: TcpListener, r: Arc<Resolver>) {
    loop {
        let Ok((mut s, from)) = l.accept().await else {
            continue;
        };
        let r = r.clone();
        tokio::spawn(async move {
            loop {
                let read = tokio::time::timeout(Duration::from_secs(10), s.read_u16()).await;
                let Ok(Ok(n)) = read else { return };
                let mut q = vec![0u8; usize::from(n)];
                if s.read_exact(&mut q).await.is_err() {
                    return;
                }
                let Some(b) = r.answer(&q, from.ip(), true).await else {
                    continue;
                };
                let Ok(len) = u16::try_from(b.len()) else {
                    return;
                };
                let mut framed = len.to_be_bytes().to_vec();
                framed.extend_from_slice(&b);
                if s.write_all(&framed).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Bind both listeners (port 0: TCP on the port UDP got) and serve; the
/// address bound, or an error naming it.
pub async fn start(cfg: &DnsConfig, r: Arc<Resolver>) -> Result<SocketAddr, String> {
    let udp = UdpSocket::bind(cfg.listen)
        .await
        .map_err(|e| format!("dns: cannot listen on udp {}: {e}", cfg.listen))?;
    let bound = udp
        .local_addr()
        .map_err(|e| format!("dns: udp {}: {e}", cfg.listen))?;
    let tcp = TcpListener::bind(bound)
        .await
        .map_err(|e| format!("dns: cannot listen on tcp {bound}: {e}"))?;
    tokio::spawn(serve_udp(Arc::new(udp), r.clone()));
    tokio::spawn(serve_tcp(tcp, r));
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_come_from_resolv_conf_without_ourselves() {
        let text = "# c\nsearch x\nnameserver 10.0.0.2\nnameserver  169.254.169.250\n\
                    nameserver fe80::1%eth0\nnameserver bogus\noptions ndots:2\n";
        let ups = resolv_conf_upstreams(text, &["169.254.169.250".parse().unwrap()]);
        assert_eq!(
            ups,
            vec![
                "10.0.0.2:53".parse::<SocketAddr>().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
    }
}
