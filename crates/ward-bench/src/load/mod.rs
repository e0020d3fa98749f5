//! `ward-bench auth`: a load generator for `POST /auth/v2/auth` over persistent HTTP/1.1
//! connections, closed loop (maximum throughput) or open loop (latency at a fixed rate).

mod pool;
mod report;
mod request;
mod stats;
pub mod target;
mod worker;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::task::JoinSet;
use tokio::time::Instant;
use ward_core::clock::{Clock, SystemClock};
use zeroize::Zeroizing;

use self::pool::Pool;
use self::request::Signer;
use self::stats::Stats;
use self::target::Target;
use self::worker::Worker;
use crate::users;

/// Options of `ward-bench auth`.
#[derive(Debug, clap::Args)]
pub struct AuthArgs {
    /// The server: `https://localhost:8443` or `http://127.0.0.1:8080` (loopback only).
    #[arg(long)]
    url: String,
    /// CA certificate (PEM) to trust for https:// — for `ward serve`, `DATA_DIR/tls/ca.pem`.
    #[arg(long, value_name = "CA.pem")]
    ca: Option<PathBuf>,
    /// Integration key of an Auth API integration.
    #[arg(long, env = "WARD_BENCH_IKEY")]
    ikey: String,
    /// Its secret key (prefer the environment variable: arguments show in `ps`).
    #[arg(long, env = "WARD_BENCH_SKEY", hide_env_values = true)]
    skey: String,
    /// Users provisioned with `ward-bench provision` (valid and wrong-code pools together).
    #[arg(long)]
    users: u32,
    /// Prefix given to `ward-bench provision`.
    #[arg(long, default_value = "bench")]
    prefix: String,
    /// Persistent connections, each with one request in flight.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    connections: u32,
    /// Length of the measured period, in seconds (after the warm-up).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3600))]
    duration: u64,
    /// Open loop: requests per second in total, sent on schedule whatever the responses do.
    /// Without it, each connection sends back to back (closed loop).
    #[arg(long)]
    rate: Option<f64>,
    /// Share of requests that carry a wrong code (they must be denied).
    #[arg(long, default_value_t = 0.1)]
    wrong_ratio: f64,
    /// Share of the users kept for wrong codes (taken from the end), when --wrong-ratio > 0.
    #[arg(long, default_value_t = 0.05)]
    wrong_pool: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=600))]
    warmup: u64,
    /// Seconds to wait for a response before counting a timeout and reconnecting.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=120))]
    timeout: u64,
    /// Start at once instead of at the next 30 s TOTP step. Codes of the current step may
    /// then have been used by an earlier run, and would be denied as replays.
    #[arg(long)]
    no_step_wait: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// What every worker shares.
#[derive(Debug)]
pub struct Plan {
    target: Target,
    signer: Signer,
    pool: Pool,
    connections: u32,
    rate: Option<f64>,
    wrong_ratio: f64,
    timeout: Duration,
    start: Instant,
    measure_from: Instant,
    end: Instant,
}

/// Runs `auth`; `Ok(false)` when the run showed a problem (printed in the summary).
pub async fn run(args: AuthArgs) -> anyhow::Result<bool> {
    check(&args)?;
    let target = Target::resolve(&args.url, args.ca.as_deref()).await?;
    let pool = Pool::new(args.users, args.wrong_ratio, args.wrong_pool)?;
    announce(&args, &target, &pool);
    if !args.no_step_wait {
        wait_for_next_step().await;
    }
    let connections = connect_all(&target, args.connections, args.timeout).await?;
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup);
    let plan = Arc::new(Plan {
        signer: Signer::new(
            args.ikey.clone(),
            Zeroizing::new(args.skey.clone()),
            target.host.clone(),
            target.authority.clone(),
            args.prefix.clone(),
        ),
        target,
        pool,
        connections: args.connections,
        rate: args.rate,
        wrong_ratio: args.wrong_ratio,
        timeout: Duration::from_secs(args.timeout),
        start,
        measure_from,
        end: measure_from + Duration::from_secs(args.duration),
    });
    eprintln!(
        "running: {} s warm-up, then {} s measured",
        args.warmup, args.duration
    );
    let (warmup, measured) = run_workers(&plan, connections).await?;
    let summary = report::Summary::new(&args, &plan, &warmup, &measured);
    if args.json {
        println!("{}", summary.to_json());
    } else {
        print!("{}", summary.to_text());
    }
    Ok(summary.ok())
}

fn check(args: &AuthArgs) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&args.wrong_ratio) {
        bail!("--wrong-ratio must be between 0 and 1");
    }
    if !(args.wrong_pool > 0.0 && args.wrong_pool < 1.0) {
        bail!("--wrong-pool must be between 0 and 1 (exclusive)");
    }
    if let Some(rate) = args.rate
        && !(1.0..=1_000_000.0).contains(&rate)
    {
        bail!("--rate must be between 1 and 1000000 requests per second");
    }
    if args.users == 0 {
        bail!("--users must be at least 1");
    }
    Ok(())
}

fn announce(args: &AuthArgs, target: &Target, pool: &Pool) {
    let mode = match args.rate {
        Some(rate) => format!("open loop at {rate} requests/s"),
        None => "closed loop".to_owned(),
    };
    eprintln!(
        "ward-bench auth: {} ({}), {mode}, {} connections",
        args.url,
        if target.is_tls() { "TLS" } else { "plain HTTP" },
        args.connections
    );
    let ceiling = f64::from(pool.valid_users()) / users::STEP_SECS as f64;
    eprintln!(
        "users: {} for valid codes (at most {ceiling:.0} accepted logins/s), {} for wrong codes \
         ({:.1}% of requests)",
        pool.valid_users(),
        pool.wrong_users(),
        args.wrong_ratio * 100.0
    );
    if let Some(rate) = args.rate
        && rate * (1.0 - args.wrong_ratio) > ceiling
    {
        eprintln!(
            "warning: {rate}/s needs about {:.0} valid users; the pool will run out each step",
            rate * (1.0 - args.wrong_ratio) * users::STEP_SECS as f64
        );
    }
}

/// Sleeps until the next TOTP step, so that no code used by an earlier run is sent again.
async fn wait_for_next_step() {
    let now_ms = SystemClock.now().timestamp_millis();
    let step_ms = users::STEP_SECS as i64 * 1000;
    let wait = Duration::from_millis((step_ms - now_ms.rem_euclid(step_ms)) as u64);
    eprintln!(
        "waiting {:.1} s for the next TOTP step (codes of this one may have been used by an \
         earlier run; --no-step-wait skips this)",
        wait.as_secs_f64()
    );
    tokio::time::sleep(wait).await;
}

/// Opens every connection before the clock starts, so handshakes are not measured.
async fn connect_all(
    target: &Target,
    count: u32,
    timeout_secs: u64,
) -> anyhow::Result<Vec<target::Sender>> {
    let mut tasks = JoinSet::new();
    for _ in 0..count {
        let target = target.clone();
        tasks.spawn(async move {
            tokio::time::timeout(Duration::from_secs(timeout_secs), target.connect())
                .await
                .context("connection timed out")?
        });
    }
    let mut senders = Vec::with_capacity(count as usize);
    while let Some(joined) = tasks.join_next().await {
        senders.push(joined.context("connection task failed")??);
    }
    Ok(senders)
}

async fn run_workers(
    plan: &Arc<Plan>,
    connections: Vec<target::Sender>,
) -> anyhow::Result<(Stats, Stats)> {
    let mut tasks = JoinSet::new();
    for (id, conn) in (0u32..).zip(connections) {
        let worker = Worker::new(Arc::clone(plan), id, conn)?;
        tasks.spawn(worker.run());
    }
    let mut warmup = Stats::new()?;
    let mut measured = Stats::new()?;
    while let Some(joined) = tasks.join_next().await {
        let stats = joined.context("worker task failed")??;
        warmup.merge(&stats.warmup)?;
        measured.merge(&stats.measured)?;
    }
    Ok((warmup, measured))
}
