//! `ward-bench push`: the round trip of a Verified Push login, from the application's
//! asynchronous `POST /auth/v2/auth` to the device's event, its signed answer and the final
//! `auth_status`, with a fixed number of logins in flight (closed loop).
//!
//! Every device's stream is opened (and its handshakes done) before the clock starts. Each
//! worker owns `devices / concurrency` devices and logs in with them in turn, so no user has two
//! logins in flight and the pushes spread over all users.

mod login;
mod stats;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio::time::Instant;
use zeroize::Zeroizing;

use self::login::{Slot, Worker};
use self::stats::{PARTS, PERCENTILES, PushStats};
use crate::channel::file::{self, BenchDevice};
use crate::channel::stream::{self, OpenStream, StreamCounters};
use crate::duo::DuoSigner;
use crate::load::target::Target;
use crate::procfs::ProcStatus;

/// Options of `ward-bench push`.
#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// The server: `https://localhost:8443` (loopback only).
    #[arg(long)]
    url: String,
    /// CA certificate (PEM) to trust — for `ward serve`, `DATA_DIR/tls/ca.pem`.
    #[arg(long, value_name = "CA.pem")]
    ca: Option<PathBuf>,
    /// Integration key of an Auth API integration.
    #[arg(long, env = "WARD_BENCH_IKEY")]
    ikey: String,
    /// Its secret key (prefer the environment variable: arguments show in `ps`).
    #[arg(long, env = "WARD_BENCH_SKEY", hide_env_values = true)]
    skey: String,
    /// The devices file written by `provision-devices`.
    #[arg(long, value_name = "FILE")]
    devices: PathBuf,
    /// Connect only the first N devices of the file (default: all of them).
    #[arg(long, value_name = "N")]
    connected: Option<usize>,
    /// Logins in flight at once; needs at least as many devices.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    concurrency: u32,
    /// Logins measured.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    requests: u64,
    /// Logins before measuring (default: the concurrency, at least 100).
    #[arg(long)]
    warmup: Option<u64>,
    /// Seconds a login may take before it counts as failed.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=120))]
    timeout: u64,
    /// The server's process id: reports its CPU time per login (and the harness's own).
    #[arg(long)]
    pid: Option<u32>,
    /// Streams opened at the same time before the run.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    open_concurrency: u32,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// What every worker shares.
#[derive(Debug)]
pub struct Plan {
    target: Target,
    signer: DuoSigner,
    devices: Arc<Vec<BenchDevice>>,
    timeout: Duration,
    warmup: u64,
    requests: u64,
    /// The next login's sequence number; warm-up first.
    cursor: AtomicU64,
}

/// Runs `push`; `Ok(false)` when a login failed or a stream broke.
pub async fn run(args: PushArgs) -> anyhow::Result<bool> {
    let target = Target::resolve(&args.url, args.ca.as_deref()).await?;
    if !target.is_tls() {
        bail!("the device channel is HTTPS only: give an https:// URL");
    }
    let mut devices = file::load(&args.devices)?;
    devices.truncate(args.connected.unwrap_or(usize::MAX));
    let concurrency = args.concurrency as usize;
    if devices.len() < concurrency {
        bail!(
            "{} devices for {concurrency} logins in flight: each in-flight login needs its own \
             user (provision more with provision-devices)",
            devices.len()
        );
    }
    let devices = Arc::new(devices);
    let counters = Arc::new(StreamCounters::default());
    eprintln!(
        "ward-bench push: {}, opening {} device streams ({} at a time)",
        args.url,
        devices.len(),
        args.open_concurrency
    );
    let opening = Instant::now();
    let opened = stream::open_all(
        &target,
        &devices,
        devices.len(),
        args.open_concurrency as usize,
        Duration::from_secs(args.timeout),
        &counters,
    )
    .await?;
    if !opened.failures.is_empty() {
        bail!("some device streams did not open: {:?}", opened.failures);
    }
    eprintln!(
        "{} streams open in {:.1} s",
        devices.len(),
        opening.elapsed().as_secs_f64()
    );
    let warmup = args
        .warmup
        .unwrap_or_else(|| u64::from(args.concurrency).max(100));
    let plan = Arc::new(Plan {
        signer: DuoSigner::new(
            args.ikey.clone(),
            Zeroizing::new(args.skey.clone()),
            target.host.clone(),
            target.authority.clone(),
        ),
        target,
        devices: Arc::clone(&devices),
        timeout: Duration::from_secs(args.timeout),
        warmup,
        requests: args.requests,
        cursor: AtomicU64::new(0),
    });
    eprintln!(
        "running: {warmup} warm-up logins, then {} measured, {concurrency} in flight",
        args.requests
    );
    let cpu = CpuMeter::start(args.pid)?;
    let (warm, measured) = run_workers(&plan, opened.streams, concurrency).await?;
    let cpu = cpu.finish(warm.logins + measured.logins)?;
    let summary = Summary::new(&args, devices.len(), &warm, &measured, &counters, &cpu);
    if args.json {
        println!("{}", summary.doc);
    } else {
        print!("{}", summary.to_text());
    }
    Ok(summary.problems.is_empty())
}

/// Deals the devices out to `concurrency` workers (device `i` to worker `i % concurrency`)
/// and runs them.
async fn run_workers(
    plan: &Arc<Plan>,
    streams: Vec<Option<OpenStream>>,
    concurrency: usize,
) -> anyhow::Result<(PushStats, PushStats)> {
    let mut slots: Vec<Vec<Slot>> = (0..concurrency).map(|_| Vec::new()).collect();
    // The streams' reader tasks live as long as these handles: keep them to the end.
    let mut handles = Vec::with_capacity(streams.len());
    for (device, stream) in streams.into_iter().enumerate() {
        let Some(OpenStream { events, reader }) = stream else {
            continue;
        };
        handles.push(reader);
        if let Some(worker) = slots.get_mut(device % concurrency) {
            worker.push(Slot { device, events });
        }
    }
    let mut tasks = JoinSet::new();
    for worker_slots in slots {
        tasks.spawn(Worker::new(Arc::clone(plan), worker_slots).run());
    }
    let mut warm = PushStats::new()?;
    let mut measured = PushStats::new()?;
    while let Some(joined) = tasks.join_next().await {
        let stats = joined.context("push worker failed")??;
        warm.merge(&stats.warmup)?;
        measured.merge(&stats.measured)?;
    }
    drop(handles);
    Ok((warm, measured))
}

/// CPU time of the server and of the harness over the whole run (warm-up included).
#[derive(Debug)]
struct CpuMeter {
    server: Option<(ProcStatus, Duration)>,
    harness: (ProcStatus, Duration),
    start: Instant,
}

impl CpuMeter {
    fn start(pid: Option<u32>) -> anyhow::Result<Self> {
        let server = match pid {
            Some(pid) => {
                let proc = ProcStatus::new(pid);
                let spent = proc.cpu_time()?;
                Some((proc, spent))
            }
            None => None,
        };
        let harness = ProcStatus::current();
        let spent = harness.cpu_time()?;
        Ok(Self {
            server,
            harness: (harness, spent),
            start: Instant::now(),
        })
    }

    /// `{"server_cores", "server_ms_per_login", "harness_cores", "harness_ms_per_login"}`.
    fn finish(self, logins: u64) -> anyhow::Result<Value> {
        let wall = self.start.elapsed().as_secs_f64().max(1e-9);
        let per_login = |spent: Duration| spent.as_secs_f64() * 1000.0 / logins.max(1) as f64;
        let harness = self.harness.0.cpu_time()?.saturating_sub(self.harness.1);
        let server = match &self.server {
            Some((proc, before)) => Some(proc.cpu_time()?.saturating_sub(*before)),
            None => None,
        };
        Ok(json!({
            "wall_secs": wall,
            "harness_cores": harness.as_secs_f64() / wall,
            "harness_ms_per_login": per_login(harness),
            "server_cores": server.map(|s| s.as_secs_f64() / wall),
            "server_ms_per_login": server.map(per_login),
        }))
    }
}

/// The run's summary: a JSON document, and what went wrong.
struct Summary {
    doc: Value,
    problems: Vec<String>,
}

impl Summary {
    fn new(
        args: &PushArgs,
        connected: usize,
        warm: &PushStats,
        measured: &PushStats,
        counters: &StreamCounters,
        cpu: &Value,
    ) -> Self {
        let ended = counters.ended.load(Ordering::Relaxed);
        let unreadable = counters.unreadable.load(Ordering::Relaxed);
        let mut problems = Vec::new();
        if measured.failed() > 0 {
            problems.push(format!(
                "{} of {} measured logins failed {:?}",
                measured.failed(),
                measured.logins,
                measured.failures
            ));
        }
        if warm.failed() > 0 {
            problems.push(format!(
                "{} warm-up logins failed {:?}",
                warm.failed(),
                warm.failures
            ));
        }
        if ended > 0 {
            problems.push(format!("{ended} device streams ended during the run"));
        }
        if unreadable > 0 {
            problems.push(format!("{unreadable} push events were unreadable"));
        }
        let doc = json!({
            "url": args.url,
            "concurrency": args.concurrency,
            "connected_devices": connected,
            "warmup": warm.to_json(),
            "measured": measured.to_json(),
            "streams_ended": ended,
            "events_received": counters.received.load(Ordering::Relaxed),
            "cpu": cpu,
            "ok": problems.is_empty(),
            "problems": problems,
        });
        Self { doc, problems }
    }

    fn to_text(&self) -> String {
        let doc = &self.doc;
        let at = |pointer: &str| doc.pointer(pointer).unwrap_or(&Value::Null);
        let float = |pointer: &str| at(pointer).as_f64().unwrap_or_default();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n{} logins in flight, {} devices connected: {} logins in {:.1} s ({:.0}/s)",
            at("/concurrency"),
            at("/connected_devices"),
            at("/measured/logins"),
            float("/measured/secs"),
            float("/measured/logins_per_sec"),
        );
        let failed = at("/measured/failed").as_u64().unwrap_or_default();
        let _ = writeln!(
            out,
            "allowed {}, failed {failed} {}",
            at("/measured/allowed"),
            if failed > 0 {
                at("/measured/failures").to_string()
            } else {
                String::new()
            }
        );
        let columns = || PERCENTILES.iter().map(|(l, _)| *l).chain(["max", "mean"]);
        let _ = write!(out, "latency ms        ");
        for label in columns() {
            let _ = write!(out, " {label:>8}");
        }
        out.push('\n');
        for (key, label) in PARTS {
            let _ = write!(out, "{label:<18}");
            for p in columns() {
                let _ = write!(
                    out,
                    " {:>8.3}",
                    float(&format!("/measured/latency_ms/{key}/{p}"))
                );
            }
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "auth_status before the answer's ack: {}; stale events skipped: {}",
            at("/measured/status_before_ack"),
            at("/measured/stale_events")
        );
        let cores = |key: &str| float(&format!("/cpu/{key}_cores"));
        let ms = |key: &str| float(&format!("/cpu/{key}_ms_per_login"));
        if at("/cpu/server_cores").is_number() {
            let _ = writeln!(
                out,
                "CPU: server {:.2} cores, {:.3} ms per login; harness {:.2} cores, {:.3} ms per login",
                cores("server"),
                ms("server"),
                cores("harness"),
                ms("harness"),
            );
        }
        let _ = writeln!(
            out,
            "warm-up: {} logins, {} failed",
            at("/warmup/logins"),
            at("/warmup/failed")
        );
        if self.problems.is_empty() {
            out.push_str("RESULT: OK\n");
        } else {
            out.push_str("RESULT: PROBLEMS\n");
            for p in &self.problems {
                let _ = writeln!(out, "  - {p}");
            }
        }
        out
    }
}
