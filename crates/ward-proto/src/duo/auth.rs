//! Auth API v2 response payloads (duo-protocol §3), the `response` member of an
//! [`envelope::Ok`](crate::duo::envelope::Ok).

use serde::{Deserialize, Serialize};

/// `GET /auth/v2/ping` and `GET /auth/v2/check`: the server's clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeResponse {
    /// Unix seconds.
    pub time: i64,
}

/// The outcome of `POST /auth/v2/preauth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PreauthResult {
    /// Enrolled: the user must complete 2FA with one of `devices`.
    Auth,
    /// Skip 2FA (bypass, policy, remembered device).
    Allow,
    /// Not allowed (locked out, disabled, policy).
    Deny,
    /// Not enrolled, and the new-user policy allows enrolment at `enroll_portal_url`.
    Enroll,
}

/// `POST /auth/v2/preauth`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreauthResponse {
    /// What the client should do next.
    pub result: PreauthResult,
    /// Human-readable status, always present (`"Account is active"` for `auth`).
    pub status_msg: String,
    /// The user's devices, for `auth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<Device>>,
    /// Where to enrol, for `enroll`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enroll_portal_url: Option<String>,
}

/// A device in a preauth response.
///
/// Phones carry `number`, `display_name` and `capabilities`; tokens only `device`, `type` and
/// `name`, so empty strings and lists are left out of the JSON, as the real service does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// The device id (`DP…` for phones, `DH…` for tokens).
    pub device: String,
    /// `phone` or `token`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The device's name.
    pub name: String,
    /// The name with the masked number, e.g. `iPhone (XXX-XXX-4788)`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    /// The masked phone number, e.g. `XXX-XXX-4788`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub number: String,
    /// A subset of `auto`, `push`, `sms`, `phone`, `mobile_otp`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
}

/// The outcome of an authentication, or `waiting` while it is in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthResult {
    /// Authenticated.
    Allow,
    /// Refused.
    Deny,
    /// Still in progress (`auth_status` only).
    Waiting,
}

/// Synchronous `POST /auth/v2/auth` and `GET /auth/v2/auth_status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthResponse {
    /// `allow`, `deny` or `waiting`; clients test these exact strings.
    pub result: AuthResult,
    /// Detail: `allow`, `bypass`, `deny`, `fraud`, `locked_out`, `timeout`, `push_failed`,
    /// `sent`, or in progress `pushed`, `calling`, `answered`.
    pub status: String,
    /// Human-readable status.
    pub status_msg: String,
    /// The transaction id, when one applies (verified push).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txid: Option<String>,
}

/// Asynchronous `POST /auth/v2/auth` (`async=1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsyncAuthResponse {
    /// The transaction id to poll with `auth_status`.
    pub txid: String,
    /// Verified Push (Ward): the number the application shows, which the user types on the
    /// device to approve. Absent when no number is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_push_code: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn preauth_auth_matches_the_real_service_shape() {
        let response = PreauthResponse {
            result: PreauthResult::Auth,
            status_msg: "Account is active".to_owned(),
            devices: Some(vec![
                Device {
                    device: "DP80Z4GVU82OT8O1BNJF".to_owned(),
                    type_: "phone".to_owned(),
                    name: "Marx iPhone 13".to_owned(),
                    display_name: "Marx iPhone 13 (XXX-XXX-4788)".to_owned(),
                    number: "XXX-XXX-4788".to_owned(),
                    capabilities: ["auto", "push", "sms", "mobile_otp"]
                        .map(str::to_owned)
                        .to_vec(),
                },
                Device {
                    device: "DHQOEFH4Q6KMAFU7Q8V4".to_owned(),
                    type_: "token".to_owned(),
                    name: "20361492".to_owned(),
                    display_name: String::new(),
                    number: String::new(),
                    capabilities: Vec::new(),
                },
            ]),
            enroll_portal_url: None,
        };
        let value = serde_json::to_value(&response).unwrap();
        assert_eq!(
            value,
            json!({"result": "auth", "status_msg": "Account is active", "devices": [
                {"device": "DP80Z4GVU82OT8O1BNJF", "type": "phone", "number": "XXX-XXX-4788",
                 "name": "Marx iPhone 13", "display_name": "Marx iPhone 13 (XXX-XXX-4788)",
                 "capabilities": ["auto", "push", "sms", "mobile_otp"]},
                {"device": "DHQOEFH4Q6KMAFU7Q8V4", "type": "token", "name": "20361492"}]})
        );
        let back: PreauthResponse = serde_json::from_value(value).unwrap();
        assert_eq!(back, response);
    }

    #[test]
    fn preauth_enroll_and_allow() {
        let enroll = PreauthResponse {
            result: PreauthResult::Enroll,
            status_msg: "Enroll".to_owned(),
            devices: None,
            enroll_portal_url: Some("https://ward.example/enroll".to_owned()),
        };
        assert_eq!(
            serde_json::to_value(&enroll).unwrap(),
            json!({"result": "enroll", "status_msg": "Enroll",
                   "enroll_portal_url": "https://ward.example/enroll"})
        );
        let allow: PreauthResponse =
            serde_json::from_str(r#"{"result":"allow","status_msg":"Bypass"}"#).unwrap();
        assert_eq!(allow.result, PreauthResult::Allow);
        assert!(
            serde_json::from_str::<PreauthResponse>(r#"{"result":"Allow","status_msg":""}"#)
                .is_err()
        );
    }

    #[test]
    fn auth_responses() {
        let waiting = AuthResponse {
            result: AuthResult::Waiting,
            status: "pushed".to_owned(),
            status_msg: "Pushed a login request to your device...".to_owned(),
            txid: None,
        };
        assert_eq!(
            serde_json::to_value(&waiting).unwrap(),
            json!({"result": "waiting", "status": "pushed",
                   "status_msg": "Pushed a login request to your device..."})
        );
        let deny: AuthResponse = serde_json::from_str(
            r#"{"result":"deny","status":"deny","status_msg":"Incorrect passcode. Please try again."}"#,
        )
        .unwrap();
        assert_eq!(deny.result, AuthResult::Deny);
        let txid = AsyncAuthResponse {
            txid: "f50324f8-42ce-419d-8403-ed6b78e72d44".to_owned(),
            verified_push_code: None,
        };
        assert_eq!(
            serde_json::to_string(&txid).unwrap(),
            r#"{"txid":"f50324f8-42ce-419d-8403-ed6b78e72d44"}"#
        );
        assert_eq!(
            serde_json::to_string(&TimeResponse {
                time: 1_357_020_061
            })
            .unwrap(),
            r#"{"time":1357020061}"#
        );
    }
}
