//! `watch`: the interactive authenticator. Shows each request with its full context, asks for
//! the number when the login screen shows one, then for a decision. Nothing is answered without
//! the user typing it, and input typed before a request appeared is discarded.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use tokio::io::{AsyncBufReadExt, BufReader, Lines, Stdin};
use tokio::time::Instant;
use ward_proto::device::{Decision, PushEvent};

use super::{
    Device, StreamMsg, Streams, check_number, context_matches, expected_result, local_time,
    sanitize,
};
use crate::client::Received;

/// The longest a prompt waits, whatever expiry the server announced.
const MAX_PROMPT_SECS: u64 = 24 * 60 * 60;

pub async fn run(devices: &[Arc<Device>]) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "watch is interactive and needs a terminal; scripts use `pending --json` and `answer`"
        );
    }
    let mut streams = Streams::spawn(devices, true);
    let mut input = Input::new();
    let mut done: HashSet<(usize, String)> = HashSet::new();
    let mut connected_once = HashSet::new();
    println!(
        "Watching {} account(s) for login requests. Ctrl-C to stop.",
        devices.len()
    );
    while let Some(msg) = streams.rx.recv().await {
        match msg {
            StreamMsg::Connected(n) => {
                let again = !connected_once.insert(n);
                println!(
                    "{} {}.",
                    if again { "Reconnected:" } else { "Connected:" },
                    label(devices, n)
                );
            }
            StreamMsg::Dropped(n, e) if e.is_permanent() => {
                eprintln!("{}: {e}; no longer watching it.", label(devices, n));
            }
            StreamMsg::Dropped(n, e) => {
                eprintln!(
                    "{}: connection lost ({e}); reconnecting.",
                    label(devices, n)
                );
            }
            StreamMsg::Ended(n) => {
                eprintln!(
                    "{}: the server closed the stream; reconnecting.",
                    label(devices, n)
                );
            }
            StreamMsg::Event(n, Received::Unreadable(why)) => {
                eprintln!(
                    "{}: unreadable request from the server: {why}",
                    label(devices, n)
                );
            }
            StreamMsg::Event(n, Received::Push(event)) => {
                let Some(device) = devices.iter().find(|d| d.number == n) else {
                    continue;
                };
                if done.contains(&(n, event.txid.clone())) {
                    continue;
                }
                match handle(device, &event, &mut input).await? {
                    Outcome::Done => {
                        done.insert((n, event.txid.clone()));
                    }
                    Outcome::Skipped => {}
                    Outcome::Quit => return Ok(()),
                }
            }
        }
    }
    bail!("no account left to watch")
}

fn label(devices: &[Arc<Device>], n: usize) -> String {
    devices.iter().find(|d| d.number == n).map_or_else(
        || format!("account {n}"),
        |d| format!("account {n} ({})", d.label()),
    )
}

enum Outcome {
    /// Answered, refused or expired: not to be shown again.
    Done,
    /// Left for later (shown again when the stream resends it).
    Skipped,
    /// Standard input closed.
    Quit,
}

enum Reply {
    Line(String),
    Expired,
    Eof,
}

struct Input {
    lines: Lines<BufReader<Stdin>>,
}

impl Input {
    fn new() -> Self {
        Self {
            lines: BufReader::new(tokio::io::stdin()).lines(),
        }
    }

    /// Throws away lines typed before the current request was shown, so that an early Enter
    /// or a doubled answer can never answer a request the user has not seen.
    async fn discard_typeahead(&mut self) {
        while let Ok(Ok(Some(_))) =
            tokio::time::timeout(Duration::from_millis(50), self.lines.next_line()).await
        {}
    }

    async fn ask(&mut self, prompt: &str, expiry: Instant) -> anyhow::Result<Reply> {
        print!("{prompt}");
        std::io::stdout().flush()?;
        tokio::select! {
            line = self.lines.next_line() => Ok(match line? {
                Some(line) => Reply::Line(line),
                None => Reply::Eof,
            }),
            () = tokio::time::sleep_until(expiry) => {
                println!();
                Ok(Reply::Expired)
            }
        }
    }
}

fn show(device: &Device, event: &PushEvent, now: i64) {
    println!();
    println!("──── {} ────", sanitize(&event.title));
    println!("  Request      {}", sanitize(&event.txid));
    println!("  Application  {}", sanitize(&event.application));
    println!("  User         {}", sanitize(&event.username));
    let from = match (&event.ip, &event.location) {
        (Some(ip), Some(place)) => format!("{} ({})", sanitize(ip), sanitize(place)),
        (Some(ip), None) => sanitize(ip),
        (None, Some(place)) => sanitize(place),
        (None, None) => "unknown".to_owned(),
    };
    println!("  From         {from}");
    for (key, value) in &event.details {
        println!("  {:<12} {}", sanitize(key), sanitize(value));
    }
    println!("  Requested    {}", local_time(event.time));
    println!(
        "  Expires      {} (in {} s)",
        local_time(event.expires),
        event.expires.saturating_sub(now).max(0)
    );
    println!(
        "  Account      {} (device {})",
        device.label(),
        sanitize(&device.account.device_id)
    );
}

async fn handle(device: &Device, event: &PushEvent, input: &mut Input) -> anyhow::Result<Outcome> {
    let now = crate::unix_now();
    show(device, event, now);
    if !context_matches(event) {
        println!("  !! This request does not match its context hash. It will not be answered.");
        return Ok(Outcome::Done);
    }
    if event.expires <= now {
        println!("  This request has expired.");
        return Ok(Outcome::Done);
    }
    // Capped, so that an absurd expiry from the server cannot overflow the timer.
    let left = u64::try_from(event.expires.saturating_sub(now)).unwrap_or(0);
    let expiry = Instant::now() + Duration::from_secs(left.min(MAX_PROMPT_SECS));
    input.discard_typeahead().await;

    let mut number = None;
    if event.number_required {
        loop {
            let prompt = "Type the number shown on the login screen (Enter if there is none): ";
            match input.ask(prompt, expiry).await? {
                Reply::Line(line) if line.trim().is_empty() => break,
                Reply::Line(line) => match check_number(&line) {
                    Ok(n) => {
                        number = Some(n.to_owned());
                        break;
                    }
                    Err(e) => println!("{e}."),
                },
                Reply::Expired => return Ok(expired()),
                Reply::Eof => return Ok(Outcome::Quit),
            }
        }
    }
    let can_approve = !event.number_required || number.is_some();
    let decision = loop {
        let prompt = if can_approve {
            "Approve, deny or report fraud? [a]pprove / [d]eny / [f]raud / [s]kip: "
        } else {
            "Without the number you can deny or report fraud: [d]eny / [f]raud / [s]kip: "
        };
        match input.ask(prompt, expiry).await? {
            Reply::Line(line) => match line.trim().to_ascii_lowercase().as_str() {
                "a" | "approve" if can_approve => break Decision::Approve,
                "d" | "deny" => break Decision::Deny,
                "f" | "fraud" | "report" => break Decision::Fraud,
                "s" | "skip" => return Ok(Outcome::Skipped),
                _ => println!("Please answer with one of the letters shown."),
            },
            Reply::Expired => return Ok(expired()),
            Reply::Eof => return Ok(Outcome::Quit),
        }
    };
    match device
        .answer(event, decision, number.as_deref(), crate::unix_now())
        .await
    {
        Ok(response) if response.result == expected_result(decision) => {
            println!("Sent: {}.", sanitize(&response.result));
        }
        Ok(response) => println!(
            "The server recorded {:?} for this request.",
            sanitize(&response.result)
        ),
        Err(e) if e.is_permanent() => println!("Not accepted: {e}"),
        Err(e) => {
            println!(
                "Could not send the answer ({e}); it will be shown again once the connection is back."
            );
            return Ok(Outcome::Skipped);
        }
    }
    Ok(Outcome::Done)
}

fn expired() -> Outcome {
    println!("This request has expired.");
    Outcome::Done
}
