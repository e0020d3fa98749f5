//! The audit hash chain: every event's hash covers its content and its predecessor's hash.

use sha2::{Digest, Sha256};

use crate::rows::NewAudit;

/// The `prev_hash` of the first event of every chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The chain a node appends an organisation's events to. The default organisation's chain is
/// the node's own name, so the chains of a database from before there were several
/// organisations carry on as the default organisation's; another organisation's is
/// `NODE@ORG_ID`.
pub fn audit_chain_id(node: &str, org_id: &str) -> String {
    if org_id == crate::DEFAULT_ORG {
        node.to_owned()
    } else {
        format!("{node}@{org_id}")
    }
}

/// Hash of one event in its chain (lowercase hex SHA-256).
///
/// Every field is length-prefixed, so no two different events encode to the same bytes.
/// Adapters use this when appending, and `ward audit verify` when checking.
pub fn audit_hash(chain_id: &str, seq: i64, prev_hash: &str, event: &NewAudit) -> String {
    let mut h = Sha256::new();
    h.update(b"ward-audit-v1");
    let ts = event.ts_ms.to_be_bytes();
    let seq = seq.to_be_bytes();
    let fields: [&[u8]; 10] = [
        chain_id.as_bytes(),
        &seq,
        prev_hash.as_bytes(),
        event.org_id.as_bytes(),
        &ts,
        event.actor.as_bytes(),
        event.action.as_bytes(),
        event.target.as_bytes(),
        event.outcome.as_bytes(),
        event.details.as_bytes(),
    ];
    for field in fields {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field);
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> NewAudit {
        NewAudit {
            org_id: "default".into(),
            ts_ms: 1,
            actor: "cli".into(),
            action: "user.create".into(),
            target: "DU1".into(),
            outcome: "ok".into(),
            details: "{}".into(),
        }
    }

    #[test]
    fn hash_changes_with_every_field() {
        let base = audit_hash("c", 1, GENESIS_HASH, &event());
        assert_eq!(base.len(), 64);
        assert_ne!(base, audit_hash("d", 1, GENESIS_HASH, &event()));
        assert_ne!(base, audit_hash("c", 2, GENESIS_HASH, &event()));
        let mut e = event();
        e.action = "user.delete".into();
        assert_ne!(base, audit_hash("c", 1, GENESIS_HASH, &e));
        let mut e = event();
        e.details = "{\"x\":1}".into();
        assert_ne!(base, audit_hash("c", 1, GENESIS_HASH, &e));
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        let mut a = event();
        a.actor = "ab".into();
        a.action = "c".into();
        let mut b = event();
        b.actor = "a".into();
        b.action = "bc".into();
        assert_ne!(
            audit_hash("c", 1, GENESIS_HASH, &a),
            audit_hash("c", 1, GENESIS_HASH, &b)
        );
    }
}
