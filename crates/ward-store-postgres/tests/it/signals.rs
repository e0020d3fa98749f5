//! Signals travel between nodes through `LISTEN`/`NOTIFY`, and survive a lost listener.

use std::time::Duration;

use sqlx::{Connection, PgConnection};
use tokio::sync::broadcast::{self, error::RecvError};
use ward_store::{Signal, Store};

use ward_testkit::db::{on_postgres, open_postgres};

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
    on_postgres(|url| async move {
        let (a, b) = tokio::join!(open_postgres(&url, "node-a"), open_postgres(&url, "node-b"));
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
    on_postgres(|url| async move {
        let chain = unique("node-listener", 0);
        let (a, b) = tokio::join!(open_postgres(&url, &chain), open_postgres(&url, "node-b"));
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
