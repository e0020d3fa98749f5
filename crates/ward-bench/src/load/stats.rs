//! Outcomes of requests and their tallies.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use hyper::StatusCode;
use serde_json::Value;

use super::pool::Job;

/// Longest latency the histogram tells apart; longer ones count as this (requests time out
/// well before).
const MAX_LATENCY_US: u64 = 600_000_000;
/// Distinct labels kept per tally; further ones count under "other".
const MAX_LABELS: usize = 32;

/// Why a request got no HTTP response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Connect,
    Send,
    Body,
    Timeout,
}

impl Transport {
    fn label(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Send => "send",
            Self::Body => "body",
            Self::Timeout => "timeout",
        }
    }
}

/// What one request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A valid code allowed.
    Allow,
    /// A wrong code denied; the Duo `status` (`deny`, `locked_out`, …).
    Deny(String),
    /// A wrong code allowed: the server is broken.
    UnexpectedAllow,
    /// A valid code denied; the Duo `status`.
    UnexpectedDeny(String),
    /// Any other HTTP response: status and, when the body is a Duo error, its code.
    Http(String),
    /// No response.
    Transport(Transport),
}

/// Reads a response to `job`.
pub fn classify(job: Job, status: StatusCode, body: &[u8]) -> Outcome {
    let doc: Option<Value> = serde_json::from_slice(body).ok();
    let doc = doc.as_ref();
    if status != StatusCode::OK {
        let code = doc.and_then(|d| d.get("code")).and_then(Value::as_u64);
        return Outcome::Http(match code {
            Some(code) => format!("{} ({code})", status.as_u16()),
            None => status.as_u16().to_string(),
        });
    }
    let response = doc
        .filter(|d| d.get("stat").and_then(Value::as_str) == Some("OK"))
        .and_then(|d| d.get("response"));
    let result = response
        .and_then(|r| r.get("result"))
        .and_then(Value::as_str);
    let duo_status = || {
        response
            .and_then(|r| r.get("status"))
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned()
    };
    match (result, job) {
        (Some("allow"), Job::Valid(_)) => Outcome::Allow,
        (Some("allow"), Job::Wrong(_)) => Outcome::UnexpectedAllow,
        (Some("deny"), Job::Wrong(_)) => Outcome::Deny(duo_status()),
        (Some("deny"), Job::Valid(_)) => Outcome::UnexpectedDeny(duo_status()),
        _ => Outcome::Http("200 (not an allow/deny answer)".to_owned()),
    }
}

/// Tallies of one phase (warm-up or measured) of one or all workers.
#[derive(Debug, Clone)]
pub struct Stats {
    pub sent: u64,
    pub allow: u64,
    pub deny: u64,
    pub unexpected_allow: u64,
    pub unexpected_deny: u64,
    pub http_errors: u64,
    pub transport_errors: u64,
    /// Requests not sent (open loop) or waits for the next step (closed loop) because every
    /// valid user had been used in the current step.
    pub exhausted: u64,
    /// Open loop: requests whose connection was still busy at their scheduled time.
    pub late_sends: u64,
    /// Open loop: requests scheduled before the end that were never sent, because the worker
    /// was still behind schedule when the run ended.
    pub unsent_backlog: u64,
    /// Duo `status` of denials, expected or not.
    pub deny_statuses: BTreeMap<String, u64>,
    pub http_statuses: BTreeMap<String, u64>,
    pub transport_kinds: BTreeMap<String, u64>,
    /// Latency of every HTTP response, in microseconds.
    pub latency_us: Histogram<u64>,
}

impl Stats {
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            sent: 0,
            allow: 0,
            deny: 0,
            unexpected_allow: 0,
            unexpected_deny: 0,
            http_errors: 0,
            transport_errors: 0,
            exhausted: 0,
            late_sends: 0,
            unsent_backlog: 0,
            deny_statuses: BTreeMap::new(),
            http_statuses: BTreeMap::new(),
            transport_kinds: BTreeMap::new(),
            latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)?,
        })
    }

    /// Counts one request and its outcome; `latency` is recorded for HTTP responses only.
    pub fn record(&mut self, outcome: Outcome, latency: Duration) {
        self.sent += 1;
        if !matches!(outcome, Outcome::Transport(_)) {
            let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
            self.latency_us.saturating_record(us.max(1));
        }
        match outcome {
            Outcome::Allow => self.allow += 1,
            Outcome::Deny(status) => {
                self.deny += 1;
                bump(&mut self.deny_statuses, status);
            }
            Outcome::UnexpectedAllow => self.unexpected_allow += 1,
            Outcome::UnexpectedDeny(status) => {
                self.unexpected_deny += 1;
                bump(&mut self.deny_statuses, status);
            }
            Outcome::Http(label) => {
                self.http_errors += 1;
                bump(&mut self.http_statuses, label);
            }
            Outcome::Transport(kind) => {
                self.transport_errors += 1;
                bump(&mut self.transport_kinds, kind.label().to_owned());
            }
        }
    }

    /// Adds another worker's tallies.
    pub fn merge(&mut self, other: &Self) -> anyhow::Result<()> {
        self.sent += other.sent;
        self.allow += other.allow;
        self.deny += other.deny;
        self.unexpected_allow += other.unexpected_allow;
        self.unexpected_deny += other.unexpected_deny;
        self.http_errors += other.http_errors;
        self.transport_errors += other.transport_errors;
        self.exhausted += other.exhausted;
        self.late_sends += other.late_sends;
        self.unsent_backlog += other.unsent_backlog;
        for (map, from) in [
            (&mut self.deny_statuses, &other.deny_statuses),
            (&mut self.http_statuses, &other.http_statuses),
            (&mut self.transport_kinds, &other.transport_kinds),
        ] {
            for (label, n) in from {
                *map.entry(label.clone()).or_default() += n;
            }
        }
        self.latency_us.add(&other.latency_us)?;
        Ok(())
    }

    /// Responses the server got wrong: a valid code denied or a wrong code allowed.
    pub fn unexpected(&self) -> u64 {
        self.unexpected_allow + self.unexpected_deny
    }

    /// Requests that failed outright.
    pub fn errors(&self) -> u64 {
        self.http_errors + self.transport_errors
    }
}

fn bump(map: &mut BTreeMap<String, u64>, label: String) {
    let key = if map.len() >= MAX_LABELS && !map.contains_key(&label) {
        "other".to_owned()
    } else {
        label
    };
    *map.entry(key).or_default() += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOW: &[u8] = br#"{"stat":"OK","response":{"result":"allow","status":"allow"}}"#;
    const DENY: &[u8] = br#"{"stat":"OK","response":{"result":"deny","status":"deny"}}"#;

    #[test]
    fn outcomes_depend_on_what_was_sent() {
        assert_eq!(
            classify(Job::Valid(1), StatusCode::OK, ALLOW),
            Outcome::Allow
        );
        assert_eq!(
            classify(Job::Wrong(1), StatusCode::OK, ALLOW),
            Outcome::UnexpectedAllow
        );
        assert_eq!(
            classify(Job::Wrong(1), StatusCode::OK, DENY),
            Outcome::Deny("deny".into())
        );
        assert_eq!(
            classify(Job::Valid(1), StatusCode::OK, DENY),
            Outcome::UnexpectedDeny("deny".into())
        );
    }

    #[test]
    fn errors_keep_status_and_duo_code() {
        let body = br#"{"stat":"FAIL","code":42901,"message":"Too Many Requests"}"#;
        assert_eq!(
            classify(Job::Valid(1), StatusCode::TOO_MANY_REQUESTS, body),
            Outcome::Http("429 (42901)".into())
        );
        assert_eq!(
            classify(Job::Valid(1), StatusCode::BAD_GATEWAY, b"<html>"),
            Outcome::Http("502".into())
        );
        assert!(matches!(
            classify(Job::Valid(1), StatusCode::OK, b"{}"),
            Outcome::Http(_)
        ));
    }

    #[test]
    fn tallies_merge() {
        let mut a = Stats::new().unwrap();
        a.record(Outcome::Allow, Duration::from_millis(2));
        a.record(
            Outcome::Transport(Transport::Timeout),
            Duration::from_secs(10),
        );
        let mut b = Stats::new().unwrap();
        b.record(
            Outcome::UnexpectedDeny("deny".into()),
            Duration::from_millis(4),
        );
        a.merge(&b).unwrap();
        assert_eq!((a.sent, a.allow, a.unexpected(), a.errors()), (3, 1, 1, 1));
        assert_eq!(a.latency_us.len(), 2, "transport errors have no latency");
        assert_eq!(a.deny_statuses.get("deny"), Some(&1));
        assert_eq!(a.transport_kinds.get("timeout"), Some(&1));
    }
}
