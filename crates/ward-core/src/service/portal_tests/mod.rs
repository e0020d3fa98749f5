//! The self-service portal: enrolment links, sessions, TOTP set-up, factor changes, recovery
//! codes, notices and the "this wasn't me" freeze.

use chrono::{DateTime, TimeDelta, Utc};
use ward_store::DEFAULT_ORG;
use webauthn_authenticator_rs::AuthenticatorBackend;
use zeroize::Zeroizing;

use super::passkey_tests::{Authr, Fixture, events, fixture, passkey, settings};
use super::*;
use crate::model::{Actor, UserStatus};
use crate::notify::Alert;
use crate::policy::FactorPolicy;
use crate::totp::{Algorithm, Totp};

/// The token at the end of a portal link.
fn token_of(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_owned()
}

impl Fixture {
    /// A session for the user, opened as an enrolment link would (no step-up).
    async fn session_for(&self, user_id: &str) -> NewSession {
        let user = self.row(user_id).await;
        self.ward
            .portal()
            .open_session(&user, "enrol-link", None, self.now())
            .await
            .unwrap()
    }

    /// The session a cookie names now, which must be valid.
    async fn live(&self, token: &str) -> Session {
        self.ward
            .portal()
            .session(token, self.now())
            .await
            .unwrap()
            .unwrap()
    }

    async fn is_live(&self, token: &str) -> bool {
        self.ward
            .portal()
            .session(token, self.now())
            .await
            .unwrap()
            .is_some()
    }

    /// Steps the session up with `key`; returns the refreshed session.
    async fn step_up(&self, token: &str, key: &mut Authr<impl AuthenticatorBackend>) -> Session {
        let session = self.live(token).await;
        let start = self
            .ward
            .portal()
            .step_up_start(&session, self.now())
            .await
            .unwrap();
        let answer = key.authenticate(&start.options).unwrap();
        let until = self
            .ward
            .portal()
            .step_up_finish(&session, &start.ceremony, &answer, self.now())
            .await
            .unwrap();
        assert_eq!(
            until,
            (self.now() + TimeDelta::minutes(5)).timestamp_millis()
        );
        let session = self.live(token).await;
        assert!(session.stepped_up(self.now()));
        session
    }
}

#[tokio::test]
async fn an_enrolment_link_opens_one_short_session_once() {
    let f = fixture(settings()).await;
    let alice = f.user("alice").await;
    let now = f.now();
    let link = f
        .ward
        .portal()
        .create_enrol_link(default_org(), &Actor::Cli, "alice", TimeDelta::days(7), now)
        .await
        .unwrap();
    assert!(
        link.url.starts_with("https://localhost:8443/portal/enrol/"),
        "{}",
        link.url
    );
    assert_eq!(
        link.expires_ms,
        (now + TimeDelta::days(7)).timestamp_millis()
    );
    let token = token_of(&link.url);
    assert!(token.len() >= 43, "a 256-bit token: {token}");
    assert_eq!(
        f.ward.portal().enrol_link_state(&token, now).await.unwrap(),
        LinkState::Valid {
            username: "alice".into(),
            expires_ms: link.expires_ms
        }
    );

    let new = f
        .ward
        .portal()
        .redeem_enrol_link(&token, now)
        .await
        .unwrap();
    assert_eq!(new.session.user.user_id, alice.as_str());
    assert_eq!(new.session.auth_method, "enrol-link");
    assert_eq!(
        new.session.expires_ms,
        (now + TimeDelta::hours(1)).timestamp_millis()
    );
    assert!(!new.session.stepped_up(now));
    let session = f.live(&new.token).await;
    assert_eq!(session.session_hash, new.session.session_hash);
    assert_eq!(session.user.user_id, alice.as_str());

    // Used once.
    assert_eq!(
        f.ward.portal().enrol_link_state(&token, now).await.unwrap(),
        LinkState::Used
    );
    let again = f.ward.portal().redeem_enrol_link(&token, now).await;
    assert!(
        matches!(&again, Err(CoreError::Conflict(m)) if m.contains("already used")),
        "{again:?}"
    );

    // Expired.
    let short = f
        .ward
        .portal()
        .create_enrol_link(
            default_org(),
            &Actor::Cli,
            "alice",
            TimeDelta::hours(1),
            now,
        )
        .await
        .unwrap();
    let short = token_of(&short.url);
    f.clock.advance(TimeDelta::hours(1));
    assert_eq!(
        f.ward
            .portal()
            .enrol_link_state(&short, f.now())
            .await
            .unwrap(),
        LinkState::Expired
    );
    let expired = f.ward.portal().redeem_enrol_link(&short, f.now()).await;
    assert!(matches!(expired, Err(CoreError::Expired(_))), "{expired:?}");

    // Unknown, or of another purpose.
    for bogus in ["nope", "", &"x".repeat(200)] {
        assert_eq!(
            f.ward
                .portal()
                .enrol_link_state(bogus, f.now())
                .await
                .unwrap(),
            LinkState::Unknown
        );
        let unknown = f.ward.portal().redeem_enrol_link(bogus, f.now()).await;
        assert!(
            matches!(unknown, Err(CoreError::NotFound(_))),
            "{unknown:?}"
        );
    }

    let audit = f.audit().await;
    assert_eq!(events(&audit, "enrol_link.create", "ok").len(), 2);
    // The second use, the expired link and three unknown tokens.
    assert_eq!(events(&audit, "enrol_link.use", "deny").len(), 5);
}

#[tokio::test]
async fn enrol_links_last_at_most_30_days_and_need_an_active_user() {
    let f = fixture(settings()).await;
    f.user("alice").await;
    let now = f.now();
    for ttl in [
        TimeDelta::days(30) + TimeDelta::seconds(1),
        TimeDelta::zero(),
    ] {
        let refused = f
            .ward
            .portal()
            .create_enrol_link(default_org(), &Actor::Cli, "alice", ttl, now)
            .await;
        assert!(
            matches!(refused, Err(CoreError::InvalidInput { field: "ttl", .. })),
            "{refused:?}"
        );
    }
    f.ward
        .portal()
        .create_enrol_link(default_org(), &Actor::Cli, "alice", MAX_ENROL_TTL, now)
        .await
        .unwrap();
    assert!(matches!(
        f.ward
            .portal()
            .create_enrol_link(
                default_org(),
                &Actor::Cli,
                "nobody",
                TimeDelta::days(1),
                now
            )
            .await,
        Err(CoreError::NotFound(_))
    ));
    f.ward
        .admin()
        .set_user_status(
            default_org(),
            &Actor::Cli,
            "alice",
            UserStatus::Disabled,
            now,
        )
        .await
        .unwrap();
    assert!(matches!(
        f.ward
            .portal()
            .create_enrol_link(default_org(), &Actor::Cli, "alice", TimeDelta::days(1), now)
            .await,
        Err(CoreError::Forbidden(_))
    ));
    assert_eq!(events(&f.audit().await, "enrol_link.create", "ok").len(), 1);
}

#[tokio::test]
async fn sessions_expire_idle_and_absolutely_and_sign_out() {
    let f = fixture(settings()).await;
    let alice = f.user("alice").await;
    let bob = f.user("bob").await;
    let carol = f.user("carol").await;

    // CSRF tokens belong to one session.
    let c1 = f.session_for(carol.as_str()).await;
    let c2 = f.session_for(carol.as_str()).await;
    let s1 = f.live(&c1.token).await;
    assert!(f.ward.portal().csrf_ok(&s1, &s1.csrf));
    assert!(f.ward.portal().csrf_ok(&s1, &c1.session.csrf));
    assert!(!f.ward.portal().csrf_ok(&s1, &c2.session.csrf));
    assert!(!f.ward.portal().csrf_ok(&s1, ""));

    // Idle: use keeps a session alive; 30 minutes without use end it.
    let idle = f.session_for(carol.as_str()).await;
    f.clock.advance(TimeDelta::minutes(29));
    assert!(f.is_live(&idle.token).await);
    f.clock.advance(TimeDelta::minutes(29));
    assert!(f.is_live(&idle.token).await);
    f.clock.advance(TimeDelta::minutes(30));
    assert!(!f.is_live(&idle.token).await);

    // Absolute: twelve hours however busy.
    let busy = f.session_for(carol.as_str()).await;
    let ends = busy.session.expires_ms;
    assert_eq!(ends, (f.now() + TimeDelta::hours(12)).timestamp_millis());
    let mut checks = 0;
    while f.now().timestamp_millis() < ends {
        assert!(f.is_live(&busy.token).await);
        f.clock.advance(TimeDelta::minutes(20));
        checks += 1;
    }
    assert_eq!(checks, 36);
    assert!(!f.is_live(&busy.token).await);
    // A longer lifetime than the settings' is cut to it.
    let user = f.row(carol.as_str()).await;
    let long = f
        .ward
        .portal()
        .open_session(&user, "test", Some(TimeDelta::days(3)), f.now())
        .await
        .unwrap();
    assert_eq!(
        long.session.expires_ms,
        (f.now() + TimeDelta::hours(12)).timestamp_millis()
    );

    // Signing out ends one session; everywhere ends all of one user's.
    let a1 = f.session_for(alice.as_str()).await;
    let a2 = f.session_for(alice.as_str()).await;
    let b1 = f.session_for(bob.as_str()).await;
    f.ward
        .portal()
        .sign_out(&f.live(&a1.token).await, f.now())
        .await
        .unwrap();
    assert!(!f.is_live(&a1.token).await);
    assert!(f.is_live(&a2.token).await);
    let ended = f
        .ward
        .portal()
        .sign_out_everywhere(
            default_org(),
            &Actor::User(alice.to_string()),
            &alice,
            f.now(),
        )
        .await
        .unwrap();
    assert_eq!(ended, 1);
    assert!(!f.is_live(&a2.token).await);
    assert!(f.is_live(&b1.token).await);

    // A disabled user's sessions are not valid.
    f.ward
        .admin()
        .set_user_status(
            default_org(),
            &Actor::Cli,
            "bob",
            UserStatus::Disabled,
            f.now(),
        )
        .await
        .unwrap();
    assert!(!f.is_live(&b1.token).await);
    // Nonsense cookies are simply not sessions.
    for bogus in ["", "nope", &"x".repeat(200)] {
        assert!(!f.is_live(bogus).await);
    }

    let audit = f.audit().await;
    assert_eq!(events(&audit, "session.close", "ok").len(), 1);
    assert_eq!(events(&audit, "session.close_all", "ok").len(), 1);
}

/// A 6-digit code that no step within `window` of `now` produces.
fn wrong_code(totp: &Totp, now: DateTime<Utc>) -> String {
    let step = totp.step_at(now.timestamp());
    let near: Vec<Zeroizing<String>> = (step - 2..=step + 2).map(|s| totp.code(s as u64)).collect();
    (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| near.iter().all(|n| n.as_str() != c))
        .unwrap()
}

fn code_at(totp: &Totp, now: DateTime<Utc>) -> String {
    totp.code(totp.step_at(now.timestamp()) as u64).to_string()
}

/// The app's generator for a set-up.
fn app_for(setup: &TotpSetup) -> Totp {
    let secret = crate::totp::base32_decode(&setup.secret_base32).unwrap();
    Totp::new(secret, Algorithm::Sha1, 6, 30).unwrap()
}

/// Adds an authenticator app with its current code; returns it and the code used.
async fn add_app(f: &Fixture, session: &Session, name: &str) -> (TotpView, Totp, String) {
    let setup = f
        .ward
        .portal()
        .totp_setup_start(session, f.now())
        .await
        .unwrap();
    let totp = app_for(&setup);
    let code = code_at(&totp, f.now());
    match f
        .ward
        .portal()
        .totp_setup_finish(session, &setup.ceremony, &code, name, f.now())
        .await
        .unwrap()
    {
        TotpConfirm::Added(view) => (view, totp, code),
        other @ TotpConfirm::WrongCode { .. } => panic!("the right code was refused: {other:?}"),
    }
}

#[tokio::test]
async fn totp_set_up_needs_a_right_code_from_the_same_user() {
    let f = fixture(settings()).await;
    let alice = f.user("alice").await;
    let bob = f.user("bob").await;
    let session = f.session_for(alice.as_str()).await.session;

    let setup = f
        .ward
        .portal()
        .totp_setup_start(&session, f.now())
        .await
        .unwrap();
    assert!(setup.otpauth_uri.starts_with("otpauth://totp/"));
    assert!(
        setup.otpauth_uri.contains("Example%20Org"),
        "{}",
        *setup.otpauth_uri
    );
    let totp = app_for(&setup);

    // A wrong code keeps the set-up going under a new ceremony; the old one is used up.
    let wrong = wrong_code(&totp, f.now());
    let retry = match f
        .ward
        .portal()
        .totp_setup_finish(&session, &setup.ceremony, &wrong, "Phone", f.now())
        .await
        .unwrap()
    {
        TotpConfirm::WrongCode { ceremony } => ceremony,
        other @ TotpConfirm::Added(_) => panic!("a wrong code was accepted: {other:?}"),
    };
    assert_ne!(retry, setup.ceremony);
    assert!(f.factors(&alice).await.totps.is_empty());
    let right = code_at(&totp, f.now());
    let old = f
        .ward
        .portal()
        .totp_setup_finish(&session, &setup.ceremony, &right, "Phone", f.now())
        .await;
    assert!(matches!(old, Err(CoreError::Expired(_))), "{old:?}");
    // Another user's session cannot finish it.
    let bobs = f.session_for(bob.as_str()).await.session;
    let stolen = f
        .ward
        .portal()
        .totp_setup_finish(&bobs, &retry, &right, "Phone", f.now())
        .await;
    assert!(matches!(stolen, Err(CoreError::Forbidden(_))), "{stolen:?}");
    assert!(f.factors(&alice).await.totps.is_empty());
    // (That attempt used the ceremony up: start again.)
    let (view, _, _) = add_app(&f, &session, "Phone").await;
    assert_eq!(view.name, "Phone");
    assert_eq!(f.factors(&alice).await.totps, vec![view.clone()]);
    assert_eq!(events(&f.audit().await, "factor.totp.add", "ok").len(), 1);
}

/// Issue 11 (the digit-count divergence): a user with an 8-digit authenticator enrolled first
/// and a 6-digit one after it. A 6-digit code is checked against the 6-digit one only (the
/// 8-digit one is skipped, not taken as the answer), at the portal's TOTP sign-in and at the
/// Auth API alike; an 8-digit code still works.
#[tokio::test]
async fn six_digit_code_is_accepted_beside_an_eight_digit_authenticator() {
    const EIGHT: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    const SIX: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let mut s = settings();
    s.factors.groups.insert(
        "totp-ok".into(),
        FactorPolicy {
            totp_signin: true,
            ..FactorPolicy::default()
        },
    );
    let f = fixture(s).await;
    f.user("alice").await;
    let portal = f.ward.portal();
    portal
        .set_policy_group(
            default_org(),
            &Actor::Cli,
            "alice",
            Some("totp-ok"),
            f.now(),
        )
        .await
        .unwrap();
    for (secret, digits) in [(EIGHT, 8), (SIX, 6)] {
        f.ward
            .admin()
            .add_totp(
                default_org(),
                &Actor::Cli,
                "alice",
                Some(secret),
                Algorithm::Sha1,
                digits,
                f.now(),
            )
            .await
            .unwrap();
        // Authenticators are tried in the order they were added.
        f.clock.advance(TimeDelta::seconds(1));
    }
    let generator = |secret: &str, digits: u32| {
        Totp::new(
            crate::totp::base32_decode(secret).unwrap(),
            Algorithm::Sha1,
            digits,
            30,
        )
        .unwrap()
    };
    let (eight, six) = (generator(EIGHT, 8), generator(SIX, 6));
    let (integration, _) = f
        .ward
        .admin()
        .create_integration(
            default_org(),
            &Actor::Cli,
            "VPN",
            crate::model::IntegrationKind::AuthApi,
            None,
            f.now(),
        )
        .await
        .unwrap();
    let ctx = AuthContext {
        integration,
        user_ip: None,
        client_ip: None,
    };
    let alice = crate::model::UserRef::Name("alice".into());

    // Each check in its own time step: a step is used once per authenticator.
    f.clock.advance(TimeDelta::seconds(30));
    let signed_in = portal
        .totp_sign_in(default_org(), "alice", &code_at(&six, f.now()), f.now())
        .await;
    assert!(signed_in.is_ok(), "portal: {signed_in:?}");
    f.clock.advance(TimeDelta::seconds(30));
    let api = f.ward.auth();
    let code = code_at(&six, f.now());
    let decided = api.passcode(&ctx, &alice, &code, false, f.now()).await;
    assert_eq!(decided.unwrap().status, AuthStatus::Allow, "Auth API");
    f.clock.advance(TimeDelta::seconds(30));
    let code = code_at(&eight, f.now());
    let decided = api.passcode(&ctx, &alice, &code, false, f.now()).await;
    assert_eq!(decided.unwrap().status, AuthStatus::Allow, "8 digits");
    let row = f.store.user_by_name(DEFAULT_ORG, "alice").await.unwrap();
    assert_eq!(row.unwrap().failed_attempts, 0);
}

#[tokio::test]
async fn totp_sign_in_is_allowed_by_policy_only_and_never_replays_a_code() {
    let mut s = settings();
    s.factors.groups.insert(
        "totp-ok".into(),
        FactorPolicy {
            totp_signin: true,
            ..FactorPolicy::default()
        },
    );
    let f = fixture(s).await;
    let alice = f.user("alice").await;
    let session = f.session_for(alice.as_str()).await.session;
    let (_, totp, right) = add_app(&f, &session, "Phone").await;

    // The default policy does not allow TOTP sign-in, even with a fresh code.
    f.clock.advance(TimeDelta::seconds(30));
    let mut fresh = code_at(&totp, f.now());
    while fresh == right {
        f.clock.advance(TimeDelta::seconds(30));
        fresh = code_at(&totp, f.now());
    }
    let refused = f
        .ward
        .portal()
        .totp_sign_in(default_org(), "alice", &fresh, f.now())
        .await;
    assert!(
        matches!(refused, Err(CoreError::Unauthenticated)),
        "{refused:?}"
    );
    let audit = f.audit().await;
    let denied = events(&audit, "portal.signin.totp", "deny");
    assert_eq!(
        denied.last().unwrap()["details"]["reason"],
        "not_allowed_by_policy"
    );

    // Where it is allowed, the set-up code is spent; a fresh one works once.
    f.ward
        .portal()
        .set_policy_group(
            default_org(),
            &Actor::Cli,
            "alice",
            Some("totp-ok"),
            f.now(),
        )
        .await
        .unwrap();
    let replay = f
        .ward
        .portal()
        .totp_sign_in(default_org(), "alice", &right, f.now())
        .await;
    assert!(
        matches!(replay, Err(CoreError::Unauthenticated)),
        "{replay:?}"
    );
    let new = f
        .ward
        .portal()
        .totp_sign_in(default_org(), "alice", &fresh, f.now())
        .await
        .unwrap();
    assert_eq!(new.session.user.user_id, alice.as_str());
    assert_eq!(new.session.auth_method, "totp");
    assert!(!new.session.stepped_up(f.now()));
    assert!(f.is_live(&new.token).await);
    let again = f
        .ward
        .portal()
        .totp_sign_in(default_org(), "alice", &fresh, f.now())
        .await;
    assert!(
        matches!(again, Err(CoreError::Unauthenticated)),
        "{again:?}"
    );
    // Unknown users look the same.
    let unknown = f
        .ward
        .portal()
        .totp_sign_in(default_org(), "nobody", &fresh, f.now())
        .await;
    assert!(
        matches!(unknown, Err(CoreError::Unauthenticated)),
        "{unknown:?}"
    );
    let audit = f.audit().await;
    assert_eq!(events(&audit, "portal.signin.totp", "allow").len(), 1);
    assert_eq!(events(&audit, "portal.signin.totp", "deny").len(), 4);
}

#[tokio::test]
async fn removing_a_factor_needs_a_step_up_and_keeps_a_passkey() {
    let mut s = settings();
    s.factors.groups.insert(
        "relaxed".into(),
        FactorPolicy {
            require_phishing_resistant: false,
            ..FactorPolicy::default()
        },
    );
    let f = fixture(s).await;
    let alice = f.user("alice").await;
    let cookie = f.session_for(alice.as_str()).await.token;
    let mut laptop = passkey();
    let first = f.register(&alice, &mut laptop, "Laptop").await;

    // Without a step-up: refused.
    let session = f.live(&cookie).await;
    let refused = f
        .ward
        .portal()
        .remove_factor(&session, FactorKind::Passkey, &first.id, f.now())
        .await;
    assert!(
        matches!(refused, Err(CoreError::Forbidden(_))),
        "{refused:?}"
    );

    // With one, the only passkey still cannot go while the policy requires one.
    let session = f.step_up(&cookie, &mut laptop).await;
    let refused = f
        .ward
        .portal()
        .remove_factor(&session, FactorKind::Passkey, &first.id, f.now())
        .await;
    assert!(
        matches!(&refused, Err(CoreError::InvalidInput { reason, .. }) if reason.contains("only passkey")),
        "{refused:?}"
    );
    assert_eq!(f.factors(&alice).await.passkeys.len(), 1);
    let audit = f.audit().await;
    let denied = events(&audit, "factor.remove", "deny");
    assert_eq!(denied.len(), 1);
    assert_eq!(
        denied[0]["details"]["reason"],
        "last phishing-resistant factor"
    );

    // With a second passkey it can.
    let mut phone = passkey();
    let second = f.register(&alice, &mut phone, "Phone").await;
    f.ward
        .portal()
        .remove_factor(&session, FactorKind::Passkey, &first.id, f.now())
        .await
        .unwrap();
    assert_eq!(f.factors(&alice).await.passkeys, vec![second.clone()]);
    assert_eq!(events(&f.audit().await, "factor.remove", "ok").len(), 1);
    // The removed passkey no longer signs in.
    assert!(
        f.check(ceremony_purpose::SIGN_IN, None, &mut laptop)
            .await
            .is_err()
    );

    // The step-up lasts five minutes.
    f.clock.advance(TimeDelta::minutes(5));
    let session = f.live(&cookie).await;
    assert!(!session.stepped_up(f.now()));
    let refused = f
        .ward
        .portal()
        .remove_factor(&session, FactorKind::Passkey, &second.id, f.now())
        .await;
    assert!(
        matches!(refused, Err(CoreError::Forbidden(_))),
        "{refused:?}"
    );

    // Where the policy does not require a passkey, the last one can go.
    f.ward
        .portal()
        .set_policy_group(
            default_org(),
            &Actor::Cli,
            "alice",
            Some("relaxed"),
            f.now(),
        )
        .await
        .unwrap();
    let session = f.step_up(&cookie, &mut phone).await;
    f.ward
        .portal()
        .remove_factor(&session, FactorKind::Passkey, &second.id, f.now())
        .await
        .unwrap();
    assert!(f.factors(&alice).await.passkeys.is_empty());
}

#[tokio::test]
async fn only_ones_own_factors_can_be_renamed_or_removed() {
    let f = fixture(settings()).await;
    let alice = f.user("alice").await;
    let bob = f.user("bob").await;
    let cookie = f.session_for(alice.as_str()).await.token;
    let mut phone = passkey();
    let second = f.register(&alice, &mut phone, "Phone").await;
    let session = f.step_up(&cookie, &mut phone).await;

    f.ward
        .portal()
        .rename_factor(
            &session,
            FactorKind::Passkey,
            &second.id,
            "Work phone",
            f.now(),
        )
        .await
        .unwrap();
    for bad in ["", " Phone", "Phone ", "a\nb", &"x".repeat(61)] {
        let refused = f
            .ward
            .portal()
            .rename_factor(&session, FactorKind::Passkey, &second.id, bad, f.now())
            .await;
        assert!(
            matches!(refused, Err(CoreError::InvalidInput { field: "name", .. })),
            "{bad:?}: {refused:?}"
        );
    }
    assert_eq!(f.factors(&alice).await.passkeys[0].name, "Work phone");
    let mut bobs_key = passkey();
    let bobs = f.register(&bob, &mut bobs_key, "Bob's key").await;
    for id in [bobs.id.as_str(), "no-such-id"] {
        let renamed = f
            .ward
            .portal()
            .rename_factor(&session, FactorKind::Passkey, id, "Mine", f.now())
            .await;
        assert!(
            matches!(renamed, Err(CoreError::NotFound(_))),
            "{renamed:?}"
        );
        let removed = f
            .ward
            .portal()
            .remove_factor(&session, FactorKind::Passkey, id, f.now())
            .await;
        assert!(
            matches!(removed, Err(CoreError::NotFound(_))),
            "{removed:?}"
        );
    }
    assert_eq!(f.factors(&bob).await.passkeys, vec![bobs]);
}

mod codes_and_notices;
