//! `ward-bench provision-devices`: benchmark users with one activated push device each.
//!
//! Users and activation codes go through the core service, like `ward user create` and an
//! administrator's activation link; each device then activates over HTTPS
//! (`POST /device/v1/activate`) with a fresh Ed25519 key, as `ward-authenticator activate` does.
//! The device ids and private keys go to the devices file (see [`crate::channel::file`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use tokio::task::JoinSet;
use tokio::time::Instant;
use ward_core::CoreError;
use ward_core::clock::{Clock, SystemClock};
use ward_core::model::Actor;
use ward_core::service::Ward;
use ward_proto::device::{ActivateRequest, ActivateResponse, KeyAlgorithm};
use ward_server::config::{Config, Overrides};

use crate::channel::Conn;
use crate::channel::file::{self, BenchDevice};
use crate::load::target::Target;
use crate::users;

/// Errors shown in full at the end; the rest are counted.
const ERRORS_SHOWN: usize = 5;

/// Options of `ward-bench provision-devices`.
#[derive(Debug, clap::Args)]
pub struct ProvisionDevicesArgs {
    /// Ward's data directory (as for `ward --data-dir`).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Ward's configuration file (as for `ward --config`).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Number of users: `{prefix}-000000` to `{prefix}-{users-1}`.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    users: u32,
    /// Prefix of the user names.
    #[arg(long, default_value = "pbench")]
    prefix: String,
    /// The devices file to write (mode 0600). Devices it already holds are kept.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The running server the devices activate on: `https://localhost:8443` (loopback only).
    #[arg(long)]
    url: String,
    /// CA certificate (PEM) to trust — for `ward serve`, `DATA_DIR/tls/ca.pem`.
    #[arg(long, value_name = "CA.pem")]
    ca: Option<PathBuf>,
    /// Users provisioned at the same time.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=256))]
    concurrency: u32,
    /// Seconds to wait for each activation.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=120))]
    timeout: u64,
}

/// What happened to one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Provisioned {
    /// User created, device activated.
    Created,
    /// The user existed without a device: one was activated.
    Activated,
    /// The user and its device were already in the devices file: left alone.
    Kept,
}

/// What the workers share.
#[derive(Debug)]
struct Shared {
    ward: Arc<Ward>,
    target: Target,
    prefix: String,
    users: u32,
    out: PathBuf,
    limit: Duration,
    cursor: AtomicU32,
    done: AtomicU64,
    /// Devices of an earlier run, taken out as their users come up.
    known: Mutex<BTreeMap<String, BenchDevice>>,
}

type Done = Vec<(u32, Result<(Provisioned, BenchDevice), String>)>;

/// Runs `provision-devices`.
pub async fn run(args: ProvisionDevicesArgs) -> anyhow::Result<()> {
    let overrides = Overrides {
        config_file: args.config.clone(),
        data_dir: args.data_dir.clone(),
        ..Overrides::default()
    };
    let config = Config::load(&overrides).context("loading Ward's configuration")?;
    let target = Target::resolve(&args.url, args.ca.as_deref()).await?;
    let known = file::load_existing(&args.out)?;
    let ward = ward_server::bootstrap::open(&config)
        .await
        .context("opening Ward's database")?;
    eprintln!(
        "provisioning {} users {}..{} with one push device each, activated on {} ({} at a time)",
        args.users,
        users::username(&args.prefix, 0),
        users::username(&args.prefix, args.users.saturating_sub(1)),
        args.url,
        args.concurrency,
    );
    let shared = Arc::new(Shared {
        ward: Arc::clone(&ward),
        target,
        prefix: args.prefix.clone(),
        users: args.users,
        out: args.out.clone(),
        limit: Duration::from_secs(args.timeout),
        cursor: AtomicU32::new(0),
        done: AtomicU64::new(0),
        known: Mutex::new(known),
    });
    let started = Instant::now();
    let done = run_workers(&shared, args.concurrency).await?;
    let secs = started.elapsed().as_secs_f64();
    ward.store().close().await;
    finish(&args, done, secs)
}

async fn run_workers(shared: &Arc<Shared>, concurrency: u32) -> anyhow::Result<Done> {
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency.min(shared.users) {
        tasks.spawn(worker(Arc::clone(shared)));
    }
    let mut done = Vec::new();
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs(2));
    ticker.tick().await;
    while !tasks.is_empty() {
        tokio::select! {
            joined = tasks.join_next() => {
                if let Some(joined) = joined {
                    done.extend(joined.context("provisioning task failed")?);
                }
            }
            _ = ticker.tick() => {
                let n = shared.done.load(Ordering::Relaxed);
                eprintln!(
                    "  {n}/{} ({:.0} devices/s)",
                    shared.users,
                    n as f64 / started.elapsed().as_secs_f64().max(1e-9)
                );
            }
        }
    }
    Ok(done)
}

async fn worker(shared: Arc<Shared>) -> Done {
    let mut conn = Conn::new(shared.target.clone());
    let mut done = Vec::new();
    loop {
        let index = shared.cursor.fetch_add(1, Ordering::Relaxed);
        if index >= shared.users {
            return done;
        }
        let name = users::username(&shared.prefix, index);
        let result = provision_one(&shared, &mut conn, &name)
            .await
            .map_err(|e| format!("{name}: {e:#}"));
        shared.done.fetch_add(1, Ordering::Relaxed);
        done.push((index, result));
    }
}

/// Creates the user if needed and activates a device for it, unless the devices file already
/// holds the user's device.
async fn provision_one(
    shared: &Shared,
    conn: &mut Conn,
    name: &str,
) -> anyhow::Result<(Provisioned, BenchDevice)> {
    let ward = &shared.ward;
    let now = SystemClock.now();
    let created = match ward
        .admin()
        .create_user(
            &ward.admin().resolve_org(None).await?,
            &Actor::Cli,
            name,
            None,
            now,
        )
        .await
    {
        Ok(_) => true,
        Err(CoreError::Conflict(_)) => false,
        Err(e) => return Err(e).context("creating the user"),
    };
    if !created {
        let known = shared
            .known
            .lock()
            .map_err(|_| anyhow!("devices map poisoned"))?
            .remove(name);
        let devices = ward
            .devices()
            .list(&ward.admin().resolve_org(None).await?, name)
            .await
            .context("reading devices")?;
        match (known, devices.first()) {
            (Some(known), Some(first)) if first.id.as_str() == known.device_id => {
                return Ok((Provisioned::Kept, known));
            }
            (_, Some(first)) => bail!(
                "already has push device {} whose key {} does not hold (device=auto would \
                 pick it): use another --prefix or a fresh data directory",
                first.id,
                shared.out.display()
            ),
            (_, None) => {}
        }
    }
    let device = activate(shared, conn, name).await?;
    let outcome = if created {
        Provisioned::Created
    } else {
        Provisioned::Activated
    };
    Ok((outcome, device))
}

async fn activate(shared: &Shared, conn: &mut Conn, name: &str) -> anyhow::Result<BenchDevice> {
    let code = shared
        .ward
        .devices()
        .activation_code(
            &shared.ward.admin().resolve_org(None).await?,
            &Actor::Cli,
            name,
            SystemClock.now(),
        )
        .await
        .context("issuing the activation code")?;
    let key = file::generate_key();
    let request = ActivateRequest {
        code: code.code.to_string(),
        algorithm: KeyAlgorithm::Ed25519,
        public_key: file::public_key_b64(&key),
        name: "ward-bench".to_owned(),
        platform: "ward-bench".to_owned(),
    };
    let answer: ActivateResponse = conn
        .post_device("/device/v1/activate", &request, shared.limit)
        .await
        .context("activating over HTTPS")?;
    if answer.username != name {
        bail!("the server activated the device for {:?}", answer.username);
    }
    Ok(BenchDevice::new(name.to_owned(), answer.device_id, key))
}

/// Writes every device provisioned (also when some users failed, so no activated key is lost)
/// and reports.
fn finish(args: &ProvisionDevicesArgs, mut done: Done, secs: f64) -> anyhow::Result<()> {
    done.sort_by_key(|(index, _)| *index);
    let mut tally: BTreeMap<&str, u64> = BTreeMap::new();
    let mut devices = Vec::with_capacity(done.len());
    let mut errors = Vec::new();
    for (_, result) in done {
        match result {
            Ok((outcome, device)) => {
                let label = match outcome {
                    Provisioned::Created => "created",
                    Provisioned::Activated => "existing user, device activated",
                    Provisioned::Kept => "already in the file",
                };
                *tally.entry(label).or_insert(0) += 1;
                devices.push(device);
            }
            Err(e) => errors.push(e),
        }
    }
    if !devices.is_empty() {
        file::save(&args.out, &args.url, &devices)?;
    }
    let summary: Vec<String> = tally.iter().map(|(k, v)| format!("{v} {k}")).collect();
    println!(
        "{} devices in {secs:.1} s ({:.0}/s): {}; wrote {} (benchmark-only keys, mode 0600)",
        devices.len(),
        devices.len() as f64 / secs.max(1e-9),
        summary.join(", "),
        args.out.display(),
    );
    if errors.is_empty() {
        return Ok(());
    }
    for e in errors.iter().take(ERRORS_SHOWN) {
        eprintln!("  {e}");
    }
    bail!("{} users could not be provisioned", errors.len())
}
