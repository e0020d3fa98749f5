//! The operator's alert hook: a command run with each alert as one line of JSON on its standard
//! input (send it to e-mail, chat or a SIEM from there).
//!
//! # Security
//! Some alerts can be raised by anyone (a suspicious-contact report needs no sign-in), so what
//! a flood of them costs is bounded. Alerts of one kind are coalesced: the first of a window
//! runs the hook at once, the others of that window are only counted, and when the window
//! ends the hook runs once more with `{"alert":"coalesced","kind":…,"count":…}`. At most
//! [`MAX_RUNNING`] hook processes run at a time; more wait their turn. Every alert still goes
//! to the server log.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;
use ward_core::notify::{Alert, AlertSink};

/// How long the hook may run before it is killed.
const HOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// Most hook processes running at once, across every kind of alert.
pub const MAX_RUNNING: usize = 4;

/// Alerts of one kind within this time after the first are reported together.
const COALESCE_WINDOW: Duration = Duration::from_mins(1);

/// Runs `[alerts] command` for alerts, in the background.
#[derive(Debug, Clone)]
pub struct CommandAlerts {
    inner: Arc<Hook>,
}

#[derive(Debug)]
struct Hook {
    program: PathBuf,
    args: Vec<String>,
    window: Duration,
    running: Semaphore,
    /// The kinds with an open window, and how many alerts it has held back so far.
    held: Mutex<HashMap<&'static str, u64>>,
}

impl CommandAlerts {
    /// A hook from `[alerts] command` (the program, then its arguments).
    pub fn new(command: &[String]) -> Option<Self> {
        Self::with_window(command, COALESCE_WINDOW)
    }

    /// A hook that coalesces alerts of one kind over `window`.
    pub fn with_window(command: &[String], window: Duration) -> Option<Self> {
        let (program, args) = command.split_first()?;
        Some(Self {
            inner: Arc::new(Hook {
                program: PathBuf::from(program),
                args: args.to_vec(),
                window,
                running: Semaphore::new(MAX_RUNNING),
                held: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Opens a window for `kind` (`true`: this alert runs the hook), or counts the alert in
    /// the open one.
    fn open_window(&self, kind: &'static str) -> bool {
        let mut held = self
            .inner
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = held.get_mut(kind) {
            *count += 1;
            false
        } else {
            held.insert(kind, 0);
            true
        }
    }

    /// Closes `kind`'s window when it ends, reporting what it held back.
    async fn close_window(self, kind: &'static str) {
        tokio::time::sleep(self.inner.window).await;
        let count = self
            .inner
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(kind)
            .unwrap_or_default();
        if count > 0 {
            let line = json!({
                "alert": "coalesced",
                "kind": kind,
                "count": count,
                "window_secs": self.inner.window.as_secs(),
            });
            Arc::clone(&self.inner).run(line.to_string()).await;
        }
    }
}

impl Hook {
    async fn run(self: Arc<Self>, line: String) {
        let Ok(_turn) = self.running.acquire().await else {
            return;
        };
        let child = tokio::process::Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(e) => {
                tracing::error!(program = %self.program.display(), error = %e, "alert hook did not start");
                return;
            }
        };
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(line.as_bytes()).await;
            let _ = stdin.write_all(b"\n").await;
        }
        let program = self.program.display();
        match tokio::time::timeout(HOOK_TIMEOUT, child.wait_with_output()).await {
            Ok(Ok(out)) if out.status.success() => {}
            Ok(Ok(out)) => {
                let stderr: String = String::from_utf8_lossy(&out.stderr)
                    .chars()
                    .take(500)
                    .collect();
                tracing::error!(%program, status = %out.status, %stderr, "alert hook failed");
            }
            Ok(Err(e)) => {
                tracing::error!(%program, error = %e, "alert hook failed");
            }
            Err(_) => {
                tracing::error!(%program, "alert hook timed out and was killed");
            }
        }
    }
}

#[async_trait]
impl AlertSink for CommandAlerts {
    async fn alert(&self, alert: &Alert) {
        let kind = alert.kind();
        if !self.open_window(kind) {
            return;
        }
        match serde_json::to_string(alert) {
            Ok(line) => {
                tokio::spawn(Arc::clone(&self.inner).run(line));
            }
            Err(e) => tracing::error!(error = %e, "alert could not be encoded"),
        }
        tokio::spawn(self.clone().close_window(kind));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(at_ms: i64) -> Alert {
        Alert::SuspiciousContact {
            org_id: "o".into(),
            user_id: None,
            kind: "call".into(),
            at_ms,
        }
    }

    /// A hook that appends what it is given to `file`, framed by `start`/`end` lines.
    fn hook(file: &std::path::Path, pause: &str, window: Duration) -> CommandAlerts {
        let script = format!(
            "echo start >> {f}; cat >> {f}; sleep {pause}; echo end >> {f}",
            f = file.display()
        );
        CommandAlerts::with_window(&["sh".into(), "-c".into(), script], window).unwrap()
    }

    async fn lines(file: &std::path::Path, want: usize) -> Vec<String> {
        for _ in 0..200 {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let lines: Vec<String> = text.lines().map(str::to_owned).collect();
            if lines.iter().filter(|l| *l == "end").count() >= want {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the hook did not run {want} times");
    }

    #[tokio::test]
    async fn anonymous_floods_a_hundred_alerts_of_one_kind_run_the_hook_twice() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hook.log");
        let sink = hook(&file, "0", Duration::from_millis(500));
        let alerts: Vec<Alert> = (0..100).map(contact).collect();
        futures::future::join_all(alerts.iter().map(|a| sink.alert(a))).await;
        let seen = lines(&file, 2).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let seen_later = std::fs::read_to_string(&file).unwrap();
        assert_eq!(seen_later.lines().count(), seen.len(), "{seen_later}");
        let json: Vec<serde_json::Value> = seen
            .iter()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(json.len(), 2, "{seen:?}");
        assert_eq!(json[0]["alert"], "suspicious_contact");
        assert_eq!(json[0]["at_ms"], 0);
        assert_eq!(json[1]["alert"], "coalesced");
        assert_eq!(json[1]["kind"], "suspicious_contact");
        assert_eq!(json[1]["count"], 99);
        // A new window: the next alert runs the hook at once.
        sink.alert(&contact(100)).await;
        assert_eq!(lines(&file, 3).await.len(), 9);
    }

    #[tokio::test]
    async fn anonymous_floods_at_most_four_hook_processes_run_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hook.log");
        let sink = hook(&file, "1", Duration::from_mins(1));
        let alerts = [
            contact(1),
            Alert::RecoveryCircuitBreaker {
                org_id: "o".into(),
                at_ms: 1,
            },
            Alert::RecoveryFrozen {
                org_id: "o".into(),
                user_id: "u".into(),
                reason: "r".into(),
                at_ms: 1,
            },
            Alert::AccountFrozen {
                org_id: "o".into(),
                user_id: "u".into(),
                disowned: "passkey.add".into(),
                at_ms: 1,
            },
            Alert::FraudReported {
                org_id: "o".into(),
                user_id: "u".into(),
                txid: "t".into(),
                device_id: "d".into(),
                integration: "i".into(),
                ip: None,
                at_ms: 1,
            },
            Alert::CredentialCloneSuspected {
                org_id: "o".into(),
                user_id: "u".into(),
                cred_id: "c".into(),
                stored_count: 2,
                presented_count: 1,
                at_ms: 1,
            },
        ];
        for a in &alerts {
            sink.alert(a).await;
        }
        let seen = lines(&file, alerts.len()).await;
        // A process writes `start` once running and `end` before it exits, so the starts
        // not yet ended at any point are at most the processes running then.
        let mut running = 0_i32;
        let mut most = 0;
        for line in &seen {
            match line.as_str() {
                "start" => running += 1,
                "end" => running -= 1,
                _ => {}
            }
            most = most.max(running);
        }
        assert!(
            (2..=MAX_RUNNING as i32).contains(&most),
            "{most} at once: {seen:?}"
        );
    }
}
