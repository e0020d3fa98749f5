//! `[branding]`, `[portal]` and `[factor_policy]`: how the portal looks, how long its
//! sessions last, and which factors each group of users may enrol.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::TimeDelta;
use serde::Deserialize;
use ward_core::policy::{FactorPolicies, FactorPolicy};

use super::{ConfigError, value_err};

/// Largest logo accepted (it is served on every page).
const MAX_LOGO_BYTES: u64 = 256 * 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BrandingFile {
    organisation: Option<String>,
    logo_file: Option<PathBuf>,
    accent_colour: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PortalFile {
    session_hours: Option<u32>,
    idle_minutes: Option<u32>,
    step_up_minutes: Option<u32>,
}

/// One group's factor rules; unset keys take the default group's value.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FactorPolicyFile {
    synced_passkeys: Option<bool>,
    attestation_ca_files: Option<Vec<PathBuf>>,
    aaguids: Option<Vec<String>>,
    totp_signin: Option<bool>,
    require_phishing_resistant: Option<bool>,
}

/// `[factor_policy]`: the default group's rules, and `[factor_policy.groups.NAME]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FactorPolicySection {
    synced_passkeys: Option<bool>,
    attestation_ca_files: Option<Vec<PathBuf>>,
    aaguids: Option<Vec<String>>,
    totp_signin: Option<bool>,
    require_phishing_resistant: Option<bool>,
    #[serde(default)]
    groups: BTreeMap<String, FactorPolicyFile>,
}

/// The organisation's look, on every page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Branding {
    pub organisation: String,
    /// The logo's bytes and content type.
    pub logo: Option<(Vec<u8>, &'static str)>,
    /// `#rrggbb`.
    pub accent_colour: String,
}

/// Session lifetimes of the portal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortalTimes {
    pub session_ttl: TimeDelta,
    pub idle_ttl: TimeDelta,
    pub step_up_ttl: TimeDelta,
}

pub(super) fn resolve_branding(
    env: &dyn Fn(&str) -> Option<String>,
    file: BrandingFile,
) -> Result<Branding, ConfigError> {
    let organisation = env("WARD_ORGANISATION")
        .or(file.organisation)
        .unwrap_or_else(|| "Ward".into());
    if organisation.trim().is_empty()
        || organisation.chars().count() > 80
        || organisation.chars().any(char::is_control)
    {
        return Err(value_err(
            "branding.organisation",
            "must be 1 to 80 printable characters",
        ));
    }
    let accent_colour = file.accent_colour.unwrap_or_else(|| "#2b59c3".into());
    let hex = accent_colour.strip_prefix('#').unwrap_or("");
    if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(value_err(
            "branding.accent_colour",
            "must be a colour like #2b59c3",
        ));
    }
    let logo = file.logo_file.as_deref().map(read_logo).transpose()?;
    Ok(Branding {
        organisation,
        logo,
        accent_colour: accent_colour.to_ascii_lowercase(),
    })
}

fn read_logo(path: &Path) -> Result<(Vec<u8>, &'static str), ConfigError> {
    let content_type = match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        _ => {
            return Err(value_err(
                "branding.logo_file",
                "must be an .svg, .png, .jpg or .webp file",
            ));
        }
    };
    let size = std::fs::metadata(path)
        .map_err(|e| value_err("branding.logo_file", format!("{}: {e}", path.display())))?
        .len();
    if size > MAX_LOGO_BYTES {
        return Err(value_err("branding.logo_file", "must be at most 256 KiB"));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| value_err("branding.logo_file", format!("{}: {e}", path.display())))?;
    Ok((bytes, content_type))
}

pub(super) fn resolve_times(file: &PortalFile) -> Result<PortalTimes, ConfigError> {
    let session_hours = file.session_hours.unwrap_or(12);
    let idle_minutes = file.idle_minutes.unwrap_or(30);
    let step_up_minutes = file.step_up_minutes.unwrap_or(5);
    if !(1..=168).contains(&session_hours) {
        return Err(value_err(
            "portal.session_hours",
            "must be between 1 and 168",
        ));
    }
    if !(1..=1440).contains(&idle_minutes) {
        return Err(value_err(
            "portal.idle_minutes",
            "must be between 1 and 1440",
        ));
    }
    if !(1..=60).contains(&step_up_minutes) {
        return Err(value_err(
            "portal.step_up_minutes",
            "must be between 1 and 60",
        ));
    }
    Ok(PortalTimes {
        session_ttl: TimeDelta::hours(i64::from(session_hours)),
        idle_ttl: TimeDelta::minutes(i64::from(idle_minutes)),
        step_up_ttl: TimeDelta::minutes(i64::from(step_up_minutes)),
    })
}

pub(super) fn resolve_factor_policies(
    section: FactorPolicySection,
) -> Result<FactorPolicies, ConfigError> {
    let default_file = FactorPolicyFile {
        synced_passkeys: section.synced_passkeys,
        attestation_ca_files: section.attestation_ca_files,
        aaguids: section.aaguids,
        totp_signin: section.totp_signin,
        require_phishing_resistant: section.require_phishing_resistant,
    };
    let default = apply(&FactorPolicy::default(), &default_file)?;
    let mut groups = BTreeMap::new();
    for (name, file) in section.groups {
        if name.is_empty()
            || name.len() > 60
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(value_err(
                "factor_policy.groups",
                format!("{name:?} is not a valid group name (letters, digits, - _ .)"),
            ));
        }
        let policy = apply(&default, &file)?;
        groups.insert(name, policy);
    }
    Ok(FactorPolicies { default, groups })
}

fn apply(base: &FactorPolicy, file: &FactorPolicyFile) -> Result<FactorPolicy, ConfigError> {
    let attestation_ca_pems = match &file.attestation_ca_files {
        None => base.attestation_ca_pems.clone(),
        Some(paths) => paths
            .iter()
            .map(|p| {
                std::fs::read_to_string(p).map_err(|e| {
                    value_err(
                        "factor_policy.attestation_ca_files",
                        format!("{}: {e}", p.display()),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let aaguids = match &file.aaguids {
        None => base.aaguids.clone(),
        Some(list) => list
            .iter()
            .map(|a| {
                a.parse().map_err(|_| {
                    value_err(
                        "factor_policy.aaguids",
                        format!("{a:?} is not an AAGUID (a UUID)"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let policy = FactorPolicy {
        synced_passkeys: file.synced_passkeys.unwrap_or(base.synced_passkeys),
        attestation_ca_pems,
        aaguids,
        totp_signin: file.totp_signin.unwrap_or(base.totp_signin),
        require_phishing_resistant: file
            .require_phishing_resistant
            .unwrap_or(base.require_phishing_resistant),
    };
    if !policy.synced_passkeys
        && (policy.attestation_ca_pems.is_empty() || policy.aaguids.is_empty())
    {
        return Err(value_err(
            "factor_policy",
            "synced_passkeys = false needs attestation_ca_files and aaguids (the security-key \
             models to accept)",
        ));
    }
    Ok(policy)
}
