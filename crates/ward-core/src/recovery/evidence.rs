//! Evidence categories and the evidence record a recovery case accepts.
//!
//! What counts towards recovery is a closed set of *categories* (recovery spec §5.2). Things that
//! are not
//! evidence at all — a helpdesk agent's judgement, an SMS or voice code, answers to knowledge
//! questions, HR data alone — have no variant here, so no configuration, verifier or caller can
//! make them count: they are unrepresentable, not merely rejected.

use serde::{Deserialize, Serialize};

/// An independent category of recovery evidence (recovery spec §5.2).
///
/// `A` (a surviving phishing-resistant authenticator) is absent on purpose: someone who still has
/// one is not recovering, they add an authenticator (recovery spec §4.2). `T` (time) is absent too:
/// cooling
/// is a consequence of a satisfied policy, never an input that could help satisfy one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// P-code: one of the account's saved recovery codes (at most one counts per case).
    RecoveryCode,
    /// P-mail: a one-time code sent to the account's verified recovery e-mail (valid ≤ 30 min).
    EmailCode,
    /// S: approvals by people in the account's approver set. Only [`super::Approval`] records
    /// produce it; an [`Evidence`] item of this category is ignored.
    Approvals,
    /// D: a cryptographically verified identity document bound to the account. Not collectable yet.
    Document,
    /// V: verification of the person (attended video against the chip portrait, or an external
    /// identity-verification result). Not collectable yet.
    PersonVerification,
    /// K: a surviving single factor such as a password. Ward holds no passwords, so never today.
    SurvivingFactor,
}

impl Category {
    /// Every category, in the spec's order.
    pub const ALL: [Self; 6] = [
        Self::RecoveryCode,
        Self::EmailCode,
        Self::Approvals,
        Self::Document,
        Self::PersonVerification,
        Self::SurvivingFactor,
    ];

    /// Whether Ward can collect this category today.
    ///
    /// This is the single switch a new verifier flips: when the document verifiers land
    /// (`ward-evidence`), `Document` and `PersonVerification` become collectable and the rows of
    /// the level table that need them become reachable, with no change to the case machinery.
    pub const fn is_collectable(self) -> bool {
        matches!(self, Self::RecoveryCode | Self::EmailCode | Self::Approvals)
    }

    /// The spec's short code (`P-code`, `S`, …), used in row ids and messages.
    pub const fn code(self) -> &'static str {
        match self {
            Self::RecoveryCode => "P-code",
            Self::EmailCode => "P-mail",
            Self::Approvals => "S",
            Self::Document => "D",
            Self::PersonVerification => "V",
            Self::SurvivingFactor => "K",
        }
    }
}

/// One item of evidence the server verified and accepted into a case.
///
/// # Security
/// Holds no evidence content: `verdict_digest` is a keyed digest of the verifier's verdict for
/// audit correlation (recovery spec §5.7), never a code, a document number or a portrait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    pub category: Category,
    /// The verifier that produced it, e.g. `recovery-code/argon2id/v1`.
    pub verifier: String,
    pub verdict_digest: String,
    /// For `PersonVerification`: the session was attended by an agent from the security pool
    /// (required at R3). Always `false` for other categories.
    pub attended: bool,
    pub at_ms: i64,
}

/// What a verifier reports for a presentation it accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub verdict_digest: String,
    pub attended: bool,
}

/// A verifier of one category of evidence, bound to a challenge the server chose for the case.
///
/// Recovery and e-mail codes are verified by the service against the store (an atomic consume),
/// so they do not implement this; the pure verifiers that will come with `ward-evidence` —
/// `eMRTD` passive + active authentication, mdoc/PID over `OpenID4VP`, SD-JWT VC, signed
/// external identity-verification results — do. Whatever produced it, an accepted verdict enters a
/// case as
/// `Command::AddEvidence` with the verifier's [`category`](Self::category) and
/// [`id`](Self::id); the case and the policy never look inside a presentation.
pub trait EvidenceVerifier {
    /// The server-chosen challenge the presentation must be bound to (nonce, transcript, …).
    type Challenge;
    /// What the user presented (a chip response, a VP token, …), parsed but not trusted.
    type Presentation;
    /// Why a presentation was refused, for the audit log only.
    type Rejection;

    /// A stable id recorded with every verdict.
    fn id(&self) -> &'static str;

    /// The one category this verifier can produce.
    fn category(&self) -> Category;

    /// Verifies a presentation against the challenge and the configured trust anchors.
    fn verify(
        &self,
        challenge: &Self::Challenge,
        presentation: &Self::Presentation,
        now_ms: i64,
    ) -> Result<Verdict, Self::Rejection>;
}
