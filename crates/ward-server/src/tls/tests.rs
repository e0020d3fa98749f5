use super::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn verifies(files: &TlsFiles, name: &str, at: DateTime<Utc>) -> bool {
    let provider = ring_provider();
    let ca = load_cert_chain(&files.ca_cert).unwrap().remove(0);
    let verifier = verifier_for(&ca, &files.ca_cert, &provider).unwrap();
    let leaf = load_cert_chain(&files.cert).unwrap().remove(0);
    let name = SanName::parse(name).unwrap().server_name().unwrap();
    verifier
        .verify_server_cert(&leaf, &[], &name, &[], unix_time(at).unwrap())
        .is_ok()
}

#[test]
fn creates_ca_and_leaf_with_private_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ward-data").join("tls");
    let files = ensure_local_ca(&dir, &[], t0()).unwrap();

    assert_eq!(files, TlsFiles::in_dir(&dir));
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(CA_KEY_FILE)), 0o600);
    assert_eq!(mode(&files.key), 0o600);
    assert!(files.ca_cert.is_file() && files.cert.is_file());
    for name in ["localhost", "127.0.0.1", "::1"] {
        assert!(verifies(&files, name, t0()), "{name}");
    }
    assert!(!verifies(&files, "example.com", t0()));
    // No stray temporary files.
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 4);
    server_config(&files.cert, &files.key).unwrap();
}

#[test]
fn second_call_reuses_ca_and_leaf() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tls");
    let files = ensure_local_ca(&dir, &["ward.example".to_owned()], t0()).unwrap();
    let before: Vec<Vec<u8>> = [
        &files.ca_cert,
        &dir.join(CA_KEY_FILE),
        &files.cert,
        &files.key,
    ]
    .iter()
    .map(|p| fs::read(p).unwrap())
    .collect();

    let later = t0() + TimeDelta::days(100);
    ensure_local_ca(&dir, &["WARD.example.".to_owned()], later).unwrap();
    let after: Vec<Vec<u8>> = [
        &files.ca_cert,
        &dir.join(CA_KEY_FILE),
        &files.cert,
        &files.key,
    ]
    .iter()
    .map(|p| fs::read(p).unwrap())
    .collect();
    assert_eq!(before, after);
}

#[test]
fn reissues_leaf_for_new_name_and_keeps_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tls");
    let files = ensure_local_ca(&dir, &[], t0()).unwrap();
    let ca = fs::read(&files.ca_cert).unwrap();
    let ca_key = fs::read(dir.join(CA_KEY_FILE)).unwrap();
    let leaf = fs::read(&files.cert).unwrap();

    let extra = ["mfa.example.com", "192.0.2.7", "[2001:db8::1]"].map(str::to_owned);
    ensure_local_ca(&dir, &extra, t0()).unwrap();
    assert_eq!(fs::read(&files.ca_cert).unwrap(), ca);
    assert_eq!(fs::read(dir.join(CA_KEY_FILE)).unwrap(), ca_key);
    assert_ne!(fs::read(&files.cert).unwrap(), leaf);
    for name in [
        "localhost",
        "127.0.0.1",
        "::1",
        "mfa.example.com",
        "192.0.2.7",
    ] {
        assert!(verifies(&files, name, t0()), "{name}");
    }
    assert_eq!(mode(&files.key), 0o600);
    server_config(&files.cert, &files.key).unwrap();
}

#[test]
fn reissues_leaf_within_30_days_of_expiry() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tls");
    let files = ensure_local_ca(&dir, &[], t0()).unwrap();
    let ca = fs::read(&files.ca_cert).unwrap();
    let leaf = fs::read(&files.cert).unwrap();

    ensure_local_ca(&dir, &[], t0() + TimeDelta::days(360)).unwrap();
    assert_eq!(fs::read(&files.cert).unwrap(), leaf, "38 days left: kept");

    let late = t0() + TimeDelta::days(370);
    ensure_local_ca(&dir, &[], late).unwrap();
    assert_eq!(fs::read(&files.ca_cert).unwrap(), ca);
    assert_ne!(fs::read(&files.cert).unwrap(), leaf);
    assert!(verifies(&files, "localhost", late + TimeDelta::days(390)));
}

#[test]
fn reissues_leaf_whose_key_was_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tls");
    let files = ensure_local_ca(&dir, &[], t0()).unwrap();
    let other = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    fs::write(&files.key, other.serialize_pem()).unwrap();

    ensure_local_ca(&dir, &[], t0()).unwrap();
    server_config(&files.cert, &files.key).unwrap();
}

#[test]
fn never_replaces_a_partial_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tls");
    let files = ensure_local_ca(&dir, &[], t0()).unwrap();
    fs::remove_file(&files.ca_cert).unwrap();
    let key = fs::read(dir.join(CA_KEY_FILE)).unwrap();

    let err = ensure_local_ca(&dir, &[], t0()).unwrap_err();
    assert!(matches!(err, TlsError::IncompleteCa { .. }), "{err}");
    assert_eq!(fs::read(dir.join(CA_KEY_FILE)).unwrap(), key);
    assert!(!files.ca_cert.exists());
}

#[test]
fn missing_ca_key_only_matters_when_reissuing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tls");
    ensure_local_ca(&dir, &[], t0()).unwrap();
    fs::remove_file(dir.join(CA_KEY_FILE)).unwrap();

    ensure_local_ca(&dir, &[], t0()).unwrap();
    let err = ensure_local_ca(&dir, &["new.example".to_owned()], t0()).unwrap_err();
    assert!(err.to_string().contains("ca.key is missing"), "{err}");
}

#[test]
fn refuses_a_ca_key_that_does_not_match_the_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tls");
    let files = ensure_local_ca(&dir, &[], t0()).unwrap();
    let other = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    fs::write(dir.join(CA_KEY_FILE), other.serialize_pem()).unwrap();
    let leaf = fs::read(&files.cert).unwrap();

    let err = ensure_local_ca(&dir, &["new.example".to_owned()], t0()).unwrap_err();
    assert!(matches!(err, TlsError::IssuedLeafRejected { .. }), "{err}");
    assert_eq!(fs::read(&files.cert).unwrap(), leaf, "nothing written");
}

fn openssl_text(cert: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(cert)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn certificate_profiles() {
    let tmp = tempfile::tempdir().unwrap();
    let files = ensure_local_ca(tmp.path(), &["mfa.example.com".to_owned()], t0()).unwrap();

    let ca = openssl_text(&files.ca_cert);
    for expected in [
        "Subject: CN = Ward local CA, O = Ward, OU = local CA ",
        "Public Key Algorithm: id-ecPublicKey",
        "NIST CURVE: P-256",
        "X509v3 Basic Constraints: critical\n                CA:TRUE, pathlen:0",
        "X509v3 Key Usage: critical\n                Certificate Sign, CRL Sign",
        "X509v3 Subject Key Identifier",
        "X509v3 Authority Key Identifier",
        "Not Before: Mar  1 11:00:00 2026 GMT",
        "Not After : Feb 27 12:00:00 2036 GMT",
    ] {
        assert!(ca.contains(expected), "CA lacks {expected:?}:\n{ca}");
    }

    let leaf = openssl_text(&files.cert);
    for expected in [
        "Issuer: CN = Ward local CA, O = Ward, OU = local CA ",
        "CA:FALSE",
        "X509v3 Key Usage: critical\n                Digital Signature",
        "X509v3 Extended Key Usage: \n                TLS Web Server Authentication",
        "DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, DNS:mfa.example.com",
        "X509v3 Authority Key Identifier",
        "Not After : Apr  2 12:00:00 2027 GMT",
    ] {
        assert!(leaf.contains(expected), "leaf lacks {expected:?}:\n{leaf}");
    }
}

#[test]
fn rejects_invalid_names() {
    let tmp = tempfile::tempdir().unwrap();
    for bad in ["*.example.com", "bad name", "", "exa_mple..com"] {
        let err = ensure_local_ca(tmp.path(), &[bad.to_owned()], t0()).unwrap_err();
        assert!(matches!(err, TlsError::InvalidName { .. }), "{bad}: {err}");
    }
    assert_eq!(
        fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn generated_certificates_pass_openssl_strict_verification() {
    let tmp = tempfile::tempdir().unwrap();
    let files = ensure_local_ca(tmp.path(), &["mfa.example.com".to_owned()], t0()).unwrap();
    let out = Command::new("openssl")
        .args(["verify", "-x509_strict", "-purpose", "sslserver"])
        .args(["-attime", &t0().timestamp().to_string()])
        .args(["-verify_hostname", "mfa.example.com", "-CAfile"])
        .arg(&files.ca_cert)
        .arg(&files.cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn server_config_errors_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let files = ensure_local_ca(&tmp.path().join("tls"), &[], t0()).unwrap();
    let ca_key = tmp.path().join("tls").join(CA_KEY_FILE);
    let missing = tmp.path().join("nope.pem");

    let err = server_config(&missing, &files.key).unwrap_err();
    assert!(matches!(err, TlsError::Read { .. }) && err.to_string().contains("nope.pem"));

    let err = server_config(&files.key, &files.key).unwrap_err();
    assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
    assert!(err.to_string().contains("server.key"), "{err}");

    let err = server_config(&files.cert, &files.cert).unwrap_err();
    assert!(matches!(err, TlsError::NoPrivateKey { .. }), "{err}");

    let err = server_config(&files.cert, &ca_key).unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
    assert!(err.to_string().contains("ca.key") && err.to_string().contains("server.pem"));

    let garbage = tmp.path().join("garbage.pem");
    fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let err = server_config(&garbage, &files.key).unwrap_err();
    assert!(matches!(err, TlsError::Pem { .. }), "{err}");
}

#[test]
fn server_config_accepts_operator_rsa_pkcs1_and_ec_sec1_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(tmp.path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&["genrsa", "-traditional", "-out", "rsa.key", "2048"]);
    openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        "ec.key",
    ]);
    for key in ["rsa.key", "ec.key"] {
        let cert = format!("{key}.pem");
        openssl(&[
            "req",
            "-x509",
            "-key",
            key,
            "-out",
            &cert,
            "-days",
            "30",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ]);
        let key_pem = fs::read_to_string(tmp.path().join(key)).unwrap();
        let label = if key == "rsa.key" {
            "RSA PRIVATE KEY"
        } else {
            "EC PRIVATE KEY"
        };
        assert!(
            key_pem.contains(label),
            "{key} is not in the legacy form under test"
        );
        let config = server_config(&tmp.path().join(&cert), &tmp.path().join(key)).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }
}
