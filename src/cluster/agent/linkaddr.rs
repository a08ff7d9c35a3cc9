//! The discovery address (169.254.169.250) on a host interface the agent
//! owns: a dummy link `ros-dns0` carrying the address as a /32, set up
//! over netlink (idempotent: an existing link or address is kept). A
//! kernel without the dummy driver gets the /32 on `lo` instead (Linux
//! delivers to a local address whatever interface a packet came in on).
//! Containers reach it through their default gateway (the host), so no
//! per-container route is needed.

use std::net::Ipv4Addr;

use futures_util::TryStreamExt;
use rtnetlink::{new_connection, LinkDummy, LinkUnspec};

/// The link's name.
pub(crate) const LINK: &str = "ros-dns0";

/// Make sure `ip` is on [`LINK`] (or on `lo` without the dummy driver);
/// the link it is on.
pub(crate) async fn ensure(ip: Ipv4Addr) -> Result<&'static str, String> {
    match ensure_on(ip, LINK).await {
        Ok(()) => Ok(LINK),
        Err(e) if e.contains("Operation not supported") || e.contains("os error 95") => {
            tracing::debug!(error = %e, "no dummy links here: the address goes on lo");
            ensure_on(ip, "lo").await.map(|()| "lo")
        }
        Err(e) => Err(e),
    }
}

async fn ensure_on(ip: Ipv4Addr, link: &str) -> Result<(), String> {
    let (conn, handle, _) = new_connection().map_err(|e| format!("netlink: {e}"))?;
    let task = tokio::spawn(conn);
    let result = async {
        let index = match find(&handle, link).await? {
            Some(i) => i,
            None => {
                handle
                    .link()
                    .add(LinkDummy::new(link).build())
                    .execute()
                    .await
                    .map_err(|e| format!("netlink: cannot add dummy link {link}: {e}"))?;
                find(&handle, link)
                    .await?
                    .ok_or_else(|| format!("netlink: link {link} vanished after creation"))?
            }
        };
        handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(|e| format!("netlink: cannot set {link} up: {e}"))?;
        let mut addrs = handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        while let Some(a) = addrs
            .try_next()
            .await
            .map_err(|e| format!("netlink: addresses of {link}: {e}"))?
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
            .map_err(|e| format!("netlink: cannot add {ip}/32 to {link}: {e}"))
    }
    .await;
    task.abort();
    result
}

async fn find(handle: &rtnetlink::Handle, link: &str) -> Result<Option<u32>, String> {
    let mut links = handle.link().get().match_name(link.to_string()).execute();
    match links.try_next().await {
        Ok(Some(l)) => Ok(Some(l.header.index)),
        Ok(None) => Ok(None),
        // No such device.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -19 => Ok(None),
        Err(e) => Err(format!("netlink: looking up {link}: {e}")),
    }
}
