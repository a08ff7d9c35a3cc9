//! Kernel modules: resolve names through `modules.dep` (dependencies first)
//! and load them with finit_module(2). The image ships uncompressed `.ko`
//! files and a depmod-made `modules.dep` (see build/initrd.sh).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Modules the image needs on every boot (see PLATFORM-NOTES), loaded
/// after the switch before the boot goes on: the state disk, the
/// datasources, the NICs, system-docker's storage and bridge.
pub const BASE_MODULES: &[&str] = &[
    "crc32c_generic",
    "overlay",
    "bridge",
    "veth",
    "virtio_pci",
    "virtio_blk",
    "virtio_net",
    "virtio_scsi",
    "virtio_rng",
    "e1000",
    "ata_piix",
    "sr_mod",
    "isofs",
    "vfat",
    "nls_cp437",
    "nls_ascii",
    "nls_utf8",
    "ext4",
    "loop",
    "squashfs",
];

/// Modules the user engine and the cluster agent need, and nothing before
/// them: netfilter (iptables, legacy backend: the node's iptables is
/// built without nftables) and the overlay's VXLAN. PID 1 loads them in
/// the background while system-docker starts (system-docker runs with
/// `--iptables=false`) and waits for them before it starts sysinit.
pub const NETWORK_MODULES: &[&str] = &[
    "libcrc32c",
    "br_netfilter",
    "nf_nat",
    "nf_conntrack",
    "xt_conntrack",
    "xt_MASQUERADE",
    "xt_addrtype",
    "xt_nat",
    // `-p tcp --dport`: every published port's DNAT rule (the LB's 80:80)
    "xt_tcpudp",
    "ip_tables",
    "iptable_nat",
    "iptable_filter",
    // the overlay keeps the VXLAN port out of conntrack (raw NOTRACK)
    "xt_CT",
    "iptable_raw",
    // The managed network's overlay: vxlan and what it needs (loaded
    // first; the agent reports on the host when the device cannot be made).
    "udp_tunnel",
    "ip6_udp_tunnel",
    "vxlan",
];

/// Drivers for a boot medium on a real machine (the ISO keeps the store on
/// it): a SATA CD or disk (ahci), a USB stick (xhci/ehci + usb-storage).
/// In the initramfs, loaded only when the medium is not found on the
/// devices [`BASE_MODULES`] give (they cost ~0.8 s under TCG). Kept on one
/// line: build/initrd.sh reads the list from it.
pub const MEDIUM_MODULES: &[&str] = &["ahci", "sd_mod", "xhci_pci", "ehci_pci", "usb_storage"];

/// The part of [`BASE_MODULES`] PID 1 loads in the initramfs, before the
/// switch: what finding and mounting the boot medium and its store needs
/// (a CD or disk on IDE or virtio, iso9660, loop, squashfs). The rest are
/// loaded after the switch from the store, where their files stay (no RAM
/// once loaded). Kept on one line: build/initrd.sh reads the list from it.
pub const EARLY_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "virtio_scsi",
    "ata_piix",
    "sr_mod",
    "isofs",
    "loop",
    "squashfs",
];

/// `modules.dep`, keyed by module name (`-` and `_` are the same).
#[derive(Clone, Debug, Default)]
pub struct ModDep {
    entries: HashMap<String, (PathBuf, Vec<PathBuf>)>,
}

/// `kernel/fs/overlayfs/overlay.ko` → `overlay`.
pub fn module_name(path: &Path) -> String {
    let f = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
    f.split('.').next().unwrap_or("").replace('-', "_")
}

impl ModDep {
    /// Parse the text of modules.dep.
    pub fn parse(text: &str) -> ModDep {
        let mut entries = HashMap::new();
        for line in text.lines() {
            let Some((m, deps)) = line.split_once(':') else {
                continue;
            };
            let path = PathBuf::from(m.trim());
            let deps = deps.split_whitespace().map(PathBuf::from).collect();
            entries.insert(module_name(&path), (path, deps));
        }
        ModDep { entries }
    }

    /// The files to load for `name`, dependencies first; `None` when the
    /// module is unknown (built into the kernel, or missing).
    pub fn load_order(&self, name: &str) -> Option<Vec<PathBuf>> {
        let (path, deps) = self.entries.get(&name.replace('-', "_"))?;
        // modules.dep lists dependencies nearest-first: load them in reverse.
        let mut order: Vec<PathBuf> = deps.iter().rev().cloned().collect();
        order.push(path.clone());
        Some(order)
    }
}

/// One file of a load plan: what it needs loaded first, its parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanItem {
    /// Relative to the modules directory.
    pub file: PathBuf,
    /// Files (of this plan) that must be loaded before it.
    pub needs: Vec<PathBuf>,
    /// Module parameters (only for the module asked for by name).
    pub params: String,
}

impl ModDep {
    /// The files for `wanted` (name, parameters) with their dependencies,
    /// each once, in an order that loads dependencies first, each with
    /// what it needs, so independent modules can be loaded in parallel.
    /// Names the tree does not know (built in, or missing) are skipped
    /// unless `skip` says they are loaded already.
    pub fn plan(&self, wanted: &[(String, String)], skip: &dyn Fn(&str) -> bool) -> Vec<PlanItem> {
        let mut items: Vec<PlanItem> = Vec::new();
        let mut index: HashMap<PathBuf, usize> = HashMap::new();
        for (name, params) in wanted {
            let Some(files) = self.load_order(name) else {
                continue;
            };
            let last = files.len() - 1;
            for (i, f) in files.iter().enumerate() {
                if skip(&module_name(f)) {
                    continue;
                }
                let at = match index.get(f) {
                    Some(&at) => at,
                    None => {
                        let needs = self
                            .entries
                            .get(&module_name(f))
                            .map(|(_, d)| {
                                d.iter()
                                    .filter(|d| !skip(&module_name(d)))
                                    .cloned()
                                    .collect()
                            })
                            .unwrap_or_default();
                        items.push(PlanItem {
                            file: f.clone(),
                            needs,
                            params: String::new(),
                        });
                        index.insert(f.clone(), items.len() - 1);
                        items.len() - 1
                    }
                };
                if i == last && !params.is_empty() {
                    items[at].params = params.clone();
                }
            }
        }
        items
    }
}

/// Split a `ros.modules` entry `name param=value …` into name and params.
pub fn split_entry(entry: &str) -> (String, String) {
    let mut it = entry.split_whitespace();
    let name = it.next().unwrap_or("").to_string();
    (name, it.collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_load_first() {
        let d = ModDep::parse(
            "kernel/net/bridge/br_netfilter.ko: kernel/net/bridge/bridge.ko kernel/net/802/stp.ko kernel/net/llc/llc.ko\n\
             kernel/fs/overlayfs/overlay.ko:\n\
             kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko kernel/net/llc/llc.ko\n\
             kernel/net/802/stp.ko: kernel/net/llc/llc.ko\n\
             kernel/net/llc/llc.ko:\n",
        );
        assert_eq!(
            d.load_order("br-netfilter").unwrap(),
            [
                "kernel/net/llc/llc.ko",
                "kernel/net/802/stp.ko",
                "kernel/net/bridge/bridge.ko",
                "kernel/net/bridge/br_netfilter.ko"
            ]
            .map(PathBuf::from)
        );
        assert_eq!(
            d.load_order("overlay").unwrap(),
            [PathBuf::from("kernel/fs/overlayfs/overlay.ko")]
        );
        assert!(d.load_order("ext9").is_none());
        // a plan: each file once, with what it needs; loaded ones skipped
        let plan = d.plan(
            &[
                ("br_netfilter".into(), "".into()),
                ("overlay".into(), "index=off".into()),
                ("bridge".into(), "".into()),
            ],
            &|m| m == "llc",
        );
        let files: Vec<_> = plan.iter().map(|p| p.file.to_str().unwrap()).collect();
        assert_eq!(
            files,
            [
                "kernel/net/802/stp.ko",
                "kernel/net/bridge/bridge.ko",
                "kernel/net/bridge/br_netfilter.ko",
                "kernel/fs/overlayfs/overlay.ko"
            ]
        );
        assert_eq!(
            plan[2].needs,
            ["kernel/net/bridge/bridge.ko", "kernel/net/802/stp.ko"].map(PathBuf::from)
        );
        assert_eq!(plan[3].params, "index=off");
        assert!(plan[0].needs.is_empty(), "stp's llc is loaded already");
        assert_eq!(plan[1].needs, [PathBuf::from("kernel/net/802/stp.ko")]);
        assert_eq!(
            split_entry("loop max_loop=8"),
            ("loop".to_string(), "max_loop=8".to_string())
        );
    }
}
