//! Change notifications: "something about this device / transaction changed, look again".
//!
//! A signal carries only an id, never state: receivers re-read the store, so a lost or
//! duplicated signal costs a wake-up, never a wrong decision. Within one process signals travel
//! over a broadcast channel; the PostgreSQL adapter also carries them between nodes with
//! `LISTEN`/`NOTIFY`.

use async_trait::async_trait;
use tokio::sync::broadcast;

/// What changed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Signal {
    /// A device has a new pending request.
    Device(String),
    /// A transaction was decided.
    Tx(String),
}

impl Signal {
    /// The compact text form used as a `NOTIFY` payload: `d:<id>` or `t:<id>`.
    pub fn encode(&self) -> String {
        match self {
            Self::Device(id) => format!("d:{id}"),
            Self::Tx(id) => format!("t:{id}"),
        }
    }

    /// Parses [`Signal::encode`]'s form.
    pub fn decode(text: &str) -> Option<Self> {
        match text.split_once(':')? {
            ("d", id) if !id.is_empty() => Some(Self::Device(id.to_owned())),
            ("t", id) if !id.is_empty() => Some(Self::Tx(id.to_owned())),
            _ => None,
        }
    }
}

/// Publishes and subscribes to signals.
#[async_trait]
pub trait Signals: Send + Sync + std::fmt::Debug {
    /// Announces a change that has been committed.
    async fn publish(&self, signal: Signal);
    /// Receives every signal published from now on (lagging receivers skip ahead; they must
    /// re-read the store after a lag).
    fn subscribe(&self) -> broadcast::Receiver<Signal>;
}

/// Signals within one process (enough for SQLite, which is one node).
#[derive(Debug)]
pub struct LocalSignals {
    sender: broadcast::Sender<Signal>,
}

impl Default for LocalSignals {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(4096).0,
        }
    }
}

impl LocalSignals {
    /// Delivers a signal to this process's subscribers (also used by the PostgreSQL listener).
    pub fn deliver(&self, signal: Signal) {
        // No subscriber is not an error: nobody is waiting.
        let _ = self.sender.send(signal);
    }
}

#[async_trait]
impl Signals for LocalSignals {
    async fn publish(&self, signal: Signal) {
        self.deliver(signal);
    }

    fn subscribe(&self) -> broadcast::Receiver<Signal> {
        self.sender.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_round_trips() {
        for s in [Signal::Device("DD1".into()), Signal::Tx("abc-1".into())] {
            assert_eq!(Signal::decode(&s.encode()), Some(s));
        }
        assert_eq!(Signal::decode("x:1"), None);
        assert_eq!(Signal::decode("d:"), None);
    }

    #[tokio::test]
    async fn subscribers_receive_published_signals() {
        let s = LocalSignals::default();
        let mut rx = s.subscribe();
        s.publish(Signal::Tx("t1".into())).await;
        assert_eq!(rx.recv().await.unwrap(), Signal::Tx("t1".into()));
    }
}
