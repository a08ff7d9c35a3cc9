//! One port, two protocols: the server's listener looks at the first byte
//! a client sends — a TLS handshake record starts with 0x16, an HTTP
//! request with a method's letter — and serves HTTPS, or plain HTTP when
//! the [`Plain`] policy lets this client have it (by default only clients
//! on this machine: the node's own CLI and agent at `http://127.0.0.1`).
//! Anyone else who speaks plain HTTP gets a 400 that says to use https,
//! before any credential is read. Handshakes run in their own tasks, so a
//! slow client cannot stall accepts.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// Who may speak plain HTTP to a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plain {
    /// Nobody: HTTPS only.
    Never,
    /// Clients on this machine (loopback addresses).
    Loopback,
    /// Anyone (`--insecure-http`, development only).
    Anyone,
}

impl Plain {
    /// True when `peer` may speak plain HTTP.
    pub fn allows(self, peer: IpAddr) -> bool {
        match self {
            Plain::Never => false,
            Plain::Loopback => peer.to_canonical().is_loopback(),
            Plain::Anyone => true,
        }
    }
}

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// A connection accepted by [`Listener`]: TLS or plain.
pub enum Conn {
    /// Plain HTTP.
    Plain(TcpStream),
    /// HTTPS.
    Tls(Box<TlsStream<TcpStream>>),
}

/// The client of a [`Conn`], axum's `ConnectInfo` for [`Listener`].
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    /// The client's address.
    pub addr: SocketAddr,
    /// True over TLS (links then say `https://`).
    pub tls: bool,
}

/// Serves TLS, and plain HTTP as its [`Plain`] policy allows.
pub struct Listener {
    rx: tokio::sync::mpsc::Receiver<(Conn, Peer)>,
    addr: SocketAddr,
}

impl Listener {
    /// Accept on `tcp` with `config`.
    pub fn new(
        tcp: tokio::net::TcpListener,
        config: Arc<rustls::ServerConfig>,
        plain: Plain,
    ) -> std::io::Result<Listener> {
        let addr = tcp.local_addr()?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let (sock, peer) = match tcp.accept().await {
                    Ok(x) => x,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let accepted =
                        tokio::time::timeout(Duration::from_secs(10), classify(sock, peer, plain))
                            .await;
                    let conn = match accepted {
                        Ok(Some(First::Tls(sock))) => {
                            match tokio::time::timeout(
                                Duration::from_secs(10),
                                acceptor.accept(sock),
                            )
                            .await
                            {
                                Ok(Ok(s)) => Conn::Tls(Box::new(s)),
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => return,
                            }
                        }
                        Ok(Some(First::Plain(sock))) => Conn::Plain(sock),
                        _ => return,
                    };
                    let tls = matches!(conn, Conn::Tls(_));
                    let _ = tx.send((conn, Peer { addr: peer, tls })).await;
                });
            }
        });
        Ok(Listener { rx, addr })
    }
}

enum First {
    Tls(TcpStream),
    Plain(TcpStream),
}

/// What the client speaks; a plain-HTTP client the policy refuses is
/// answered here and dropped.
async fn classify(mut sock: TcpStream, peer: SocketAddr, plain: Plain) -> Option<First> {
    let mut b = [0u8; 1];
    let n = sock.peek(&mut b).await.ok()?;
    if n == 0 {
        return None;
    }
    if b[0] == TLS_HANDSHAKE {
        return Some(First::Tls(sock));
    }
    if plain.allows(peer.ip()) {
        return Some(First::Plain(sock));
    }
    // Read the request head (so closing does not reset the connection
    // before the client reads the answer), then say what to do.
    let mut head = vec![0u8; 8192];
    let _ = tokio::time::timeout(Duration::from_secs(2), sock.read(&mut head)).await;
    let host = String::from_utf8_lossy(&head)
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("host").then(|| v.trim().to_string())
        })
        .filter(|h| h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or_else(|| "this-server".into());
    let body = format!(
        "this port serves HTTPS: use https://{host}/ (plain HTTP is served to clients on \
         the server's own machine only, unless the server runs with --insecure-http)\n"
    );
    let resp = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = sock.write_all(resp.as_bytes()).await;
    let _ = sock.shutdown().await;
    tracing::debug!(%peer, "plain HTTP from another machine refused");
    None
}

impl axum::serve::Listener for Listener {
    type Io = Conn;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            if let Some(x) = self.rx.recv().await {
                return x;
            }
            // The accept task ended (it never does on its own): stay idle.
            std::future::pending::<()>().await;
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(Peer {
            addr: self.addr,
            tls: true,
        })
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Listener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, Listener>) -> Self {
        *stream.remote_addr()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_policy() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let far: IpAddr = "10.1.2.3".parse().unwrap();
        assert!(Plain::Loopback.allows(lo) && Plain::Loopback.allows(mapped));
        assert!(Plain::Loopback.allows("::1".parse().unwrap()));
        assert!(!Plain::Loopback.allows(far));
        assert!(Plain::Anyone.allows(far));
        assert!(!Plain::Never.allows(lo));
    }
}
