//! `ward-bench hello`: the floor. The same stack as `ward serve` (tokio, hyper via axum,
//! rustls with the ring provider, Ward's TLS listener and local CA) answering
//! `POST /auth/v2/auth` with a fixed body, without checking anything. What `auth` measures
//! against it is the cost of the transport and of the load generator itself.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::routing::post;
use tokio::net::TcpListener;
use ward_core::clock::{Clock, SystemClock};
use ward_server::listener::{PeerAddr, PlainListener, TlsListener};
use ward_server::tls;

/// The fixed answer: what Ward sends for an allowed passcode.
const ALLOW_BODY: &str = r#"{"stat":"OK","response":{"result":"allow","status":"allow","status_msg":"Success. Logging you in..."}}"#;

/// Options of `ward-bench hello`.
#[derive(Debug, clap::Args)]
pub struct HelloArgs {
    /// Loopback address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Directory of the local CA, created if missing. Give Ward's `DATA_DIR/tls` so that the
    /// same ca.pem works for both servers.
    #[arg(long, value_name = "DIR", required_unless_present = "plain")]
    ca_dir: Option<PathBuf>,
    /// Plain HTTP instead of HTTPS.
    #[arg(long, conflicts_with = "ca_dir")]
    plain: bool,
    /// Stop after this many seconds (default: at Ctrl-C or SIGTERM).
    #[arg(long, value_name = "SECS")]
    exit_after: Option<u64>,
}

/// Runs `hello` until Ctrl-C, SIGTERM or `--exit-after`.
pub async fn run(args: HelloArgs) -> anyhow::Result<()> {
    if !args.listen.ip().is_loopback() {
        bail!("--listen must be a loopback address");
    }
    let app = Router::new()
        .route("/auth/v2/auth", post(allow))
        .into_make_service_with_connect_info::<PeerAddr>();
    let tcp = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = tcp.local_addr().context("local address")?;
    let shutdown = shutdown(args.exit_after);
    if let Some(dir) = &args.ca_dir {
        let files = tls::ensure_local_ca(dir, &[], SystemClock.now())
            .with_context(|| format!("local CA in {}", dir.display()))?;
        let config = tls::server_config(&files.cert, &files.key).context("TLS configuration")?;
        let listener = TlsListener::new(tcp, config).context("TLS listener")?;
        println!(
            "listening on https://{addr} (CA: {})",
            files.ca_cert.display()
        );
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await?;
    } else {
        println!("listening on http://{addr}");
        axum::serve(PlainListener::new(tcp), app)
            .with_graceful_shutdown(shutdown)
            .await?;
    }
    Ok(())
}

async fn allow() -> ([(axum::http::HeaderName, &'static str); 1], &'static str) {
    ([(CONTENT_TYPE, "application/json")], ALLOW_BODY)
}

async fn shutdown(exit_after: Option<u64>) {
    let timer = async {
        match exit_after {
            Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = timer => {}
        () = ward_server::serve::shutdown_signal() => {}
    }
}
