//! Start-up shared by `ward serve` and the admin commands: the data directory, the master key,
//! the node id, the store (with migrations) and the core service.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use chrono::TimeDelta;
use ward_core::crypto::{Keyring, MasterKey};
use ward_core::policy::{AuthPolicy, PortalSettings, PushPolicy};
use ward_core::service::Ward;
use ward_store::Store;

use crate::config::{Config, MasterKeySource};

/// A start-up failure, reported as one line.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("{0}")]
    Io(String),
    #[error("master key: {0}")]
    MasterKey(String),
    #[error("database: {0}")]
    Database(String),
    #[error("{}", core_message(.0))]
    Core(ward_core::CoreError),
}

impl From<ward_core::CoreError> for BootError {
    fn from(e: ward_core::CoreError) -> Self {
        Self::Core(e)
    }
}

/// The core's sentence, without the kind that prefixes it for API callers.
fn core_message(e: &ward_core::CoreError) -> String {
    match e {
        ward_core::CoreError::Forbidden(why) => why.clone(),
        other => other.to_string(),
    }
}

fn io(context: &str, path: &Path, e: &std::io::Error) -> BootError {
    BootError::Io(format!("{context} {}: {}", path.display(), reason(e)))
}

/// An I/O error's reason, without the OS error number.
fn reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    text.split(" (os error ").next().unwrap_or(&text).to_owned()
}

/// Creates the data directory (mode 0700) if needed, and checks that Ward can enter it.
pub fn prepare_data_dir(dir: &Path) -> Result<(), BootError> {
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => {
            return Err(BootError::Io(format!(
                "data directory {} is not a directory",
                dir.display()
            )));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)
                .map_err(|e| io("cannot create data directory", dir, &e))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| io("cannot set permissions of", dir, &e))?;
        }
        Err(e) => return Err(io("cannot open data directory", dir, &e)),
    }
    // Listing it needs the same rights as using it; a missing right shows here, not as a
    // master key problem.
    std::fs::read_dir(dir).map_err(|e| io("cannot open data directory", dir, &e))?;
    Ok(())
}

/// Loads the master key, generating it on first start when it lives in the data directory.
///
/// # Security
/// A key file readable by group or others is refused; a generated file is created with mode
/// 0600 and never overwritten.
pub fn load_master_key(source: &MasterKeySource) -> Result<MasterKey, BootError> {
    match source {
        MasterKeySource::Inline(text) => {
            MasterKey::parse(text.as_bytes()).map_err(|e| BootError::MasterKey(e.to_string()))
        }
        MasterKeySource::File {
            path,
            generate_if_missing,
        } => {
            if !path.exists() && *generate_if_missing {
                return generate_key_file(path);
            }
            read_key_file(path)
        }
    }
}

fn generate_key_file(path: &Path) -> Result<MasterKey, BootError> {
    let key = MasterKey::generate();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io("cannot create master key file", path, &e))?;
    f.write_all(key.to_base64().as_bytes())
        .and_then(|()| f.write_all(b"\n"))
        .and_then(|()| f.sync_all())
        .map_err(|e| io("cannot write master key file", path, &e))?;
    tracing::info!(path = %path.display(), key_id = %key.id(), "generated a new master key");
    Ok(key)
}

fn read_key_file(path: &Path) -> Result<MasterKey, BootError> {
    let meta = std::fs::metadata(path).map_err(|e| io("cannot read master key file", path, &e))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(BootError::MasterKey(format!(
            "{} is readable by group or others; run: chmod 600 {}",
            path.display(),
            path.display()
        )));
    }
    let bytes = zeroize::Zeroizing::new(
        std::fs::read(path).map_err(|e| io("cannot read master key file", path, &e))?,
    );
    MasterKey::parse(&bytes).map_err(|e| BootError::MasterKey(format!("{}: {e}", path.display())))
}

/// This node's stable id (its audit chain), kept in the data directory.
pub fn node_id(data_dir: &Path) -> Result<String, BootError> {
    let path = data_dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        _ => {
            let mut b = [0u8; 6];
            rand::fill(&mut b);
            let id = format!("node-{}", hex::encode(b));
            std::fs::write(&path, format!("{id}\n")).map_err(|e| io("cannot write", &path, &e))?;
            Ok(id)
        }
    }
}

/// Opens the store named by the URL and brings its schema up to date.
pub async fn open_store(
    url: &str,
    chain_id: &str,
    max_connections: u32,
) -> Result<Arc<dyn Store>, BootError> {
    let db = |e: ward_store::StoreError| match e {
        // Its message says what is unavailable; "database unavailable:" would say it twice.
        ward_store::StoreError::Unavailable(why) => BootError::Database(why),
        other => BootError::Database(other.to_string()),
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = ward_store_postgres::PostgresStore::open_with(url, chain_id, max_connections)
            .await
            .map_err(db)?;
        store.migrate().await.map_err(db)?;
        Ok(Arc::new(store))
    } else {
        let store = ward_store_sqlite::SqliteStore::open_with(url, chain_id, max_connections)
            .await
            .map_err(db)?;
        store.migrate().await.map_err(db)?;
        Ok(Arc::new(store))
    }
}

fn secs(n: u64) -> TimeDelta {
    TimeDelta::seconds(i64::try_from(n).unwrap_or(i64::MAX / 1000))
}

/// The authentication policy from configuration.
pub fn policy(config: &Config) -> Result<AuthPolicy, BootError> {
    Ok(AuthPolicy {
        unknown_user: config.unknown_user.parse()?,
        lockout_threshold: config.lockout_threshold,
        lockout_duration: TimeDelta::seconds(
            i64::try_from(config.lockout_seconds).unwrap_or(i64::MAX),
        ),
        totp_window: 1,
        enroll_portal_url: config
            .enroll_portal_url
            .clone()
            .unwrap_or_else(|| format!("https://{}/portal", config.public_host)),
        tx_ttl: TimeDelta::seconds(i64::try_from(config.transaction_ttl_seconds).unwrap_or(600)),
        push: PushPolicy {
            timeout: secs(config.push.timeout_seconds),
            mute_after_fraud: secs(config.push.mute_after_fraud_seconds),
            storm_limit: config.push.storm_limit,
            storm_window: secs(config.push.storm_window_seconds),
            number_digits: config.push.number_digits,
            auth_api_mode: config.push.auth_api_mode.parse()?,
            activation_ttl: secs(config.push.activation_ttl_seconds),
        },
    })
}

/// Everything up to a ready core service.
pub async fn open(config: &Config) -> Result<Arc<Ward>, BootError> {
    prepare_data_dir(&config.data_dir)?;
    let master = load_master_key(&config.master_key)?;
    let previous = config
        .previous_master_key_files
        .iter()
        .map(|p| read_key_file(p))
        .collect::<Result<Vec<_>, _>>()?;
    let chain = node_id(&config.data_dir)?;
    let store = open_store(
        &config.database_url,
        &chain,
        config.database_max_connections,
    )
    .await?;
    let mut ward = Ward::new(
        store,
        Keyring::new(master, previous),
        policy(config)?,
        &config.issuer,
    )
    .await?;
    if let Some(hook) = crate::alerts::CommandAlerts::new(&config.alert_command) {
        ward = ward.with_alerts(Arc::new(hook));
    }
    if let Some(smtp) = &config.smtp {
        let mailer = crate::mail::SmtpNotifier::new(smtp.clone())
            .map_err(|e| BootError::Io(format!("smtp: {e}")))?;
        let mailer = Arc::new(mailer);
        ward = ward
            .with_notifier(Arc::clone(&mailer) as Arc<dyn ward_core::notify::UserNotifier>)
            .with_mailer(mailer);
    }
    if config.recovery_test_timers {
        tracing::warn!(
            "[recovery] test_cooling_seconds is set: recovery cooling periods are shortened for \
             testing; never use this in production"
        );
    }
    let ward = ward
        .with_recovery(config.recovery.clone())
        .with_portal(portal_settings(config)?)?;
    Ok(Arc::new(ward))
}

/// The portal's settings: its public origin (the WebAuthn relying party), branding, session
/// lifetimes and factor policies.
pub fn portal_settings(config: &Config) -> Result<PortalSettings, BootError> {
    let origin = url::Url::parse(&format!("https://{}", config.public_host)).map_err(|e| {
        BootError::Io(format!(
            "public_host {:?} does not make a valid https origin: {e}",
            config.public_host
        ))
    })?;
    let mut settings = PortalSettings::new(origin, config.branding.organisation.clone());
    settings.session_ttl = config.portal.session_ttl;
    settings.idle_ttl = config.portal.idle_ttl;
    settings.step_up_ttl = config.portal.step_up_ttl;
    settings.factors = config.factor_policies.clone();
    Ok(settings)
}
