//! `ward-bench`: Ward's load harness.
//!
//! - `provision` creates benchmark users whose TOTP secrets derive from their names;
//! - `auth` loads `POST /auth/v2/auth` on a local server, closed or open loop, and reports
//!   throughput, outcomes and latency percentiles;
//! - `hello` serves a fixed answer on the same stack: the floor `auth` can reach;
//! - `provision-devices` creates benchmark users with one activated push device each;
//! - `push` measures the Verified Push round trip: `/auth` (async), the device's event, its
//!   signed answer, the final `auth_status`;
//! - `devices` holds one event stream per device and reports the server's extra memory;
//! - `recovery-memory` submits wrong recovery codes and regenerates recovery codes at once,
//!   and reports the server's memory (Argon2 work under anonymous load).
//!
//! Reproduction steps and results are in `docs/benchmarks.md`. It only ever loads loopback
//! addresses, and every run stops by itself.
//!
//! # Security
//! Benchmark users' secrets are public (derived from their names), and the devices file holds
//! the private keys of benchmark push devices: provision them on benchmark servers only.

mod channel;
mod connected;
mod duo;
mod hello;
mod load;
mod procfs;
mod provision;
mod provision_devices;
mod push;
mod recovery_memory;
mod users;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "ward-bench", version, about = "Load harness for Ward")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Creates benchmark users `{prefix}-000000`… with derived TOTP secrets (re-runnable).
    Provision(provision::ProvisionArgs),
    /// Loads `POST /auth/v2/auth` and reports throughput, outcomes and latency. Exits 1 when
    /// the server answered wrongly, requests failed or the user pool ran out.
    Auth(load::AuthArgs),
    /// Serves a fixed allow answer on the same TLS stack, as a floor for `auth`.
    Hello(hello::HelloArgs),
    /// Creates benchmark users `{prefix}-000000`… and activates one push device for each on a
    /// running server; writes the devices' ids and (benchmark-only) keys to a file.
    ProvisionDevices(provision_devices::ProvisionDevicesArgs),
    /// Measures Verified Push logins end to end with a number of them in flight. Exits 1 when
    /// a login did not end in allow or a device stream broke.
    Push(push::PushArgs),
    /// Holds one event stream per device and reports the server's extra RSS. Exits 1 when a
    /// stream did not open or broke.
    Devices(connected::DevicesArgs),
    /// Submits wrong recovery codes, then regenerates recovery codes, many at once, and
    /// reports the server's RSS. Exits 1 when an answer was neither a refusal nor busy.
    RecoveryMemory(recovery_memory::RecoveryMemoryArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Provision(args) => provision::run(args).await.map(|()| true),
        Command::Auth(args) => load::run(args).await,
        Command::Hello(args) => hello::run(args).await.map(|()| true),
        Command::ProvisionDevices(args) => provision_devices::run(args).await.map(|()| true),
        Command::Push(args) => push::run(args).await,
        Command::Devices(args) => connected::run(args).await,
        Command::RecoveryMemory(args) => recovery_memory::run(args).await,
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("ward-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}
