//! The discovery address (169.254.169.250) on a host interface the agent
//! owns: a dummy link `ros-dns0` carrying the address as a /32, set up
//! over netlink (idempotent: an existing link or address is kept).
//! Containers reach it through their default gateway (the host), so no
//! per-container route is needed.

use std::net::Ipv4Addr;

use futures_util::TryStreamExt;
use rtnetlink::{new_connection, LinkDummy, LinkUnspec};

/// The link's name.
pub(crate) const LINK: &str = "ros-dns0";

/// Make sure `ip` is on [`LINK`], which is up.
pub(crate) async fn ensure(ip: Ipv4Addr) -> Result<(), String> {
    let (conn, handle, _) = new_connection().map_err(|e| format!("netlink: {e}"))?;
    let task = tokio::spawn(conn);
    let result = async {
        let index = match find(&handle).await? {
            Some(i) => i,
            None => {
                handle
                    .link()
                    .add(LinkDummy::new(LINK).build())
                    .execute()
                    .await
                    .map_err(|e| format!("netlink: cannot add dummy link {LINK}: {e}"))?;
                find(&handle)
                    .await?
                    .ok_or_else(|| format!("netlink: link {LINK} vanished after creation"))?
            }
        };
        handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(|e| format!("netlink: cannot set {LINK} up: {e}"))?;
        let mut addrs = handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        while let Some(a) = addrs
            .try_next()
            .await
            .map_err(|e| format!("netlink: addresses of {LINK}: {e}"))?
        {
            let has = a.attributes.iter().any(|at| {
                matches!(at, rtnetlink::packet_route::address::AddressAttribute::Address(x) if *x == std::net::IpAddr::V4(ip))
            });
            if has {
                return Ok(());
            }
        }
        handle
            .address()
            .add(index, ip.into(), 32)
            .execute()
            .await
            .map_err(|e| format!("netlink: cannot add {ip}/32 to {LINK}: {e}"))
    }
    .await;
    task.abort();
    result
}

async fn find(handle: &rtnetlink::Handle) -> Result<Option<u32>, String> {
    let mut links = handle.link().get().match_name(LINK.to_string()).execute();
    match links.try_next().await {
        Ok(Some(l)) => Ok(Some(l.header.index)),
        Ok(None) => Ok(None),
        // No such device.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -19 => Ok(None),
        Err(e) => Err(format!("netlink: looking up {LINK}: {e}")),
    }
}
