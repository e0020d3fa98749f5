//! The server under test: its URL, its loopback addresses, and persistent HTTP/1.1 connections
//! to it over TLS (trusting only the given CA) or plain TCP.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use http_body_util::Full;
use hyper::Uri;
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A request sender on one connection.
pub type Sender = SendRequest<Full<Bytes>>;

/// Where and how to connect.
#[derive(Clone)]
pub struct Target {
    /// Host as it appears in the URL, without brackets or port: what the client signs.
    pub host: String,
    /// `host[:port]` as it appears in the URL: the `Host` header.
    pub authority: String,
    addrs: Vec<SocketAddr>,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("host", &self.host)
            .field("authority", &self.authority)
            .field("addrs", &self.addrs)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Target {
    /// Parses `https://host:port` or `http://host:port` and resolves the host, refusing any
    /// address outside the loopback range: this harness only ever loads the local machine.
    pub async fn resolve(url: &str, ca: Option<&Path>) -> anyhow::Result<Self> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("invalid URL {url:?}"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => bail!("the URL must start with https:// or http://"),
        };
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            bail!("give the URL without a path: requests go to /auth/v2/auth");
        }
        let authority = uri.authority().context("the URL has no host")?;
        let bracketed = authority.host();
        let host = bracketed
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(bracketed)
            .to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let addrs = loopback_addrs(&host, port).await?;
        let tls = if https {
            let ca = ca.context("https:// needs --ca FILE (the CA that signed the server)")?;
            let name = ServerName::try_from(host.clone())
                .with_context(|| format!("{host:?} is not a valid TLS server name"))?;
            Some((TlsConnector::from(client_config(ca)?), name))
        } else {
            None
        };
        Ok(Self {
            host,
            authority: authority.as_str().to_owned(),
            addrs,
            tls,
        })
    }

    /// Whether connections use TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Opens a connection, trying each address in turn, and spawns its driver task.
    pub async fn connect(&self) -> anyhow::Result<Sender> {
        let mut last_error = None;
        for addr in &self.addrs {
            match TcpStream::connect(addr).await {
                Ok(tcp) => {
                    tcp.set_nodelay(true).context("setting TCP_NODELAY")?;
                    return self.handshake(tcp).await;
                }
                Err(e) => last_error = Some(e),
            }
        }
        match last_error {
            Some(e) => Err(e).context("connect"),
            None => bail!("no address to connect to"),
        }
    }

    async fn handshake(&self, tcp: TcpStream) -> anyhow::Result<Sender> {
        match &self.tls {
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .context("TLS handshake")?;
                http1_handshake(tls).await
            }
            None => http1_handshake(tcp).await,
        }
    }
}

async fn http1_handshake<S>(io: S) -> anyhow::Result<Sender>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = http1::handshake(TokioIo::new(io))
        .await
        .context("HTTP/1.1 handshake")?;
    // The connection ends when the sender is dropped or the server closes it; its error, if
    // any, surfaces on the next request.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

async fn loopback_addrs(host: &str, port: u16) -> anyhow::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("cannot resolve {host}"))?
        .collect();
    if addrs.is_empty() {
        bail!("{host} resolves to no address");
    }
    if let Some(outside) = addrs.iter().find(|a| !a.ip().is_loopback()) {
        bail!(
            "{host} resolves to {outside}, which is not a loopback address: ward-bench only loads the local machine"
        );
    }
    Ok(addrs)
}

/// A client configuration that trusts only the certificates in `ca_pem` (ring provider,
/// TLS 1.2 and 1.3, ALPN `http/1.1`).
fn client_config(ca_pem: &Path) -> anyhow::Result<Arc<ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca_pem)
        .with_context(|| format!("cannot read {}", ca_pem.display()))?;
    for cert in certs {
        let cert = cert.with_context(|| format!("{}: malformed PEM", ca_pem.display()))?;
        roots
            .add(cert)
            .with_context(|| format!("{}: unusable CA certificate", ca_pem.display()))?;
    }
    if roots.is_empty() {
        bail!("{}: no certificate found", ca_pem.display());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
