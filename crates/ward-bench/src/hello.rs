//! `ward-bench hello`: the floor. The same stack as `ward serve` (tokio, hyper via axum,
//! rustls with the ring provider, Ward's connection handling and local CA) answering
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
use ward_server::connections::{self, ConnectionLimits};
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
    let app = Router::new().route("/auth/v2/auth", post(allow));
    // The load generator's connections all come from one address.
    let limits = ConnectionLimits {
        max_connections: 100_000,
        max_per_address: None,
        ..ConnectionLimits::default()
    };
    let tcp = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = tcp.local_addr().context("local address")?;
    let shutdown = shutdown(args.exit_after);
    if let Some(dir) = &args.ca_dir {
        let files = tls::ensure_local_ca(dir, &[], SystemClock.now())
            .with_context(|| format!("local CA in {}", dir.display()))?;
        let config = tls::server_config(&files.cert, &files.key).context("TLS configuration")?;
        println!(
            "listening on https://{addr} (CA: {})",
            files.ca_cert.display()
        );
        connections::serve(tcp, Some(config), app, limits, shutdown).await;
    } else {
        println!("listening on http://{addr}");
        connections::serve(tcp, None, app, limits, shutdown).await;
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
