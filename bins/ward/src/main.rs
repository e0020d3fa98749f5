//! `ward`: the Ward server and its administration commands, in one binary.

mod admin;
mod org;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use ward_server::config::{Config, Overrides};

/// Ward: self-hosted multi-factor authentication, Duo-compatible, without SMS or voice.
#[derive(Debug, Parser)]
#[command(name = "ward", version, about)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, global = true, env = "WARD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (database, master key, TLS files). Default: ./ward-data
    #[arg(long, global = true, env = "WARD_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The organisation a command acts on, by name or id (default: the only organisation).
    #[arg(long, global = true, env = "WARD_ORG", value_name = "NAME")]
    org: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the server.
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8443 (port 0 picks a free port).
        #[arg(long, env = "WARD_LISTEN", value_name = "ADDR")]
        listen: Option<String>,
        /// Speak plain HTTP (only behind a TLS-terminating proxy).
        #[arg(long)]
        plain_http: bool,
    },
    /// Creates or updates the database schema, then exits.
    Migrate,
    /// Organisations: the tenants users, integrations and audit chains belong to.
    #[command(subcommand)]
    Org(org::OrgCmd),
    /// Applications allowed to call Ward.
    #[command(subcommand)]
    Integration(admin::IntegrationCmd),
    /// User accounts.
    #[command(subcommand)]
    User(admin::UserCmd),
    /// TOTP authenticators.
    #[command(subcommand)]
    Totp(admin::TotpCmd),
    /// Push authenticators (devices).
    #[command(subcommand)]
    Device(admin::DeviceCmd),
    /// The audit log.
    #[command(subcommand)]
    Audit(admin::AuditCmd),
    /// Roles: admin, helpdesk, approver, security.
    #[command(subcommand)]
    Role(admin::RoleCmd),
    /// Account recovery: approver sets.
    #[command(subcommand)]
    Recovery(admin::RecoveryCmd),
    /// Prints a single-use link to the self-service portal, for a user's first sign-in.
    EnrolLink {
        username: String,
        /// How long the link stays valid: e.g. 30m, 24h, 7d (at most 30 days).
        #[arg(long, default_value = "24h")]
        ttl: String,
        #[command(flatten)]
        out: Output,
    },
}

/// Output format shared by admin commands.
#[derive(Debug, Args, Clone, Copy)]
struct Output {
    /// Print machine-readable JSON.
    #[arg(long)]
    json: bool,
}

fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let serving = matches!(cli.command, Command::Serve { .. });
    init_tracing(if serving { "info" } else { "warn" });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes as one line: a cause whose text the message already carries is
/// not repeated, and the OS error numbers are left out.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = without_os_error_code(&cause.to_string());
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// `No such file or directory (os error 2)` → `No such file or directory`.
fn without_os_error_code(text: &str) -> String {
    let mut out = text.to_owned();
    while let Some(start) = out.find(" (os error ") {
        let Some(len) = out.get(start..).and_then(|rest| rest.find(')')) else {
            break;
        };
        out.replace_range(start..=start + len, "");
    }
    out
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut overrides = Overrides {
        config_file: cli.config,
        data_dir: cli.data_dir,
        ..Overrides::default()
    };
    if let Command::Serve { listen, plain_http } = &cli.command {
        overrides.listen.clone_from(listen);
        overrides.plain_http = *plain_http;
    }
    let config = Config::load(&overrides)?;
    let org = cli.org.as_deref();
    match cli.command {
        Command::Serve { .. } => {
            ward_server::serve::run(config, ward_server::serve::shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            let ward = ward_server::bootstrap::open(&config).await?;
            ward.store().close().await;
            println!("database is up to date");
            Ok(ExitCode::SUCCESS)
        }
        Command::Org(cmd) => org::org(&config, cmd).await,
        Command::Integration(cmd) => admin::integration(&config, org, cmd).await,
        Command::User(cmd) => admin::user(&config, org, cmd).await,
        Command::Totp(cmd) => admin::totp(&config, org, cmd).await,
        Command::Device(cmd) => admin::device(&config, org, cmd).await,
        Command::Audit(cmd) => admin::audit(&config, org, cmd).await,
        Command::Role(cmd) => admin::role(&config, org, cmd).await,
        Command::Recovery(cmd) => admin::recovery(&config, org, cmd).await,
        Command::EnrolLink { username, ttl, out } => {
            admin::enrol_link(&config, org, &username, &ttl, out).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_errors_name_their_cause_once() {
        let io = std::io::Error::from_raw_os_error(2);
        let config = ward_server::config::ConfigError::Read {
            path: "/etc/ward.toml".into(),
            source: io,
        };
        let line = one_line(&anyhow::Error::new(config));
        assert_eq!(
            line,
            "cannot read config file /etc/ward.toml: No such file or directory"
        );
    }
}
