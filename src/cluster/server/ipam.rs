//! Managed-network addresses handed out outside the reconciler: to
//! containers created directly (`POST /containers`) and to plain docker
//! containers an agent attaches (`io.rancher.container.network=true`).
//! Called under the server's write lock, as the reconciler's passes run,
//! so the two never hand out one address twice: both see every live
//! container's address and the ones services retain (`retainIp`).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use serde_json::Value;

use crate::cluster::model::{Kind, Resource};
use crate::cluster::plan::allocate;
use crate::cluster::plan::reconcile::{project_subnet, PRIMARY_IP, RETAINED_IPS};
use crate::cluster::store::{Scope, Store, StoreError};

/// The lowest free address of `project`'s subnet, not counting rows in
/// `pending` (about to be committed with theirs) as free; `Ok(Err(why))`
/// when the subnet is full or does not parse.
pub fn free_address(
    store: &dyn Store,
    project: u64,
    pending: &[Resource],
) -> Result<Result<Ipv4Addr, String>, StoreError> {
    let p = store.get(Kind::Project, project)?;
    let subnet = match project_subnet(p.as_ref()) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let mut used: BTreeSet<u32> = store
        .list(Kind::Container, Scope::Project(project))?
        .iter()
        .chain(pending)
        .filter(|c| !c.is_removed())
        .filter_map(|c| c.str(PRIMARY_IP)?.parse::<Ipv4Addr>().ok())
        .map(u32::from)
        .collect();
    for s in store.list(Kind::Service, Scope::Project(project))? {
        if let Some(m) = s.data.get(RETAINED_IPS).and_then(Value::as_object) {
            used.extend(
                m.values()
                    .filter_map(|v| v.as_str()?.parse::<Ipv4Addr>().ok())
                    .map(u32::from),
            );
        }
    }
    Ok(allocate::address(&subnet, &used, None).map(Ipv4Addr::from))
}
