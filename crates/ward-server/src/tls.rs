//! TLS material for the HTTPS listener.
//!
//! Zero-config start generates a local CA and a server certificate signed by it under
//! `ward-data/tls/`. A CA rather than a self-signed leaf, because `duo_unix` and Python's
//! `duo_client` take a CA file as their trust anchor (and check DNS SANs only). The CA is created
//! once and never overwritten; the leaf is re-issued from it when it nears expiry or stops
//! covering the names asked for. [`server_config`] loads these files or operator-supplied ones.
//!
//! Nothing here reads the clock: callers pass `now` from the Clock.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tracing::{info, warn};

/// File name of the local CA certificate inside the TLS directory; clients trust this file.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the local CA private key inside the TLS directory.
pub const CA_KEY_FILE: &str = "ca.key";
/// File name of the generated server certificate inside the TLS directory.
pub const SERVER_CERT_FILE: &str = "server.pem";
/// File name of the generated server private key inside the TLS directory.
pub const SERVER_KEY_FILE: &str = "server.key";

const CA_COMMON_NAME: &str = "Ward local CA";
const SERVER_COMMON_NAME: &str = "Ward server";
const CA_VALIDITY_DAYS: i64 = 3650;
/// Under the 398 days browsers accept for a leaf, counting the backdating below.
const LEAF_VALIDITY_DAYS: i64 = 397;
const LEAF_RENEW_BEFORE_DAYS: i64 = 30;
/// Tolerates clients whose clock is a little behind ours.
const BACKDATE_MINUTES: i64 = 60;

/// Paths of the TLS files the server uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificate clients trust (`ca_certs=` for `duo_client`, `cafile` for `duo_unix`).
    pub ca_cert: PathBuf,
    /// Server certificate (PEM, leaf only).
    pub cert: PathBuf,
    /// Server private key (PEM, PKCS#8).
    pub key: PathBuf,
}

impl TlsFiles {
    /// The paths [`ensure_local_ca`] uses inside `tls_dir`, without touching the disk.
    pub fn in_dir(tls_dir: &Path) -> Self {
        Self {
            ca_cert: tls_dir.join(CA_CERT_FILE),
            cert: tls_dir.join(SERVER_CERT_FILE),
            key: tls_dir.join(SERVER_KEY_FILE),
        }
    }
}

/// Why TLS material could not be created or loaded. Messages name the file involved and never
/// contain key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("{}: malformed PEM: {source}", path.display())]
    Pem {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{}: no PEM certificate (BEGIN CERTIFICATE) found", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: no PEM private key found (expected PKCS#8, SEC1 or PKCS#1)", path.display())]
    NoPrivateKey { path: PathBuf },
    #[error("{}: unsupported private key: {source}", path.display())]
    UnsupportedKey {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("{}: unusable certificate: {source}", path.display())]
    BadCertificate {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("private key {} does not match certificate {}", key.display(), cert.display())]
    KeyMismatch { key: PathBuf, cert: PathBuf },
    #[error(
        "{}: a certificate issued by this CA does not verify against it ({source}); check that \
         ca.key belongs to it and that it has not expired",
        ca.display()
    )]
    IssuedLeafRejected { ca: PathBuf, source: rustls::Error },
    #[error("{}: unusable CA key: {source}", path.display())]
    CaKey { path: PathBuf, source: rcgen::Error },
    #[error(
        "{} exists but {} is missing; Ward never replaces a CA: restore the missing file, or \
         remove both to create a new CA (clients must then trust the new ca.pem)",
        present.display(),
        missing.display()
    )]
    IncompleteCa { present: PathBuf, missing: PathBuf },
    #[error("invalid server name {name:?}: expected a DNS name or an IP address")]
    InvalidName { name: String },
    #[error("time {0} is outside the range a certificate can carry")]
    TimeOutOfRange(DateTime<Utc>),
    #[error("the system random number generator failed")]
    Random,
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS configuration: {0}")]
    Config(rustls::Error),
}

/// Makes sure `tls_dir` holds a local CA and a server certificate signed by it, valid now and
/// for at least the next 30 days, for `localhost`, `127.0.0.1`, `::1` and `extra_dns_names`
/// (entries that parse as IP addresses become IP SANs).
///
/// # Security
/// The CA key is written with mode 0600 in a 0700 directory. An existing CA is never replaced,
/// so clients that trust `ca.pem` keep working across re-issues of the leaf.
pub fn ensure_local_ca(
    tls_dir: &Path,
    extra_dns_names: &[String],
    now: DateTime<Utc>,
) -> Result<TlsFiles, TlsError> {
    let names = requested_names(extra_dns_names)?;
    let files = TlsFiles::in_dir(tls_dir);
    let ca_key_path = tls_dir.join(CA_KEY_FILE);
    let provider = ring_provider();
    create_private_dir(tls_dir)?;

    let ca = ensure_ca(&files.ca_cert, &ca_key_path, &provider, now)?;
    let verifier = verifier_for(&ca.cert, &files.ca_cert, &provider)?;
    let Some(reason) = leaf_problem(&files, &verifier, &provider, &names, now)? else {
        return Ok(files);
    };
    info!(cert = %files.cert.display(), %reason, "issuing server certificate");

    let ca_key = match ca.key {
        Some(key) => key,
        None => load_ca_key(&ca_key_path, &files.ca_cert)?,
    };
    renew_leaf(&files, &ca.cert, &ca_key, &verifier, &names, &provider, now)?;
    Ok(files)
}

/// Issues a leaf for `names`, checks it verifies against the CA, and writes it with its key.
fn renew_leaf(
    files: &TlsFiles,
    ca_cert: &CertificateDer<'_>,
    ca_key: &KeyPair,
    verifier: &WebPkiServerVerifier,
    names: &[SanName],
    provider: &CryptoProvider,
    now: DateTime<Utc>,
) -> Result<(), TlsError> {
    let (cert, key) = issue_leaf(ca_cert, ca_key, names, provider, now)?;
    // Catches a ca.key that does not belong to ca.pem, or an expired CA, before writing.
    let at_now = unix_time(now)?;
    for name in names {
        verifier
            .verify_server_cert(cert.der(), &[], &name.server_name()?, &[], at_now)
            .map_err(|source| TlsError::IssuedLeafRejected {
                ca: files.ca_cert.clone(),
                source,
            })?;
    }
    // Key first: a crash in between leaves a mismatched pair, which the next start re-issues.
    let key_pem = key.serialize_pem();
    write_atomic(&files.key, key_pem.as_bytes(), 0o600, Replace::Yes)?;
    write_atomic(&files.cert, cert.pem().as_bytes(), 0o644, Replace::Yes)?;
    let names: Vec<String> = names.iter().map(ToString::to_string).collect();
    info!(cert = %files.cert.display(), names = %names.join(","), "issued server certificate");
    Ok(())
}

/// Builds a rustls server configuration (ring provider, TLS 1.2 and 1.3, ALPN `http/1.1`, no
/// client authentication) from a PEM certificate chain, leaf first, and a PEM private key in
/// PKCS#8, SEC1 or PKCS#1 form.
pub fn server_config(cert_chain_pem: &Path, key_pem: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_with_issuer(cert_chain_pem, key_pem, None)
}

/// Like [`server_config`], with the issuing CA's certificate appended to the chain the server
/// presents (for Ward's own CA: devices that pin the CA can then check the chain without
/// holding the CA file).
pub fn server_config_with_issuer(
    cert_chain_pem: &Path,
    key_pem: &Path,
    issuer_pem: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = ring_provider();
    let mut chain = load_cert_chain(cert_chain_pem)?;
    if let Some(issuer) = issuer_pem {
        chain.extend(load_cert_chain(issuer)?);
    }
    let key = load_private_key(key_pem)?;
    let certified = certified_key(chain, key, &provider, cert_chain_pem, key_pem)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn ring_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A subject alternative name the leaf must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SanName {
    Dns(String),
    Ip(IpAddr),
}

impl SanName {
    fn parse(raw: &str) -> Result<Self, TlsError> {
        let invalid = || TlsError::InvalidName {
            name: raw.to_owned(),
        };
        let trimmed = raw.trim();
        let unbracketed = trimmed
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
            .unwrap_or(trimmed);
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            return Ok(Self::Ip(ip));
        }
        let name = trimmed
            .strip_suffix('.')
            .unwrap_or(trimmed)
            .to_ascii_lowercase();
        // Wildcards are refused: clients would need a concrete name to check coverage against.
        if name.contains('*') {
            return Err(invalid());
        }
        match ServerName::try_from(name.as_str()) {
            Ok(ServerName::DnsName(_)) => Ok(Self::Dns(name)),
            _ => Err(invalid()),
        }
    }

    fn server_name(&self) -> Result<ServerName<'static>, TlsError> {
        match self {
            Self::Dns(name) => ServerName::try_from(name.clone())
                .map_err(|_| TlsError::InvalidName { name: name.clone() }),
            Self::Ip(ip) => Ok(ServerName::IpAddress((*ip).into())),
        }
    }

    fn san(&self) -> Result<SanType, TlsError> {
        match self {
            Self::Dns(name) => Ok(SanType::DnsName(name.as_str().try_into()?)),
            Self::Ip(ip) => Ok(SanType::IpAddress(*ip)),
        }
    }
}

impl std::fmt::Display for SanName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dns(name) => write!(f, "DNS:{name}"),
            Self::Ip(ip) => write!(f, "IP:{ip}"),
        }
    }
}

fn requested_names(extra_dns_names: &[String]) -> Result<Vec<SanName>, TlsError> {
    let mut names = vec![
        SanName::Dns("localhost".to_owned()),
        SanName::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        SanName::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ];
    for raw in extra_dns_names {
        let name = SanName::parse(raw)?;
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// The CA certificate, and its key when it was just created (otherwise the key is read only
/// if the leaf has to be re-issued).
struct LocalCa {
    cert: CertificateDer<'static>,
    key: Option<KeyPair>,
}

fn ensure_ca(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
    now: DateTime<Utc>,
) -> Result<LocalCa, TlsError> {
    match (exists(cert_path)?, exists(key_path)?) {
        (false, false) => create_ca(cert_path, key_path, provider, now),
        (false, true) => Err(TlsError::IncompleteCa {
            present: key_path.to_owned(),
            missing: cert_path.to_owned(),
        }),
        (true, _) => {
            let chain = load_cert_chain(cert_path)?;
            let cert = chain
                .into_iter()
                .next()
                .ok_or_else(|| TlsError::NoCertificate {
                    path: cert_path.to_owned(),
                })?;
            Ok(LocalCa { cert, key: None })
        }
    }
}

fn create_ca(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
    now: DateTime<Utc>,
) -> Result<LocalCa, TlsError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = base_params(CA_COMMON_NAME, provider, now, CA_VALIDITY_DAYS)?;
    // Every install gets its own CA; a distinct subject keeps clients that trust several of
    // them (trust stores, NSS) from confusing one with another.
    let mut install_id = [0_u8; 8];
    provider
        .secure_random
        .fill(&mut install_id)
        .map_err(|_| TlsError::Random)?;
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Ward");
    params.distinguished_name.push(
        DnType::OrganizationalUnitName,
        format!("local CA {}", hex::encode(install_id)),
    );
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key)?;
    // Key first: ca.pem appearing is what marks the CA complete.
    write_atomic(key_path, key.serialize_pem().as_bytes(), 0o600, Replace::No)?;
    write_atomic(cert_path, cert.pem().as_bytes(), 0o644, Replace::No)?;
    info!(ca = %cert_path.display(), "created local TLS CA; clients should trust this file");
    Ok(LocalCa {
        cert: cert.der().clone(),
        key: Some(key),
    })
}

fn issue_leaf(
    ca_cert: &CertificateDer<'_>,
    ca_key: &KeyPair,
    names: &[SanName],
    provider: &CryptoProvider,
    now: DateTime<Utc>,
) -> Result<(rcgen::Certificate, KeyPair), TlsError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = base_params(SERVER_COMMON_NAME, provider, now, LEAF_VALIDITY_DAYS)?;
    params.subject_alt_names = names.iter().map(SanName::san).collect::<Result<_, _>>()?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let issuer = Issuer::from_ca_cert_der(ca_cert, ca_key)?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok((cert, key))
}

/// Parameters shared by the CA and the leaf: subject CN, random serial, validity from a little
/// before `now`, and an authority key identifier (OpenSSL's strict mode requires one).
fn base_params(
    common_name: &str,
    provider: &CryptoProvider,
    now: DateTime<Utc>,
    validity_days: i64,
) -> Result<CertificateParams, TlsError> {
    let not_before = now
        .checked_sub_signed(TimeDelta::minutes(BACKDATE_MINUTES))
        .ok_or(TlsError::TimeOutOfRange(now))?;
    let not_after = now
        .checked_add_signed(TimeDelta::days(validity_days))
        .ok_or(TlsError::TimeOutOfRange(now))?;
    let mut distinguished_name = DistinguishedName::new();
    distinguished_name.push(DnType::CommonName, common_name);

    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name;
    params.serial_number = Some(random_serial(provider)?);
    params.not_before = offset_date_time(not_before)?;
    params.not_after = offset_date_time(not_after)?;
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// 128 random bits, positive and without a leading zero byte, so every issued certificate has a
/// distinct serial (browsers reject two certificates with the same issuer and serial).
fn random_serial(provider: &CryptoProvider) -> Result<SerialNumber, TlsError> {
    let mut bytes = [0_u8; 16];
    provider
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| TlsError::Random)?;
    if let Some(first) = bytes.first_mut() {
        *first = (*first & 0x7f) | 0x40;
    }
    Ok(SerialNumber::from_slice(&bytes))
}

fn offset_date_time(at: DateTime<Utc>) -> Result<time::OffsetDateTime, TlsError> {
    time::OffsetDateTime::from_unix_timestamp(at.timestamp())
        .map_err(|_| TlsError::TimeOutOfRange(at))
}

fn unix_time(at: DateTime<Utc>) -> Result<UnixTime, TlsError> {
    let secs = u64::try_from(at.timestamp()).map_err(|_| TlsError::TimeOutOfRange(at))?;
    Ok(UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        secs,
    )))
}

fn verifier_for(
    ca_cert: &CertificateDer<'static>,
    ca_path: &Path,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    roots
        .add(ca_cert.clone())
        .map_err(|source| TlsError::BadCertificate {
            path: ca_path.to_owned(),
            source,
        })?;
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
        .build()
        .map_err(|e| TlsError::Config(rustls::Error::General(e.to_string())))
}

/// Why the current leaf cannot be kept, or `None` if it can: it must load with its key, chain to
/// the CA, and verify for every requested name both now and `LEAF_RENEW_BEFORE_DAYS` from now.
fn leaf_problem(
    files: &TlsFiles,
    verifier: &WebPkiServerVerifier,
    provider: &CryptoProvider,
    names: &[SanName],
    now: DateTime<Utc>,
) -> Result<Option<String>, TlsError> {
    let loaded = load_cert_chain(&files.cert).and_then(|chain| {
        let key = load_private_key(&files.key)?;
        certified_key(chain, key, provider, &files.cert, &files.key)
    });
    let certified = match loaded {
        Ok(certified) => certified,
        Err(e) => return Ok(Some(e.to_string())),
    };
    let Some(leaf) = certified.cert.first() else {
        return Ok(Some("no certificate".to_owned()));
    };
    let renew_at = now
        .checked_add_signed(TimeDelta::days(LEAF_RENEW_BEFORE_DAYS))
        .ok_or(TlsError::TimeOutOfRange(now))?;
    for at in [now, renew_at] {
        let unix = unix_time(at)?;
        for name in names {
            if let Err(e) = verifier.verify_server_cert(leaf, &[], &name.server_name()?, &[], unix)
            {
                return Ok(Some(format!(
                    "current certificate invalid for {name} at {at}: {e}"
                )));
            }
        }
    }
    Ok(None)
}

fn load_ca_key(key_path: &Path, cert_path: &Path) -> Result<KeyPair, TlsError> {
    if !exists(key_path)? {
        return Err(TlsError::IncompleteCa {
            present: cert_path.to_owned(),
            missing: key_path.to_owned(),
        });
    }
    let pem = fs::read_to_string(key_path).map_err(|source| TlsError::Read {
        path: key_path.to_owned(),
        source,
    })?;
    KeyPair::from_pem(&pem).map_err(|source| TlsError::CaKey {
        path: key_path.to_owned(),
        source,
    })
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn load_cert_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file(path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            path: path.to_owned(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_file(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|source| match source {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            path: path.to_owned(),
        },
        source => TlsError::Pem {
            path: path.to_owned(),
            source,
        },
    })
}

fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    provider: &CryptoProvider,
    cert_path: &Path,
    key_path: &Path,
) -> Result<CertifiedKey, TlsError> {
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|source| TlsError::UnsupportedKey {
            path: key_path.to_owned(),
            source,
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::KeyMismatch {
            key: key_path.to_owned(),
            cert: cert_path.to_owned(),
        }),
        Err(source) => Err(TlsError::BadCertificate {
            path: cert_path.to_owned(),
            source,
        }),
    }
}

fn exists(path: &Path) -> Result<bool, TlsError> {
    path.try_exists().map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn create_private_dir(dir: &Path) -> Result<(), TlsError> {
    let write_err = |source| TlsError::Write {
        path: dir.to_owned(),
        source,
    };
    if exists(dir)? {
        warn_if_shared(dir);
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(write_err)
}

#[cfg(unix)]
fn warn_if_shared(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(dir)
        && meta.permissions().mode() & 0o077 != 0
    {
        warn!(
            dir = %dir.display(),
            "TLS directory is accessible to other users; it holds private keys (chmod 700 it)"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_dir: &Path) {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replace {
    Yes,
    No,
}

/// Writes `contents` to a temporary file beside `path`, created with `mode`, flushes it and
/// moves it into place, so readers see the old file or the new one, never a partial one.
fn write_atomic(path: &Path, contents: &[u8], mode: u32, replace: Replace) -> Result<(), TlsError> {
    let write_err = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut suffix = [0_u8; 8];
    ring_provider()
        .secure_random
        .fill(&mut suffix)
        .map_err(|_| TlsError::Random)?;
    let tmp = dir.join(format!(".{file_name}.{}.tmp", hex::encode(suffix)));

    let result = write_new_file(&tmp, contents, mode).and_then(|()| match replace {
        Replace::Yes => fs::rename(&tmp, path),
        Replace::No => link_no_replace(&tmp, path),
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(write_err)?;
    sync_dir(dir);
    Ok(())
}

fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Moves `tmp` to `path` unless `path` exists. A hard link fails atomically when the target
/// exists; filesystems without hard links fall back to check-then-rename.
fn link_no_replace(tmp: &Path, path: &Path) -> io::Result<()> {
    match fs::hard_link(tmp, path) {
        Ok(()) => fs::remove_file(tmp),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        Err(_) if path.try_exists()? => Err(io::ErrorKind::AlreadyExists.into()),
        Err(_) => fs::rename(tmp, path),
    }
}

/// Makes the rename durable. Best effort: not every platform can open a directory.
fn sync_dir(dir: &Path) {
    if let Ok(handle) = fs::File::open(dir) {
        let _ = handle.sync_all();
    }
}

/// The pin of a certificate, as activation links carry it: `sha256:` and the base64url SHA-256
/// of its `SubjectPublicKeyInfo`.
pub fn spki_pin(cert_pem: &Path) -> Result<String, TlsError> {
    use base64::Engine;
    use sha2::Digest;
    let chain = load_cert_chain(cert_pem)?;
    let first = chain.first().ok_or_else(|| TlsError::NoCertificate {
        path: cert_pem.to_owned(),
    })?;
    let (_, parsed) = x509_parser::parse_x509_certificate(first.as_ref()).map_err(|_| {
        TlsError::NoCertificate {
            path: cert_pem.to_owned(),
        }
    })?;
    let spki = parsed.tbs_certificate.subject_pki.raw;
    Ok(format!(
        "sha256:{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(spki))
    ))
}

#[cfg(test)]
mod tests;
