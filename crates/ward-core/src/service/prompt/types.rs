//! What the prompt shows and answers: the checked request, the next step and the results of
//! each factor.

use serde::{Deserialize, Serialize};

use crate::gate::Method;

/// The query of `GET /oauth/v1/authorize`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub request: Option<String>,
    pub nonce: Option<String>,
}

/// A checked authorization request, carried sealed through the prompt.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PromptRequest {
    pub client_id: String,
    pub app_name: String,
    pub redirect_uri: String,
    pub state: String,
    pub nonce: Option<String>,
    pub username: String,
    /// `duo_code=` (true, the default) or `code=` in the redirect.
    pub duo_code_attribute: bool,
    pub user_ip: Option<String>,
    pub expires_ms: i64,
}

/// A factor the prompt offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptMethod {
    Passkey,
    Push,
    Passcode,
}

impl From<Method> for PromptMethod {
    fn from(method: Method) -> Self {
        match method {
            Method::Passkey => Self::Passkey,
            Method::Push => Self::Push,
            Method::Passcode => Self::Passcode,
        }
    }
}

impl PromptMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passkey => "passkey",
            Self::Push => "push",
            Self::Passcode => "passcode",
        }
    }

    /// The factor's name in `auth_context`, as Duo's authentication log names it.
    pub(super) fn duo_factor(self) -> &'static str {
        match self {
            Self::Passkey => "WebAuthn Credential",
            Self::Push => "Verified Duo Push",
            Self::Passcode => "Passcode",
        }
    }
}

/// Where the browser goes when the prompt is done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    pub redirect: String,
    pub allowed: bool,
}

/// What the prompt shows next.
#[derive(Clone, Debug)]
pub enum PromptNext {
    /// Offer these methods, in this order (the user's last method first).
    Choose(Vec<PromptMethod>),
    /// The user has no factor: set up a passkey here.
    Enrol,
    /// Nothing to ask: the user is denied (the application learns why from the result).
    Done(Completion),
}

/// A prompt ready to show.
#[derive(Clone, Debug)]
pub struct PromptView {
    pub request: PromptRequest,
    /// The sealed request, for the page's forms and calls.
    pub context: String,
    pub next: PromptNext,
}

/// A push started from the prompt.
#[derive(Clone, Debug)]
pub enum PromptPush {
    Started { txid: String, number: String },
    Done(Completion),
}

/// The result of a code typed into the prompt.
#[derive(Clone, Debug)]
pub enum PromptPasscode {
    Done(Completion),
    Wrong,
}
