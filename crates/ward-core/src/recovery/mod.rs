//! Helpdesk-proof MFA recovery, the pure core (recovery spec §4–§5,
//! docs/specs/recovery-and-identity-evidence.md).
//!
//! - [`config`]: the deployment's durations and limits ([`RecoveryPolicy`]).
//! - [`policy`]: which combinations of evidence categories satisfy a recovery level, and the
//!   cooling that follows ([`evaluate`]).
//! - [`case`]: the event-sourced recovery case and its [`fold`].
//! - [`decide`](mod@decide): the case's transitions, from a command to the events to append.
//!
//! Nothing here reads the clock, a store or the network, and nothing is async: the service
//! verifies evidence and approvals, reads the account's facts and `now`, and persists events.
//! Not depending on the service keeps every rule testable exhaustively.
//!
//! # Security
//! The helpdesk can open a case and flag fraud, never decide: agents cannot approve (the opener
//! is excluded), cancel, review, or receive the enrolment token, and cooling has no bypass.

pub mod approval;
pub mod case;
pub mod config;
pub mod decide;
pub mod evidence;
pub mod policy;

pub use approval::{Approval, ApprovalFault, ApprovalTally, ApproverFacts, Opener};
pub use case::{AccountFacts, Actor, CaseEvent, CaseState, CaseView, FoldError, fold};
pub use config::{BoundViolation, RecoveryPolicy};
pub use decide::{Command, OpenCase, Refusal, deadline, decide, open};
pub use evidence::{Category, Evidence, EvidenceVerifier, Verdict};
pub use policy::{Cooling, Decision, Level, Missing, Need, PolicyInput, ROWS, Row, evaluate};

#[cfg(test)]
mod case_tests;
#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;
