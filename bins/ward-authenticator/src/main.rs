//! `ward-authenticator`: Ward's reference push authenticator, for a laptop or a server.
//!
//! It activates against a Ward server with a one-time activation link, generating its own key
//! pair (Ed25519, or P-256 with `--algorithm p256`); the private key never leaves the state
//! file. It then receives login requests over a signed event stream and answers them, signing
//! each answer over exactly the context it showed. It also holds TOTP seeds and prints codes.
//!
//! Commands: `activate URL`, `list`, `watch` (interactive), `pending [--json]` and
//! `answer TXID approve|deny|fraud` (for scripts), `code`, `import-totp OTPAUTH_URI`.
//!
//! Nothing here approves on its own. TLS is always verified (system roots, `--ca FILE`, or the
//! certificate pin from the activation link); plain HTTP is not supported at all, since every
//! Ward server serves HTTPS and tests can trust its generated CA. The wire protocol is
//! `ward_proto::device`; this crate only uses its types and signing bytes.

mod client;
mod commands;
mod keys;
mod state;
mod tls;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use ward_proto::device::{Decision, KeyAlgorithm};

use crate::state::StateFile;

#[derive(Debug, Parser)]
#[command(
    name = "ward-authenticator",
    version,
    about = "Ward's reference push authenticator"
)]
struct Cli {
    /// The state file holding keys, accounts and TOTP seeds (created with mode 0600).
    /// Default: $XDG_CONFIG_HOME/ward-authenticator/state.json, else ~/.config/...
    #[arg(
        long,
        global = true,
        env = "WARD_AUTHENTICATOR_STATE",
        value_name = "FILE"
    )]
    state: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Activate this device with a link from `ward device activate-link USER`.
    Activate {
        /// `https://HOST[:PORT]/device/v1/activate?code=CODE[&pin=sha256:...]`
        url: String,
        /// The name shown in the user's device list (default: <login>@<hostname>).
        #[arg(long)]
        name: Option<String>,
        /// Trust only the CA certificates in this PEM file (e.g. Ward's generated ca.pem).
        /// A pin in the link takes precedence.
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
        /// The key pair to generate.
        #[arg(long, value_enum, default_value_t = AlgorithmArg::Ed25519)]
        algorithm: AlgorithmArg,
    },
    /// List the accounts and TOTP seeds held (never their secrets).
    List,
    /// Show login requests as they come and answer them (interactive).
    Watch {
        /// Only this account (a number from `list`, or a device id); default: all.
        #[arg(long, value_name = "N")]
        account: Option<String>,
    },
    /// Print the pending login requests.
    Pending {
        /// Print a JSON list of `{"txid","username","application","ip","number_required",...}`.
        #[arg(long)]
        json: bool,
        /// Wait up to this many seconds for requests.
        #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = wait_secs())]
        wait: u64,
        /// Only this account (a number from `list`, or a device id); default: all.
        #[arg(long, value_name = "N")]
        account: Option<String>,
    },
    /// Answer one pending request.
    Answer {
        txid: String,
        #[arg(value_enum)]
        decision: DecisionArg,
        /// The number shown on the login screen, when the request requires it.
        #[arg(long, value_name = "N")]
        number: Option<String>,
        /// Wait up to this many seconds for the request to arrive.
        #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = wait_secs())]
        wait: u64,
        /// Only this account (a number from `list`, or a device id); default: all.
        #[arg(long, value_name = "N")]
        account: Option<String>,
    },
    /// Print the current TOTP codes.
    Code {
        /// Only seeds whose label contains this text.
        filter: Option<String>,
    },
    /// Add a TOTP seed from an otpauth:// URI ("-" reads it from standard input, which keeps
    /// the secret out of the shell history).
    ImportTotp {
        #[arg(value_name = "OTPAUTH_URI")]
        uri: String,
    },
}

/// `--wait` is bounded (a day) so that a deadline can never overflow.
fn wait_secs() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(0..=86_400)
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum AlgorithmArg {
    Ed25519,
    P256,
}

impl From<AlgorithmArg> for KeyAlgorithm {
    fn from(arg: AlgorithmArg) -> Self {
        match arg {
            AlgorithmArg::Ed25519 => Self::Ed25519,
            AlgorithmArg::P256 => Self::P256,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DecisionArg {
    Approve,
    Deny,
    Fraud,
}

impl From<DecisionArg> for Decision {
    fn from(arg: DecisionArg) -> Self {
        match arg {
            DecisionArg::Approve => Self::Approve,
            DecisionArg::Deny => Self::Deny,
            DecisionArg::Fraud => Self::Fraud,
        }
    }
}

/// The current unix time in seconds: TOTP codes, answer times and expiry display.
#[allow(clippy::disallowed_methods)] // the one wall-clock read of this binary
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let file = StateFile::locate(cli.state)?;
    match cli.command {
        Command::Activate {
            url,
            name,
            ca,
            algorithm,
        } => {
            let options = commands::activate::Options {
                url,
                name,
                ca,
                algorithm: algorithm.into(),
            };
            commands::activate::run(&file, options).await
        }
        Command::List => {
            commands::list::run(file.path(), &file.load()?);
            Ok(())
        }
        Command::Watch { account } => {
            let devices = commands::select_devices(&file.load()?, account.as_deref())?;
            commands::watch::run(&devices).await
        }
        Command::Pending {
            json,
            wait,
            account,
        } => {
            let devices = commands::select_devices(&file.load()?, account.as_deref())?;
            commands::pending::run(&devices, Duration::from_secs(wait), json).await
        }
        Command::Answer {
            txid,
            decision,
            number,
            wait,
            account,
        } => {
            let devices = commands::select_devices(&file.load()?, account.as_deref())?;
            let wait = Duration::from_secs(wait);
            commands::answer::run(&devices, &txid, decision.into(), number.as_deref(), wait).await
        }
        Command::Code { filter } => {
            commands::totp::code(&file.load()?, filter.as_deref(), unix_now())
        }
        Command::ImportTotp { uri } => commands::totp::import(&file, &uri),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ward-authenticator: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` puts the whole chain of causes on one line.
            eprintln!(
                "ward-authenticator: {}",
                commands::sanitize(&format!("{e:#}"))
            );
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_consistent_and_parses_the_documented_forms() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "ward-authenticator",
            "answer",
            "TX1",
            "approve",
            "--number",
            "42",
            "--state",
            "/tmp/s.json",
        ])
        .unwrap();
        assert_eq!(
            cli.state.as_deref(),
            Some(std::path::Path::new("/tmp/s.json"))
        );
        assert!(matches!(
            cli.command,
            Command::Answer { decision: DecisionArg::Approve, number: Some(ref n), wait: 10, .. } if n == "42"
        ));
        let cli = Cli::try_parse_from(["x", "pending", "--json", "--wait", "3"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Pending {
                json: true,
                wait: 3,
                account: None
            }
        ));
        let cli = Cli::try_parse_from([
            "x",
            "activate",
            "https://h/device/v1/activate?code=c",
            "--algorithm",
            "p256",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::Activate {
                algorithm: AlgorithmArg::P256,
                ..
            }
        ));
        assert!(Cli::try_parse_from(["x", "answer", "TX1", "maybe"]).is_err());
        assert!(Cli::try_parse_from(["x", "pending", "--wait", "86401"]).is_err());
    }

    #[test]
    fn clock_reads_a_plausible_time() {
        assert!(unix_now() > 1_600_000_000);
    }
}
