//! What every listener shares: TLS (rustls, `--tls-cert` / `--tls-key`) and a cap on
//! open connections (`--max-connections`, per listener). A connection over the cap is
//! closed at once with a log line naming the flag; the ones already open are served as
//! before. A TLS handshake runs in its own task with a deadline, so a client that
//! connects and says nothing holds up no one else.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::server::TlsStream;

/// How long a client has to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS settings of a server: one certificate chain and key for every listener.
pub fn tls_config(
    cert: &Path,
    key: &Path,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "--tls-cert {}: no certificate in the file (expected PEM: -----BEGIN CERTIFICATE-----)",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        format!(
            "--tls-key {}: {e} (expected a PEM private key: PKCS#8, PKCS#1 or SEC1)",
            key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            format!("--tls-cert / --tls-key: {e} (do the certificate and key belong together?)")
        })?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A cap on the open connections of one listener.
#[derive(Clone)]
pub struct ConnectionLimit {
    permits: Arc<Semaphore>,
    max: usize,
    listener: &'static str,
    refused: Arc<AtomicU64>,
}

impl ConnectionLimit {
    pub fn new(listener: &'static str, max: usize) -> Self {
        ConnectionLimit {
            permits: Arc::new(Semaphore::new(max.max(1))),
            max: max.max(1),
            listener,
            refused: Default::default(),
        }
    }

    /// A permit for one more connection, or `None` (with a log line) when the listener
    /// is full.
    pub fn admit(&self, peer: SocketAddr) -> Option<OwnedSemaphorePermit> {
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                let refused = self.refused.fetch_add(1, Ordering::Relaxed);
                if refused.is_power_of_two() || refused == 0 {
                    tracing::warn!(
                        %peer,
                        "{} listener: {} connections are open, the most --max-connections allows; \
                         closing new ones ({} so far) until some end",
                        self.listener,
                        self.max,
                        refused + 1
                    );
                }
                None
            }
        }
    }

    pub fn open(&self) -> usize {
        self.max - self.permits.available_permits()
    }
}

/// A server connection: plain TCP or TLS, holding its listener's permit while open.
pub struct Conn {
    io: Io,
    _permit: Option<OwnedSemaphorePermit>,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Conn {
    pub fn plain(stream: TcpStream, permit: Option<OwnedSemaphorePermit>) -> Conn {
        Conn {
            io: Io::Plain(stream),
            _permit: permit,
        }
    }

    /// Runs the TLS handshake (within [`HANDSHAKE_TIMEOUT`]) when `tls` is given.
    pub async fn accept(
        stream: TcpStream,
        tls: Option<&TlsAcceptor>,
        permit: Option<OwnedSemaphorePermit>,
    ) -> io::Result<Conn> {
        stream.set_nodelay(true).ok();
        let io = match tls {
            None => Io::Plain(stream),
            Some(acceptor) => {
                let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                match handshake.await {
                    Ok(Ok(tls)) => Io::Tls(Box::new(tls)),
                    Ok(Err(e)) => return Err(e),
                    Err(_) => {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the TLS handshake did not finish in time",
                        ));
                    }
                }
            }
        };
        Ok(Conn {
            io,
            _permit: permit,
        })
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// Accepts connections for a listener: admits them under the limit and runs TLS
/// handshakes in their own tasks, handing on the connections that are ready.
pub struct Acceptor {
    ready: mpsc::Receiver<(Conn, SocketAddr)>,
    local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Acceptor {
    pub fn new(listener: TcpListener, tls: Option<TlsAcceptor>, limit: ConnectionLimit) -> Self {
        let local = listener
            .local_addr()
            .expect("a bound listener has an address");
        let (send, ready) = mpsc::channel(64);
        let task = tokio::spawn(async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors, mostly: wait for some to close.
                        tracing::warn!("{} listener: accept failed: {e}", limit.listener);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Some(permit) = limit.admit(peer) else {
                    continue; // dropping the stream closes it
                };
                let (tls, send) = (tls.clone(), send.clone());
                tokio::spawn(async move {
                    match Conn::accept(stream, tls.as_ref(), Some(permit)).await {
                        Ok(conn) => {
                            let _ = send.send((conn, peer)).await;
                        }
                        Err(e) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                    }
                });
            }
        });
        Acceptor { ready, local, task }
    }

    /// The next ready connection.
    pub async fn next(&mut self) -> Option<(Conn, SocketAddr)> {
        self.ready.recv().await
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl axum::serve::Listener for Acceptor {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Conn, SocketAddr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // The accepting task ended (only when the listener is dropped): wait forever,
            // as axum expects accept never to fail.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}
