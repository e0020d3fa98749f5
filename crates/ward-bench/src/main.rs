//! `ward-bench`: Ward's load harness.
//!
//! - `provision` creates benchmark users whose TOTP secrets derive from their names;
//! - `auth` loads `POST /auth/v2/auth` on a local server, closed or open loop, and reports
//!   throughput, outcomes and latency percentiles;
//! - `hello` serves a fixed answer on the same stack: the floor `auth` can reach.
//!
//! Reproduction steps and results are in `docs/benchmarks.md`. It only ever loads loopback
//! addresses, and every run stops by itself.
//!
//! # Security
//! Benchmark users' secrets are public (derived from their names): provision them on benchmark
//! servers only.

mod hello;
mod load;
mod provision;
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
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Provision(args) => provision::run(args).await.map(|()| true),
        Command::Auth(args) => load::run(args).await,
        Command::Hello(args) => hello::run(args).await.map(|()| true),
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
