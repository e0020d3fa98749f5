//! `ward-bench recovery-memory`: what anonymous Argon2 work costs a node's memory.
//!
//! Against a running `ward serve` (its pid given, for `VmRSS`):
//!
//! 1. provisions one user with a derived TOTP secret (through the core service, as
//!    `provision` does), signs in to the portal with a TOTP code and creates its recovery
//!    codes (ten Argon2id hashes);
//! 2. opens a recovery case for that user as an anonymous visitor would (`POST
//!    /recovery/start`), then submits `--checks` wrong recovery codes on it at once (`POST
//!    /recovery/code`): each one the server admits costs an Argon2id check per unused code;
//! 3. creates the user's recovery codes `--regenerations` times at once in the portal.
//!
//! It reads the server's RSS before anything (idle), after setting up, every 10 ms during
//! each burst (the peak) and `--settle` seconds after each (what the process keeps), and
//! tallies the answers: checked and refused, refused as busy (429), or anything else.

mod web;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio::time::Instant;
use ward_core::clock::{Clock as _, SystemClock};
use ward_server::config::{Config, Overrides};

use crate::load::target::Target;
use crate::procfs::ProcStatus;
use crate::users;

/// A well-formed recovery code (16 Base32 characters) that no account holds.
const WRONG_CODE: &str = "AAAA-BBBB-CCCC-DDDD";
const RECOVERY_COOKIE: &str = "__Host-ward_recovery";
const SESSION_COOKIE: &str = "__Host-ward_session";
/// How often RSS is read during a burst.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// Options of `ward-bench recovery-memory`.
#[derive(Debug, clap::Args)]
pub struct RecoveryMemoryArgs {
    /// The server: `https://localhost:8443` (loopback only).
    #[arg(long)]
    url: String,
    /// CA certificate (PEM) to trust — for `ward serve`, `DATA_DIR/tls/ca.pem`.
    #[arg(long, value_name = "CA.pem")]
    ca: Option<PathBuf>,
    /// The server's process id (`ward serve`), whose RSS is read.
    #[arg(long)]
    pid: u32,
    /// Ward's configuration file (as for `ward --config`), to provision the user.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Ward's data directory (as for `ward --data-dir`).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The user to create (default `rss-<unix seconds>`: a recovery case per user at a time,
    /// and a denied one blocks new starts for a day, so each run takes a new user).
    #[arg(long)]
    user: Option<String>,
    /// Wrong recovery codes submitted at once.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    checks: u32,
    /// Recovery-code regenerations at once (0: skip).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(0..=100))]
    regenerations: u32,
    /// Seconds to wait after each burst before reading what the server kept.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    settle: u64,
    /// Seconds to wait for each answer.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=600))]
    timeout: u64,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// One burst: RSS (KiB) before, at its peak and once settled; its answers.
#[derive(Debug, Default)]
struct Burst {
    before: u64,
    peak: u64,
    settled: u64,
    secs: f64,
    answers: BTreeMap<String, u64>,
}

impl Burst {
    fn json(&self) -> Value {
        json!({
            "rss_before_kib": self.before,
            "rss_peak_kib": self.peak,
            "rss_settled_kib": self.settled,
            "seconds": self.secs,
            "answers": self.answers,
        })
    }
}

/// Runs `recovery-memory`; `Ok(false)` when an answer was neither a checked refusal nor busy.
pub async fn run(args: RecoveryMemoryArgs) -> anyhow::Result<bool> {
    let target = Arc::new(Target::resolve(&args.url, args.ca.as_deref()).await?);
    let server = ProcStatus::new(args.pid);
    let limit = Duration::from_secs(args.timeout);
    let idle = server.rss_kib()?;
    let user = args.user.clone().unwrap_or_else(|| {
        let secs = SystemClock.now().timestamp();
        format!("rss-{secs}")
    });
    eprintln!(
        "ward-bench recovery-memory: server pid {} ({}) idle at {idle} KiB; user {user}",
        args.pid,
        server.name()
    );
    provision(&args, &user).await?;
    let session = sign_in(&target, &user, limit).await?;
    let csrf = csrf(&target, &session, limit).await?;
    let first = regenerate(&target, &session, &csrf, limit).await?;
    if first != "new codes" {
        bail!("creating the first recovery codes answered {first}");
    }
    let set_up = server.rss_kib()?;
    let case = start_case(&target, &user, limit).await?;

    let checks = burst(&server, args.settle, args.checks, {
        let target = Arc::clone(&target);
        move || {
            let (target, case) = (Arc::clone(&target), case.clone());
            async move { submit_wrong_code(&target, &case, limit).await }
        }
    })
    .await?;
    let regenerations = if args.regenerations == 0 {
        None
    } else {
        Some(
            burst(&server, args.settle, args.regenerations, {
                let target = Arc::clone(&target);
                move || {
                    let (target, session, csrf) =
                        (Arc::clone(&target), session.clone(), csrf.clone());
                    async move { regenerate(&target, &session, &csrf, limit).await }
                }
            })
            .await?,
        )
    };
    let expected = ["checked, refused", "busy (429)", "new codes"];
    let ok = [Some(&checks), regenerations.as_ref()]
        .into_iter()
        .flatten()
        .all(|b| b.answers.keys().all(|k| expected.contains(&k.as_str())));
    report(&args, idle, set_up, &checks, regenerations.as_ref(), ok);
    Ok(ok)
}

async fn provision(args: &RecoveryMemoryArgs, user: &str) -> anyhow::Result<()> {
    let overrides = Overrides {
        config_file: args.config.clone(),
        data_dir: args.data_dir.clone(),
        ..Overrides::default()
    };
    let config = Config::load(&overrides).context("loading Ward's configuration")?;
    let ward = ward_server::bootstrap::open(&config)
        .await
        .context("opening Ward's database")?;
    crate::provision::provision_one(&ward, user).await?;
    ward.store().close().await;
    Ok(())
}

/// Signs in to the portal with the user's current TOTP code; the session cookie.
async fn sign_in(target: &Target, user: &str, limit: Duration) -> anyhow::Result<String> {
    let step = users::step_at(SystemClock.now().timestamp());
    let code = users::valid_code(user, step)?;
    let body = web::form(&[("username", user), ("code", code.as_str())]);
    let answer = web::call(target, "/portal/sign-in/totp", None, Some(body), limit).await?;
    answer.cookie(SESSION_COOKIE).with_context(|| {
        format!(
            "TOTP sign-in answered {} without a session (is [factor_policy] totp_signin = true?)",
            answer.status
        )
    })
}

async fn csrf(target: &Target, session: &str, limit: Duration) -> anyhow::Result<String> {
    let page = web::call(target, "/portal", Some(session), None, limit).await?;
    web::csrf_token(&page.body).context("the portal page has no CSRF token")
}

/// `POST /portal/recovery-codes`: `new codes`, `busy (429)` or the status.
async fn regenerate(
    target: &Target,
    session: &str,
    csrf: &str,
    limit: Duration,
) -> anyhow::Result<String> {
    let body = web::form(&[("csrf", csrf)]);
    let answer = web::call(
        target,
        "/portal/recovery-codes",
        Some(session),
        Some(body),
        limit,
    )
    .await?;
    Ok(label(
        answer.status.as_u16(),
        "new codes",
        answer.status.is_success(),
    ))
}

/// Opens a recovery case for `user`; the case cookie.
async fn start_case(target: &Target, user: &str, limit: Duration) -> anyhow::Result<String> {
    let body = web::form(&[("username", user)]);
    let answer = web::call(target, "/recovery/start", None, Some(body), limit).await?;
    answer.cookie(RECOVERY_COOKIE).with_context(|| {
        format!(
            "the recovery start answered {} without a case",
            answer.status
        )
    })
}

/// One wrong code on the case: `checked, refused`, `busy (429)`, or what else came back.
async fn submit_wrong_code(target: &Target, case: &str, limit: Duration) -> anyhow::Result<String> {
    let body = web::form(&[("code", WRONG_CODE)]);
    let answer = web::call(target, "/recovery/code", Some(case), Some(body), limit).await?;
    let refused = answer
        .location
        .as_deref()
        .is_some_and(|l| l.ends_with("done=code-refused"));
    if answer.status.is_redirection() && !refused {
        return Ok(format!(
            "redirect to {}",
            answer.location.unwrap_or_default()
        ));
    }
    Ok(label(answer.status.as_u16(), "checked, refused", refused))
}

fn label(status: u16, good: &str, is_good: bool) -> String {
    match (is_good, status) {
        (true, _) => good.to_owned(),
        (false, 429) => "busy (429)".to_owned(),
        (false, other) => format!("HTTP {other}"),
    }
}

/// Runs `count` calls of `one` at once, reading RSS meanwhile, then after `settle` seconds.
async fn burst<F, Fut>(
    server: &ProcStatus,
    settle: u64,
    count: u32,
    one: F,
) -> anyhow::Result<Burst>
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<String>> + Send + 'static,
{
    let mut out = Burst {
        before: server.rss_kib()?,
        ..Burst::default()
    };
    let peak = Arc::new(AtomicU64::new(out.before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(sample(server.clone(), Arc::clone(&peak), Arc::clone(&done)));
    let started = Instant::now();
    let mut calls = JoinSet::new();
    for _ in 0..count {
        calls.spawn(one());
    }
    while let Some(joined) = calls.join_next().await {
        let label = match joined.context("a call panicked")? {
            Ok(label) => label,
            Err(e) => format!("no answer: {e}"),
        };
        *out.answers.entry(label).or_default() += 1;
    }
    out.secs = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Release);
    sampler.await.context("the RSS sampler failed")?;
    out.peak = peak.load(Ordering::Acquire);
    tokio::time::sleep(Duration::from_secs(settle)).await;
    out.settled = server.rss_kib()?;
    Ok(out)
}

async fn sample(server: ProcStatus, peak: Arc<AtomicU64>, done: Arc<AtomicBool>) {
    while !done.load(Ordering::Acquire) {
        if let Ok(rss) = server.rss_kib() {
            peak.fetch_max(rss, Ordering::AcqRel);
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn report(
    args: &RecoveryMemoryArgs,
    idle: u64,
    set_up: u64,
    checks: &Burst,
    regenerations: Option<&Burst>,
    ok: bool,
) {
    if args.json {
        let summary = json!({
            "rss_idle_kib": idle,
            "rss_after_setup_kib": set_up,
            "checks": checks.json(),
            "regenerations": regenerations.map(Burst::json),
            "ok": ok,
        });
        println!("{summary}");
        return;
    }
    println!(
        "server RSS idle {:.1} MiB, after setting up {:.1} MiB",
        mib(idle),
        mib(set_up)
    );
    let bursts = [
        ("wrong recovery codes", args.checks, Some(checks)),
        ("regenerations", args.regenerations, regenerations),
    ];
    for (what, count, burst) in bursts {
        let Some(b) = burst else { continue };
        println!(
            "{count} {what} at once ({:.1} s): RSS before {:.1} MiB, peak {:.1} MiB (+{:.1} over \
             idle), settled {:.1} MiB (+{:.1} over idle)",
            b.secs,
            mib(b.before),
            mib(b.peak),
            mib(b.peak.saturating_sub(idle)),
            mib(b.settled),
            mib(b.settled.saturating_sub(idle)),
        );
        for (answer, n) in &b.answers {
            println!("  {n:>5}  {answer}");
        }
    }
    println!("RESULT: {}", if ok { "OK" } else { "PROBLEMS" });
}
