//! Software passkeys and security keys (the soft authenticators of `webauthn-authenticator-rs`),
//! driven through the same options and answer JSON a browser carries between Ward's
//! `*_start` and `*_finish` calls.

use std::collections::BTreeMap;

use crypto_glue::traits::{EncodePem as _, LineEndingPem};
use serde_json::{Value, json};
use webauthn_authenticator_rs::AuthenticatorBackend;
use webauthn_authenticator_rs::WebauthnAuthenticator as _;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::softtoken::SoftToken;
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse, Url};

/// The origin the authenticators answer for (the portal of the tests).
pub const ORIGIN: &str = "https://localhost:8443";

/// A discoverable authenticator, driven the way a browser drives one: it takes Ward's options
/// JSON and returns the JSON that Ward's `*_finish` methods take.
///
/// The soft authenticators of webauthn-authenticator-rs 0.6.2 refuse `requireResidentKey`
/// (`NotSupported`), cannot answer a request without `allowCredentials`, and never return a
/// user handle. So this wrapper checks that Ward asked for a resident key, then lowers the
/// request to a non-resident one for the soft authenticator; it remembers the user handle of
/// each credential it made, answers a usernameless request by offering its own credentials,
/// and adds the user handle to the answer. None of that is signed data: Ward verifies the same
/// signatures, challenge, origin and flags as from a real passkey.
pub struct Authr<A> {
    inner: A,
    origin: Url,
    /// Credential id → user handle (both base64url, as in the JSON).
    resident: BTreeMap<String, String>,
    /// Plays a client that lowers `userVerification` to `discouraged`: the authenticator
    /// then signs without the UV flag.
    pub skip_uv: bool,
}

impl<A> std::fmt::Debug for Authr<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authr")
            .field("origin", &self.origin.as_str())
            .field("credentials", &self.resident.len())
            .field("skip_uv", &self.skip_uv)
            .finish_non_exhaustive()
    }
}

impl<A: AuthenticatorBackend> Authr<A> {
    /// Drives `inner` for [`ORIGIN`].
    pub fn new(inner: A) -> Self {
        Self {
            inner,
            origin: Url::parse(ORIGIN).unwrap(),
            resident: BTreeMap::new(),
            skip_uv: false,
        }
    }

    /// Answers `navigator.credentials.create()`.
    pub fn register(&mut self, options: &Value) -> Result<Value, String> {
        let asked = &options["publicKey"]["authenticatorSelection"];
        assert_eq!(asked["residentKey"], "required", "{options}");
        assert_eq!(asked["requireResidentKey"], true, "{options}");
        assert_eq!(asked["userVerification"], "required", "{options}");
        let mut options = options.clone();
        let selection = &mut options["publicKey"]["authenticatorSelection"];
        selection["residentKey"] = "discouraged".into();
        selection["requireResidentKey"] = false.into();
        if self.skip_uv {
            selection["userVerification"] = "discouraged".into();
        }
        let handle = options["publicKey"]["user"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let ccr: CreationChallengeResponse = serde_json::from_value(options).unwrap();
        let answer = self
            .inner
            .do_registration(self.origin.clone(), ccr)
            .map_err(|e| format!("{e:?}"))?;
        let answer = serde_json::to_value(&answer).unwrap();
        let id = answer["rawId"].as_str().unwrap().to_owned();
        self.resident.insert(id, handle);
        Ok(answer)
    }

    /// Answers `navigator.credentials.get()`.
    pub fn authenticate(&mut self, options: &Value) -> Result<Value, String> {
        let mut options = options.clone();
        let public_key = &mut options["publicKey"];
        let usernameless = public_key["allowCredentials"]
            .as_array()
            .is_none_or(Vec::is_empty);
        if usernameless {
            public_key["allowCredentials"] = self
                .resident
                .keys()
                .map(|id| json!({"type": "public-key", "id": id}))
                .collect();
        }
        if self.skip_uv {
            public_key["userVerification"] = "discouraged".into();
        }
        let rcr: RequestChallengeResponse = serde_json::from_value(options).unwrap();
        let answer = self
            .inner
            .do_authentication(self.origin.clone(), rcr)
            .map_err(|e| format!("{e:?}"))?;
        let mut answer = serde_json::to_value(&answer).unwrap();
        let id = answer["rawId"].as_str().unwrap().to_owned();
        if let Some(handle) = self.resident.get(&id) {
            answer["response"]["userHandle"] = handle.clone().into();
        }
        Ok(answer)
    }
}

impl Authr<SoftToken> {
    /// A new security key, and its vendor's attestation root as PEM.
    pub fn security_key() -> (Self, String) {
        let (token, ca) = SoftToken::new(true).unwrap();
        (Self::new(token), ca.to_pem(LineEndingPem::LF).unwrap())
    }

    /// A copy of the key as it is now (private keys and signature counter): a clone.
    #[must_use]
    pub fn clone_key(&self) -> Self {
        let inner = SoftToken::from_cbor(&self.inner.to_cbor().unwrap()).unwrap();
        Self {
            inner,
            origin: self.origin.clone(),
            resident: self.resident.clone(),
            skip_uv: self.skip_uv,
        }
    }
}

/// A passkey that performs user verification.
pub fn passkey() -> Authr<SoftPasskey> {
    Authr::new(SoftPasskey::new(true))
}
