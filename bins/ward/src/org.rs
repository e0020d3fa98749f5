//! `ward org`: creating, listing, renaming, disabling and enabling organisations. Each change
//! goes through the core service, so it is audited in the organisation's own log.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;
use ward_core::clock::{Clock, SystemClock};
use ward_core::model::{Actor, Org};
use ward_server::config::Config;

use crate::Output;

#[derive(Debug, Subcommand)]
pub enum OrgCmd {
    /// Creates an organisation.
    Create {
        name: String,
        #[command(flatten)]
        out: Output,
    },
    /// Lists every organisation, oldest first.
    List {
        #[command(flatten)]
        out: Output,
    },
    /// Renames an organisation (named by its name or id).
    Rename {
        name: String,
        new_name: String,
        #[command(flatten)]
        out: Output,
    },
    /// Disables an organisation: every login in it is refused; its data is kept.
    Disable {
        name: String,
        #[command(flatten)]
        out: Output,
    },
    /// Enables a disabled organisation.
    Enable {
        name: String,
        #[command(flatten)]
        out: Output,
    },
}

fn org_json(org: &Org) -> serde_json::Value {
    json!({
        "org_id": org.id.as_str(),
        "name": org.name,
        "created_ms": org.created_ms,
        "disabled_ms": org.disabled_ms,
    })
}

fn state(org: &Org) -> &'static str {
    if org.disabled_ms.is_some() {
        "disabled"
    } else {
        "enabled"
    }
}

/// Prints one organisation after a change.
fn print_one(org: &Org, out: Output, done: &str) {
    if out.json {
        println!("{}", org_json(org));
    } else {
        println!("{done} organisation {} ({})", org.name, org.id);
    }
}

pub async fn org(config: &Config, cmd: OrgCmd) -> anyhow::Result<ExitCode> {
    let ward = ward_server::bootstrap::open(config).await?;
    let now = SystemClock.now();
    match cmd {
        OrgCmd::Create { name, out } => {
            let org = ward.admin().create_org(&Actor::Cli, &name, now).await?;
            print_one(&org, out, "created");
        }
        OrgCmd::List { out } => {
            let orgs = ward.admin().list_orgs().await?;
            if out.json {
                let docs = orgs.iter().map(org_json).collect();
                println!("{}", serde_json::Value::Array(docs));
            } else {
                for org in orgs {
                    println!("{}  {:<8}  {}", org.id, state(&org), org.name);
                }
            }
        }
        OrgCmd::Rename {
            name,
            new_name,
            out,
        } => {
            let org = ward
                .admin()
                .rename_org(&Actor::Cli, &name, &new_name, now)
                .await?;
            print_one(&org, out, "renamed");
        }
        OrgCmd::Disable { name, out } => {
            let org = ward
                .admin()
                .set_org_disabled(&Actor::Cli, &name, true, now)
                .await?;
            print_one(&org, out, "disabled");
        }
        OrgCmd::Enable { name, out } => {
            let org = ward
                .admin()
                .set_org_disabled(&Actor::Cli, &name, false, now)
                .await?;
            print_one(&org, out, "enabled");
        }
    }
    ward.store().close().await;
    Ok(ExitCode::SUCCESS)
}
