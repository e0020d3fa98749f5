//! Push across nodes: signals travel through `LISTEN`/`NOTIFY`, decisions are won once.

use std::time::Duration;

use futures::future::join_all;
use sqlx::{Connection, PgConnection};
use tokio::sync::broadcast::{self, error::RecvError};
use ward_store::{Change, ChangeSet, PushRow, PushStore, Signal, Store, StoreError, Writer};

use crate::{node, with_schema};

/// How long a signal may take from one node to another.
const SIGNAL_WAIT: Duration = Duration::from_secs(5);

/// An id that no other test process uses (every test shares the one `NOTIFY` channel).
fn unique(prefix: &str, n: usize) -> String {
    format!("{prefix}-{}-{n}", std::process::id())
}

/// Receives until `want` arrives, skipping other tests' signals; `None` after `within`.
async fn receive(
    rx: &mut broadcast::Receiver<Signal>,
    want: &Signal,
    within: Duration,
) -> Option<()> {
    let arrival = async {
        loop {
            match rx.recv().await {
                Ok(got) if &got == want => return,
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => panic!("signal channel closed"),
            }
        }
    };
    tokio::time::timeout(within, arrival).await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_published_on_one_node_is_received_on_the_other() {
    with_schema(|url| async move {
        let (a, b) = tokio::join!(node(&url, "node-a"), node(&url, "node-b"));
        let (mut on_a, mut on_b) = (a.signals().subscribe(), b.signals().subscribe());

        let from_a = Signal::Device(unique("DDSIG", 1));
        a.signals().publish(from_a.clone()).await;
        let got = receive(&mut on_b, &from_a, SIGNAL_WAIT).await;
        assert!(got.is_some(), "{from_a:?} did not reach node b");

        let from_b = Signal::Tx(unique("txsig", 2));
        b.signals().publish(from_b.clone()).await;
        let got = receive(&mut on_a, &from_b, SIGNAL_WAIT).await;
        assert!(got.is_some(), "{from_b:?} did not reach node a");

        b.close().await;
        a.close().await;
        // After close, publishing only logs that the other nodes could not be told.
        a.signals().publish(Signal::Tx(unique("txsig", 3))).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_comes_back_after_its_connection_is_killed() {
    with_schema(|url| async move {
        let chain = unique("node-listener", 0);
        let (a, b) = tokio::join!(node(&url, &chain), node(&url, "node-b"));
        let mut on_a = a.signals().subscribe();

        let mut admin = PgConnection::connect(&url).await.unwrap();
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
        )
        .bind(format!("ward-signals {chain}"))
        .fetch_all(&mut admin)
        .await
        .unwrap();
        assert_eq!(killed, [true], "node a's listener connection");
        admin.close().await.unwrap();

        // What is announced while the listener reconnects is lost, so keep announcing until
        // one announcement gets through.
        let through = tokio::time::timeout(Duration::from_secs(15), async {
            for n in 1.. {
                let signal = Signal::Tx(unique("txkill", n));
                b.signals().publish(signal.clone()).await;
                let within = Duration::from_millis(250);
                if receive(&mut on_a, &signal, within).await.is_some() {
                    return n;
                }
            }
            unreachable!()
        })
        .await;
        assert!(through.is_ok(), "node a never heard node b again");

        b.close().await;
        a.close().await;
    })
    .await;
}

fn pending_push() -> PushRow {
    PushRow {
        org_id: "default".into(),
        txid: "TXRACE".into(),
        ikey: "DITEST".into(),
        user_id: "DU1".into(),
        device_id: "DD1".into(),
        state: "pending".into(),
        number: None,
        context: "{}".into(),
        context_hash: "hash".into(),
        created_ms: 1_000,
        expires_ms: 61_000,
        decided_ms: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_push_decisions_on_two_nodes_have_one_winner() {
    with_schema(|url| async move {
        let (a, b) = tokio::join!(node(&url, "node-a"), node(&url, "node-b"));
        a.commit(ChangeSet::new().with(Change::InsertPush(pending_push())))
            .await
            .unwrap();
        let state = |i: i64| if i % 2 == 0 { "approved" } else { "denied" };
        let decisions = (0..20).map(|i| {
            let store: &dyn Store = if i % 4 < 2 { &a } else { &b };
            store.commit(ChangeSet::new().with(Change::DecidePush {
                org_id: "default".into(),
                txid: "TXRACE".into(),
                state: state(i).into(),
                decided_ms: 2_000 + i,
            }))
        });
        let results = join_all(decisions).await;
        let won: Vec<i64> = (0..)
            .zip(&results)
            .filter(|(_, r)| r.is_ok())
            .map(|(i, _)| i)
            .collect();
        assert_eq!(won.len(), 1, "{results:?}");
        let refused = results
            .iter()
            .filter(|r| matches!(r, Err(StoreError::ConditionFailed(_))))
            .count();
        assert_eq!(refused, 19, "{results:?}");
        let winner = won[0];
        for store in [&a, &b] {
            let stored = store.push("default", "TXRACE").await.unwrap().unwrap();
            assert_eq!(
                (stored.state.as_str(), stored.decided_ms),
                (state(winner), Some(2_000 + winner))
            );
        }
        b.close().await;
        a.close().await;
    })
    .await;
}
