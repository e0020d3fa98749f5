//! `activate URL`: generates a key pair and binds its public half to the user named by the
//! activation link's one-time code.

use std::path::PathBuf;

use anyhow::Context;
use ward_proto::device::{ActivateRequest, ActivateResponse, KeyAlgorithm};

use crate::client::{ACTIVATE_PATH, ActivationLink, Client};
use crate::keys::DeviceKey;
use crate::state::{Account, Secret, StateFile};
use crate::tls::Trust;

#[derive(Debug)]
pub struct Options {
    pub url: String,
    pub name: Option<String>,
    pub ca: Option<PathBuf>,
    pub algorithm: KeyAlgorithm,
}

pub async fn run(file: &StateFile, options: Options) -> anyhow::Result<()> {
    let link = ActivationLink::parse(&options.url)?;
    let ca_file = options
        .ca
        .map(|path| {
            std::fs::canonicalize(&path)
                .with_context(|| format!("cannot find CA file {}", path.display()))
        })
        .transpose()?;
    // Read the state first: an unreadable file should stop us before the code is spent.
    let mut state = file.load()?;
    let client = Client::new(
        link.server.clone(),
        &Trust::choose(link.pin, ca_file.as_deref()),
    )?;
    let key = DeviceKey::generate(options.algorithm);
    let request = ActivateRequest {
        code: link.code.clone(),
        algorithm: options.algorithm,
        public_key: key.public_key_b64(),
        name: options.name.unwrap_or_else(default_name),
        platform: std::env::consts::OS.to_owned(),
    };
    let response: ActivateResponse = client
        .post_json(ACTIVATE_PATH, &request)
        .await
        .context("activation failed")?;
    state.accounts.push(Account {
        server: link.server.base(),
        username: response.username.clone(),
        device_id: response.device_id.clone(),
        name: request.name,
        algorithm: options.algorithm,
        private_key: Secret::new(key.secret_b64()),
        pin: link.pin.map(|pin| pin.to_string()),
        ca_file,
        activated: crate::unix_now(),
    });
    file.save(&state).with_context(|| {
        format!(
            "device {} was activated but could not be saved; revoke it on the server",
            response.device_id
        )
    })?;
    println!(
        "Activated device {} for {} on {} (account {}).",
        super::sanitize(&response.device_id),
        super::sanitize(&response.username),
        link.server,
        state.accounts.len()
    );
    Ok(())
}

/// "<login>@<hostname>": what a user recognises in their device list.
fn default_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "ward-authenticator".to_owned());
    match std::env::var("USER").or_else(|_| std::env::var("LOGNAME")) {
        Ok(user) if !user.is_empty() => format!("{user}@{host}"),
        _ => host,
    }
}
