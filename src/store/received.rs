//! An event's request as received: what the console's event page shows.

use super::dead_letters::ShownRequest;
use super::{Store, StoreError};
use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReceivedRequest {
    /// `[name, value]` pairs in arrival order, as stored (secrets redacted at ingest).
    pub headers: serde_json::Value,
    pub payload: Vec<u8>,
}

/// As JSON: the payload as text when it is UTF-8, else as base64, like a dead letter's.
impl Serialize for ReceivedRequest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ShownRequest::new(&self.headers, &self.payload).serialize(serializer)
    }
}

impl Store {
    pub async fn received_request(&self, id: Uuid) -> Result<Option<ReceivedRequest>, StoreError> {
        let request = sqlx::query_as("SELECT headers, payload FROM events WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(request)
    }
}
