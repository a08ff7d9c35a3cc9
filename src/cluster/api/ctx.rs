//! What a handler gets about one request ([`Ctx`]), shared by the
//! handler modules; it imports none of them, so `api/` has no import cycle:
//! `handlers` → {`agent_api`, `create`, `services`, `relay`} → `ctx`.

use super::{ApiError, App};
use crate::cluster::model::Kind;

/// Everything a handler needs about one request.
pub struct Ctx<'a> {
    /// Server state.
    pub app: &'a App,
    /// Base URL (`http://host:8080/v1`).
    pub base: &'a str,
    /// Query pairs.
    pub query: Vec<(String, String)>,
    /// Body bytes.
    pub body: axum::body::Bytes,
}

/// True when a live resource of `kind` in `project` already has `name`.
pub fn name_taken(
    cx: &Ctx<'_>,
    kind: Kind,
    project: Option<u64>,
    name: &str,
    except: u64,
) -> Result<bool, ApiError> {
    Ok(cx.app.store.name_in_use(kind, project, name, except)?)
}
