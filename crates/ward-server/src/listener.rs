//! Listeners for `axum::serve`: a TLS listener whose handshakes run off the accept loop, a
//! plain TCP listener with `TCP_NODELAY`, and [`PeerAddr`], the connect info both provide.
//!
//! A slow or silent client must not hold up other clients' connections, so [`TlsListener`]
//! accepts TCP connections in a background task and runs each TLS handshake in its own task,
//! under a timeout and a cap on concurrent handshakes. Only completed handshakes reach axum.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{debug, error};

/// How long a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How many TLS handshakes may be in flight at once; further connections wait in the kernel's
/// accept queue.
pub const MAX_IN_FLIGHT_HANDSHAKES: usize = 1024;
/// Completed connections waiting for axum to pick them up.
const READY_QUEUE: usize = 64;

/// The peer's address, for `ConnectInfo<PeerAddr>` in both TLS and plain-HTTP modes.
///
/// Behind a TLS-terminating proxy this is the proxy's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerAddr(pub SocketAddr);

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<SocketAddr> for PeerAddr {
    fn from(addr: SocketAddr) -> Self {
        Self(addr)
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TcpListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, PlainListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, PlainListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

/// The plain-HTTP listener (behind a TLS-terminating proxy): tokio's, with `TCP_NODELAY` set on
/// every accepted socket.
///
/// A wrapper rather than `ListenerExt::tap_io`, because axum's blanket `Connected` impl for
/// `TapIo` conflicts with any `Connected<IncomingStream<TapIo<..>>> for PeerAddr`.
#[derive(Debug)]
pub struct PlainListener(TcpListener);

impl PlainListener {
    /// Wraps a bound listener.
    pub fn new(listener: TcpListener) -> Self {
        Self(listener)
    }
}

impl Listener for PlainListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((stream, peer)) => {
                    if let Err(e) = stream.set_nodelay(true) {
                        debug!(%peer, error = %e, "cannot set TCP_NODELAY");
                    }
                    return (stream, peer);
                }
                Err(e) => accept_error(e).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// A TLS listener for `axum::serve`. Dropping it stops accepting and closes the socket.
///
/// Serve with `axum::serve(listener, router.into_make_service_with_connect_info::<PeerAddr>())`
/// so handlers can extract `ConnectInfo<PeerAddr>`.
#[derive(Debug)]
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
    acceptor_task: JoinHandle<()>,
}

impl TlsListener {
    /// Starts accepting on `listener`. Must be called within a tokio runtime.
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        Self::with_limits(
            listener,
            config,
            HANDSHAKE_TIMEOUT,
            MAX_IN_FLIGHT_HANDSHAKES,
        )
    }

    fn with_limits(
        listener: TcpListener,
        config: Arc<rustls::ServerConfig>,
        handshake_timeout: Duration,
        max_in_flight: usize,
    ) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        let acceptor = Acceptor {
            listener,
            tls: TlsAcceptor::from(config),
            handshake_timeout,
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            ready: tx,
        };
        let acceptor_task = tokio::spawn(acceptor.run());
        Ok(Self {
            ready,
            local_addr,
            acceptor_task,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor_task.abort();
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        if let Some(conn) = self.ready.recv().await {
            return conn;
        }
        // The accept task only ends when this listener is dropped, or if it panicked.
        error!(addr = %self.local_addr, "TLS accept task stopped; no new connections");
        std::future::pending().await
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

/// The background half of [`TlsListener`].
struct Acceptor {
    listener: TcpListener,
    tls: TlsAcceptor,
    handshake_timeout: Duration,
    in_flight: Arc<Semaphore>,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
}

impl Acceptor {
    async fn run(self) {
        loop {
            // Wait for a free slot before accepting, so excess clients queue in the kernel.
            let Ok(permit) = Arc::clone(&self.in_flight).acquire_owned().await else {
                return;
            };
            let (tcp, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        accept_error(e).await;
                        continue;
                    }
                },
                () = self.ready.closed() => return,
            };
            if let Err(e) = tcp.set_nodelay(true) {
                debug!(%peer, error = %e, "cannot set TCP_NODELAY");
            }
            let tls = self.tls.clone();
            let ready = self.ready.clone();
            let timeout = self.handshake_timeout;
            tokio::spawn(async move {
                match tokio::time::timeout(timeout, tls.accept(tcp)).await {
                    // The permit is held until axum takes the connection, bounding open sockets.
                    Ok(Ok(stream)) => {
                        let _ = ready.send((stream, peer)).await;
                    }
                    Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => debug!(%peer, "TLS handshake timed out"),
                }
                drop(permit);
            });
        }
    }
}

/// Connection-level errors concern one client; others (such as running out of file
/// descriptors) would spin the loop, so back off as axum does.
async fn accept_error(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        debug!(error = %e, "accept failed");
        return;
    }
    error!(error = %e, "accept failed; retrying in 1s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{TlsFiles, ensure_local_ca, server_config};
    use axum::Router;
    use axum::extract::ConnectInfo;
    use axum::routing::get;
    use std::path::Path;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::TlsConnector;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

    /// Certificates must be valid for the real clients below, so this is the wall clock.
    fn now() -> chrono::DateTime<chrono::Utc> {
        ward_core::clock::Clock::now(&ward_core::clock::SystemClock)
    }

    fn router() -> Router {
        Router::new().route("/", get(|| async { "ok" })).route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<PeerAddr>| async move { peer.to_string() }),
        )
    }

    async fn serve_tls(files: &TlsFiles, timeout: Duration, max_in_flight: usize) -> SocketAddr {
        let config = server_config(&files.cert, &files.key).unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listener = TlsListener::with_limits(tcp, config, timeout, max_in_flight).unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(
                listener,
                router().into_make_service_with_connect_info::<PeerAddr>(),
            )
            .await
        });
        addr
    }

    fn connector(ca_pem: &Path) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca_pem).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConnector::from(Arc::new(config))
    }

    /// Sends `GET path` over TLS and returns the response body and the client's local address.
    async fn https_get(
        addr: SocketAddr,
        ca_pem: &Path,
        path: &str,
    ) -> io::Result<(String, SocketAddr)> {
        let tcp = TcpStream::connect(addr).await?;
        let local = tcp.local_addr()?;
        let name = ServerName::try_from("localhost").unwrap();
        let mut tls = connector(ca_pem).connect(name, tcp).await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        tls.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        tls.read_to_string(&mut response).await?;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
        Ok((body.to_owned(), local))
    }

    #[tokio::test]
    async fn serves_https_trusting_only_the_local_ca() {
        let tmp = tempfile::tempdir().unwrap();
        let files = ensure_local_ca(tmp.path(), &[], now()).unwrap();
        let addr = serve_tls(&files, HANDSHAKE_TIMEOUT, MAX_IN_FLIGHT_HANDSHAKES).await;

        let (body, _) = https_get(addr, &files.ca_cert, "/").await.unwrap();
        assert_eq!(body, "ok");
        let (body, local) = https_get(addr, &files.ca_cert, "/peer").await.unwrap();
        assert_eq!(body, local.to_string());
    }

    #[tokio::test]
    async fn client_trusting_another_ca_fails_the_handshake() {
        let tmp = tempfile::tempdir().unwrap();
        let files = ensure_local_ca(&tmp.path().join("a"), &[], now()).unwrap();
        let other = ensure_local_ca(&tmp.path().join("b"), &[], now()).unwrap();
        let addr = serve_tls(&files, HANDSHAKE_TIMEOUT, MAX_IN_FLIGHT_HANDSHAKES).await;

        let err = https_get(addr, &other.ca_cert, "/").await.unwrap_err();
        assert!(
            err.to_string().contains("invalid peer certificate"),
            "{err}"
        );
        // The server survives a failed handshake.
        assert_eq!(https_get(addr, &files.ca_cert, "/").await.unwrap().0, "ok");
    }

    #[tokio::test]
    async fn stalled_handshakes_do_not_block_the_accept_loop() {
        let tmp = tempfile::tempdir().unwrap();
        let files = ensure_local_ca(tmp.path(), &[], now()).unwrap();
        // A handshake timeout far beyond the client's patience below.
        let addr = serve_tls(&files, Duration::from_mins(1), 4).await;

        let mut silent = Vec::new();
        for _ in 0..3 {
            silent.push(TcpStream::connect(addr).await.unwrap());
        }
        let (body, _) =
            tokio::time::timeout(Duration::from_secs(5), https_get(addr, &files.ca_cert, "/"))
                .await
                .expect("a silent client blocked the accept loop")
                .unwrap();
        assert_eq!(body, "ok");
    }

    #[tokio::test]
    async fn handshakes_time_out_and_are_capped() {
        let tmp = tempfile::tempdir().unwrap();
        let files = ensure_local_ca(tmp.path(), &[], now()).unwrap();
        let timeout = Duration::from_millis(700);
        let addr = serve_tls(&files, timeout, 2).await;

        // Two silent clients take both handshake slots.
        let mut silent = Vec::new();
        for _ in 0..2 {
            silent.push(TcpStream::connect(addr).await.unwrap());
        }
        let started = tokio::time::Instant::now();
        let (body, _) = https_get(addr, &files.ca_cert, "/").await.unwrap();
        assert_eq!(body, "ok");
        assert!(
            started.elapsed() >= timeout / 2,
            "the cap did not hold the third client back"
        );

        // The server closed the silent connections when their handshakes timed out.
        for mut stream in silent {
            let mut buf = [0_u8; 1];
            let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
                .await
                .unwrap();
            assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        }
    }

    #[tokio::test]
    async fn python_ssl_trusts_the_local_ca() {
        let tmp = tempfile::tempdir().unwrap();
        let files = ensure_local_ca(tmp.path(), &[], now()).unwrap();
        let addr = serve_tls(&files, HANDSHAKE_TIMEOUT, MAX_IN_FLIGHT_HANDSHAKES).await;

        // Python 3.13's defaults (strict X.509) on any Python 3.
        let script = r"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
ctx.verify_flags |= ssl.VERIFY_X509_STRICT
with socket.create_connection(('127.0.0.1', int(sys.argv[2])), timeout=10) as sock:
    with ctx.wrap_socket(sock, server_hostname='localhost') as tls:
        tls.sendall(b'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')
        data = b''
        while chunk := tls.recv(4096):
            data += chunk
print(tls.selected_alpn_protocol(), data.split(b'\r\n\r\n', 1)[1].decode())
";
        let out = tokio::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(&files.ca_cert)
            .arg(addr.port().to_string())
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "None ok");
    }

    #[tokio::test]
    async fn plain_listener_reports_peer_addr() {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let listener = PlainListener::new(tcp);
        tokio::spawn(async move {
            axum::serve(
                listener,
                router().into_make_service_with_connect_info::<PeerAddr>(),
            )
            .await
        });

        let mut stream = TcpStream::connect(addr).await.unwrap();
        let local = stream.local_addr().unwrap();
        stream
            .write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(
            response.ends_with(&format!("\r\n\r\n{local}")),
            "{response}"
        );
    }
}
