//! `[smtp]`: the mail server for user notices (and, later, e-mailed one-time codes). Without
//! it, notices go to the log.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use zeroize::Zeroizing;

use super::{ConfigError, value_err};
use crate::mail::{SmtpSecurity, SmtpSettings};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SmtpFile {
    host: Option<String>,
    port: Option<u16>,
    security: Option<SmtpSecurity>,
    username: Option<String>,
    password_file: Option<PathBuf>,
    from: Option<String>,
    timeout_seconds: Option<u64>,
}

pub(super) fn resolve_smtp(
    env: &dyn Fn(&str) -> Option<String>,
    file: SmtpFile,
) -> Result<Option<SmtpSettings>, ConfigError> {
    let Some(host) = env("WARD_SMTP_HOST").or(file.host) else {
        return Ok(None);
    };
    let from = file
        .from
        .ok_or_else(|| value_err("smtp.from", "is required, e.g. \"Ward <ward@example.org>\""))?;
    let from = from
        .parse()
        .map_err(|e| value_err("smtp.from", format!("{from:?} is not a mailbox: {e}")))?;
    let mut settings =
        SmtpSettings::new(host, file.security.unwrap_or(SmtpSecurity::StartTls), from);
    settings.port = file.port;
    settings.username = file.username;
    let password_file = env("WARD_SMTP_PASSWORD_FILE")
        .map(PathBuf::from)
        .or(file.password_file);
    if let Some(path) = password_file {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| value_err("smtp.password_file", format!("{}: {e}", path.display())))?;
        settings.password = Some(Zeroizing::new(
            text.trim_end_matches(['\r', '\n']).to_owned(),
        ));
    }
    if settings.username.is_some() != settings.password.is_some() {
        return Err(value_err("smtp", "username and password_file go together"));
    }
    if let Some(secs) = file.timeout_seconds {
        if !(1..=300).contains(&secs) {
            return Err(value_err(
                "smtp.timeout_seconds",
                "must be between 1 and 300",
            ));
        }
        settings.timeout = Duration::from_secs(secs);
    }
    Ok(Some(settings))
}
