//! Two organisations behind one Auth API: an application of one gets the Duo answer for an
//! unknown user when it names a user of the other, and cannot read the other's transactions.

use axum::http::StatusCode;
use ward_core::clock::Clock;
use ward_testkit::org::{OrgBuilder, totp_code};
use ward_testkit::router::{get_as, post_as};

use crate::auth_api::api;

/// Bob's seed, in the second organisation only.
const BOB_SECRET: &str = "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U";

#[tokio::test]
async fn an_application_does_not_see_another_organisations_users() {
    let api = api().await;
    let now = api.clock.now();
    let other = OrgBuilder::named("Other")
        .user("bob")
        .totp("bob", BOB_SECRET)
        .auth_api("VPN")
        .build(&api.ward, now)
        .await;
    let (theirs, their_skey) = (&other.app("VPN").integration, &other.app("VPN").skey);

    // To the first organisation's application, bob is as unknown as a name nobody has.
    let preauth = |name: &str| api.post("/auth/v2/preauth", &[("username", name)], &api.skey, now);
    let (status, bob) = api.call(preauth("bob")).await;
    assert_eq!(status, StatusCode::OK, "{bob}");
    let (_, nobody) = api.call(preauth("nobody")).await;
    assert_eq!(bob["response"], nobody["response"]);
    assert!(
        matches!(bob["response"]["result"].as_str(), Some("enroll" | "deny")),
        "{bob}"
    );
    // Bob's own code does not let him in through it either.
    let code = totp_code(BOB_SECRET, now);
    let auth = [
        ("username", "bob"),
        ("factor", "passcode"),
        ("passcode", code.as_str()),
    ];
    let (_, denied) = api
        .call(api.post("/auth/v2/auth", &auth, &api.skey, now))
        .await;
    assert_eq!(denied["response"]["result"], "deny", "{denied}");

    // His own organisation's application sees him and lets him in.
    let (_, seen) = api
        .call(post_as(
            theirs.ikey.as_str(),
            their_skey,
            "/auth/v2/preauth",
            &[("username", "bob")],
            now,
        ))
        .await;
    assert_eq!(seen["response"]["result"], "auth", "{seen}");
    let (_, allowed) = api
        .call(post_as(
            theirs.ikey.as_str(),
            their_skey,
            "/auth/v2/auth",
            &auth,
            now,
        ))
        .await;
    assert_eq!(allowed["response"]["result"], "allow", "{allowed}");

    // A transaction of the second organisation (an asynchronous passcode, the step now used):
    // its application reads it; the first organisation's gets the answer for an unknown txid.
    let async_auth = [
        ("username", "bob"),
        ("factor", "passcode"),
        ("passcode", code.as_str()),
        ("async", "1"),
    ];
    let (_, started) = api
        .call(post_as(
            theirs.ikey.as_str(),
            their_skey,
            "/auth/v2/auth",
            &async_auth,
            now,
        ))
        .await;
    let txid = started["response"]["txid"].as_str().unwrap().to_owned();
    let status_of = |ikey: &str, skey: &str, txid: &str| {
        get_as(ikey, skey, "/auth/v2/auth_status", &[("txid", txid)], now)
    };
    let (status, own) = api
        .call(status_of(theirs.ikey.as_str(), their_skey, &txid))
        .await;
    assert_eq!(status, StatusCode::OK, "{own}");
    assert_eq!(own["response"]["result"], "deny", "{own}");
    let (status, foreign) = api.call(status_of(&api.ikey, &api.skey, &txid)).await;
    let (unknown_status, unknown) = api.call(status_of(&api.ikey, &api.skey, "nope")).await;
    assert_eq!((status, &foreign), (unknown_status, &unknown));
    assert_eq!(status, StatusCode::BAD_REQUEST, "{foreign}");
}
