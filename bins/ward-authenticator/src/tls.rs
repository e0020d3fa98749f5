//! TLS trust for connections to Ward: always verified, in one of three modes.
//!
//! 1. A certificate pin from the activation link (`sha256:<base64url>` of a certificate's
//!    `SubjectPublicKeyInfo` DER): the server's chain must contain a certificate with that key,
//!    and the leaf must verify up to that certificate as the only trust anchor, so signatures,
//!    validity and the host name are still checked. Pin the CA, not the leaf: the leaf is
//!    re-issued every year, the pin lives as long as the device.
//! 2. `--ca FILE`: only the certificates of that PEM bundle are trusted.
//! 3. Otherwise the operating system's trust store.
//!
//! There is no way to turn verification off.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

/// A pin on a certificate's public key: SHA-256 of its `SubjectPublicKeyInfo` DER.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SpkiPin([u8; 32]);

impl SpkiPin {
    const PREFIX: &'static str = "sha256:";

    /// Parses `sha256:<base64url without padding>`.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let encoded = text
            .strip_prefix(Self::PREFIX)
            .ok_or_else(|| anyhow!("certificate pin must start with \"sha256:\""))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(encoded.trim_end_matches('='))
            .context("certificate pin is not base64url")?;
        let hash = <[u8; 32]>::try_from(bytes.as_slice())
            .map_err(|_| anyhow!("certificate pin is not a SHA-256 hash (32 bytes)"))?;
        Ok(Self(hash))
    }

    /// The pin of a certificate's public key.
    pub fn of_certificate(cert: &CertificateDer<'_>) -> anyhow::Result<Self> {
        let mut store = RootCertStore::empty();
        store
            .add(cert.clone().into_owned())
            .context("cannot parse the certificate")?;
        let anchor = store
            .roots
            .first()
            .ok_or_else(|| anyhow!("cannot parse the certificate"))?;
        // webpki keeps the SPKI without its outer SEQUENCE header; DER is canonical, so putting
        // the header back gives the certificate's exact bytes.
        let spki = der_sequence(anchor.subject_public_key_info.as_ref());
        Ok(Self(Sha256::digest(&spki).into()))
    }
}

impl std::fmt::Display for SpkiPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", Self::PREFIX, URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl std::fmt::Debug for SpkiPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SpkiPin({self})")
    }
}

/// Wraps DER contents in a SEQUENCE header (definite, minimal length).
fn der_sequence(contents: &[u8]) -> Vec<u8> {
    let len = contents.len();
    let mut out = vec![0x30];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let significant: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(&significant);
    }
    out.extend_from_slice(contents);
    out
}

/// How the server's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    Pin(SpkiPin),
    CaFile(PathBuf),
    SystemRoots,
}

impl Trust {
    /// The mode for a pin and/or CA file: a pin wins, being the narrower of the two.
    pub fn choose(pin: Option<SpkiPin>, ca_file: Option<&Path>) -> Self {
        match (pin, ca_file) {
            (Some(pin), _) => Self::Pin(pin),
            (None, Some(path)) => Self::CaFile(path.to_owned()),
            (None, None) => Self::SystemRoots,
        }
    }

    /// A rustls client configuration for this mode (HTTP/1.1, ring provider).
    pub fn client_config(&self) -> anyhow::Result<Arc<ClientConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS configuration")?;
        let mut config = match self {
            Self::Pin(pin) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedVerifier::new(*pin, provider)))
                .with_no_client_auth(),
            Self::CaFile(path) => builder
                .with_root_certificates(ca_file_roots(path)?)
                .with_no_client_auth(),
            Self::SystemRoots => builder
                .with_root_certificates(system_roots()?)
                .with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

fn ca_file_roots(path: &Path) -> anyhow::Result<RootCertStore> {
    let shown = path.display();
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read CA file {shown}"))?
    {
        let cert = cert.with_context(|| format!("{shown}: malformed PEM"))?;
        roots
            .add(cert)
            .with_context(|| format!("{shown}: unusable CA certificate"))?;
    }
    if roots.is_empty() {
        bail!("{shown} holds no certificate");
    }
    Ok(roots)
}

fn system_roots() -> anyhow::Result<RootCertStore> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _unparsable) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map_or_else(|| "none found".to_owned(), ToString::to_string);
        bail!("no usable system CA certificates ({why}); give the server's CA with --ca FILE");
    }
    Ok(roots)
}

/// Accepts a chain only if it contains the pinned key and the leaf verifies up to the pinned
/// certificate as the sole trust anchor.
#[derive(Debug)]
pub struct PinnedVerifier {
    pin: SpkiPin,
    provider: Arc<CryptoProvider>,
}

impl PinnedVerifier {
    pub fn new(pin: SpkiPin, provider: Arc<CryptoProvider>) -> Self {
        Self { pin, provider }
    }

    fn algorithms(&self) -> &WebPkiSupportedAlgorithms {
        &self.provider.signature_verification_algorithms
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let pinned = std::iter::once(end_entity)
            .chain(intermediates)
            .find(|cert| SpkiPin::of_certificate(cert).is_ok_and(|pin| pin == self.pin))
            .ok_or_else(|| {
                rustls::Error::General(format!(
                    "no certificate of the server matches the pinned key {}",
                    self.pin
                ))
            })?;
        let mut roots = RootCertStore::empty();
        roots.add(pinned.clone().into_owned())?;
        let webpki =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, self.algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, self.algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms().supported_schemes()
    }
}

#[cfg(test)]
mod tests;
