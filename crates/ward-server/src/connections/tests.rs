use super::*;
use crate::listener::PeerAddr;
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

async fn serve_tls(files: &TlsFiles, timeout: Duration, max_connections: usize) -> SocketAddr {
    let config = server_config(&files.cert, &files.key).unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let limits = ConnectionLimits {
        max_connections,
        handshake_timeout: timeout,
        ..ConnectionLimits::default()
    };
    tokio::spawn(serve(
        tcp,
        Some(config),
        router(),
        limits,
        std::future::pending(),
    ));
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
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
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
    let addr = serve_tls(&files, Duration::from_secs(10), 1024).await;

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
    let addr = serve_tls(&files, Duration::from_secs(10), 1024).await;

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
    let addr = serve_tls(&files, Duration::from_secs(10), 1024).await;

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
async fn plain_http_reports_peer_addr() {
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    tokio::spawn(serve(
        tcp,
        None,
        router(),
        ConnectionLimits::default(),
        std::future::pending(),
    ));

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

#[tokio::test]
async fn connection_exhaustion_per_address_cap_spares_other_addresses() {
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let limits = ConnectionLimits {
        max_per_address: Some(3),
        header_read_timeout: Duration::from_secs(30),
        ..ConnectionLimits::default()
    };
    tokio::spawn(serve(tcp, None, router(), limits, std::future::pending()));

    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        held.push(stream);
    }
    // A fourth from the same address is closed at once.
    let mut extra = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0_u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(5), extra.read(&mut buf))
        .await
        .expect("the connection over the cap was kept open");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    // Another address is served.
    let other = tokio::net::TcpSocket::new_v4().unwrap();
    other.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut stream = other.connect(addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

#[test]
fn ipv6_clients_count_per_64() {
    let a = address_key("2001:db8:1:2:aaaa::1".parse().unwrap());
    let b = address_key("2001:db8:1:2:bbbb::2".parse().unwrap());
    let c = address_key("2001:db8:1:3::1".parse().unwrap());
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(
        address_key("::ffff:192.0.2.1".parse().unwrap()),
        "192.0.2.1".parse::<IpAddr>().unwrap()
    );
}
