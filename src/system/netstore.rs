//! The user engine's network store at boot.
//!
//! dockerd 20.10 keeps libnetwork's state in a bbolt file,
//! `<data root>/network/files/local-kv.db`. At every start it sets up each
//! stored network (the bridge device and its iptables rules), then deletes
//! the default `bridge` network and creates it again from the daemon's
//! flags (moby `initBridgeDriver`: "clear stale bridge network"). On a
//! second boot from a state disk the default bridge is therefore set up,
//! torn down and set up again: three passes of iptables, 4–5 s of the user
//! engine's start under QEMU/TCG that a first boot does not pay.
//!
//! When the store holds nothing but the predefined networks (`bridge`,
//! `host`, `none`) and their bookkeeping, it carries nothing dockerd does
//! not recreate on its own: containers on the predefined networks find
//! them by name. `ros user-docker` then removes the file before it execs
//! dockerd. Any other network (a `docker network create`, the agent's
//! `ros-<env>` networks), any record it does not know, or a file it cannot
//! read completely keeps the store as it is, with the reason logged.
//!
//! The reader is read-only and bounds-checked: it follows the valid meta
//! page with the higher transaction id through branch and leaf pages and
//! inline buckets, and treats anything out of shape as "keep".

use std::path::Path;

const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
const PAGE_HEADER: usize = 16;
const ELEMENT: usize = 16;
const BRANCH: u16 = 0x01;
const LEAF: u16 = 0x02;
const BUCKET_LEAF: u32 = 0x01;
const MAX_DEPTH: usize = 32;
/// libkv's bucket and key prefix for libnetwork's records.
const BUCKET: &[u8] = b"libnetwork";
const PREFIX: &str = "docker/network/v1.0/";
/// The networks every dockerd creates for itself.
pub const PREDEFINED: [&str; 3] = ["bridge", "host", "none"];

/// What to do with a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Only the predefined networks: dockerd recreates all of it.
    Reset,
    /// Something to keep, and why.
    Keep(String),
}

/// One key/value of a bucket, or a nested bucket.
#[derive(Debug)]
enum Entry {
    Value(Vec<u8>, Vec<u8>),
    Bucket(Vec<u8>, Vec<Entry>),
}

struct Db<'a> {
    data: &'a [u8],
    page_size: usize,
    visited: usize,
}

fn u16_at(b: &[u8], off: usize) -> Result<u16, String> {
    b.get(off..off + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| format!("truncated at byte {off}"))
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, String> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes(s.try_into().unwrap()))
        .ok_or_else(|| format!("truncated at byte {off}"))
}

fn u64_at(b: &[u8], off: usize) -> Result<u64, String> {
    b.get(off..off + 8)
        .map(|s| u64::from_le_bytes(s.try_into().unwrap()))
        .ok_or_else(|| format!("truncated at byte {off}"))
}

fn fnv1a64(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A meta page at `off`: (page size, root bucket's page, txid), if valid.
fn meta(data: &[u8], off: usize) -> Option<(usize, u64, u64)> {
    let m = data.get(off + PAGE_HEADER..off + PAGE_HEADER + 64)?;
    let magic = u32_at(m, 0).ok()?;
    let version = u32_at(m, 4).ok()?;
    let page_size = u32_at(m, 8).ok()? as usize;
    let root = u64_at(m, 16).ok()?;
    let txid = u64_at(m, 48).ok()?;
    let sum = u64_at(m, 56).ok()?;
    (magic == MAGIC
        && version == VERSION
        && (512..=1 << 20).contains(&page_size)
        && fnv1a64(&m[..56]) == sum)
        .then_some((page_size, root, txid))
}

impl<'a> Db<'a> {
    fn open(data: &'a [u8]) -> Result<(Db<'a>, u64), String> {
        let first = meta(data, 0);
        // The second meta page sits one page in; the first tells the size.
        let size = first.map_or(4096, |m| m.0);
        let second = meta(data, size);
        let (page_size, root, _) = match (first, second) {
            (Some(a), Some(b)) => {
                if b.2 > a.2 {
                    b
                } else {
                    a
                }
            }
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => return Err("no valid bbolt meta page".into()),
        };
        Ok((
            Db {
                data,
                page_size,
                visited: 0,
            },
            root,
        ))
    }

    /// The bytes of page `id` (with its overflow pages).
    fn page(&self, id: u64) -> Result<&'a [u8], String> {
        let start = usize::try_from(id)
            .ok()
            .and_then(|i| i.checked_mul(self.page_size))
            .ok_or_else(|| format!("page {id} out of range"))?;
        let overflow = u32_at(self.data, start + 12)? as usize;
        let len = (overflow + 1)
            .checked_mul(self.page_size)
            .ok_or_else(|| format!("page {id}: overflow {overflow} out of range"))?;
        self.data
            .get(start..start.saturating_add(len))
            .ok_or_else(|| format!("page {id} (+{overflow}) beyond the end of the file"))
    }

    /// Every entry below the page at the start of `p`.
    fn walk(&mut self, p: &'a [u8], depth: usize, out: &mut Vec<Entry>) -> Result<(), String> {
        self.visited += 1;
        if depth > MAX_DEPTH || self.visited > self.data.len() / 16 + 16 {
            return Err("the page tree is too deep or cyclic".into());
        }
        let flags = u16_at(p, 8)?;
        let count = u16_at(p, 10)? as usize;
        for i in 0..count {
            let e = PAGE_HEADER + i * ELEMENT;
            if flags & BRANCH != 0 {
                let child = u64_at(p, e + 8)?;
                let page = self.page(child)?;
                self.walk(page, depth + 1, out)?;
            } else if flags & LEAF != 0 {
                let kind = u32_at(p, e)?;
                let pos = u32_at(p, e + 4)? as usize;
                let ksize = u32_at(p, e + 8)? as usize;
                let vsize = u32_at(p, e + 12)? as usize;
                let k0 = e.checked_add(pos).ok_or("bad key offset")?;
                let v0 = k0.checked_add(ksize).ok_or("bad key size")?;
                let v1 = v0.checked_add(vsize).ok_or("bad value size")?;
                let key = p.get(k0..v0).ok_or("key beyond its page")?.to_vec();
                let value = p.get(v0..v1).ok_or("value beyond its page")?;
                if kind & BUCKET_LEAF != 0 {
                    let root = u64_at(value, 0)?;
                    let mut inner = Vec::new();
                    if root == 0 {
                        // An inline bucket: its page follows the header.
                        let page = value.get(16..).ok_or("inline bucket truncated")?;
                        self.walk(page, depth + 1, &mut inner)?;
                    } else {
                        let page = self.page(root)?;
                        self.walk(page, depth + 1, &mut inner)?;
                    }
                    out.push(Entry::Bucket(key, inner));
                } else {
                    out.push(Entry::Value(key, value.to_vec()));
                }
            } else {
                return Err(format!("unexpected page flags {flags:#x}"));
            }
        }
        Ok(())
    }
}

/// Judge a local-kv.db's bytes.
pub fn judge(data: &[u8]) -> Verdict {
    match judge_inner(data) {
        Ok(v) => v,
        Err(e) => Verdict::Keep(format!("cannot read it completely: {e}")),
    }
}

fn judge_inner(data: &[u8]) -> Result<Verdict, String> {
    let (mut db, root) = Db::open(data)?;
    let mut top = Vec::new();
    let page = db.page(root)?;
    db.walk(page, 0, &mut top)?;
    for entry in &top {
        let (name, inner) = match entry {
            Entry::Bucket(name, inner) => (name, inner),
            Entry::Value(k, _) => {
                return Ok(Verdict::Keep(format!(
                    "a top-level key {:?}",
                    String::from_utf8_lossy(k)
                )))
            }
        };
        if name.as_slice() != BUCKET {
            return Ok(Verdict::Keep(format!(
                "a bucket {:?}",
                String::from_utf8_lossy(name)
            )));
        }
        for e in inner {
            let Entry::Value(k, v) = e else {
                return Ok(Verdict::Keep("a nested bucket".into()));
            };
            let key = String::from_utf8_lossy(k);
            let Some(rest) = key.strip_prefix(PREFIX) else {
                return Ok(Verdict::Keep(format!("a record {key:?}")));
            };
            match rest.split('/').next().unwrap_or("") {
                "network" => {
                    // libkv's value: an 8-byte index, then the JSON.
                    let json = v.get(8..).unwrap_or_default();
                    let net: serde_json::Value = serde_json::from_slice(json)
                        .map_err(|e| format!("network record {key:?}: {e}"))?;
                    match net.get("name").and_then(|n| n.as_str()) {
                        Some(n) if PREDEFINED.contains(&n) => {}
                        Some(n) => return Ok(Verdict::Keep(format!("network {n:?}"))),
                        None => {
                            return Ok(Verdict::Keep(format!(
                                "a network record {key:?} without a name"
                            )))
                        }
                    }
                }
                "endpoint_count" | "endpoint" | "bridge" | "bridge-endpoint" => {}
                other => return Ok(Verdict::Keep(format!("{other} records"))),
            }
        }
    }
    Ok(Verdict::Reset)
}

/// Before the user dockerd starts on `data_root`: remove its network store
/// when [`judge`] says [`Verdict::Reset`]. Returns what was done, for the
/// log; `None` when there is no store (a first boot).
pub fn reset_if_predefined_only(data_root: &Path) -> Option<String> {
    let db = data_root.join("network/files/local-kv.db");
    let data = match std::fs::read(&db) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => return Some(format!("kept {}: cannot read it: {e}", db.display())),
    };
    Some(match judge(&data) {
        Verdict::Reset => match std::fs::remove_file(&db) {
            Ok(()) => format!(
                "removed {}: it held only the predefined networks, which dockerd recreates",
                db.display()
            ),
            Err(e) => format!("kept {}: cannot remove it: {e}", db.display()),
        },
        Verdict::Keep(why) => format!("kept {}: it holds {why}", db.display()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store written by the user dockerd of a booted node (qemu-tests
    /// 046, after its first boot ran and removed a container).
    const NODE: &[u8] = include_bytes!("testdata/local-kv-predefined.db");

    #[test]
    fn a_node_store_with_only_predefined_networks_is_reset() {
        assert_eq!(judge(NODE), Verdict::Reset);
    }

    /// Rewrite the JSON `"name":"<from>"` of the records in place (same
    /// length): bbolt checksums only its meta pages, not values.
    fn renamed(from: &str, to: &str) -> Vec<u8> {
        assert_eq!(from.len(), to.len());
        let mut d = NODE.to_vec();
        let needle = format!("\"name\":\"{from}\"");
        let mut found = 0;
        // Every copy, live or in a freed page.
        while let Some(at) = d.windows(needle.len()).position(|w| w == needle.as_bytes()) {
            d[at + 8..at + 8 + to.len()].copy_from_slice(to.as_bytes());
            found += 1;
        }
        assert!(found > 0, "no {needle} in the fixture");
        d
    }

    #[test]
    fn another_network_keeps_the_store() {
        // "bridge" renamed "mynet1": a user-defined network.
        let d = renamed("bridge", "mynet1");
        assert_eq!(judge(&d), Verdict::Keep("network \"mynet1\"".into()));
    }

    #[test]
    fn damaged_files_are_kept_never_reset() {
        assert!(matches!(judge(b""), Verdict::Keep(_)));
        assert!(matches!(judge(&NODE[..4096]), Verdict::Keep(_)));
        let mut bad = NODE.to_vec();
        bad[16] ^= 0xff; // meta 0's magic
        bad[4096 + 16] ^= 0xff; // meta 1's magic
        assert!(matches!(judge(&bad), Verdict::Keep(_)));
        // Cut short anywhere before the end of the newest meta's root page
        // (page 4 here; bbolt preallocates, so the pages after the live tree
        // are free and a cut there changes nothing): never Reset from half
        // a tree.
        for n in (0..5 * 4096).step_by(256) {
            if let Verdict::Reset = judge(&NODE[..n]) {
                panic!("a store cut at {n} bytes was judged resettable");
            }
        }
    }

    #[test]
    fn random_damage_never_panics() {
        // A bounded xorshift fuzz over the fixture: flip bytes anywhere.
        let mut s: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for _ in 0..3000 {
            let mut d = NODE.to_vec();
            for _ in 0..1 + next() % 8 {
                let at = (next() as usize) % d.len();
                d[at] = next() as u8;
            }
            let _ = judge(&d);
        }
    }

    #[test]
    fn reset_removes_only_a_resettable_store() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(reset_if_predefined_only(t.path()), None);
        let files = t.path().join("network/files");
        std::fs::create_dir_all(&files).unwrap();
        std::fs::write(files.join("local-kv.db"), renamed("bridge", "mynet1")).unwrap();
        let said = reset_if_predefined_only(t.path()).unwrap();
        assert!(said.contains("kept") && said.contains("mynet1"), "{said}");
        assert!(files.join("local-kv.db").exists());
        std::fs::write(files.join("local-kv.db"), NODE).unwrap();
        let said = reset_if_predefined_only(t.path()).unwrap();
        assert!(said.starts_with("removed"), "{said}");
        assert!(!files.join("local-kv.db").exists());
    }
}
