//! `ward serve`: bind, speak HTTPS (or plain HTTP behind a proxy), shut down gracefully.
//! Connections themselves are handled by [`crate::connections`].

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use ward_core::clock::{Clock, SystemClock};

use crate::app::{AppState, Shutdown, router};
use crate::bootstrap::{self, BootError};
use crate::config::{Config, TlsMode, split_host_port};
use crate::connections::{self, ConnectionLimits};
use crate::device::DeviceWakers;
use crate::duo::signed::DuoSettings;
use crate::limits::Limits;
use crate::tls;

/// Runs the server until `shutdown` completes, then answers the connections already accepted
/// and closes the store.
pub async fn run(
    mut config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), BootError> {
    let open_files = raise_open_file_limit();
    let tcp = TcpListener::bind(config.listen)
        .await
        .map_err(|e| BootError::Io(format!("cannot listen on {}: {e}", config.listen)))?;
    let addr = tcp.local_addr().map_err(|e| BootError::Io(e.to_string()))?;
    // `--listen …:0` picks a free port: the public address follows it unless configured.
    let (host, port) = split_host_port(&config.public_host);
    if port == Some("0") {
        config.public_host = format!("{host}:{}", addr.port());
    }
    let ward = bootstrap::open(&config).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let limits = Arc::new(Limits::new(
        config.ip_requests_per_second,
        config.ip_failures_per_minute,
        config.integration_requests_per_second,
    ));
    let housekeeping = limits.spawn_housekeeping();
    let purging = spawn_purge(Arc::clone(&ward), Arc::clone(&clock));
    let recovering = spawn_recovery_tick(Arc::clone(&ward), Arc::clone(&clock));
    let wakers = Arc::new(DeviceWakers::default());
    let forwarding = wakers.spawn(ward.store().signals().subscribe());
    let (stopping, shutdown_flag) = Shutdown::new();
    let state = AppState {
        ward: Arc::clone(&ward),
        clock: Arc::clone(&clock),
        settings: DuoSettings::from_config(&config),
        limits,
        wakers: Arc::clone(&wakers),
        web: crate::web::WebSettings::new(config.branding.clone(), &config.public_host),
        shutdown: shutdown_flag,
    };
    // Long-polls and device streams never end by themselves: end them when shutdown begins,
    // so that the drain does not wait for them.
    let shutdown = async move {
        shutdown.await;
        let _ = stopping.send(true);
        wakers.close();
    };
    let tls = match config.tls {
        TlsMode::Off => None,
        TlsMode::Auto | TlsMode::Files => Some(tls_config(&config, clock.as_ref())?),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let connection_limits = connection_limits(&config, open_files);
    tracing::info!(
        backend = ward.store().backend(),
        max_connections = connection_limits.max_connections,
        "listening on {scheme}://{addr}"
    );
    connections::serve(tcp, tls, router(state), connection_limits, shutdown).await;
    housekeeping.abort();
    forwarding.abort();
    purging.abort();
    recovering.abort();
    ward.store().close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Descriptors kept free for the database, the store's listener, files and logs.
const RESERVED_FILES: u64 = 64;

fn connection_limits(config: &Config, open_files: u64) -> ConnectionLimits {
    let settings = &config.connections;
    let reserved = RESERVED_FILES + u64::from(config.database_max_connections) + 2;
    let fitting =
        usize::try_from(open_files.saturating_sub(reserved).max(16)).unwrap_or(usize::MAX);
    let max_connections = match settings.max_connections {
        Some(n) if n > fitting => {
            tracing::warn!(
                configured = n,
                open_file_limit = open_files,
                "limits.max_connections exceeds what the open-file limit allows; using {fitting}"
            );
            fitting
        }
        Some(n) => n,
        None => fitting,
    };
    ConnectionLimits {
        max_connections,
        // Behind a proxy every connection comes from the proxy.
        max_per_address: (!config.trust_forwarded_for).then(|| {
            settings
                .max_per_address
                .unwrap_or_else(|| (max_connections / 4).clamp(1, 4096))
        }),
        header_read_timeout: settings.header_read_timeout,
        idle_timeout: settings.idle_timeout,
        handshake_timeout: settings.tls_handshake_timeout,
    }
}

/// Raises the soft limit on open files to the hard limit (systemd starts services with a soft
/// limit of 1024; set `LimitNOFILE=` to change the hard one) and answers the limit in force.
fn raise_open_file_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let current = getrlimit(Resource::Nofile);
    let Some(soft) = current.current else {
        return u64::MAX;
    };
    // An unlimited hard limit is not accepted for RLIMIT_NOFILE; the kernel's ceiling is.
    let target = current.maximum.unwrap_or(1 << 20);
    if target <= soft {
        return soft;
    }
    let raised = Rlimit {
        current: Some(target),
        maximum: current.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => {
            tracing::info!(from = soft, to = target, "raised the open-file limit");
            target
        }
        Err(e) => {
            tracing::warn!(limit = soft, error = %e, "cannot raise the open-file limit");
            soft
        }
    }
}

fn tls_config(config: &Config, clock: &dyn Clock) -> Result<Arc<rustls::ServerConfig>, BootError> {
    let tls_err = |e: tls::TlsError| BootError::Io(format!("TLS: {e}"));
    if let (TlsMode::Files, Some(cert), Some(key)) =
        (config.tls, &config.tls_cert_file, &config.tls_key_file)
    {
        return tls::server_config(cert, key).map_err(tls_err);
    }
    let host = split_host_port(&config.public_host).0.to_owned();
    let files = tls::ensure_local_ca(&config.data_dir.join("tls"), &[host], clock.now())
        .map_err(tls_err)?;
    // Present the local CA too, so devices that pin it can verify the chain.
    tls::server_config_with_issuer(&files.cert, &files.key, Some(&files.ca_cert)).map_err(tls_err)
}

/// Deletes expired transactions, pushes, nonces and activation codes every ten minutes.
fn spawn_purge(
    ward: Arc<ward_core::service::Ward>,
    clock: Arc<dyn Clock>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_mins(10));
        loop {
            tick.tick().await;
            match ward.admin().purge_expired(clock.now()).await {
                Ok(0) => {}
                Ok(rows) => tracing::info!(rows, "purged expired records"),
                Err(e) => tracing::warn!(error = %e, "purging expired records failed"),
            }
        }
    })
}

/// Lets time pass for open recovery cases every minute (cooling, reminders, expiry).
fn spawn_recovery_tick(
    ward: Arc<ward_core::service::Ward>,
    clock: Arc<dyn Clock>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_mins(1));
        loop {
            tick.tick().await;
            if let Err(e) = ward.recovery().tick_all(clock.now()).await {
                tracing::warn!(error = %e, "recovery tick failed");
            }
        }
    })
}

/// A future that completes on SIGTERM or SIGINT.
///
/// The handlers are installed when this function is called — before the server binds and says
/// it is listening — so a signal that arrives right after start-up still shuts down gracefully.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        let wait = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
            match s {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = wait(term) => {},
            () = wait(int) => {},
        }
        tracing::info!("shutting down");
    }
}
