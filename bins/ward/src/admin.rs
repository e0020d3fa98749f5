//! Administration subcommands. Each goes through the core service, so every change is audited.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Subcommand, ValueEnum};
use serde_json::json;
use ward_core::clock::{Clock, SystemClock};
use ward_core::model::{Actor, IntegrationKind, OrgId, User, UserStatus};
use ward_core::policy::{ApiPushMode, NewUsers, PromptPolicy};
use ward_core::service::Ward;
use ward_core::totp::Algorithm;
use ward_server::config::Config;

use crate::Output;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KindArg {
    /// Duo Auth API v2.
    AuthApi,
    /// Duo Web SDK v4: the hosted prompt (prints a client ID and client secret).
    WebSdk,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum NewUsersArg {
    /// Users without a factor set up a passkey inside the prompt.
    Enrol,
    /// Users without a factor are denied.
    Deny,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PushModeArg {
    /// Verified Push: the application shows a number the user types on the device.
    Verified,
    /// Push with context, no number.
    Plain,
    /// No push through the Auth API (use the hosted prompt).
    Refuse,
}

#[derive(Debug, Subcommand)]
pub enum IntegrationCmd {
    /// Creates an integration and prints its keys (the secret key is shown once).
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        kind: KindArg,
        /// Push for this integration's Auth API calls (default: the server's [push] setting).
        #[arg(long, value_enum)]
        push_mode: Option<PushModeArg>,
        /// Web SDK: accept only passkeys and security keys.
        #[arg(long)]
        require_phishing_resistant: bool,
        /// Web SDK: do not offer push.
        #[arg(long)]
        no_push: bool,
        /// Web SDK: do not accept codes from authenticator apps.
        #[arg(long)]
        no_passcodes: bool,
        /// Web SDK: what happens to users who have no factor yet.
        #[arg(long, value_enum, default_value = "enrol")]
        new_users: NewUsersArg,
        /// Web SDK: an allowed redirect URI (repeat for several; none: any https URL).
        #[arg(long = "redirect-uri", value_name = "URL")]
        redirect_uris: Vec<String>,
        #[command(flatten)]
        out: Output,
    },
    /// Lists integrations.
    List {
        #[command(flatten)]
        out: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Creates a user.
    Create {
        username: String,
        #[arg(long)]
        email: Option<String>,
        #[command(flatten)]
        out: Output,
    },
    /// Lists users.
    List {
        #[command(flatten)]
        out: Output,
    },
    /// Disables a user: every authentication is denied.
    Disable { username: String },
    /// Enables a disabled user.
    Enable { username: String },
    /// Lifts the freeze a user's "this wasn't me" report put on their factor changes.
    Unfreeze { username: String },
    /// Puts a user in a factor-policy group (`[factor_policy.groups.NAME]`), or back in the
    /// default group with `--default`.
    Group {
        username: String,
        /// The group's name.
        #[arg(required_unless_present = "default")]
        group: Option<String>,
        /// Use the default policy.
        #[arg(long, conflicts_with = "group")]
        default: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AlgorithmArg {
    Sha1,
    Sha256,
    Sha512,
}

#[derive(Debug, Subcommand)]
pub enum TotpCmd {
    /// Adds a TOTP authenticator and prints its otpauth:// URI and a QR code.
    Add {
        username: String,
        /// Base32 secret (default: a new random 160-bit secret).
        #[arg(long)]
        secret: Option<String>,
        #[arg(long, value_enum, default_value = "sha1")]
        algorithm: AlgorithmArg,
        /// Code length: 6 or 8.
        #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(6..=8))]
        digits: u32,
        #[command(flatten)]
        out: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeviceCmd {
    /// Issues a one-time link (and QR code) that activates a push authenticator for a user.
    ActivateLink {
        username: String,
        #[command(flatten)]
        out: Output,
    },
    /// Lists a user's push authenticators.
    List {
        username: String,
        #[command(flatten)]
        out: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Checks every audit chain (with --org, that organisation's); exits non-zero at the first
    /// bad record.
    Verify,
    /// Writes every event (with --org, that organisation's) as JSON lines to standard output.
    Export,
    /// Lists every action the audit log records, with what it records.
    Actions {
        /// Writes the reference page (docs/audit-actions.md) instead of a plain list.
        #[arg(long)]
        markdown: bool,
    },
}

async fn open(config: &Config) -> anyhow::Result<Arc<Ward>> {
    Ok(ward_server::bootstrap::open(config).await?)
}

fn now() -> chrono::DateTime<chrono::Utc> {
    SystemClock.now()
}

pub async fn integration(
    config: &Config,
    org: Option<&str>,
    cmd: IntegrationCmd,
) -> anyhow::Result<ExitCode> {
    let ward = open(config).await?;
    let org = &ward.admin().resolve_org(org).await?;
    match cmd {
        IntegrationCmd::Create {
            name,
            kind: KindArg::WebSdk,
            require_phishing_resistant,
            no_push,
            no_passcodes,
            new_users,
            redirect_uris,
            out,
            ..
        } => {
            let policy = PromptPolicy {
                require_phishing_resistant,
                push: !no_push,
                passcodes: !no_passcodes,
                new_users: match new_users {
                    NewUsersArg::Enrol => NewUsers::Enrol,
                    NewUsersArg::Deny => NewUsers::Deny,
                },
                redirect_uris,
            };
            create_web_sdk(config, &ward, org, &name, policy, out).await?;
        }
        IntegrationCmd::Create {
            name,
            kind: KindArg::AuthApi,
            push_mode,
            out,
            ..
        } => {
            let push_mode = push_mode.map(|m| match m {
                PushModeArg::Verified => ApiPushMode::Verified,
                PushModeArg::Plain => ApiPushMode::Plain,
                PushModeArg::Refuse => ApiPushMode::Refuse,
            });
            let (integration, skey) = ward
                .admin()
                .create_integration(
                    org,
                    &Actor::Cli,
                    &name,
                    IntegrationKind::AuthApi,
                    push_mode,
                    now(),
                )
                .await?;
            let doc = json!({
                "ikey": integration.ikey,
                "skey": skey.as_str(),
                "api_host": config.public_host,
                "name": integration.name,
                "kind": integration.kind.as_str(),
                "push_mode": integration.push_mode.map(ApiPushMode::as_str),
            });
            if out.json {
                println!("{doc}");
            } else {
                println!("integration key (ikey): {}", integration.ikey);
                println!("secret key (skey):      {}", skey.as_str());
                println!("API host:               {}", config.public_host);
                println!(
                    "The secret key is shown only now; store it in the application's configuration."
                );
            }
        }
        IntegrationCmd::List { out } => {
            let list = ward.admin().list_integrations(org).await?;
            if out.json {
                let docs: Vec<_> = list
                    .iter()
                    .map(|i| json!({"ikey": i.ikey, "name": i.name, "kind": i.kind.as_str(), "created_ms": i.created_ms}))
                    .collect();
                println!("{}", serde_json::Value::Array(docs));
            } else {
                for i in list {
                    println!("{}  {:<10} {}", i.ikey, i.kind.as_str(), i.name);
                }
            }
        }
    }
    ward.store().close().await;
    Ok(ExitCode::SUCCESS)
}

/// `ward integration create --kind web-sdk`: prints the client ID and secret (shown once).
async fn create_web_sdk(
    config: &Config,
    ward: &Ward,
    org: &OrgId,
    name: &str,
    policy: PromptPolicy,
    out: Output,
) -> anyhow::Result<()> {
    let (integration, secret) = ward
        .admin()
        .create_web_sdk_integration(org, &Actor::Cli, name, &policy, now())
        .await?;
    let doc = json!({
        "client_id": integration.ikey,
        "client_secret": secret.as_str(),
        "api_host": config.public_host,
        "name": integration.name,
        "kind": integration.kind.as_str(),
        "prompt_policy": policy,
    });
    if out.json {
        println!("{doc}");
    } else {
        println!("client ID:     {}", integration.ikey);
        println!("client secret: {}", secret.as_str());
        println!("API host:      {}", config.public_host);
        println!(
            "The client secret is shown only now; store it in the application's configuration."
        );
    }
    Ok(())
}

fn user_json(u: &User) -> serde_json::Value {
    json!({
        "user_id": u.id,
        "username": u.username,
        "email": u.email,
        "status": u.status.as_str(),
        "created_ms": u.created_ms,
        "locked_until_ms": u.locked_until_ms,
        "last_login_ms": u.last_login_ms,
    })
}

pub async fn user(config: &Config, org: Option<&str>, cmd: UserCmd) -> anyhow::Result<ExitCode> {
    let ward = open(config).await?;
    let org = &ward.admin().resolve_org(org).await?;
    match cmd {
        UserCmd::Create {
            username,
            email,
            out,
        } => {
            let user = ward
                .admin()
                .create_user(org, &Actor::Cli, &username, email.as_deref(), now())
                .await?;
            if out.json {
                println!("{}", user_json(&user));
            } else {
                println!("created user {} ({})", user.username, user.id);
            }
        }
        UserCmd::List { out } => {
            let mut all = Vec::new();
            let mut offset = 0;
            loop {
                let page = ward.admin().list_users(org, 500, offset).await?;
                let n = page.len();
                all.extend(page);
                if n < 500 {
                    break;
                }
                offset += 500;
            }
            if out.json {
                println!(
                    "{}",
                    serde_json::Value::Array(all.iter().map(user_json).collect())
                );
            } else {
                for u in all {
                    println!("{}  {:<8}  {}", u.id, u.status.as_str(), u.username);
                }
            }
        }
        UserCmd::Disable { username } => {
            ward.admin()
                .set_user_status(org, &Actor::Cli, &username, UserStatus::Disabled, now())
                .await?;
            println!("disabled {username}");
        }
        UserCmd::Enable { username } => {
            ward.admin()
                .set_user_status(org, &Actor::Cli, &username, UserStatus::Active, now())
                .await?;
            println!("enabled {username}");
        }
        UserCmd::Unfreeze { username } => {
            ward.portal()
                .unfreeze_user(org, &Actor::Cli, &username, now())
                .await?;
            println!("unfroze factor changes of {username}");
        }
        UserCmd::Group {
            username, group, ..
        } => {
            ward.portal()
                .set_policy_group(org, &Actor::Cli, &username, group.as_deref(), now())
                .await?;
            println!(
                "{username} now follows the {} factor policy",
                group.as_deref().unwrap_or("default")
            );
        }
    }
    ward.store().close().await;
    Ok(ExitCode::SUCCESS)
}

pub async fn totp(config: &Config, org: Option<&str>, cmd: TotpCmd) -> anyhow::Result<ExitCode> {
    let ward = open(config).await?;
    let org = &ward.admin().resolve_org(org).await?;
    let TotpCmd::Add {
        username,
        secret,
        algorithm,
        digits,
        out,
    } = cmd;
    let algorithm = match algorithm {
        AlgorithmArg::Sha1 => Algorithm::Sha1,
        AlgorithmArg::Sha256 => Algorithm::Sha256,
        AlgorithmArg::Sha512 => Algorithm::Sha512,
    };
    let enrolment = ward
        .admin()
        .add_totp(
            org,
            &Actor::Cli,
            &username,
            secret.as_deref(),
            algorithm,
            digits,
            now(),
        )
        .await?;
    ward.store().close().await;
    if out.json {
        println!(
            "{}",
            json!({"otpauth_uri": enrolment.otpauth_uri.as_str(), "totp_id": enrolment.authenticator.id})
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", enrolment.otpauth_uri.as_str());
    print_qr(&enrolment.otpauth_uri);
    Ok(ExitCode::SUCCESS)
}

fn print_qr(text: &str) {
    match qrcode::QrCode::new(text.as_bytes()) {
        Ok(code) => {
            let art = code
                .render::<qrcode::render::unicode::Dense1x2>()
                .dark_color(qrcode::render::unicode::Dense1x2::Light)
                .light_color(qrcode::render::unicode::Dense1x2::Dark)
                .build();
            println!("{art}");
        }
        Err(e) => eprintln!("warning: cannot draw a QR code: {e}"),
    }
}

/// The activation link: the public host, the one-time code, and — with Ward's own CA — the
/// CA's pin, so the device trusts this server and nothing else.
fn activation_url(config: &Config, code: &str) -> anyhow::Result<String> {
    let mut url = format!(
        "https://{}/device/v1/activate?code={code}",
        config.public_host
    );
    let ca = config.data_dir.join("tls").join("ca.pem");
    if config.tls == ward_server::config::TlsMode::Auto && ca.exists() {
        let pin = ward_server::tls::spki_pin(&ca)?;
        url.push_str("&pin=");
        url.push_str(&pin);
    }
    Ok(url)
}

pub async fn device(
    config: &Config,
    org: Option<&str>,
    cmd: DeviceCmd,
) -> anyhow::Result<ExitCode> {
    let ward = open(config).await?;
    let org = &ward.admin().resolve_org(org).await?;
    match cmd {
        DeviceCmd::ActivateLink { username, out } => {
            let issued = ward
                .devices()
                .activation_code(org, &Actor::Cli, &username, now())
                .await?;
            let url = activation_url(config, &issued.code)?;
            if out.json {
                println!(
                    "{}",
                    json!({"activation_url": url, "expires_ms": issued.expires_ms})
                );
            } else {
                println!("{url}");
                print_qr(&url);
                println!(
                    "Valid once, for {} minutes.",
                    config.push.activation_ttl_seconds / 60
                );
            }
        }
        DeviceCmd::List { username, out } => {
            let devices = ward.devices().list(org, &username).await?;
            if out.json {
                let docs: Vec<_> = devices
                    .iter()
                    .map(|d| json!({"device_id": d.id, "name": d.name, "platform": d.platform, "created_ms": d.created_ms}))
                    .collect();
                println!("{}", serde_json::Value::Array(docs));
            } else {
                for d in devices {
                    println!("{}  {:<10} {}", d.id, d.platform, d.name);
                }
            }
        }
    }
    ward.store().close().await;
    Ok(ExitCode::SUCCESS)
}

pub async fn audit(config: &Config, org: Option<&str>, cmd: AuditCmd) -> anyhow::Result<ExitCode> {
    if let AuditCmd::Actions { markdown } = cmd {
        return audit_actions(markdown);
    }
    let ward = open(config).await?;
    let store = Arc::clone(ward.store());
    let code = match cmd {
        AuditCmd::Verify => {
            // With --org, that organisation's chains; without, every chain of the deployment.
            let (report, scope) = match org {
                Some(name) => {
                    let org = ward.admin().resolve_org(Some(name)).await?;
                    let report = ward_core::audit::verify_org(store.as_ref(), &org).await?;
                    (report, format!("audit log of organisation {name}"))
                }
                None => (
                    ward_core::audit::verify(store.as_ref()).await?,
                    "audit log".to_owned(),
                ),
            };
            match report {
                Ok(report) => {
                    println!(
                        "{scope} intact: {} events in {} chains",
                        report.events, report.chains
                    );
                    ExitCode::SUCCESS
                }
                Err(bad) => {
                    eprintln!("{scope} damaged: {bad}");
                    ExitCode::FAILURE
                }
            }
        }
        AuditCmd::Export => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            match org {
                Some(name) => {
                    let org = ward.admin().resolve_org(Some(name)).await?;
                    ward_core::audit::export_org(store.as_ref(), &org, &mut lock).await?
                }
                None => ward_core::audit::export(store.as_ref(), &mut lock).await?,
            };
            lock.flush()?;
            ExitCode::SUCCESS
        }
        AuditCmd::Actions { .. } => ExitCode::SUCCESS,
    };
    store.close().await;
    Ok(code)
}

/// Prints the audit action catalogue; needs no database.
fn audit_actions(markdown: bool) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    if markdown {
        lock.write_all(ward_core::audit::reference_markdown().as_bytes())?;
    } else {
        for action in ward_core::audit::Action::ALL {
            writeln!(lock, "{:<28} {}", action.as_str(), action.describe())?;
        }
    }
    lock.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Parses a duration like `24h`, `30m`, `7d` or `3600s` (a bare number is seconds).
fn parse_ttl(text: &str) -> anyhow::Result<chrono::TimeDelta> {
    let text = text.trim();
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: i64 = digits
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid duration {text:?}: use e.g. 24h, 30m or 7d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => anyhow::bail!("invalid duration {text:?}: use e.g. 24h, 30m or 7d"),
    };
    Ok(chrono::TimeDelta::seconds(secs))
}

/// `ward enrol-link USERNAME`: a single-use link to the portal for a user's first sign-in.
pub async fn enrol_link(
    config: &Config,
    org: Option<&str>,
    username: &str,
    ttl: &str,
    out: Output,
) -> anyhow::Result<ExitCode> {
    let ttl = parse_ttl(ttl)?;
    let ward = open(config).await?;
    let org = &ward.admin().resolve_org(org).await?;
    let link = ward
        .portal()
        .create_enrol_link(org, &Actor::Cli, username, ttl, now())
        .await?;
    ward.store().close().await;
    let expires = chrono::DateTime::from_timestamp_millis(link.expires_ms)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default();
    if out.json {
        println!(
            "{}",
            serde_json::json!({ "url": link.url, "expires": expires, "username": username })
        );
    } else {
        println!("{}", link.url);
        eprintln!("single use; expires {expires}; send it to {username} over a channel you trust");
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// Administers Ward.
    Admin,
    /// Helpdesk agent: the console at /helpdesk (looks up, opens cases, verifies callers).
    Helpdesk,
    /// May be named in users' recovery approver sets.
    Approver,
    /// The security pool (privileged accounts, the circuit breaker).
    Security,
}

impl RoleArg {
    fn role(self) -> ward_core::model::Role {
        use ward_core::model::Role;
        match self {
            Self::Admin => Role::Admin,
            Self::Helpdesk => Role::Helpdesk,
            Self::Approver => Role::Approver,
            Self::Security => Role::Security,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum RoleCmd {
    /// Grants a role (audited).
    Grant { username: String, role: RoleArg },
    /// Revokes a role (audited).
    Revoke { username: String, role: RoleArg },
}

#[derive(Debug, Subcommand)]
pub enum RecoveryCmd {
    /// Adds someone who may approve USERNAME's recovery (they need the approver role).
    AddApprover { username: String, approver: String },
}

pub async fn role(config: &Config, org: Option<&str>, cmd: RoleCmd) -> anyhow::Result<ExitCode> {
    let ward = open(config).await?;
    let org = &ward.admin().resolve_org(org).await?;
    match cmd {
        RoleCmd::Grant { username, role } => {
            ward.admin()
                .grant_role(org, &Actor::Cli, &username, role.role(), now())
                .await?;
            println!("granted {} to {username}", role.role().as_str());
        }
        RoleCmd::Revoke { username, role } => {
            ward.admin()
                .revoke_role(org, &Actor::Cli, &username, role.role(), now())
                .await?;
            println!("revoked {} from {username}", role.role().as_str());
        }
    }
    ward.store().close().await;
    Ok(ExitCode::SUCCESS)
}

pub async fn recovery(
    config: &Config,
    org: Option<&str>,
    cmd: RecoveryCmd,
) -> anyhow::Result<ExitCode> {
    let ward = open(config).await?;
    let org = &ward.admin().resolve_org(org).await?;
    match cmd {
        RecoveryCmd::AddApprover { username, approver } => {
            ward.admin()
                .add_recovery_approver(org, &Actor::Cli, &username, &approver, now())
                .await?;
            println!("{approver} may now approve a recovery of {username}");
        }
    }
    ward.store().close().await;
    Ok(ExitCode::SUCCESS)
}
