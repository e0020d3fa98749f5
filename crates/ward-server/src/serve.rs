//! `ward serve`: bind, speak HTTPS (or plain HTTP behind a proxy), shut down gracefully.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use ward_core::clock::{Clock, SystemClock};

use crate::app::{AppState, router};
use crate::bootstrap::{self, BootError};
use crate::config::{Config, TlsMode, split_host_port};
use crate::device::DeviceWakers;
use crate::duo::signed::DuoSettings;
use crate::limits::Limits;
use crate::listener::{PeerAddr, PlainListener, TlsListener};
use crate::tls;

/// Runs the server until `shutdown` completes, then drains connections and closes the store.
pub async fn run(
    mut config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), BootError> {
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
    let state = AppState {
        ward: Arc::clone(&ward),
        clock: Arc::clone(&clock),
        settings: DuoSettings::from_config(&config),
        limits,
        wakers: Arc::clone(&wakers),
        web: crate::web::WebSettings::new(config.branding.clone(), &config.public_host),
    };
    // Device streams never end by themselves: end them when shutdown begins, so the graceful
    // shutdown does not wait for them.
    let shutdown = async move {
        shutdown.await;
        wakers.close();
    };
    let app = router(state).into_make_service_with_connect_info::<PeerAddr>();
    let served = match config.tls {
        TlsMode::Off => {
            tracing::info!(
                backend = ward.store().backend(),
                "listening on http://{addr}"
            );
            axum::serve(PlainListener::new(tcp), app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        TlsMode::Auto | TlsMode::Files => {
            let server_config = tls_config(&config, clock.as_ref())?;
            tracing::info!(
                backend = ward.store().backend(),
                "listening on https://{addr}"
            );
            let listener = TlsListener::new(tcp, server_config)
                .map_err(|e| BootError::Io(format!("TLS listener: {e}")))?;
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    };
    housekeeping.abort();
    forwarding.abort();
    purging.abort();
    recovering.abort();
    ward.store().close().await;
    served.map_err(|e| BootError::Io(format!("server failed: {e}")))?;
    tracing::info!("stopped");
    Ok(())
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
            match ward.purge_expired(clock.now()).await {
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
            if let Err(e) = ward.recovery_tick_all(clock.now()).await {
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
