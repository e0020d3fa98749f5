use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PublicKeyData, SanType,
};
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

use super::*;

struct Ca {
    cert: CertificateDer<'static>,
    pem: String,
    issuer: Issuer<'static, KeyPair>,
    /// The pin computed independently of our code: rcgen's own SPKI DER.
    pin: SpkiPin,
}

fn new_ca(name: &str) -> Ca {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let pin = SpkiPin(Sha256::digest(key.subject_public_key_info()).into());
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key).unwrap();
    Ca {
        cert: cert.der().clone(),
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
        pin,
    }
}

fn leaf(ca: &Ca, host: &str) -> (CertificateDer<'static>, KeyPair) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(vec![host.to_owned()]).unwrap();
    params.subject_alt_names = vec![SanType::DnsName(host.try_into().unwrap())];
    params.is_ca = IsCa::ExplicitNoCa;
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.der().clone(), key)
}

fn verifier(pin: SpkiPin) -> PinnedVerifier {
    PinnedVerifier::new(pin, Arc::new(rustls::crypto::ring::default_provider()))
}

fn verify(
    pin: SpkiPin,
    leaf: &CertificateDer<'_>,
    chain: &[CertificateDer<'_>],
    host: &str,
) -> Result<(), rustls::Error> {
    let name = ServerName::try_from(host.to_owned()).unwrap();
    verifier(pin)
        .verify_server_cert(leaf, chain, &name, &[], UnixTime::now())
        .map(|_| ())
}

#[test]
fn pin_parses_and_displays_and_matches_rcgen_spki() {
    let ca = new_ca("Test CA");
    let pin = SpkiPin::of_certificate(&ca.cert).unwrap();
    assert_eq!(pin, ca.pin);
    let text = pin.to_string();
    assert!(text.starts_with("sha256:"));
    assert_eq!(SpkiPin::parse(&text).unwrap(), pin);
    assert!(SpkiPin::parse("sha1:AAAA").is_err());
    assert!(SpkiPin::parse("sha256:AAAA").is_err());
    assert!(SpkiPin::parse("sha256:***").is_err());
}

#[test]
fn spki_with_a_long_form_length_matches_too() {
    // An RSA-sized SPKI needs the 0x82 length form; a P-256 one does not.
    let contents = vec![7u8; 290];
    let der = der_sequence(&contents);
    assert_eq!(der[..4], [0x30, 0x82, 0x01, 0x22]);
    assert_eq!(der.len(), 294);
    assert_eq!(der_sequence(&[1, 2])[..], [0x30, 2, 1, 2]);
    assert_eq!(der_sequence(&[0; 200])[..3], [0x30, 0x81, 200]);
}

#[test]
fn right_pin_on_the_ca_is_accepted() {
    let ca = new_ca("Test CA");
    let (leaf, _) = leaf(&ca, "ward.example");
    verify(
        ca.pin,
        &leaf,
        std::slice::from_ref(&ca.cert),
        "ward.example",
    )
    .unwrap();
}

#[test]
fn wrong_pin_is_refused() {
    let ca = new_ca("Test CA");
    let other = new_ca("Other CA");
    let (leaf, _) = leaf(&ca, "ward.example");
    let err = verify(
        other.pin,
        &leaf,
        std::slice::from_ref(&ca.cert),
        "ward.example",
    )
    .unwrap_err();
    assert!(err.to_string().contains("pinned key"), "{err}");
}

#[test]
fn leaf_not_issued_by_the_pinned_ca_is_refused() {
    // The attacker presents the real CA (so the pin is found) next to a leaf of their own CA.
    let real = new_ca("Real CA");
    let attacker = new_ca("Attacker CA");
    let (forged, _) = leaf(&attacker, "ward.example");
    let err = verify(
        real.pin,
        &forged,
        std::slice::from_ref(&real.cert),
        "ward.example",
    )
    .unwrap_err();
    assert!(matches!(err, rustls::Error::InvalidCertificate(_)), "{err}");
}

#[test]
fn pinned_chain_still_checks_the_host_name() {
    let ca = new_ca("Test CA");
    let (leaf, _) = leaf(&ca, "ward.example");
    let err = verify(
        ca.pin,
        &leaf,
        std::slice::from_ref(&ca.cert),
        "evil.example",
    )
    .unwrap_err();
    assert!(matches!(err, rustls::Error::InvalidCertificate(_)), "{err}");
}

#[test]
fn pinned_ca_missing_from_the_chain_is_refused() {
    let ca = new_ca("Test CA");
    let (leaf, _) = leaf(&ca, "ward.example");
    assert!(verify(ca.pin, &leaf, &[], "ward.example").is_err());
}

/// A real handshake over an in-memory pipe, for each trust mode that needs no network.
async fn handshake(trust: &Trust, ca: &Ca, host: &str) -> anyhow::Result<()> {
    let (leaf, key) = leaf(ca, host);
    let key = rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf, ca.cert.clone()], key)
    .unwrap();
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let server_task = tokio::spawn(async move { acceptor.accept(server_io).await.map(|_| ()) });
    let connector = tokio_rustls::TlsConnector::from(trust.client_config()?);
    let name = ServerName::try_from(host.to_owned())?;
    let result = connector.connect(name, client_io).await.map(|_| ());
    drop(server_task.await);
    Ok(result?)
}

#[tokio::test]
async fn handshakes_with_pin_and_ca_file() {
    let ca = new_ca("Test CA");
    handshake(&Trust::Pin(ca.pin), &ca, "localhost")
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, &ca.pem).unwrap();
    handshake(&Trust::CaFile(path.clone()), &ca, "localhost")
        .await
        .unwrap();

    let stranger = new_ca("Stranger CA");
    assert!(
        handshake(&Trust::CaFile(path), &stranger, "localhost")
            .await
            .is_err()
    );
    assert!(
        handshake(&Trust::Pin(ca.pin), &stranger, "localhost")
            .await
            .is_err()
    );
}

#[test]
fn ca_file_without_certificates_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.pem");
    std::fs::write(&path, "nothing here\n").unwrap();
    assert!(Trust::CaFile(path).client_config().is_err());
    assert!(
        Trust::CaFile("/nonexistent/ca.pem".into())
            .client_config()
            .is_err()
    );
}

#[test]
fn a_pin_wins_over_a_ca_file() {
    let pin = new_ca("Test CA").pin;
    let path = std::path::Path::new("/tmp/ca.pem");
    assert_eq!(Trust::choose(Some(pin), Some(path)), Trust::Pin(pin));
    assert_eq!(
        Trust::choose(None, Some(path)),
        Trust::CaFile(path.to_owned())
    );
    assert_eq!(Trust::choose(None, None), Trust::SystemRoots);
}
