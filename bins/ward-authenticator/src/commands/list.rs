//! `list`: the accounts held and the TOTP seeds (labels only; secrets are never printed).

use std::path::Path;

use super::{local_time, sanitize};
use crate::state::State;

pub fn run(path: &Path, state: &State) {
    println!("State file: {}", path.display());
    if state.accounts.is_empty() {
        println!("No push accounts.");
    } else {
        println!("Push accounts:");
    }
    for (i, a) in state.accounts.iter().enumerate() {
        println!(
            "  {}. {} on {}  device {}  {}  \"{}\"  activated {}  (TLS: {})",
            i + 1,
            sanitize(&a.username),
            a.server,
            sanitize(&a.device_id),
            a.algorithm.as_str(),
            sanitize(&a.name),
            local_time(a.activated),
            a.trust_label()
        );
    }
    if state.totp.is_empty() {
        println!("No TOTP seeds.");
    } else {
        println!("TOTP seeds:");
    }
    for seed in &state.totp {
        println!(
            "  {}  ({}, {} digits, {} s)",
            sanitize(&seed.label),
            seed.algorithm,
            seed.digits,
            seed.period
        );
    }
}
