//! Reads of push devices and push requests.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use ward_store::{DeviceRow, DeviceStore, PushRow, PushStore, StoreResult};

use super::{all, one};
use crate::SqliteStore;
use crate::error::store_err;

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

fn device(row: &SqliteRow) -> Result<DeviceRow, sqlx::Error> {
    Ok(DeviceRow {
        org_id: row.try_get("org_id")?,
        device_id: row.try_get("device_id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        platform: row.try_get("platform")?,
        key_alg: row.try_get("key_alg")?,
        public_key: row.try_get("public_key")?,
        created_ms: row.try_get("created_ms")?,
    })
}

fn push(row: &SqliteRow) -> Result<PushRow, sqlx::Error> {
    Ok(PushRow {
        org_id: row.try_get("org_id")?,
        txid: row.try_get("txid")?,
        ikey: row.try_get("ikey")?,
        user_id: row.try_get("user_id")?,
        device_id: row.try_get("device_id")?,
        state: row.try_get("state")?,
        number: row.try_get("number")?,
        context: row.try_get("context")?,
        context_hash: row.try_get("context_hash")?,
        created_ms: row.try_get("created_ms")?,
        expires_ms: row.try_get("expires_ms")?,
        decided_ms: row.try_get("decided_ms")?,
    })
}

#[async_trait]
impl DeviceStore for SqliteStore {
    async fn device(&self, device_id: &str) -> StoreResult<Option<DeviceRow>> {
        let sql = concat!(
            "SELECT ",
            device_columns!(),
            " FROM devices WHERE device_id = ?"
        );
        let row = sqlx::query(sql)
            .bind(device_id)
            .fetch_optional(&self.reads)
            .await;
        one(row.map_err(store_err)?.as_ref(), device)
    }

    async fn devices_for_user(&self, org_id: &str, user_id: &str) -> StoreResult<Vec<DeviceRow>> {
        let sql = concat!(
            "SELECT ",
            device_columns!(),
            " FROM devices WHERE org_id = ? AND user_id = ? ORDER BY created_ms, device_id"
        );
        let rows = sqlx::query(sql)
            .bind(org_id)
            .bind(user_id)
            .fetch_all(&self.reads)
            .await;
        all(&rows.map_err(store_err)?, device)
    }
}

#[async_trait]
impl PushStore for SqliteStore {
    async fn push(&self, org_id: &str, txid: &str) -> StoreResult<Option<PushRow>> {
        let sql = concat!(
            "SELECT ",
            push_columns!(),
            " FROM push_requests WHERE org_id = ? AND txid = ?"
        );
        let row = sqlx::query(sql)
            .bind(org_id)
            .bind(txid)
            .fetch_optional(&self.reads)
            .await;
        one(row.map_err(store_err)?.as_ref(), push)
    }

    async fn pending_pushes(&self, device_id: &str, now_ms: i64) -> StoreResult<Vec<PushRow>> {
        let sql = concat!(
            "SELECT ",
            push_columns!(),
            " FROM push_requests WHERE device_id = ? AND state = 'pending' AND expires_ms > ? \
             ORDER BY created_ms, txid"
        );
        let rows = sqlx::query(sql)
            .bind(device_id)
            .bind(now_ms)
            .fetch_all(&self.reads)
            .await;
        all(&rows.map_err(store_err)?, push)
    }

    async fn pushes_since(&self, org_id: &str, user_id: &str, since_ms: i64) -> StoreResult<i64> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM push_requests \
             WHERE org_id = ? AND user_id = ? AND created_ms >= ?",
        )
        .bind(org_id)
        .bind(user_id)
        .bind(since_ms)
        .fetch_one(&self.reads)
        .await
        .map_err(store_err)
    }
}
