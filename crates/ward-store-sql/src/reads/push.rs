//! Reads of push devices and push requests.

use async_trait::async_trait;
use ward_store::{DeviceRow, DeviceStore, PushRow, PushStore, StoreResult};

use crate::exec::{Row, query};
use crate::{Backend, SqlStore};

macro_rules! device_columns {
    () => {
        "device_id, org_id, user_id, name, platform, key_alg, public_key, created_ms"
    };
}
macro_rules! push_columns {
    () => {
        "txid, org_id, ikey, user_id, device_id, state, number, context, context_hash, \
         created_ms, expires_ms, decided_ms"
    };
}

fn device(row: &impl Row) -> StoreResult<DeviceRow> {
    Ok(DeviceRow {
        org_id: row.get("org_id")?,
        device_id: row.get("device_id")?,
        user_id: row.get("user_id")?,
        name: row.get("name")?,
        platform: row.get("platform")?,
        key_alg: row.get("key_alg")?,
        public_key: row.get("public_key")?,
        created_ms: row.get("created_ms")?,
    })
}

fn push(row: &impl Row) -> StoreResult<PushRow> {
    Ok(PushRow {
        org_id: row.get("org_id")?,
        txid: row.get("txid")?,
        ikey: row.get("ikey")?,
        user_id: row.get("user_id")?,
        device_id: row.get("device_id")?,
        state: row.get("state")?,
        number: row.get("number")?,
        context: row.get("context")?,
        context_hash: row.get("context_hash")?,
        created_ms: row.get("created_ms")?,
        expires_ms: row.get("expires_ms")?,
        decided_ms: row.get("decided_ms")?,
    })
}

#[async_trait]
impl<B: Backend> DeviceStore for SqlStore<B> {
    async fn device(&self, device_id: &str) -> StoreResult<Option<DeviceRow>> {
        let sql = concat!(
            "SELECT ",
            device_columns!(),
            " FROM devices WHERE device_id = $1"
        );
        self.one(query(sql).bind(device_id), device).await
    }

    async fn devices_for_user(&self, org_id: &str, user_id: &str) -> StoreResult<Vec<DeviceRow>> {
        let sql = concat!(
            "SELECT ",
            device_columns!(),
            " FROM devices WHERE org_id = $1 AND user_id = $2 ORDER BY created_ms, device_id"
        );
        self.all(query(sql).bind(org_id).bind(user_id), device)
            .await
    }
}

#[async_trait]
impl<B: Backend> PushStore for SqlStore<B> {
    async fn push(&self, org_id: &str, txid: &str) -> StoreResult<Option<PushRow>> {
        let sql = concat!(
            "SELECT ",
            push_columns!(),
            " FROM push_requests WHERE org_id = $1 AND txid = $2"
        );
        self.one(query(sql).bind(org_id).bind(txid), push).await
    }

    async fn pending_pushes(&self, device_id: &str, now_ms: i64) -> StoreResult<Vec<PushRow>> {
        let sql = concat!(
            "SELECT ",
            push_columns!(),
            " FROM push_requests WHERE device_id = $1 AND state = 'pending' AND expires_ms > $2 \
             ORDER BY created_ms, txid"
        );
        self.all(query(sql).bind(device_id).bind(now_ms), push)
            .await
    }

    async fn pushes_since(&self, org_id: &str, user_id: &str, since_ms: i64) -> StoreResult<i64> {
        let sql = "SELECT COUNT(*) AS n FROM push_requests \
                   WHERE org_id = $1 AND user_id = $2 AND created_ms >= $3";
        self.count(query(sql).bind(org_id).bind(user_id).bind(since_ms))
            .await
    }
}
