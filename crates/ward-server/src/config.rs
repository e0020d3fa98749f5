//! Configuration: a TOML file (`--config`), then `WARD_…` environment variables, then command
//! line flags, each overriding the one before. Secrets can come from files (`*_FILE`).
//! Unknown keys in the file are an error.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod limits;
mod portal;
mod recovery;
mod smtp;

pub use limits::ConnectionSettings;

pub use portal::{Branding, PortalTimes};

/// A configuration problem, reported as one line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid value for {key}: {message}")]
    Value { key: &'static str, message: String },
}

fn value_err(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Value {
        key,
        message: message.into(),
    }
}

/// How the listener speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// HTTPS with a certificate from Ward's own local CA (generated on first start).
    Auto,
    /// HTTPS with the operator's certificate and key files.
    Files,
    /// Plain HTTP, for running behind a TLS-terminating proxy.
    Off,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    public_host: Option<String>,
    issuer: Option<String>,
    #[serde(default)]
    server: ServerFile,
    #[serde(default)]
    database: DatabaseFile,
    #[serde(default)]
    secrets: SecretsFile,
    #[serde(default)]
    auth: AuthFile,
    #[serde(default)]
    limits: limits::LimitsFile,
    #[serde(default)]
    push: PushFile,
    #[serde(default)]
    alerts: AlertsFile,
    #[serde(default)]
    branding: portal::BrandingFile,
    #[serde(default)]
    portal: portal::PortalFile,
    #[serde(default)]
    factor_policy: portal::FactorPolicySection,
    #[serde(default)]
    smtp: smtp::SmtpFile,
    #[serde(default)]
    recovery: recovery::RecoveryFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertsFile {
    /// A program and its arguments, run with each alert as JSON on standard input.
    command: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PushFile {
    timeout_seconds: Option<u64>,
    mute_after_fraud_seconds: Option<u64>,
    storm_limit: Option<u32>,
    storm_window_seconds: Option<u64>,
    number_digits: Option<u32>,
    auth_api_mode: Option<String>,
    activation_ttl_seconds: Option<u64>,
}

/// Push settings (`[push]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushSettings {
    /// Seconds a push waits for its answer.
    pub timeout_seconds: u64,
    /// Seconds pushes to a user are refused after they report fraud.
    pub mute_after_fraud_seconds: u64,
    /// Pushes per user per window (0: no limit).
    pub storm_limit: u32,
    pub storm_window_seconds: u64,
    /// Digits of the Verified Push number (3 to 6).
    pub number_digits: u32,
    /// `verified`, `plain` or `refuse`: push for Duo Auth API clients.
    pub auth_api_mode: String,
    /// Seconds a device activation link stays valid.
    pub activation_ttl_seconds: u64,
}

fn resolve_push(
    env: &dyn Fn(&str) -> Option<String>,
    push: PushFile,
) -> Result<PushSettings, ConfigError> {
    let settings = PushSettings {
        timeout_seconds: push.timeout_seconds.unwrap_or(60),
        mute_after_fraud_seconds: push.mute_after_fraud_seconds.unwrap_or(20 * 60),
        storm_limit: push.storm_limit.unwrap_or(10),
        storm_window_seconds: push.storm_window_seconds.unwrap_or(600),
        number_digits: push.number_digits.unwrap_or(3),
        auth_api_mode: env("WARD_PUSH_AUTH_API_MODE")
            .or(push.auth_api_mode)
            .unwrap_or_else(|| "verified".into()),
        activation_ttl_seconds: push.activation_ttl_seconds.unwrap_or(600),
    };
    if !(1..=600).contains(&settings.timeout_seconds) {
        return Err(value_err(
            "push.timeout_seconds",
            "must be between 1 and 600",
        ));
    }
    if !(3..=6).contains(&settings.number_digits) {
        return Err(value_err("push.number_digits", "must be between 3 and 6"));
    }
    if !["verified", "plain", "refuse"].contains(&settings.auth_api_mode.as_str()) {
        return Err(value_err(
            "push.auth_api_mode",
            "must be verified, plain or refuse",
        ));
    }
    if !(60..=86_400).contains(&settings.activation_ttl_seconds) {
        return Err(value_err(
            "push.activation_ttl_seconds",
            "must be between 60 and 86400",
        ));
    }
    Ok(settings)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerFile {
    listen: Option<String>,
    tls: Option<TlsMode>,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    trust_forwarded_for: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DatabaseFile {
    url: Option<String>,
    url_file: Option<PathBuf>,
    max_connections: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretsFile {
    master_key_file: Option<PathBuf>,
    #[serde(default)]
    previous_master_key_files: Vec<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    unknown_user: Option<String>,
    lockout_threshold: Option<u32>,
    lockout_seconds: Option<u64>,
    signature_skew_seconds: Option<u64>,
    allow_v1_signatures: Option<bool>,
    enroll_portal_url: Option<String>,
    transaction_ttl_seconds: Option<u64>,
}

/// Where the master key comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MasterKeySource {
    /// A key file; generated on first start when it is the default one in the data directory.
    File {
        path: PathBuf,
        generate_if_missing: bool,
    },
    /// The key itself (base64), from `WARD_MASTER_KEY`.
    Inline(String),
}

/// Values a command line may set, which override file and environment.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub plain_http: bool,
}

/// The resolved configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    /// Host (and port) clients are configured with, e.g. `mfa.example.com` or `localhost:8443`.
    pub public_host: String,
    /// Name shown in authenticator apps.
    pub issuer: String,
    pub listen: SocketAddr,
    pub tls: TlsMode,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub trust_forwarded_for: bool,
    pub database_url: String,
    pub database_max_connections: u32,
    pub master_key: MasterKeySource,
    pub previous_master_key_files: Vec<PathBuf>,
    pub unknown_user: String,
    pub lockout_threshold: u32,
    pub lockout_seconds: u64,
    pub signature_skew_seconds: u64,
    pub allow_v1_signatures: bool,
    pub enroll_portal_url: Option<String>,
    pub transaction_ttl_seconds: u64,
    pub ip_requests_per_second: u32,
    pub ip_failures_per_minute: u32,
    pub integration_requests_per_second: u32,
    pub max_body_bytes: usize,
    /// `[limits]` on connections: counts and timeouts.
    pub connections: ConnectionSettings,
    pub push: PushSettings,
    /// `[alerts] command`: run for each alert with the alert as JSON on standard input.
    pub alert_command: Vec<String>,
    /// `[branding]`: organisation name, logo and accent colour on every page.
    pub branding: Branding,
    /// `[portal]`: session lifetimes.
    pub portal: PortalTimes,
    /// `[factor_policy]`: which factors each group of users may enrol.
    pub factor_policies: ward_core::policy::FactorPolicies,
    /// `[smtp]`: the mail server for user notices; `None`: notices go to the log.
    pub smtp: Option<crate::mail::SmtpSettings>,
    /// `[recovery]`: account recovery limits and cooling periods.
    pub recovery: ward_core::service::RecoverySettings,
    /// Whether `[recovery] test_cooling_seconds` shortened cooling (warned at start-up).
    pub recovery_test_timers: bool,
}

/// Reads one environment variable, or the file named by its `_FILE` twin.
fn env_or_file(
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, ConfigError> {
    if let Some(v) = env(name) {
        return Ok(Some(v));
    }
    let file_var = format!("{name}_FILE");
    match env(&file_var) {
        Some(path) => std::fs::read_to_string(&path)
            .map(|s| Some(s.trim().to_owned()))
            .map_err(|source| ConfigError::Read {
                path: path.into(),
                source,
            }),
        None => Ok(None),
    }
}

fn parse_env<T: std::str::FromStr>(
    key: &'static str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<T>, ConfigError> {
    env(key)
        .map(|v| {
            v.parse::<T>()
                .map_err(|_| value_err(key, format!("cannot parse {v:?}")))
        })
        .transpose()
}

impl Config {
    /// Resolves the configuration from the process environment.
    pub fn load(overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::resolve(overrides, &|k| std::env::var(k).ok())
    }

    /// Resolves the configuration from a file, an environment lookup and overrides.
    pub fn resolve(
        overrides: &Overrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let file = match &overrides.config_file {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let data_dir = overrides
            .data_dir
            .clone()
            .or_else(|| env("WARD_DATA_DIR").map(PathBuf::from))
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("ward-data"));

        let listen_text = overrides
            .listen
            .clone()
            .or_else(|| env("WARD_LISTEN"))
            .or_else(|| file.server.listen.clone())
            .unwrap_or_else(|| "127.0.0.1:8443".into());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            value_err(
                "server.listen",
                format!("{listen_text:?} is not an IP:port"),
            )
        })?;

        let (tls, tls_cert_file, tls_key_file) = resolve_tls(overrides, env, &file.server)?;

        let public_host = env("WARD_PUBLIC_HOST")
            .or(file.public_host)
            .unwrap_or_else(|| {
                if listen.port() == 443 {
                    "localhost".into()
                } else {
                    format!("localhost:{}", listen.port())
                }
            });
        check_public_host(&public_host)?;

        let database_url = resolve_database_url(env, &file.database, &data_dir)?;
        let master_key = resolve_master_key(env, file.secrets.master_key_file.clone(), &data_dir);

        let auth = file.auth;
        let unknown_user = env("WARD_UNKNOWN_USER")
            .or(auth.unknown_user)
            .unwrap_or_else(|| "deny".into());
        if unknown_user != "deny" && unknown_user != "enroll" {
            return Err(value_err("auth.unknown_user", "must be deny or enroll"));
        }
        let lockout_threshold = parse_env("WARD_LOCKOUT_THRESHOLD", env)?
            .or(auth.lockout_threshold)
            .unwrap_or(10);
        let lockout_seconds = parse_env("WARD_LOCKOUT_SECONDS", env)?
            .or(auth.lockout_seconds)
            .unwrap_or(900);
        let signature_skew_seconds = auth.signature_skew_seconds.unwrap_or(300);
        if !(30..=3600).contains(&signature_skew_seconds) {
            return Err(value_err(
                "auth.signature_skew_seconds",
                "must be between 30 and 3600",
            ));
        }
        let push = resolve_push(env, file.push)?;
        let limits = file.limits;
        let max_body_bytes = resolve_max_body(limits.max_body_bytes)?;
        let connections = limits::resolve_connections(&limits)?;
        Ok(Self {
            issuer: file.issuer.unwrap_or_else(|| "Ward".into()),
            enroll_portal_url: auth.enroll_portal_url,
            data_dir,
            public_host,
            listen,
            tls,
            tls_cert_file,
            tls_key_file,
            trust_forwarded_for: file.server.trust_forwarded_for.unwrap_or(false),
            database_url,
            database_max_connections: file.database.max_connections.unwrap_or(16).clamp(1, 256),
            master_key,
            previous_master_key_files: file.secrets.previous_master_key_files,
            unknown_user,
            lockout_threshold,
            lockout_seconds,
            signature_skew_seconds,
            allow_v1_signatures: auth.allow_v1_signatures.unwrap_or(true),
            transaction_ttl_seconds: auth
                .transaction_ttl_seconds
                .unwrap_or(600)
                .clamp(60, 86_400),
            ip_requests_per_second: limits.ip_requests_per_second.unwrap_or(5_000).max(1),
            ip_failures_per_minute: limits.ip_failures_per_minute.unwrap_or(60).max(1),
            integration_requests_per_second: limits
                .integration_requests_per_second
                .unwrap_or(20_000)
                .max(1),
            max_body_bytes,
            connections,
            push,
            alert_command: file.alerts.command.unwrap_or_default(),
            branding: portal::resolve_branding(env, file.branding)?,
            portal: portal::resolve_times(&file.portal)?,
            factor_policies: portal::resolve_factor_policies(file.factor_policy)?,
            smtp: smtp::resolve_smtp(env, file.smtp)?,
            recovery: recovery::resolve_recovery(&file.recovery)?,
            recovery_test_timers: file.recovery.test_cooling_seconds.is_some(),
        })
    }

    /// The host names (without port) this server answers to, for signatures and certificates.
    pub fn public_hostname(&self) -> &str {
        split_host_port(&self.public_host).0
    }
}

fn resolve_tls(
    overrides: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
    server: &ServerFile,
) -> Result<(TlsMode, Option<PathBuf>, Option<PathBuf>), ConfigError> {
    let tls = if overrides.plain_http {
        TlsMode::Off
    } else if let Some(v) = env("WARD_TLS") {
        match v.as_str() {
            "auto" => TlsMode::Auto,
            "files" => TlsMode::Files,
            "off" => TlsMode::Off,
            _ => return Err(value_err("WARD_TLS", "must be auto, files or off")),
        }
    } else {
        server.tls.unwrap_or(TlsMode::Auto)
    };
    let cert = env("WARD_TLS_CERT_FILE")
        .map(PathBuf::from)
        .or_else(|| server.tls_cert_file.clone());
    let key = env("WARD_TLS_KEY_FILE")
        .map(PathBuf::from)
        .or_else(|| server.tls_key_file.clone());
    if tls == TlsMode::Files && (cert.is_none() || key.is_none()) {
        return Err(value_err(
            "server.tls",
            "tls = \"files\" needs tls_cert_file and tls_key_file",
        ));
    }
    Ok((tls, cert, key))
}

fn resolve_database_url(
    env: &dyn Fn(&str) -> Option<String>,
    database: &DatabaseFile,
    data_dir: &Path,
) -> Result<String, ConfigError> {
    let url = match env_or_file("WARD_DATABASE_URL", env)? {
        Some(url) => url,
        None => match (&database.url, &database.url_file) {
            (Some(url), _) => url.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map(|s| s.trim().to_owned())
                .map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?,
            (None, None) => format!("sqlite://{}", data_dir.join("ward.db").display()),
        },
    };
    let known = ["sqlite:", "postgres://", "postgresql://"];
    if known.iter().any(|prefix| url.starts_with(prefix)) {
        Ok(url)
    } else {
        Err(value_err(
            "database.url",
            "must start with sqlite:// or postgres://",
        ))
    }
}

fn resolve_master_key(
    env: &dyn Fn(&str) -> Option<String>,
    file: Option<PathBuf>,
    data_dir: &Path,
) -> MasterKeySource {
    if let Some(key) = env("WARD_MASTER_KEY") {
        MasterKeySource::Inline(key)
    } else if let Some(path) = env("WARD_MASTER_KEY_FILE").map(PathBuf::from).or(file) {
        MasterKeySource::File {
            path,
            generate_if_missing: false,
        }
    } else {
        MasterKeySource::File {
            path: data_dir.join("master.key"),
            generate_if_missing: true,
        }
    }
}

/// Splits `host[:port]` (IPv6 literals in brackets).
pub fn split_host_port(s: &str) -> (&str, Option<&str>) {
    if let Some((host, tail)) = s.strip_prefix('[').and_then(|rest| rest.split_once(']')) {
        return (host, tail.strip_prefix(':'));
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            (host, Some(port))
        }
        _ => (s, None),
    }
}

fn resolve_max_body(configured: Option<usize>) -> Result<usize, ConfigError> {
    let max_body_bytes = configured.unwrap_or(64 * 1024);
    if (1024..=10 * 1024 * 1024).contains(&max_body_bytes) {
        Ok(max_body_bytes)
    } else {
        Err(value_err(
            "limits.max_body_bytes",
            "must be between 1 KiB and 10 MiB",
        ))
    }
}

fn check_public_host(host: &str) -> Result<(), ConfigError> {
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(value_err(
            "public_host",
            "must be a host name with an optional :port",
        ))
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.message().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(
        file: Option<&str>,
        env: &[(&str, &str)],
        o: Overrides,
    ) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let mut o = o;
        if let Some(text) = file {
            let p = dir.path().join("ward.toml");
            std::fs::write(&p, text).unwrap();
            o.config_file = Some(p);
        }
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::resolve(&o, &|k| env.get(k).cloned())
    }

    #[test]
    fn defaults_need_no_configuration() {
        let c = resolve(None, &[], Overrides::default()).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("ward-data"));
        assert_eq!(c.listen.to_string(), "127.0.0.1:8443");
        assert_eq!(c.tls, TlsMode::Auto);
        assert_eq!(c.database_url, "sqlite://ward-data/ward.db");
        assert_eq!(c.public_host, "localhost:8443");
        assert!(matches!(
            c.master_key,
            MasterKeySource::File {
                generate_if_missing: true,
                ..
            }
        ));
    }

    #[test]
    fn env_overrides_file_and_flags_override_env() {
        let file = "[server]\nlisten = \"127.0.0.1:1000\"\n[auth]\nlockout_threshold = 3\n";
        let c = resolve(
            Some(file),
            &[("WARD_LISTEN", "127.0.0.1:2000")],
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.listen.port(), 2000);
        assert_eq!(c.lockout_threshold, 3);
        let o = Overrides {
            listen: Some("127.0.0.1:0".into()),
            plain_http: true,
            ..Overrides::default()
        };
        let c = resolve(Some(file), &[("WARD_LISTEN", "127.0.0.1:2000")], o).unwrap();
        assert_eq!(c.listen.port(), 0);
        assert_eq!(c.tls, TlsMode::Off);
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err =
            resolve(Some("[server]\nlisen = \"x\"\n"), &[], Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
        assert!(resolve(Some("bogus = 1\n"), &[], Overrides::default()).is_err());
    }

    #[test]
    fn secrets_can_come_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("url");
        std::fs::write(&p, "postgres://db/ward\n").unwrap();
        let path = p.to_str().unwrap();
        let c = resolve(
            None,
            &[
                ("WARD_DATABASE_URL_FILE", path),
                ("WARD_MASTER_KEY_FILE", "/k"),
            ],
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.database_url, "postgres://db/ward");
        assert_eq!(
            c.master_key,
            MasterKeySource::File {
                path: "/k".into(),
                generate_if_missing: false
            }
        );
    }

    #[test]
    fn bad_values_are_reported() {
        assert!(resolve(None, &[("WARD_LISTEN", "nope")], Overrides::default()).is_err());
        assert!(
            resolve(
                None,
                &[("WARD_DATABASE_URL", "mysql://x")],
                Overrides::default()
            )
            .is_err()
        );
        assert!(
            resolve(
                Some("[server]\ntls = \"files\"\n"),
                &[],
                Overrides::default()
            )
            .is_err()
        );
        assert!(
            resolve(
                Some("[auth]\nunknown_user = \"allow\"\n"),
                &[],
                Overrides::default()
            )
            .is_err()
        );
    }

    #[test]
    fn host_port_split() {
        assert_eq!(
            split_host_port("localhost:8443"),
            ("localhost", Some("8443"))
        );
        assert_eq!(split_host_port("example.com"), ("example.com", None));
        assert_eq!(split_host_port("[::1]:443"), ("::1", Some("443")));
    }
}
