//! The HTTP/1.1 server under `ward serve`: accepting connections within limits, running the
//! TLS handshake and the requests of each connection, and draining them at shutdown.
//!
//! # Security
//! A client must not be able to hold every file descriptor of the process: connections are
//! capped in total (below the descriptor limit) and per client address, a request head must
//! arrive within the header-read timeout (which also bounds how long a kept-alive connection
//! may wait for its next request), a TLS handshake within its own timeout, and a connection on
//! which no byte moves while no request is being worked on is closed after the idle timeout.
//!
//! At shutdown no new connection is accepted, but every connection already accepted (including
//! those still in the kernel's accept queue) gets an answer to the request it sent: a connection
//! that has not delivered its request yet is given a moment to do so, and then served with
//! `Connection: close`.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use futures::FutureExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tracing::{debug, error};

use crate::listener::PeerAddr;

/// How long a connection accepted before shutdown may take to deliver its request.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// The longest a shutdown waits for answers in progress (requests time out after 75 s).
const DRAIN_LIMIT: Duration = Duration::from_secs(80);

/// Limits on connections (see the module documentation).
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    /// Open connections in total; further clients wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Open connections per client address (IPv6: per /64); `None` behind a proxy, where every
    /// connection comes from the proxy.
    pub max_per_address: Option<usize>,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub handshake_timeout: Duration,
}

impl Default for ConnectionLimits {
    /// Ward's defaults, with a fixed total (`ward serve` derives it from the open-file limit).
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_per_address: Some(256),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_mins(1),
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

struct Shared {
    app: Router,
    tls: Option<TlsAcceptor>,
    limits: ConnectionLimits,
    addresses: Arc<AddressCounts>,
    stop: watch::Receiver<bool>,
}

/// Serves `app` on `listener` until `shutdown` completes, then answers what was accepted.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let shared = Arc::new(Shared {
        app,
        tls: tls.map(TlsAcceptor::from),
        addresses: Arc::new(AddressCounts::new(limits.max_per_address)),
        limits,
        stop,
    });
    // Every connection task holds a clone; `recv` answers `None` once all have ended.
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        spawn_connection(&shared, tcp, peer, Some(permit), &done_tx);
    }
    // Connections the kernel completed before shutdown are answered too.
    while let Some(Ok((tcp, peer))) = listener.accept().now_or_never() {
        spawn_connection(&shared, tcp, peer, None, &done_tx);
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(done_tx);
    if tokio::time::timeout(DRAIN_LIMIT, done_rx.recv())
        .await
        .is_err()
    {
        error!("connections still open after the shutdown drain; closing them");
    }
}

fn spawn_connection(
    shared: &Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    permit: Option<OwnedSemaphorePermit>,
    done: &mpsc::Sender<()>,
) {
    let Some(slot) = AddressCounts::take(&shared.addresses, peer.ip()) else {
        debug!(%peer, "too many connections from this address; closing");
        return;
    };
    let shared = Arc::clone(shared);
    let done = done.clone();
    tokio::spawn(async move {
        connection(&shared, tcp, peer).await;
        drop((slot, permit, done));
    });
}

async fn connection(shared: &Shared, tcp: TcpStream, peer: SocketAddr) {
    if let Err(e) = tcp.set_nodelay(true) {
        debug!(%peer, error = %e, "cannot set TCP_NODELAY");
    }
    let Some(tls) = &shared.tls else {
        return serve_http(shared, tcp, peer).await;
    };
    match tokio::time::timeout(shared.limits.handshake_timeout, tls.accept(tcp)).await {
        Ok(Ok(stream)) => serve_http(shared, stream, peer).await,
        Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => debug!(%peer, "TLS handshake timed out"),
    }
}

async fn serve_http<I>(shared: &Shared, io: I, peer: SocketAddr)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        inner: io,
        activity: Arc::clone(&activity),
    });
    let app = shared.app.clone();
    let seen = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let busy = Busy::begin(&seen);
        let mut request = request.map(axum::body::Body::new);
        request.extensions_mut().insert(ConnectInfo(PeerAddr(peer)));
        let app = app.clone();
        async move {
            let response = app.oneshot(request).await;
            drop(busy);
            response
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.limits.header_read_timeout)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let mut stop = shared.stop.clone();
    tokio::select! {
        result = conn.as_mut() => return finished(peer, result),
        () = activity.idle(shared.limits.idle_timeout) => {
            debug!(%peer, "connection idle; closing");
            return;
        }
        _ = stop.wait_for(|stopping| *stopping) => {}
    }
    // Shutting down: wait for the request this client may be sending, then answer it and close.
    let started = activity.started.notified();
    tokio::pin!(started);
    started.as_mut().enable();
    if activity.in_flight.load(Ordering::Acquire) == 0 {
        tokio::select! {
            result = conn.as_mut() => return finished(peer, result),
            _ = tokio::time::timeout(SHUTDOWN_GRACE, started) => {}
        }
    }
    conn.as_mut().graceful_shutdown();
    finished(peer, conn.await);
}

fn finished(peer: SocketAddr, result: hyper::Result<()>) {
    if let Err(e) = result {
        debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// What a connection is doing: requests being worked on, and when a byte last moved.
struct Activity {
    origin: Instant,
    last_millis: AtomicU64,
    in_flight: AtomicUsize,
    started: Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            last_millis: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            started: Notify::new(),
        }
    }

    fn touch(&self) {
        let millis = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_millis.store(millis, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_millis.load(Ordering::Relaxed));
        self.origin.elapsed().saturating_sub(last)
    }

    /// Completes once no byte has moved for `limit` while no request was being worked on.
    async fn idle(&self, limit: Duration) {
        loop {
            let quiet = self.quiet_for();
            if quiet >= limit && self.in_flight.load(Ordering::Acquire) == 0 {
                return;
            }
            let wait = limit.checked_sub(quiet).unwrap_or(limit);
            tokio::time::sleep(wait.max(Duration::from_millis(50))).await;
        }
    }
}

/// A request being worked on, for as long as it lives.
struct Busy(Arc<Activity>);

impl Busy {
    fn begin(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.touch();
        activity.started.notify_waiters();
        Self(Arc::clone(activity))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A stream that notes when bytes move.
struct Tracked<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Tracked<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Tracked<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Open connections per client address.
struct AddressCounts {
    max: Option<usize>,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One open connection of an address, released when dropped.
struct AddressSlot {
    counts: Arc<AddressCounts>,
    key: Option<IpAddr>,
}

impl AddressCounts {
    fn new(max: Option<usize>) -> Self {
        Self {
            max,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for one more connection from `ip`, unless the address holds its maximum.
    fn take(counts: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let Some(max) = counts.max else {
            return Some(AddressSlot {
                counts: Arc::clone(counts),
                key: None,
            });
        };
        let key = address_key(ip);
        let mut open = counts.open.lock().ok()?;
        let n = open.entry(key).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            counts: Arc::clone(counts),
            key: Some(key),
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        if let Ok(mut open) = self.counts.open.lock()
            && let Some(n) = open.get_mut(&key)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&key);
            }
        }
    }
}

/// IPv4 addresses count one by one; an IPv6 client usually holds a whole /64.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        },
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
mod tests;
