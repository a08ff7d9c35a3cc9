//! The agent's copy of its environment (see
//! [`crate::cluster::server::envview`]): what the DNS server and the
//! metadata service answer from, kept current by the deltas riding on the
//! sync answers.

use std::collections::HashMap;

use crate::cluster::protocol::{EnvContainer, EnvDelta, EnvHost, EnvInfo, EnvService, EnvStack};

/// The environment as last synced.
#[derive(Clone, Debug, Default)]
pub struct View {
    /// Server epoch the entries come from (0 = nothing yet).
    pub epoch: u64,
    /// Revision held.
    pub revision: u64,
    /// The environment.
    pub environment: EnvInfo,
    /// Hosts by id.
    pub hosts: HashMap<String, EnvHost>,
    /// Stacks by id.
    pub stacks: HashMap<String, EnvStack>,
    /// Services by id.
    pub services: HashMap<String, EnvService>,
    /// Containers by id.
    pub containers: HashMap<String, EnvContainer>,
}

impl View {
    /// Apply a delta from the server.
    pub fn apply(&mut self, d: EnvDelta) {
        if d.full {
            self.hosts.clear();
            self.stacks.clear();
            self.services.clear();
            self.containers.clear();
        }
        self.epoch = d.epoch;
        self.revision = d.revision;
        self.environment = d.environment;
        for id in d.removed {
            self.hosts.remove(&id);
            self.stacks.remove(&id);
            self.services.remove(&id);
            self.containers.remove(&id);
        }
        for h in d.hosts {
            self.hosts.insert(h.id.clone(), h);
        }
        for s in d.stacks {
            self.stacks.insert(s.id.clone(), s);
        }
        for s in d.services {
            self.services.insert(s.id.clone(), s);
        }
        for c in d.containers {
            self.containers.insert(c.id.clone(), c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_add_change_and_remove_and_a_full_copy_replaces() {
        let c = |id: &str, state: &str| EnvContainer {
            id: id.into(),
            state: state.into(),
            ..EnvContainer::default()
        };
        let mut v = View::default();
        v.apply(EnvDelta {
            epoch: 3,
            revision: 10,
            full: true,
            containers: vec![c("1i1", "running"), c("1i2", "running")],
            ..EnvDelta::default()
        });
        v.apply(EnvDelta {
            epoch: 3,
            revision: 12,
            containers: vec![c("1i1", "stopped")],
            removed: vec!["1i2".into()],
            ..EnvDelta::default()
        });
        assert_eq!((v.epoch, v.revision), (3, 12));
        assert_eq!(v.containers.len(), 1);
        assert_eq!(v.containers["1i1"].state, "stopped");
        v.apply(EnvDelta {
            epoch: 4,
            revision: 2,
            full: true,
            containers: vec![c("1i5", "running")],
            ..EnvDelta::default()
        });
        assert_eq!(v.containers.keys().collect::<Vec<_>>(), ["1i5"]);
    }
}
