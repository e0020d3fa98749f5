//! The devices file `provision-devices` writes and `push` and `devices` read: for each benchmark
//! user, its push device's id and Ed25519 private key.
//!
//! # Security
//! The keys in this file approve pushes for their users: they are benchmark-only keys, written
//! with mode 0600, for benchmark servers only.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer as _, SigningKey};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize as _, Zeroizing};

/// What the file says about itself, first thing in it.
const WARNING: &str = "BENCHMARK-ONLY device keys written by ward-bench provision-devices: \
    anyone holding this file can approve pushes for these users. Use only on benchmark servers.";

/// The only algorithm the harness uses (Ward's and `ward-authenticator`'s default).
const ALGORITHM: &str = "ed25519";

/// The file, as stored.
#[derive(Debug, Serialize, Deserialize)]
struct FileJson {
    warning: String,
    server: String,
    devices: Vec<EntryJson>,
}

#[derive(Serialize, Deserialize)]
struct EntryJson {
    username: String,
    device_id: String,
    algorithm: String,
    /// base64url (no padding) of the 32-byte Ed25519 seed; wiped on drop.
    private_key: String,
}

impl Drop for EntryJson {
    fn drop(&mut self) {
        self.private_key.zeroize();
    }
}

impl std::fmt::Debug for EntryJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntryJson")
            .field("username", &self.username)
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

/// An activated benchmark device.
pub struct BenchDevice {
    pub username: String,
    pub device_id: String,
    /// Wiped on drop (ed25519-dalek's `ZeroizeOnDrop`).
    key: SigningKey,
}

impl std::fmt::Debug for BenchDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BenchDevice")
            .field("username", &self.username)
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

/// A fresh Ed25519 key from the operating system's CSPRNG (through `rand`'s thread RNG).
pub fn generate_key() -> SigningKey {
    SigningKey::generate(&mut rand::rng())
}

/// The public key as `ActivateRequest::public_key` carries it: base64url of the 32 raw bytes.
pub fn public_key_b64(key: &SigningKey) -> String {
    URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes())
}

impl BenchDevice {
    pub fn new(username: String, device_id: String, key: SigningKey) -> Self {
        Self {
            username,
            device_id,
            key,
        }
    }

    /// Signs `message` (one of `ward_proto::device`'s signing byte strings) for the wire.
    pub fn sign_b64(&self, message: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(self.key.sign(message).to_bytes())
    }

    fn to_json(&self) -> EntryJson {
        EntryJson {
            username: self.username.clone(),
            device_id: self.device_id.clone(),
            algorithm: ALGORITHM.to_owned(),
            private_key: URL_SAFE_NO_PAD.encode(self.key.to_bytes()),
        }
    }

    fn from_json(mut entry: EntryJson) -> anyhow::Result<Self> {
        if entry.algorithm != ALGORITHM {
            bail!(
                "device {}: algorithm {:?}, the harness only signs with {ALGORITHM}",
                entry.device_id,
                entry.algorithm
            );
        }
        let raw = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(entry.private_key.trim())
                .with_context(|| {
                    format!("device {}: private key not base64url", entry.device_id)
                })?,
        );
        let Ok(seed) = <&[u8; 32]>::try_from(raw.as_slice()) else {
            bail!("device {}: private key not 32 bytes", entry.device_id);
        };
        Ok(Self {
            key: SigningKey::from_bytes(seed),
            username: std::mem::take(&mut entry.username),
            device_id: std::mem::take(&mut entry.device_id),
        })
    }
}

/// Reads a devices file, in its order.
pub fn load(path: &Path) -> anyhow::Result<Vec<BenchDevice>> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file: FileJson = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a ward-bench devices file", path.display()))?;
    let devices = file
        .devices
        .into_iter()
        .map(BenchDevice::from_json)
        .collect::<anyhow::Result<Vec<_>>>()?;
    if devices.is_empty() {
        bail!("{} holds no device", path.display());
    }
    Ok(devices)
}

/// Reads a devices file into a map by username, or an empty map if there is no file yet.
pub fn load_existing(path: &Path) -> anyhow::Result<BTreeMap<String, BenchDevice>> {
    if !path.exists() {
        return Ok(BTreeMap::new());
    }
    Ok(load(path)?
        .into_iter()
        .map(|d| (d.username.clone(), d))
        .collect())
}

/// Writes the file (mode 0600) through a temporary file and a rename, so an interrupted write
/// never leaves half a file where the keys of a complete one were.
pub fn save(path: &Path, server: &str, devices: &[BenchDevice]) -> anyhow::Result<()> {
    let file = FileJson {
        warning: WARNING.to_owned(),
        server: server.to_owned(),
        devices: devices.iter().map(BenchDevice::to_json).collect(),
    };
    let json = Zeroizing::new(serde_json::to_vec_pretty(&file).context("encoding the devices")?);
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = Path::new(&tmp_name);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    out.write_all(&json)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(tmp, path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Verifier as _;
    use std::os::unix::fs::PermissionsExt as _;
    use ward_proto::device::stream_signing_bytes;

    #[test]
    fn devices_round_trip_privately_and_still_sign() {
        let dir = std::env::temp_dir().join(format!("ward-bench-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("devices.json");
        let key = generate_key();
        let public = key.verifying_key();
        let device = BenchDevice::new("pbench-000001".into(), "DPX".into(), key);
        save(&path, "https://localhost:8443", &[device]).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("BENCHMARK-ONLY"));

        let loaded = load(&path).unwrap();
        assert_eq!(loaded.len(), 1);
        let d = &loaded[0];
        assert_eq!(
            (d.username.as_str(), d.device_id.as_str()),
            ("pbench-000001", "DPX")
        );
        let msg = stream_signing_bytes("DPX", "nonce");
        let sig: [u8; 64] = URL_SAFE_NO_PAD
            .decode(d.sign_b64(&msg))
            .unwrap()
            .try_into()
            .unwrap();
        public
            .verify(&msg, &ed25519_dalek::Signature::from_bytes(&sig))
            .unwrap();
        assert!(!format!("{d:?}").contains(&URL_SAFE_NO_PAD.encode(d.key.to_bytes())));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_file_is_empty_and_bad_keys_are_refused() {
        assert!(
            load_existing(Path::new("/nonexistent/ward-bench.json"))
                .unwrap()
                .is_empty()
        );
        let entry = |key: &str, alg: &str| EntryJson {
            username: "u".into(),
            device_id: "d".into(),
            algorithm: alg.into(),
            private_key: key.into(),
        };
        assert!(BenchDevice::from_json(entry("AAAA", ALGORITHM)).is_err());
        let good = URL_SAFE_NO_PAD.encode([7u8; 32]);
        assert!(BenchDevice::from_json(entry(&good, "p256")).is_err());
        assert!(BenchDevice::from_json(entry(&good, ALGORITHM)).is_ok());
    }
}
