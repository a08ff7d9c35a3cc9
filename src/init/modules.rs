//! Kernel modules: resolve names through `modules.dep` (dependencies first)
//! and load them with finit_module(2). The image ships uncompressed `.ko`
//! files and a depmod-made `modules.dep` (see build/initrd.sh).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Modules the image needs on every boot (see PLATFORM-NOTES).
pub const BASE_MODULES: &[&str] = &[
    "crc32c_generic",
    "libcrc32c",
    "overlay",
    "bridge",
    "br_netfilter",
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
    "nf_tables",
    "nft_compat",
    "nft_chain_nat",
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
             kernel/fs/overlayfs/overlay.ko:\n",
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
        assert_eq!(
            split_entry("loop max_loop=8"),
            ("loop".to_string(), "max_loop=8".to_string())
        );
    }
}
