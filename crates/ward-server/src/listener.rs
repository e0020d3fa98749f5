//! [`PeerAddr`], the client address every request carries as `ConnectInfo<PeerAddr>` (the
//! server that provides it is [`crate::connections`]).

use std::fmt;
use std::net::SocketAddr;

/// The peer's address, for `ConnectInfo<PeerAddr>` in both TLS and plain-HTTP modes.
///
/// Behind a TLS-terminating proxy this is the proxy's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerAddr(pub SocketAddr);

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<SocketAddr> for PeerAddr {
    fn from(addr: SocketAddr) -> Self {
        Self(addr)
    }
}
