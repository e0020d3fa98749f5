//! `answer TXID approve|deny|fraud [--number N]`: answers one request, for scripts.
//!
//! The device only answers what it has received and checked: it opens its stream, waits for
//! the request, and signs over the context that request showed.
//!
//! Exit status: 0 once the server has recorded the answer, whatever it decided (a wrong
//! number makes an approval `denied`; the result is printed on stdout); non-zero when the
//! answer was refused (expired, already answered, bad signature) or never sent.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use ward_proto::device::{Decision, PushEvent};

use super::{Device, StreamMsg, Streams, check_number, context_matches, expected_result, sanitize};
use crate::client::Received;

pub async fn run(
    devices: &[Arc<Device>],
    txid: &str,
    decision: Decision,
    number: Option<&str>,
    wait: Duration,
) -> anyhow::Result<()> {
    let number = number.map(check_number).transpose()?;
    let (device, event) = wait_for(devices, txid, wait)
        .await?
        .ok_or_else(|| anyhow!("no pending request {}", sanitize(txid)))?;
    if !context_matches(&event) {
        bail!(
            "request {} does not match its context hash; refusing to answer it",
            sanitize(txid)
        );
    }
    if event.number_required && decision == Decision::Approve && number.is_none() {
        bail!(
            "request {} needs the number shown on the login screen: add --number N",
            sanitize(txid)
        );
    }
    let response = device
        .answer(&event, decision, number, crate::unix_now())
        .await
        .with_context(|| format!("answering request {}", sanitize(txid)))?;
    println!("{}", sanitize(&response.result));
    let expected = expected_result(decision);
    if response.result != expected {
        eprintln!(
            "note: the server recorded {:?}, not {expected:?}{}",
            sanitize(&response.result),
            if decision == Decision::Approve && event.number_required {
                " (was the number right?)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

async fn wait_for(
    devices: &[Arc<Device>],
    txid: &str,
    wait: Duration,
) -> anyhow::Result<Option<(Arc<Device>, PushEvent)>> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut streams = Streams::spawn(devices, false);
    while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, streams.rx.recv()).await {
        match msg {
            StreamMsg::Event(n, Received::Push(event)) if event.txid == txid => {
                let device = devices
                    .iter()
                    .find(|d| d.number == n)
                    .cloned()
                    .ok_or_else(|| anyhow!("account {n} vanished"))?;
                return Ok(Some((device, *event)));
            }
            StreamMsg::Dropped(n, e) => {
                return Err(anyhow::Error::new(e).context(format!("account {n}")));
            }
            StreamMsg::Event(..) | StreamMsg::Connected(_) | StreamMsg::Ended(_) => {}
        }
    }
    Ok(None)
}
