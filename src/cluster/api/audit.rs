//! The audit log (`GET /v1/auditlogs`, admin only): who (the credential's
//! user — admin, an API key's access key, or anonymous), what (method,
//! path, answer status), when and from where, for every mutating request
//! outside the agent endpoints. Kept in memory (the last
//! [`AuditLog::KEEP`] entries) and written to the server log as it
//! happens, so the log survives restarts where the server log is kept.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::cluster::auth;

/// The last requests that changed something.
#[derive(Default)]
pub struct AuditLog {
    entries: Mutex<(u64, VecDeque<Value>)>,
}

/// Who presented `header`: the Basic user, `admin` for a login JWT, or
/// `anonymous`.
pub fn who(header: Option<&str>) -> String {
    match header {
        None => "anonymous".into(),
        Some(h) if h.starts_with("Bearer ") => "admin (login token)".into(),
        Some(h) => auth::parse_basic(h).map_or_else(|| "malformed".into(), |(u, _)| u),
    }
}

impl AuditLog {
    /// Entries kept.
    pub const KEEP: usize = 10_000;

    /// Record one request.
    pub fn record(
        &self,
        who: String,
        method: &str,
        path: &str,
        status: u16,
        from: Option<std::net::IpAddr>,
    ) {
        let from = from.map_or_else(|| "-".to_string(), |a| a.to_string());
        tracing::info!(target: "audit", who = %who, method, path, status, from = %from, "audit");
        let Ok(mut e) = self.entries.lock() else {
            return;
        };
        e.0 += 1;
        let id = e.0;
        let created = crate::cluster::api::render::rfc3339(crate::cluster::model::now_ms());
        e.1.push_back(json!({
            "id": format!("1al{id}"), "type": "auditLog", "links": {}, "actions": {},
            "authenticatedAs": who, "eventType": format!("{method} {path}"),
            "method": method, "path": path, "responseCode": status,
            "created": created, "clientIp": from,
        }));
        while e.1.len() > Self::KEEP {
            e.1.pop_front();
        }
    }

    /// The collection, newest first.
    pub fn collection(&self, base: &str) -> Value {
        let data: Vec<Value> = self
            .entries
            .lock()
            .map(|e| e.1.iter().rev().cloned().collect())
            .unwrap_or_default();
        json!({"type": "collection", "resourceType": "auditLog",
               "links": {"self": format!("{base}/auditlogs")}, "data": data})
    }
}
