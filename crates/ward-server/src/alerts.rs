//! The operator's alert hook: a command run with each alert as one line of JSON on its standard
//! input (send it to e-mail, chat or a SIEM from there).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;
use ward_core::notify::{Alert, AlertSink};

/// How long the hook may run before it is killed.
const HOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `[alerts] command` for each alert, in the background.
#[derive(Debug, Clone)]
pub struct CommandAlerts {
    program: PathBuf,
    args: Vec<String>,
}

impl CommandAlerts {
    /// A hook from `[alerts] command` (the program, then its arguments).
    pub fn new(command: &[String]) -> Option<Self> {
        let (program, args) = command.split_first()?;
        Some(Self {
            program: PathBuf::from(program),
            args: args.to_vec(),
        })
    }

    async fn run(self, line: String) {
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
        match serde_json::to_string(alert) {
            Ok(line) => {
                tokio::spawn(self.clone().run(line));
            }
            Err(e) => tracing::error!(error = %e, "alert could not be encoded"),
        }
    }
}
