//! How far hookgate's group has read a source's stream.

use super::stream::Streams;
use super::trim::field;
use super::{GROUP, QueueError};

impl Streams {
    /// Whether hookgate's group has read every entry on `source`'s stream. Processed entries
    /// are deleted, so whatever is left was read and is pending, or is unread: after the
    /// group's last delivered id.
    pub async fn read_through(&self, source: &str) -> Result<bool, QueueError> {
        let key = self.events_key(source);
        let groups = self.group_infos(&key).await?;
        let ours = groups
            .iter()
            .find(|g| field::<String>(g, "name").as_deref() == Some(GROUP));
        // No group (Redis lost its data, or no worker ever ran): nothing holds an entry that a
        // check could mistake for lost.
        let Some(ours) = ours else {
            return Ok(true);
        };
        let last: String = field(ours, "last-delivered-id").unwrap_or_else(|| "0-0".into());
        let unread: Vec<redis::Value> = redis::cmd("XRANGE")
            .arg(&key)
            .arg(format!("({last}"))
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.conn())
            .await?;
        Ok(unread.is_empty())
    }
}
