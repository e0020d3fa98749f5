//! `[limits]`: request rates, the failure budget per address, and connection limits.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, value_err};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LimitsFile {
    pub(super) ip_requests_per_second: Option<u32>,
    pub(super) ip_failures_per_minute: Option<u32>,
    pub(super) integration_requests_per_second: Option<u32>,
    pub(super) max_body_bytes: Option<usize>,
    pub(super) max_connections: Option<usize>,
    pub(super) max_connections_per_address: Option<usize>,
    pub(super) header_read_timeout_seconds: Option<u64>,
    pub(super) idle_timeout_seconds: Option<u64>,
    pub(super) tls_handshake_timeout_seconds: Option<u64>,
}

/// `[limits]` on connections (see [`crate::connections`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// Open connections in total; `None`: derived from the open-file limit at start.
    pub max_connections: Option<usize>,
    /// Open connections per client address (not applied with `trust_forwarded_for`); `None`:
    /// a quarter of `max_connections`, at most 4096.
    pub max_per_address: Option<usize>,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub tls_handshake_timeout: Duration,
}

pub(super) fn resolve_connections(limits: &LimitsFile) -> Result<ConnectionSettings, ConfigError> {
    let seconds =
        |key: &'static str, value: Option<u64>, default: u64| match value.unwrap_or(default) {
            n @ 1..=3600 => Ok(Duration::from_secs(n)),
            _ => Err(value_err(key, "must be between 1 and 3600 seconds")),
        };
    if limits.max_connections == Some(0) {
        return Err(value_err("limits.max_connections", "must be at least 1"));
    }
    Ok(ConnectionSettings {
        max_connections: limits.max_connections,
        max_per_address: match limits.max_connections_per_address {
            Some(0) => {
                return Err(value_err(
                    "limits.max_connections_per_address",
                    "must be at least 1",
                ));
            }
            n => n,
        },
        header_read_timeout: seconds(
            "limits.header_read_timeout_seconds",
            limits.header_read_timeout_seconds,
            10,
        )?,
        idle_timeout: seconds(
            "limits.idle_timeout_seconds",
            limits.idle_timeout_seconds,
            60,
        )?,
        tls_handshake_timeout: seconds(
            "limits.tls_handshake_timeout_seconds",
            limits.tls_handshake_timeout_seconds,
            10,
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_exhaustion_limits_have_defaults_and_bounds() {
        let defaults = resolve_connections(&LimitsFile::default()).unwrap();
        assert_eq!(defaults.max_connections, None);
        assert_eq!(defaults.max_per_address, None);
        assert_eq!(defaults.header_read_timeout, Duration::from_secs(10));
        assert_eq!(defaults.idle_timeout, Duration::from_mins(1));
        assert_eq!(defaults.tls_handshake_timeout, Duration::from_secs(10));
        for bad in [
            LimitsFile {
                max_connections: Some(0),
                ..LimitsFile::default()
            },
            LimitsFile {
                max_connections_per_address: Some(0),
                ..LimitsFile::default()
            },
            LimitsFile {
                header_read_timeout_seconds: Some(0),
                ..LimitsFile::default()
            },
            LimitsFile {
                idle_timeout_seconds: Some(86_400),
                ..LimitsFile::default()
            },
        ] {
            assert!(resolve_connections(&bad).is_err(), "{bad:?}");
        }
    }
}
