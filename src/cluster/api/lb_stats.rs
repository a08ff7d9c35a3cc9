//! `GET …/loadbalancerservices/{id}/stats`: each container of a load
//! balancer service asked, through its host's agent ([`super::relay`]),
//! for HAProxy's `show stat`, read live from the container's runtime API;
//! answered per container as frontends and backends with their servers:
//! status (`UP`, `DOWN`, `MAINT`, `DRAIN`), current and total sessions.
//! Free server slots (the agent keeps spare ones in maintenance, see
//! `agent::lb_config`) are counted, not listed.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::ctx::Ctx;
use super::ApiError;
use crate::cluster::model::{format_id, Kind, Resource};
use crate::cluster::protocol::AgentRequest;
use crate::cluster::store::Scope;

/// Longest wait for one container's answer.
const STATS_LIMIT: Duration = Duration::from_secs(10);

/// The address of a free slot (see `agent::lb_config::render`).
const FREE_SLOT_ADDR: &str = "127.0.0.1:";

fn num(row: &Map<String, Value>, f: &str) -> u64 {
    row.get(f)
        .and_then(Value::as_str)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn text<'a>(row: &'a Map<String, Value>, f: &str) -> &'a str {
    row.get(f).and_then(Value::as_str).unwrap_or("")
}

/// A server's status in one word: HAProxy writes `UP 1/3` while a server
/// goes down, `DOWN 1/2` while it comes up, and `no check` for one it
/// does not check (in rotation: `UP`).
fn status_word(s: &str) -> String {
    match s {
        "no check" => "UP".into(),
        s => s.split_whitespace().next().unwrap_or("").to_string(),
    }
}

/// HAProxy's `show stat` CSV as frontends and backends (servers inside
/// their backend); rows that are not CSV of that header are skipped.
pub fn parse_show_stat(csv: &str) -> Value {
    let mut lines = csv.lines();
    let header: Vec<&str> = match lines.next().and_then(|h| h.strip_prefix("# ")) {
        Some(h) => h.split(',').collect(),
        None => return json!({"frontends": [], "backends": []}),
    };
    let mut frontends = Vec::new();
    let mut backends: Vec<Value> = Vec::new();
    let mut servers: Vec<(String, Value)> = Vec::new();
    let mut free: Vec<(String, u64)> = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let row: Map<String, Value> = header
            .iter()
            .zip(line.split(','))
            .map(|(h, v)| ((*h).to_string(), json!(v)))
            .collect();
        let px = text(&row, "pxname").to_string();
        let sv = text(&row, "svname");
        let sessions = |o: &mut Value| {
            o["currentSessions"] = json!(num(&row, "scur"));
            o["totalSessions"] = json!(num(&row, "stot"));
        };
        match sv {
            "FRONTEND" => {
                let mut o = json!({"name": px, "status": text(&row, "status"),
                                   "requests": num(&row, "req_tot")});
                sessions(&mut o);
                frontends.push(o);
            }
            "BACKEND" => {
                let mut o = json!({"name": px, "status": status_word(text(&row, "status")),
                                   "activeServers": num(&row, "act")});
                sessions(&mut o);
                backends.push(o);
            }
            _ => {
                let status = status_word(text(&row, "status"));
                let addr = text(&row, "addr");
                if status == "MAINT" && addr.starts_with(FREE_SLOT_ADDR) {
                    match free.iter_mut().find(|(b, _)| *b == px) {
                        Some((_, n)) => *n += 1,
                        None => free.push((px, 1)),
                    }
                    continue;
                }
                let mut o = json!({"name": sv, "address": addr, "status": status,
                                   "haproxyStatus": text(&row, "status"),
                                   "checkStatus": text(&row, "check_status")});
                sessions(&mut o);
                servers.push((px, o));
            }
        }
    }
    for b in &mut backends {
        let name = b["name"].as_str().unwrap_or("").to_string();
        b["servers"] = json!(servers
            .iter()
            .filter(|(px, _)| *px == name)
            .map(|(_, s)| s.clone())
            .collect::<Vec<_>>());
        b["freeSlots"] = json!(free
            .iter()
            .find(|(px, _)| *px == name)
            .map_or(0, |(_, n)| *n));
    }
    json!({"frontends": frontends, "backends": backends})
}

/// `GET …/loadbalancerservices/{id}/stats` (also under `/v1`).
pub async fn stats(cx: &Ctx<'_>, svc: &Resource) -> Result<Response, ApiError> {
    if svc.str("kind") != Some("loadBalancerService") {
        return Err(ApiError::new(
            422,
            "InvalidType",
            format!(
                "service {} is not a loadBalancerService: only load balancers have HAProxy stats",
                svc.api_id()
            ),
        ));
    }
    let me = svc.api_id();
    let mut cs: Vec<Resource> = cx
        .app
        .store
        .list(Kind::Container, Scope::Project(svc.project))?
        .into_iter()
        .filter(|c| c.str("serviceId") == Some(me.as_str()) && !c.is_removed())
        .filter(|c| c.str("desiredState") != Some("removed"))
        .collect();
    cs.sort_by_key(|c| c.id);
    let asks = cs.iter().map(|c| one(cx, c));
    let containers: Vec<Value> = futures_util::future::join_all(asks).await;
    Ok(axum::Json(json!({
        "type": "loadBalancerStats", "serviceId": me,
        "name": svc.str("name").unwrap_or_default(), "containers": containers,
    }))
    .into_response())
}

/// One container's stats, or why there are none.
async fn one(cx: &Ctx<'_>, c: &Resource) -> Value {
    let mut out = json!({"containerId": c.api_id(), "name": c.str("name").unwrap_or_default(),
                         "hostId": format_id(Kind::Host, c.host), "state": c.state});
    let host = match cx.app.store.get(Kind::Host, c.host) {
        Ok(Some(h)) if c.host != 0 => h,
        _ => {
            out["error"] = json!("the container is not on a host");
            return out;
        }
    };
    let req = AgentRequest {
        kind: "lbStats".into(),
        instance_id: c.api_id(),
        ..AgentRequest::default()
    };
    match super::relay::ask(cx.app, &host, req, STATS_LIMIT).await {
        Ok(r) => match (r.error, r.text) {
            (Some(e), _) => out["error"] = json!(e),
            (None, Some(t)) => {
                let v = parse_show_stat(&t);
                out["frontends"] = v["frontends"].clone();
                out["backends"] = v["backends"].clone();
            }
            (None, None) => {
                out["error"] = json!("the agent answered without stats (an older agent?)")
            }
        },
        Err(e) => out["error"] = json!(e.message),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_stat_becomes_frontends_backends_and_servers() {
        let csv = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,addr\n\
port_80,FRONTEND,,,1,3,4096,33,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,3,,,,0,33,0,0,0,0,,0,3,33,,,\n\
web_1s1_80,s1,0,0,0,1,,11,0,0,,0,,0,0,0,0,UP,1,1,0,0,0,9,0,,1,3,1,,11,,2,0,,1,L7OK,200,1,0,11,0,0,0,0,,,,,0,0,10.42.0.5:80\n\
web_1s1_80,s2,0,0,1,1,,11,0,0,,0,,0,0,0,0,DOWN 1/2,1,1,0,0,0,9,0,,1,3,2,,11,,2,0,,1,L4CON,,1,0,11,0,0,0,0,,,,,0,0,10.42.1.5:80\n\
web_1s1_80,s3,0,0,0,0,,11,0,0,,0,,0,0,0,0,DRAIN,0,1,0,0,0,9,0,,1,3,3,,11,,2,0,,1,,,,0,11,0,0,0,0,,,,,0,0,10.42.2.5:80\n\
web_1s1_80,s4,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT,1,1,0,0,0,9,0,,1,3,4,,0,,2,0,,0,,,,0,0,0,0,0,0,,,,,0,0,127.0.0.1:80\n\
web_1s1_80,s5,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT,1,1,0,0,0,9,0,,1,3,5,,0,,2,0,,0,,,,0,0,0,0,0,0,,,,,0,0,127.0.0.1:80\n\
api_1s2_8080,s1,0,0,0,0,,2,0,0,,0,,0,0,0,0,no check,1,1,0,0,0,9,0,,1,4,1,,2,,2,0,,0,,,,0,2,0,0,0,0,,,,,0,0,10.42.0.9:8080\n\
web_1s1_80,BACKEND,0,0,1,3,410,33,0,0,0,0,,0,0,0,0,UP,2,2,0,,0,9,0,,1,3,0,,33,,1,0,,3,,,,0,33,0,0,0,0,,,,33,0,0,\n\
api_1s2_8080,BACKEND,0,0,0,0,410,2,0,0,0,0,,0,0,0,0,UP,1,1,0,,0,9,0,,1,4,0,,2,,1,0,,1,,,,0,2,0,0,0,0,,,,2,0,0,\n";
        let v = parse_show_stat(csv);
        assert_eq!(v["frontends"][0]["name"], "port_80");
        assert_eq!(v["frontends"][0]["totalSessions"], 33);
        assert_eq!(v["frontends"][0]["requests"], 33);
        let web = &v["backends"][0];
        assert_eq!(web["name"], "web_1s1_80");
        assert_eq!(web["currentSessions"], 1);
        assert_eq!(web["freeSlots"], 2, "{web}");
        let servers: Vec<(&str, &str, u64)> = web["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["address"].as_str().unwrap(),
                    s["status"].as_str().unwrap(),
                    s["totalSessions"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            servers,
            [
                ("10.42.0.5:80", "UP", 11),
                ("10.42.1.5:80", "DOWN", 11),
                ("10.42.2.5:80", "DRAIN", 11)
            ]
        );
        assert_eq!(web["servers"][1]["haproxyStatus"], "DOWN 1/2");
        assert_eq!(web["servers"][0]["checkStatus"], "L7OK");
        assert_eq!(
            v["backends"][1]["servers"][0]["status"], "UP",
            "no check = UP"
        );
        assert_eq!(
            parse_show_stat("Unknown command\n"),
            json!({"frontends": [], "backends": []})
        );
    }
}
