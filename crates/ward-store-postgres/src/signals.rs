//! Change notifications between nodes: in-process delivery plus `LISTEN`/`NOTIFY`.
//!
//! [`PgSignals::publish`](Signals::publish) hands a signal to this node's subscribers at once
//! and announces it to every node with `pg_notify` on the channel `ward_signals`. A background
//! task holds a [`PgListener`] on that channel and delivers each announcement to this node's
//! subscribers. A node also hears its own announcements: receivers re-read the store, so a
//! duplicate costs one wake-up. Announcements made while the listener is reconnecting are lost,
//! which costs a late wake-up, never a wrong decision (receivers must not rely on signals alone
//! to notice timeouts).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;
use ward_store::{LocalSignals, Signal, Signals, StoreResult};

use crate::error::store_err;

/// The `NOTIFY` channel every node listens on.
macro_rules! channel {
    () => {
        "ward_signals"
    };
}

/// The first wait before reconnecting a lost listener; doubled after each failure.
const FIRST_RETRY: Duration = Duration::from_millis(100);

/// The longest wait between two reconnection attempts.
const LAST_RETRY: Duration = Duration::from_secs(5);

/// Signals of one node of a PostgreSQL deployment.
pub(crate) struct PgSignals {
    local: Arc<LocalSignals>,
    /// Where announcements are sent from (the node's read pool).
    notify: PgPool,
    /// The listener task, until [`PgSignals::stop`].
    listener: Mutex<Option<ListenerTask>>,
}

struct ListenerTask {
    /// Sent (or dropped, with the store) to stop the task.
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for PgSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSignals")
            .field("channel", &channel!())
            .finish_non_exhaustive()
    }
}

impl PgSignals {
    /// Starts listening on a dedicated connection opened with `options` (named
    /// `application_name` in `pg_stat_activity`) and returns once `LISTEN` is in place, so that
    /// every announcement made after this returns is delivered. Announcements are sent through
    /// `notify`.
    pub(crate) async fn start(
        options: PgConnectOptions,
        application_name: &str,
        notify: PgPool,
    ) -> StoreResult<PgSignals> {
        // One connection, never recycled while it works: a recycled connection would drop the
        // LISTEN and lose what is announced until the next one.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(options.application_name(application_name));
        let listener = listen(&pool).await.map_err(store_err)?;
        let local = Arc::new(LocalSignals::default());
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(listener, pool, Arc::clone(&local), stopped));
        Ok(PgSignals {
            local,
            notify,
            listener: Mutex::new(Some(ListenerTask { stop, task })),
        })
    }

    /// Stops the listener task and closes its connection (idempotent).
    pub(crate) async fn stop(&self) {
        let listener = self
            .listener
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(ListenerTask { stop, task }) = listener {
            // An error means the task already ended.
            let _ = stop.send(());
            if let Err(err) = task.await {
                tracing::warn!(error = %err, "the signal listener task failed");
            }
        }
    }
}

#[async_trait]
impl Signals for PgSignals {
    async fn publish(&self, signal: Signal) {
        let payload = signal.encode();
        self.local.deliver(signal);
        let sent = sqlx::query(concat!("SELECT pg_notify('", channel!(), "', $1)"))
            .bind(&payload)
            .execute(&self.notify)
            .await;
        if let Err(err) = sent {
            // The other nodes wake up late (at their next poll); nothing is decided wrongly.
            tracing::warn!(error = %err, "could not announce a change to the other nodes");
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<Signal> {
        self.local.subscribe()
    }
}

/// A listener on [`channel!`] holding the pool's one connection.
async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // A lost connection is reported (`Ok(None)`) instead of silently replaced, so that
    // reconnection goes through `reconnect`'s back-off.
    listener.eager_reconnect(false);
    listener.listen(channel!()).await?;
    Ok(listener)
}

/// Forwards announcements until `stop` fires or the store is dropped, replacing the listener
/// whenever its connection is lost.
async fn run(
    first: PgListener,
    pool: PgPool,
    local: Arc<LocalSignals>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut listener = Some(first);
    while let Some(mut current) = listener.take() {
        let lost = tokio::select! {
            _ = &mut stop => None,
            lost = forward(&mut current, &local) => Some(lost),
        };
        // Hands the connection back to the pool (after UNLISTEN) or discards it if broken.
        drop(current);
        let Some(reason) = lost else { break };
        tracing::warn!(
            reason,
            "the signal listener lost its connection; reconnecting"
        );
        listener = reconnect(&pool, &mut stop).await;
    }
    pool.close().await;
    tracing::debug!("signal listener stopped");
}

/// Delivers every announcement to this node's subscribers until the connection is lost, and
/// says why it was.
async fn forward(listener: &mut PgListener, local: &LocalSignals) -> String {
    loop {
        let note = match listener.try_recv().await {
            Ok(Some(note)) => note,
            Ok(None) => return "the connection closed".to_owned(),
            Err(err) => return err.to_string(),
        };
        if let Some(signal) = Signal::decode(note.payload()) {
            local.deliver(signal);
        } else {
            // A newer node's signal kind, or someone else's use of the channel.
            tracing::debug!(bytes = note.payload().len(), "ignored an unknown signal");
        }
    }
}

/// Opens a new listener, waiting [`FIRST_RETRY`] first and twice as long after each failure
/// (at most [`LAST_RETRY`]); `None` once `stop` fires.
async fn reconnect(pool: &PgPool, stop: &mut oneshot::Receiver<()>) -> Option<PgListener> {
    let mut delay = FIRST_RETRY;
    loop {
        let attempt = async {
            tokio::time::sleep(delay).await;
            listen(pool).await
        };
        tokio::select! {
            _ = &mut *stop => return None,
            result = attempt => match result {
                Ok(listener) => {
                    tracing::info!("the signal listener is listening again");
                    return Some(listener);
                }
                Err(err) => tracing::warn!(
                    error = %err,
                    retry_in_ms = delay.saturating_mul(2).min(LAST_RETRY).as_millis(),
                    "the signal listener could not reconnect"
                ),
            },
        }
        delay = delay.saturating_mul(2).min(LAST_RETRY);
    }
}
