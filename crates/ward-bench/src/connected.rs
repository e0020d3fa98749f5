//! `ward-bench devices`: what holding connected devices costs a node. Opens one event stream
//! per device, holds them, and reads the server's resident memory (`VmRSS` of
//! `/proc/PID/status`) before, while opening, once all are open, after holding them, and after
//! closing them.
//!
//! RSS counts the server process's own memory (TLS and HTTP state, the stream's task, its
//! broadcast receiver, allocator overhead); the kernel's socket buffers are not in it.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::bail;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::channel::file::{self, BenchDevice};
use crate::channel::stream::{self, Opened, StreamCounters};
use crate::load::target::Target;
use crate::procfs::ProcStatus;

/// File descriptors the harness needs besides the streams (openers, stdio, runtime).
const SPARE_FDS: u64 = 128;
/// How often RSS is sampled while the streams open.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);
/// Wait after closing the streams before the last reading.
const AFTER_CLOSE: Duration = Duration::from_secs(3);

/// Options of `ward-bench devices`.
#[derive(Debug, clap::Args)]
pub struct DevicesArgs {
    /// The server: `https://localhost:8443` (loopback only).
    #[arg(long)]
    url: String,
    /// CA certificate (PEM) to trust — for `ward serve`, `DATA_DIR/tls/ca.pem`.
    #[arg(long, value_name = "CA.pem")]
    ca: Option<PathBuf>,
    /// The devices file written by `provision-devices`.
    #[arg(long, value_name = "FILE")]
    devices: PathBuf,
    /// Connect only the first N devices of the file (default: all of them).
    #[arg(long, value_name = "N")]
    connected: Option<usize>,
    /// The server's process id (`ward serve`), whose RSS is read.
    #[arg(long)]
    pid: u32,
    /// Seconds to hold every stream open before the reading that counts.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    hold: u64,
    /// Streams opened at the same time.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    open_concurrency: u32,
    /// Seconds to wait for each stream to open.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=120))]
    timeout: u64,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// One reading of the server while the streams open.
#[derive(Debug, Clone, Copy)]
struct Sample {
    streams: usize,
    rss_kib: u64,
}

/// What was read from the server (RSS in KiB).
#[derive(Debug, Default)]
struct Readings {
    before: u64,
    all_open: u64,
    held: u64,
    closed: u64,
    fds_before: Option<usize>,
    fds_held: Option<usize>,
    harness: u64,
    open_secs: f64,
    samples: Vec<Sample>,
}

/// Runs `devices`; `Ok(false)` when a stream failed to open or broke while held.
pub async fn run(args: DevicesArgs) -> anyhow::Result<bool> {
    let target = Target::resolve(&args.url, args.ca.as_deref()).await?;
    let mut devices = file::load(&args.devices)?;
    devices.truncate(args.connected.unwrap_or(usize::MAX));
    let count = devices.len();
    check_fd_limits(args.pid, count)?;
    let devices = Arc::new(devices);
    let counters = Arc::new(StreamCounters::default());
    let server = ProcStatus::new(args.pid);
    let mut readings = Readings {
        before: server.rss_kib()?,
        fds_before: server.open_fds(),
        ..Readings::default()
    };
    eprintln!(
        "ward-bench devices: server pid {} ({}) at {} KiB RSS; opening {count} streams",
        args.pid,
        server.name(),
        readings.before
    );
    let opened = open_sampled(&target, &devices, &args, &counters, &server, &mut readings).await?;
    eprintln!(
        "{count} streams open in {:.1} s; holding {} s",
        readings.open_secs, args.hold
    );
    tokio::time::sleep(Duration::from_secs(args.hold)).await;
    readings.held = server.rss_kib()?;
    readings.fds_held = server.open_fds();
    readings.harness = ProcStatus::current().rss_kib().unwrap_or_default();
    let ended = counters.ended.load(Ordering::Relaxed);
    drop(opened.streams);
    tokio::time::sleep(AFTER_CLOSE).await;
    readings.closed = server.rss_kib()?;
    let mut problems = Vec::new();
    if !opened.failures.is_empty() {
        problems.push(format!("streams that did not open: {:?}", opened.failures));
    }
    if ended > 0 {
        problems.push(format!("{ended} streams ended while held"));
    }
    let connected = counters.opened.load(Ordering::Relaxed);
    let doc = summary(&args, connected, &readings, &problems);
    if args.json {
        println!("{doc}");
    } else {
        print!("{}", to_text(&doc));
    }
    Ok(problems.is_empty())
}

/// Opens the streams, reading the server's RSS every [`SAMPLE_EVERY`] meanwhile.
async fn open_sampled(
    target: &Target,
    devices: &Arc<Vec<BenchDevice>>,
    args: &DevicesArgs,
    counters: &Arc<StreamCounters>,
    server: &ProcStatus,
    readings: &mut Readings,
) -> anyhow::Result<Opened> {
    let started = Instant::now();
    let open = stream::open_all(
        target,
        devices,
        devices.len(),
        args.open_concurrency as usize,
        Duration::from_secs(args.timeout),
        counters,
    );
    tokio::pin!(open);
    let sample = |rss_kib| Sample {
        streams: counters.opened.load(Ordering::Relaxed),
        rss_kib,
    };
    readings.samples.push(sample(readings.before));
    let mut ticker = tokio::time::interval(SAMPLE_EVERY);
    let opened = loop {
        tokio::select! {
            opened = &mut open => break opened?,
            _ = ticker.tick() => readings.samples.push(sample(server.rss_kib()?)),
        }
    };
    readings.open_secs = started.elapsed().as_secs_f64();
    readings.all_open = server.rss_kib()?;
    readings.samples.push(sample(readings.all_open));
    Ok(opened)
}

fn summary(args: &DevicesArgs, connected: usize, r: &Readings, problems: &[String]) -> Value {
    let extra = r.held.saturating_sub(r.before);
    json!({
        "url": args.url,
        "pid": args.pid,
        "streams": connected,
        "open_secs": r.open_secs,
        "hold_secs": args.hold,
        "rss_kib": {
            "before": r.before,
            "all_open": r.all_open,
            "after_hold": r.held,
            "after_close": r.closed,
        },
        "extra_rss_mib": extra as f64 / 1024.0,
        "extra_rss_per_stream_kib": extra as f64 / connected.max(1) as f64,
        "server_fds": { "before": r.fds_before, "held": r.fds_held },
        "harness_rss_kib": r.harness,
        "samples": r.samples.iter().map(|s| json!([s.streams, s.rss_kib])).collect::<Vec<_>>(),
        "ok": problems.is_empty(),
        "problems": problems,
    })
}

fn to_text(doc: &Value) -> String {
    let at = |pointer: &str| doc.pointer(pointer).unwrap_or(&Value::Null);
    let mib = |pointer: &str| at(pointer).as_f64().unwrap_or_default() / 1024.0;
    let mut out = String::new();
    let _ = write!(
        out,
        "\n{} streams held {} s (opened in {:.1} s)\n\
         server RSS MiB: before {:.1}, all open {:.1}, after holding {:.1}, after closing {:.1}\n\
         extra RSS: {:.1} MiB, {:.1} KiB per stream\n\
         server fds: {} before, {} held; harness RSS {:.1} MiB\n",
        at("/streams"),
        at("/hold_secs"),
        at("/open_secs").as_f64().unwrap_or_default(),
        mib("/rss_kib/before"),
        mib("/rss_kib/all_open"),
        mib("/rss_kib/after_hold"),
        mib("/rss_kib/after_close"),
        at("/extra_rss_mib").as_f64().unwrap_or_default(),
        at("/extra_rss_per_stream_kib").as_f64().unwrap_or_default(),
        at("/server_fds/before"),
        at("/server_fds/held"),
        mib("/harness_rss_kib"),
    );
    let problems = at("/problems").as_array().cloned().unwrap_or_default();
    if problems.is_empty() {
        out.push_str("RESULT: OK\n");
    } else {
        out.push_str("RESULT: PROBLEMS\n");
        for p in problems {
            let _ = writeln!(out, "  - {}", p.as_str().unwrap_or_default());
        }
    }
    out
}

/// Refuses to start when either process cannot hold the streams: each is one socket on both
/// sides.
fn check_fd_limits(pid: u32, streams: usize) -> anyhow::Result<()> {
    let need = streams as u64 + SPARE_FDS;
    let own = ProcStatus::current().open_files_limit()?;
    if own < need {
        bail!(
            "this process may open {own} files and needs about {need}: raise it with \
             `ulimit -n {need}` (at most `ulimit -Hn`) in the shell that runs ward-bench"
        );
    }
    let server = ProcStatus::new(pid).open_files_limit()?;
    if server < need {
        bail!(
            "the server (pid {pid}) may open {server} files and needs about {need}: start it \
             after `ulimit -n {need}`"
        );
    }
    Ok(())
}
