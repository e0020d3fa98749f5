//! `pending`: the requests waiting for an answer, for scripts (`--json`) and people.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use ward_proto::device::PushEvent;

use super::{Device, StreamMsg, Streams, context_matches, local_time, sanitize};
use crate::client::Received;

/// After the first event, stop once the streams have been quiet this long: the server sends
/// every pending request at once on connect.
const SETTLE: Duration = Duration::from_millis(300);

/// One line of `pending --json`.
#[derive(Debug, Serialize)]
struct PendingItem<'a> {
    txid: &'a str,
    username: &'a str,
    application: &'a str,
    ip: Option<&'a str>,
    number_required: bool,
    title: &'a str,
    location: Option<&'a str>,
    details: &'a [(String, String)],
    time: i64,
    expires: i64,
    /// The account number (see `list`) the request came to.
    account: usize,
}

/// Collects the pending requests of `devices` for up to `wait`.
pub async fn collect(
    devices: &[Arc<Device>],
    wait: Duration,
) -> anyhow::Result<Vec<(usize, PushEvent)>> {
    let deadline = Instant::now() + wait;
    let mut streams = Streams::spawn(devices, false);
    let mut found: Vec<(usize, PushEvent)> = Vec::new();
    let mut seen = HashSet::new();
    let mut last_event = None;
    loop {
        let until = last_event.map_or(deadline, |at: Instant| deadline.min(at + SETTLE));
        let Ok(msg) = tokio::time::timeout_at(until, streams.rx.recv()).await else {
            break;
        };
        let Some(msg) = msg else {
            break;
        };
        match msg {
            StreamMsg::Event(n, Received::Push(event)) => {
                last_event = Some(Instant::now());
                if !context_matches(&event) {
                    eprintln!(
                        "warning: ignoring request {}: its context hash does not match what it shows",
                        sanitize(&event.txid)
                    );
                } else if seen.insert((n, event.txid.clone())) {
                    found.push((n, *event));
                }
            }
            StreamMsg::Event(n, Received::Unreadable(why)) => {
                eprintln!("warning: account {n}: unreadable request from the server: {why}");
            }
            StreamMsg::Dropped(n, e) => {
                return Err(anyhow::Error::new(e).context(format!("account {n}")));
            }
            StreamMsg::Connected(_) | StreamMsg::Ended(_) => {}
        }
    }
    Ok(found)
}

pub async fn run(devices: &[Arc<Device>], wait: Duration, json: bool) -> anyhow::Result<()> {
    let found = collect(devices, wait).await?;
    if json {
        let items: Vec<PendingItem<'_>> = found
            .iter()
            .map(|(account, e)| PendingItem {
                txid: &e.txid,
                username: &e.username,
                application: &e.application,
                ip: e.ip.as_deref(),
                number_required: e.number_required,
                title: &e.title,
                location: e.location.as_deref(),
                details: &e.details,
                time: e.time,
                expires: e.expires,
                account: *account,
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(());
    }
    if found.is_empty() {
        println!("No pending requests.");
    }
    for (account, e) in &found {
        println!(
            "{}  {} for {} from {}{}  (account {account}, expires {})",
            sanitize(&e.txid),
            sanitize(&e.application),
            sanitize(&e.username),
            e.ip.as_deref()
                .map_or_else(|| "unknown address".to_owned(), sanitize),
            if e.number_required {
                ", number required"
            } else {
                ""
            },
            local_time(e.expires),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_items_have_the_documented_fields() {
        let e = super::super::tests::event("tx1");
        let item = PendingItem {
            txid: &e.txid,
            username: &e.username,
            application: &e.application,
            ip: e.ip.as_deref(),
            number_required: e.number_required,
            title: &e.title,
            location: e.location.as_deref(),
            details: &e.details,
            time: e.time,
            expires: e.expires,
            account: 1,
        };
        let value = serde_json::to_value(vec![item]).unwrap();
        let first = &value[0];
        for field in ["txid", "username", "application", "ip", "number_required"] {
            assert!(first.get(field).is_some(), "{field}");
        }
        assert_eq!(first["ip"], "203.0.113.5");
        assert_eq!(first["number_required"], true);
        assert_eq!(first["details"][0][0], "Device");
    }
}
