//! The per-user state file: accounts (device keys) and TOTP seeds, as JSON.
//!
//! # Security
//! The file holds private keys and TOTP secrets. It is created with mode 0600 in a directory
//! created with mode 0700, replaced atomically (temporary file, fsync, rename), and refused when
//! group or others may read it. Secrets are [`Secret`]s: wiped on drop, redacted in `Debug`.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use ward_proto::device::KeyAlgorithm;
use zeroize::Zeroizing;

use crate::client::ServerUrl;
use crate::keys::DeviceKey;
use crate::tls::{SpkiPin, Trust};

/// The format version written; newer files are refused rather than half-understood.
const VERSION: u32 = 1;

/// A secret string: wiped on drop, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: Zeroizing<String>) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|s| Self(Zeroizing::new(s)))
    }
}

/// Everything the authenticator keeps.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    #[serde(default = "current_version")]
    pub version: u32,
    #[serde(default)]
    pub accounts: Vec<Account>,
    #[serde(default)]
    pub totp: Vec<TotpSeed>,
}

fn current_version() -> u32 {
    VERSION
}

/// An activated device: one key pair bound to one user on one server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    /// `https://host[:port]`.
    pub server: String,
    pub username: String,
    pub device_id: String,
    /// The name the device was activated under.
    pub name: String,
    pub algorithm: KeyAlgorithm,
    /// base64url of the 32 secret key bytes.
    pub private_key: Secret,
    /// The certificate pin from the activation link, kept for the device's lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    /// The CA bundle given with `--ca` at activation (absolute path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// When it was activated (unix seconds).
    #[serde(default)]
    pub activated: i64,
}

impl Account {
    pub fn server_url(&self) -> anyhow::Result<ServerUrl> {
        ServerUrl::parse(&self.server)
    }

    pub fn key(&self) -> anyhow::Result<DeviceKey> {
        DeviceKey::from_secret_b64(self.algorithm, self.private_key.expose())
            .with_context(|| format!("account {}", self.device_id))
    }

    pub fn trust(&self) -> anyhow::Result<Trust> {
        let pin = self.pin.as_deref().map(SpkiPin::parse).transpose()?;
        Ok(Trust::choose(pin, self.ca_file.as_deref()))
    }

    /// How the server's certificate is checked, for `list`.
    pub fn trust_label(&self) -> String {
        match (&self.pin, &self.ca_file) {
            (Some(pin), _) => format!("pin {pin}"),
            (None, Some(path)) => format!("CA {}", path.display()),
            (None, None) => "system roots".to_owned(),
        }
    }
}

/// A TOTP seed imported from an `otpauth://` URI.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TotpSeed {
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Base32 without padding.
    pub secret: Secret,
    /// `sha1`, `sha256` or `sha512`.
    pub algorithm: String,
    pub digits: u32,
    pub period: u64,
}

/// Where the state lives.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    /// `--state FILE` (or its environment variable), else
    /// `$XDG_CONFIG_HOME/ward-authenticator/state.json`, else `~/.config/...`.
    pub fn locate(explicit: Option<PathBuf>) -> anyhow::Result<Self> {
        if let Some(path) = explicit {
            return Ok(Self { path });
        }
        let absolute = |var: &str| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
        };
        let config = absolute("XDG_CONFIG_HOME")
            .or_else(|| absolute("HOME").map(|home| home.join(".config")))
            .ok_or_else(|| anyhow!("cannot find a home directory; choose a file with --state"))?;
        Ok(Self {
            path: config.join("ward-authenticator").join("state.json"),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the state; a missing file is an empty state.
    pub fn load(&self) -> anyhow::Result<State> {
        let shown = self.path.display();
        let mut file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(State::default()),
            Err(e) => return Err(e).with_context(|| format!("cannot open {shown}")),
        };
        let meta = file
            .metadata()
            .with_context(|| format!("cannot inspect {shown}"))?;
        if !meta.is_file() {
            bail!("{shown} is not a regular file");
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "{shown} holds private keys but is readable by others (mode {mode:o}); run: chmod 600 {shown}"
            );
        }
        let mut bytes = Zeroizing::new(Vec::new());
        file.read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {shown}"))?;
        let state: State =
            serde_json::from_slice(&bytes).with_context(|| format!("{shown} is not valid"))?;
        if state.version > VERSION {
            bail!(
                "{shown} was written by a newer ward-authenticator (format {})",
                state.version
            );
        }
        Ok(state)
    }

    /// Replaces the file atomically with `state`.
    pub fn save(&self, state: &State) -> anyhow::Result<()> {
        let shown = self.path.display();
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let json =
            Zeroizing::new(serde_json::to_vec_pretty(state).context("cannot encode the state")?);
        let file_name = self
            .path
            .file_name()
            .ok_or_else(|| anyhow!("{shown} is not a file path"))?
            .to_string_lossy();
        let temp = dir.join(format!(
            ".{file_name}.{}.{:016x}.tmp",
            std::process::id(),
            rand::random::<u64>()
        ));
        let written = write_new(&temp, &json).and_then(|()| {
            fs::rename(&temp, &self.path).with_context(|| format!("cannot replace {shown}"))
        });
        if written.is_err() {
            drop(fs::remove_file(&temp));
        }
        written?;
        // Makes the rename itself durable; not every filesystem supports it, hence no error.
        if let Ok(dir) = File::open(&dir) {
            drop(dir.sync_all());
        }
        Ok(())
    }
}

fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let shown = path.display();
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {shown}"))?;
    file.write_all(bytes)
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {shown}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        let key = DeviceKey::generate(KeyAlgorithm::Ed25519);
        State {
            version: VERSION,
            accounts: vec![Account {
                server: "https://ward.example:8443".into(),
                username: "alice".into(),
                device_id: "DD123".into(),
                name: "alice@laptop".into(),
                algorithm: KeyAlgorithm::Ed25519,
                private_key: Secret::new(key.secret_b64()),
                pin: Some("sha256:47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU".into()),
                ca_file: None,
                activated: 1_700_000_000,
            }],
            totp: vec![TotpSeed {
                label: "Example:alice".into(),
                issuer: Some("Example".into()),
                secret: Secret::new(Zeroizing::new("JBSWY3DPEHPK3PXP".into())),
                algorithm: "sha1".into(),
                digits: 6,
                period: 30,
            }],
        }
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn round_trip_with_private_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::locate(Some(dir.path().join("nested/dir/state.json"))).unwrap();
        assert!(file.load().unwrap().accounts.is_empty(), "missing = empty");

        let state = sample();
        file.save(&state).unwrap();
        assert_eq!(mode(file.path()), 0o600);
        assert_eq!(mode(&dir.path().join("nested/dir")), 0o700);

        let loaded = file.load().unwrap();
        let (a, b) = (&loaded.accounts[0], &state.accounts[0]);
        assert_eq!(a.device_id, b.device_id);
        assert_eq!(a.private_key, b.private_key);
        assert_eq!(a.pin, b.pin);
        assert_eq!(
            a.key().unwrap().public_key_b64(),
            b.key().unwrap().public_key_b64()
        );
        assert_eq!(loaded.totp[0].secret, state.totp[0].secret);

        // Saving again replaces the file and leaves no temporary files behind.
        file.save(&loaded).unwrap();
        let names: Vec<_> = fs::read_dir(dir.path().join("nested/dir"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
        assert_eq!(mode(file.path()), 0o600);
    }

    #[test]
    fn readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::locate(Some(dir.path().join("state.json"))).unwrap();
        file.save(&sample()).unwrap();
        for loose in [0o640, 0o604, 0o644] {
            fs::set_permissions(file.path(), fs::Permissions::from_mode(loose)).unwrap();
            let err = file.load().unwrap_err().to_string();
            assert!(err.contains("chmod 600"), "{err}");
        }
        fs::set_permissions(file.path(), fs::Permissions::from_mode(0o400)).unwrap();
        assert!(file.load().is_ok());
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let state = sample();
        let shown = format!("{state:?}");
        assert!(!shown.contains(state.accounts[0].private_key.expose()));
        assert!(!shown.contains("JBSWY3DPEHPK3PXP"));
        assert!(shown.contains("DD123"));
    }

    #[test]
    fn newer_formats_and_garbage_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::locate(Some(dir.path().join("state.json"))).unwrap();
        write_new(file.path(), br#"{"version": 99}"#).unwrap();
        assert!(file.load().unwrap_err().to_string().contains("newer"));
        fs::remove_file(file.path()).unwrap();
        write_new(file.path(), b"not json").unwrap();
        assert!(file.load().is_err());
    }

    #[test]
    fn default_location_follows_xdg() {
        let explicit = StateFile::locate(Some("/x/y.json".into())).unwrap();
        assert_eq!(explicit.path(), Path::new("/x/y.json"));
        // The environment-based default is only checked for its shape: tests share the process
        // environment, so it is not modified here.
        if let Ok(file) = StateFile::locate(None) {
            assert!(file.path().ends_with("ward-authenticator/state.json"));
        }
    }
}
