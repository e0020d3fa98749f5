//! `factor=push` / `factor=auto` of the Auth API, and the long-poll behind `auth_status`.

use std::time::Duration;

use axum::Json;
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast;
use tokio::time::Instant;
use ward_core::CoreResult;
use ward_core::model::UserRef;
use ward_core::service::{AuthContext, PushOutcome, PushRequest, TxResult, TxView};
use ward_proto::duo::auth::{AsyncAuthResponse, AuthResponse, AuthResult};
use ward_proto::duo::envelope::Ok as DuoOk;
use ward_store::Signal;

use super::auth_api::render_decision;
use super::signed::DuoCall;
use crate::app::AppState;
use crate::error::ApiError;

/// The longest an `auth_status` call waits for a change before answering `waiting` (Duo
/// clients give up after 20 result-less answers, so a push always ends well within them).
pub const POLL_MAX: Duration = Duration::from_secs(25);

/// `pushinfo`: URL-encoded `k=v&k2=v2` (at most 20 pairs shown). `duo_unix` encodes it twice
/// (`Server+IP=…&Command=ls%20-l` once the body is decoded); this is the second decoding.
pub(super) fn pushinfo(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|text| {
        form_urlencoded::parse(text.as_bytes())
            .take(20)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

/// Sends a push; answers with the transaction (async) or the decision (sync).
pub async fn auth_push(
    state: &AppState,
    call: &DuoCall,
    user: &UserRef,
    is_async: bool,
) -> Result<Response, ApiError> {
    let p = &call.params;
    let req = PushRequest {
        title: p.get("type").map(str::to_owned),
        display_username: p.get("display_username").map(str::to_owned),
        details: pushinfo(p.get("pushinfo")),
        device: p.get("device").filter(|d| *d != "auto").map(str::to_owned),
        device_index: None,
        hostname: p.get("hostname").map(str::to_owned),
        number_required: false,
        want_txid: is_async,
    };
    let ctx = call.context();
    let started = match state
        .ward
        .auth()
        .start_api_push(&ctx, user, req, is_async, call.now)
        .await?
    {
        PushOutcome::Decided(decision) => {
            return Ok(match decision.txid.clone() {
                Some(txid) => Json(DuoOk::new(AsyncAuthResponse {
                    txid,
                    verified_push_code: None,
                }))
                .into_response(),
                None => Json(DuoOk::new(render_decision(&decision))).into_response(),
            });
        }
        PushOutcome::Started(started) => started,
    };
    if is_async {
        let body = AsyncAuthResponse {
            txid: started.txid,
            verified_push_code: started.number,
        };
        return Ok(Json(DuoOk::new(body)).into_response());
    }
    let view = wait_decided(state, &ctx, &started.txid, push_wait(state)).await?;
    Ok(Json(DuoOk::new(render_view(view))).into_response())
}

/// How long a request may wait on a push: its timeout, and a little for the timing-out.
pub fn push_wait(state: &AppState) -> Duration {
    let timeout = state
        .ward
        .policy()
        .push
        .timeout
        .to_std()
        .unwrap_or(POLL_MAX);
    timeout + Duration::from_secs(5)
}

/// Duo's rendering of a transaction's state.
pub fn render_view(view: TxView) -> AuthResponse {
    let result = match view.result {
        TxResult::Allow => AuthResult::Allow,
        TxResult::Waiting => AuthResult::Waiting,
        TxResult::Deny => AuthResult::Deny,
    };
    AuthResponse {
        result,
        status: view.status.as_str().into(),
        status_msg: view.status_msg,
        txid: None,
    }
}

/// The transaction's state once it is decided, or after `max_wait`, whichever comes first. A
/// push whose time is up is timed out on the way.
pub async fn wait_decided(
    state: &AppState,
    ctx: &AuthContext,
    txid: &str,
    max_wait: Duration,
) -> CoreResult<TxView> {
    // Subscribe before reading, so a decision in between is not missed.
    let mut signals = state.ward.store().signals().subscribe();
    let give_up = Instant::now() + max_wait;
    loop {
        let now = state.clock.now();
        let view = state.ward.auth().status(ctx, txid, now).await?;
        let remaining = give_up.saturating_duration_since(Instant::now());
        // At shutdown a long-poll answers with the state so far (`waiting`) at once.
        if view.result != TxResult::Waiting || remaining.is_zero() || state.shutdown.is_started() {
            return Ok(view);
        }
        // Wake up at the push's deadline at the latest, to time it out.
        let until_deadline = state
            .ward
            .auth()
            .push_deadline(&ctx.integration.org_id, txid)
            .await?
            .map(|deadline| {
                (deadline - now).to_std().unwrap_or_default() + Duration::from_millis(20)
            });
        let wait = until_deadline.map_or(remaining, |d| d.min(remaining));
        tokio::select! {
            () = decided(&mut signals, txid) => {}
            () = tokio::time::sleep(wait) => {}
            () = state.shutdown.started() => {}
        }
    }
}

async fn decided(signals: &mut broadcast::Receiver<Signal>, txid: &str) {
    loop {
        match signals.recv().await {
            Ok(Signal::Tx(id)) if id == txid => return,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}
