//! `ward-bench provision`: creates benchmark users with derived TOTP secrets through the core
//! service, so each creation is validated and audited like any administrator's change.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::task::JoinSet;
use ward_core::CoreError;
use ward_core::clock::{Clock, SystemClock};
use ward_core::model::Actor;
use ward_core::service::Ward;
use ward_core::totp::Algorithm;
use ward_server::config::{Config, Overrides};

use crate::users;

/// Options of `ward-bench provision`.
#[derive(Debug, clap::Args)]
pub struct ProvisionArgs {
    /// Ward's data directory (as for `ward --data-dir`).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Ward's configuration file (as for `ward --config`).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Number of users: `{prefix}-000000` to `{prefix}-{users-1}`.
    #[arg(long)]
    users: u32,
    /// Prefix of the user names.
    #[arg(long, default_value = "bench")]
    prefix: String,
    /// Users created at the same time.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    concurrency: u32,
}

/// What happened to one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Provisioned {
    Created,
    /// Existed with an authenticator: left alone.
    Existing,
    /// Existed without an authenticator (an interrupted earlier run): one was added.
    Repaired,
}

#[derive(Debug, Default)]
struct Tally {
    created: u64,
    existing: u64,
    repaired: u64,
}

impl Tally {
    fn add(&mut self, p: Provisioned) {
        match p {
            Provisioned::Created => self.created += 1,
            Provisioned::Existing => self.existing += 1,
            Provisioned::Repaired => self.repaired += 1,
        }
    }

    fn done(&self) -> u64 {
        self.created + self.existing + self.repaired
    }
}

/// Runs `provision`.
pub async fn run(args: ProvisionArgs) -> anyhow::Result<()> {
    let overrides = Overrides {
        config_file: args.config.clone(),
        data_dir: args.data_dir.clone(),
        ..Overrides::default()
    };
    let config = Config::load(&overrides).context("loading Ward's configuration")?;
    let ward = ward_server::bootstrap::open(&config)
        .await
        .context("opening Ward's database")?;
    eprintln!(
        "provisioning {} users {}..{} in {} ({} at a time)",
        args.users,
        users::username(&args.prefix, 0),
        users::username(&args.prefix, args.users.saturating_sub(1)),
        config.database_url.split('?').next().unwrap_or_default(),
        args.concurrency,
    );
    let started = Instant::now();
    let tally = provision_all(&ward, &args).await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "provisioned {} users in {secs:.1} s ({:.0} users/s): {} created, {} already existed, \
         {} repaired",
        tally.done(),
        tally.done() as f64 / secs.max(1e-9),
        tally.created,
        tally.existing,
        tally.repaired,
    );
    ward.store().close().await;
    Ok(())
}

async fn provision_all(ward: &Arc<Ward>, args: &ProvisionArgs) -> anyhow::Result<Tally> {
    let mut tasks = JoinSet::new();
    let mut tally = Tally::default();
    let started = Instant::now();
    let mut last_report = Instant::now();
    let limit = args.concurrency as usize;
    for index in 0..args.users {
        while tasks.len() >= limit {
            join_one(&mut tasks, &mut tally).await?;
        }
        let ward = Arc::clone(ward);
        let name = users::username(&args.prefix, index);
        tasks.spawn(async move { provision_one(&ward, &name).await });
        if last_report.elapsed() >= Duration::from_secs(2) {
            last_report = Instant::now();
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "  {}/{} ({:.0} users/s)",
                tally.done(),
                args.users,
                tally.done() as f64 / secs.max(1e-9)
            );
        }
    }
    while !tasks.is_empty() {
        join_one(&mut tasks, &mut tally).await?;
    }
    Ok(tally)
}

async fn join_one(
    tasks: &mut JoinSet<anyhow::Result<Provisioned>>,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    if let Some(joined) = tasks.join_next().await {
        tally.add(joined.context("provisioning task failed")??);
    }
    Ok(())
}

/// Creates one user and its authenticator; an existing user is kept as it is, unless it has no
/// authenticator at all.
pub(crate) async fn provision_one(ward: &Ward, name: &str) -> anyhow::Result<Provisioned> {
    let now = SystemClock.now();
    let outcome = match ward
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
        Ok(_) => Provisioned::Created,
        Err(CoreError::Conflict(_)) => {
            let user = ward
                .admin()
                .user(&ward.admin().resolve_org(None).await?, name)
                .await
                .with_context(|| format!("reading {name}"))?;
            let totps = ward
                .store()
                .totps_for_user(user.org_id.as_str(), user.id.as_str())
                .await
                .with_context(|| format!("reading the authenticators of {name}"))?;
            if !totps.is_empty() {
                return Ok(Provisioned::Existing);
            }
            Provisioned::Repaired
        }
        Err(e) => return Err(e).with_context(|| format!("creating {name}")),
    };
    let secret = users::secret_base32(name);
    ward.admin()
        .add_totp(
            &ward.admin().resolve_org(None).await?,
            &Actor::Cli,
            name,
            Some(secret.as_str()),
            Algorithm::Sha1,
            users::DIGITS,
            now,
        )
        .await
        .with_context(|| format!("adding an authenticator to {name}"))?;
    Ok(outcome)
}
