//! `ros compose lb-stats SERVICE`: the API's `…/loadbalancerservices/{id}/stats`
//! as text, one block per load balancer container.

use std::fmt::Write as _;

use anyhow::{bail, Result};
use serde_json::Value;

use super::Ctx;

/// Print the HAProxy stats of the stack's load balancer `service`.
pub(super) fn print(cx: &Ctx, service: &str) -> Result<i32> {
    let Some(st) = cx.stack()? else {
        bail!("no stack {}", cx.stack);
    };
    let sid = st["id"].as_str().unwrap_or_default();
    let Some(svc) = cx.services(sid)?.into_iter().find(|s| s["name"] == service) else {
        bail!("no service {service} in stack {}", cx.stack);
    };
    if svc["type"] != "loadBalancerService" {
        bail!("{service} is a {}, not a load balancer", svc["type"]);
    }
    let id = svc["id"].as_str().unwrap_or_default();
    let v = cx
        .client
        .get(&cx.path(&format!("loadbalancerservices/{id}/stats")))?;
    let text = render(&v);
    print!("{text}");
    let failed = v["containers"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| !c["error"].is_null()));
    Ok(i32::from(failed))
}

fn sessions(v: &Value) -> String {
    format!(
        "cur {} total {}",
        v["currentSessions"].as_u64().unwrap_or(0),
        v["totalSessions"].as_u64().unwrap_or(0)
    )
}

/// The stats answer as text: one block per container; frontends, then
/// backends with their servers indented below them.
pub(super) fn render(v: &Value) -> String {
    let mut o = String::new();
    let list = |v: &Value, f: &str| v[f].as_array().cloned().unwrap_or_default();
    for c in list(v, "containers") {
        let _ = writeln!(
            o,
            "{} ({} on {})",
            c["name"].as_str().unwrap_or_default(),
            c["containerId"].as_str().unwrap_or_default(),
            c["hostId"].as_str().unwrap_or_default()
        );
        if let Some(e) = c["error"].as_str() {
            let _ = writeln!(o, "  error: {e}");
            continue;
        }
        for f in list(&c, "frontends") {
            let _ = writeln!(
                o,
                "  frontend {} {} {}",
                f["name"].as_str().unwrap_or_default(),
                f["status"].as_str().unwrap_or_default(),
                sessions(&f)
            );
        }
        for b in list(&c, "backends") {
            let _ = writeln!(
                o,
                "  backend {} {} {} (free slots {})",
                b["name"].as_str().unwrap_or_default(),
                b["status"].as_str().unwrap_or_default(),
                sessions(&b),
                b["freeSlots"].as_u64().unwrap_or(0)
            );
            for s in list(&b, "servers") {
                let _ = writeln!(
                    o,
                    "    {} {} {} {} {}",
                    s["name"].as_str().unwrap_or_default(),
                    s["address"].as_str().unwrap_or_default(),
                    s["status"].as_str().unwrap_or_default(),
                    sessions(&s),
                    s["checkStatus"].as_str().unwrap_or_default()
                );
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn stats_render_as_indented_blocks() {
        let v = json!({"containers": [
            {"name": "app-lb-1", "containerId": "1i9", "hostId": "1h1",
             "frontends": [{"name": "port_80", "status": "OPEN", "currentSessions": 0, "totalSessions": 33}],
             "backends": [{"name": "web_1s1_80", "status": "UP", "currentSessions": 1, "totalSessions": 33, "freeSlots": 5,
                           "servers": [{"name": "s1", "address": "10.42.0.5:80", "status": "UP", "currentSessions": 1, "totalSessions": 11, "checkStatus": "L7OK"}]}]},
            {"name": "app-lb-2", "containerId": "1i10", "hostId": "1h2", "error": "host 1h2 (node2) is disconnected"}]});
        assert_eq!(
            super::render(&v),
            "app-lb-1 (1i9 on 1h1)\n  frontend port_80 OPEN cur 0 total 33\n  backend web_1s1_80 UP cur 1 total 33 (free slots 5)\n    s1 10.42.0.5:80 UP cur 1 total 11 L7OK\napp-lb-2 (1i10 on 1h2)\n  error: host 1h2 (node2) is disconnected\n"
        );
    }
}
