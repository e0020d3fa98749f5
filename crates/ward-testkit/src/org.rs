//! Organisations for service and router tests: a `Ward` over a store, and a builder that creates
//! an organisation's users (with TOTP secrets and roles) and integrations in the order given,
//! then hands back their ids and keys.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};
use ward_core::model::UserId;

use chrono::{DateTime, Utc};
use ward_core::crypto::{Keyring, MasterKey};
use ward_core::model::{Actor, Integration, IntegrationKind, OrgId, Role};
use ward_core::policy::{ApiPushMode, AuthPolicy};
use ward_core::service::Ward;
use ward_core::totp::{Algorithm, Totp, base32_decode};
use ward_store::Store;

/// The organisation every database starts with.
pub fn default_org() -> &'static OrgId {
    static ORG: LazyLock<OrgId> = LazyLock::new(|| OrgId::new(ward_store::DEFAULT_ORG));
    &ORG
}

/// A `Ward` over `store` with `policy`, its secrets sealed under a master key made of
/// `key_seed` bytes.
pub async fn ward_on(store: Arc<dyn Store>, key_seed: u8, policy: AuthPolicy) -> Ward {
    let keys = Keyring::new(MasterKey::from_bytes([key_seed; 32]), vec![]);
    Ward::new(store, keys, policy, "Ward")
        .await
        .expect("a Ward over the store")
}

/// The current six-digit SHA-1 code of the base32 `seed` at `at` (30-second steps).
pub fn totp_code(seed: &str, at: DateTime<Utc>) -> String {
    let totp = Totp::new(
        base32_decode(seed).expect("a base32 seed"),
        Algorithm::Sha1,
        6,
        30,
    )
    .expect("a TOTP");
    let step = u64::try_from(totp.step_at(at.timestamp())).expect("a time after 1970");
    totp.code(step).to_string()
}

/// One step of an [`OrgBuilder`].
#[derive(Debug)]
enum Step {
    User {
        name: String,
        email: Option<String>,
    },
    Totp {
        user: String,
        seed: String,
    },
    Role {
        user: String,
        role: Role,
    },
    Integration {
        name: String,
        kind: IntegrationKind,
        push_mode: Option<ApiPushMode>,
    },
}

/// An organisation to create: its users and integrations, made in the order they were added,
/// all by the CLI at one `now`.
#[derive(Debug)]
#[must_use]
pub struct OrgBuilder {
    /// `None`: the default organisation, which every database has.
    name: Option<String>,
    steps: Vec<Step>,
}

impl OrgBuilder {
    /// Adds to the default organisation.
    pub fn default_org() -> Self {
        Self {
            name: None,
            steps: Vec::new(),
        }
    }

    /// Creates a new organisation called `name`.
    pub fn named(name: &str) -> Self {
        Self {
            name: Some(name.to_owned()),
            steps: Vec::new(),
        }
    }

    /// A user without an e-mail address.
    pub fn user(mut self, name: &str) -> Self {
        self.steps.push(Step::User {
            name: name.to_owned(),
            email: None,
        });
        self
    }

    /// A user with an e-mail address.
    pub fn user_with_email(mut self, name: &str, email: &str) -> Self {
        self.steps.push(Step::User {
            name: name.to_owned(),
            email: Some(email.to_owned()),
        });
        self
    }

    /// A TOTP factor with the base32 `seed` (SHA-1, six digits) for a user added before.
    pub fn totp(mut self, user: &str, seed: &str) -> Self {
        self.steps.push(Step::Totp {
            user: user.to_owned(),
            seed: seed.to_owned(),
        });
        self
    }

    /// Grants `role` to a user added before.
    pub fn role(mut self, user: &str, role: Role) -> Self {
        self.steps.push(Step::Role {
            user: user.to_owned(),
            role,
        });
        self
    }

    /// An integration of `kind`.
    pub fn integration(
        mut self,
        name: &str,
        kind: IntegrationKind,
        push_mode: Option<ApiPushMode>,
    ) -> Self {
        self.steps.push(Step::Integration {
            name: name.to_owned(),
            kind,
            push_mode,
        });
        self
    }

    /// An Auth API application with the server's push policy.
    pub fn auth_api(self, name: &str) -> Self {
        self.integration(name, IntegrationKind::AuthApi, None)
    }

    /// A Web SDK (hosted prompt) application.
    pub fn web_sdk(self, name: &str) -> Self {
        self.integration(name, IntegrationKind::WebSdk, None)
    }

    /// Creates everything through `ward`, at `now`.
    pub async fn build(self, ward: &Ward, now: DateTime<Utc>) -> Org {
        let id = match &self.name {
            None => default_org().clone(),
            Some(name) => {
                ward.admin()
                    .create_org(&Actor::Cli, name, now)
                    .await
                    .unwrap()
                    .id
            }
        };
        let mut org = Org {
            id,
            users: BTreeMap::new(),
            apps: BTreeMap::new(),
        };
        for step in self.steps {
            org.take(ward, step, now).await;
        }
        org
    }
}

/// What an [`OrgBuilder`] made.
#[derive(Debug)]
pub struct Org {
    pub id: OrgId,
    /// Username → user id.
    users: BTreeMap<String, UserId>,
    /// Integration name → application.
    apps: BTreeMap<String, App>,
}

/// An integration and its secret key.
#[derive(Debug)]
pub struct App {
    pub integration: Integration,
    pub skey: String,
}

impl App {
    /// The integration key.
    pub fn ikey(&self) -> &str {
        self.integration.ikey.as_str()
    }
}

impl Org {
    async fn take(&mut self, ward: &Ward, step: Step, now: DateTime<Utc>) {
        let (org, cli) = (&self.id, &Actor::Cli);
        match step {
            Step::User { name, email } => {
                let user = ward
                    .admin()
                    .create_user(org, cli, &name, email.as_deref(), now);
                let id = user.await.unwrap().id;
                self.users.insert(name, id);
            }
            Step::Totp { user, seed } => {
                ward.admin()
                    .add_totp(org, cli, &user, Some(&seed), Algorithm::Sha1, 6, now)
                    .await
                    .unwrap();
            }
            Step::Role { user, role } => {
                ward.admin()
                    .grant_role(org, cli, &user, role, now)
                    .await
                    .unwrap();
            }
            Step::Integration {
                name,
                kind,
                push_mode,
            } => {
                let made = ward
                    .admin()
                    .create_integration(org, cli, &name, kind, push_mode, now);
                let (integration, skey) = made.await.unwrap();
                let skey = skey.to_string();
                self.apps.insert(name, App { integration, skey });
            }
        }
    }

    /// The id of the user `name`.
    pub fn user_id(&self, name: &str) -> &UserId {
        self.users
            .get(name)
            .unwrap_or_else(|| panic!("no user {name} was added"))
    }

    /// The integration `name`.
    pub fn app(&self, name: &str) -> &App {
        self.apps
            .get(name)
            .unwrap_or_else(|| panic!("no integration {name} was added"))
    }
}
