//! Keeping Redis bounded: destination streams are trimmed to their `max_len`, and consumers
//! that left hookgate's own group for good are removed.
//!
//! A destination stream is read by internal services through consumer groups of their own.
//! Nothing that any of them has not yet read, or read but not acked, is ever trimmed: a
//! stalled consumer holds the stream over its `max_len` (and shows in the lag and pending
//! gauges) rather than silently losing entries. A stream without any group has no reader to
//! wait for and is simply kept to its newest `max_len` entries.

use super::stream::Streams;
use super::{GROUP, QueueError};
use redis::{FromRedisValue, Value};
use std::collections::HashMap;
use std::time::Duration;

/// Trims at most the entries that are both beyond the newest `max_len` (ARGV[2]) and below
/// the floor (ARGV[1]), by bounding a `MINID ~` trim with `LIMIT len - max_len`. In one script
/// so two processes trimming at once cannot both take the same surplus. Returns whether the
/// floor held trimming back: fewer than the surplus lie below it (counted up to ARGV[3]).
const TRIM: &str = r"
local over = redis.call('XLEN', KEYS[1]) - tonumber(ARGV[2])
if over <= 0 then return 0 end
local count = math.min(over, tonumber(ARGV[3]))
local below = redis.call('XRANGE', KEYS[1], '-', '(' .. ARGV[1], 'COUNT', count)
redis.call('XTRIM', KEYS[1], 'MINID', '~', ARGV[1], 'LIMIT', over)
if #below < count then return 1 end
return 0
";

/// At most this many entries are looked at to tell whether trimming was held back; a stream
/// with more surplus than that is judged on the next round, after this one trimmed.
const HELD_CHECK: u64 = 10_000;

/// Removes a consumer only if it has nothing pending, checked in the same step: a consumer
/// removed with pending entries would take them out of the group for good. -1 when kept.
const DELETE_IDLE: &str = r"
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then return -1 end
return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
";

/// The greatest stream id: the floor of a stream without groups, which nothing holds back.
const NO_FLOOR: StreamId = StreamId {
    ms: u64::MAX,
    seq: u64::MAX,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub fn parse(text: &str) -> Option<Self> {
        let (ms, seq) = text.split_once('-')?;
        Some(Self {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }

    /// The smallest id after this one.
    fn next(self) -> Self {
        match self.seq.checked_add(1) {
            Some(seq) => Self { ms: self.ms, seq },
            None => Self {
                ms: self.ms.saturating_add(1),
                seq: 0,
            },
        }
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// One group or consumer as `XINFO` describes it.
type Fields = HashMap<String, Value>;

pub(super) fn field<T: FromRedisValue>(fields: &Fields, name: &str) -> Option<T> {
    fields
        .get(name)
        .and_then(|v| redis::from_redis_value_ref(v).ok())
}

/// One consumer group of a destination stream, as `XINFO GROUPS` and `XPENDING` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    pub name: String,
    /// Entries not yet delivered to the group.
    pub lag: u64,
    /// Entries delivered to the group and not yet acked.
    pub pending: u64,
    /// The oldest entry the group still needs: its oldest pending one, else the one after the
    /// last it was delivered.
    pub floor: StreamId,
}

/// What one trim of a destination stream saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trimmed {
    pub groups: Vec<GroupState>,
    /// The group whose unread or unacked entries kept the stream over its `max_len`.
    pub held_by: Option<String>,
}

impl Streams {
    /// Trims `key` towards its newest `max_len` entries, keeping everything some group still
    /// needs, and reports each group's lag and pending as gauges. The groups are read just
    /// before the trim: one created (or moved back) in between may find older entries gone.
    pub async fn trim_destination(&self, key: &str, max_len: u64) -> Result<Trimmed, QueueError> {
        let groups = self.groups(key).await?;
        for group in &groups {
            let labels = [("stream", key.to_string()), ("group", group.name.clone())];
            metrics::gauge!("hookgate_destination_stream_lag", &labels).set(group.lag as f64);
            metrics::gauge!("hookgate_destination_stream_pending", &labels)
                .set(group.pending as f64);
        }
        let limiting = groups.iter().min_by_key(|g| g.floor);
        let floor = limiting.map_or(NO_FLOOR, |g| g.floor);
        let held: i64 = redis::cmd("EVAL")
            .arg(TRIM)
            .arg(1)
            .arg(key)
            .arg(floor.to_string())
            .arg(max_len)
            .arg(HELD_CHECK)
            .query_async(&mut self.conn())
            .await?;
        let held_by = limiting.filter(|_| held == 1).map(|g| g.name.clone());
        if let Some(group) = &held_by {
            tracing::warn!(
                stream = key,
                group,
                max_len,
                "destination stream is over max_len: a consumer group has not read or acked its entries"
            );
        }
        Ok(Trimmed { groups, held_by })
    }

    /// `XINFO GROUPS` of `key`: none while the stream does not exist.
    pub(super) async fn group_infos(&self, key: &str) -> Result<Vec<Fields>, QueueError> {
        Ok(redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(key)
            .query_async(&mut self.conn())
            .await
            .or_else(|e| match e.detail() {
                Some("no such key") => Ok(Vec::new()),
                _ => Err(e),
            })?)
    }

    async fn groups(&self, key: &str) -> Result<Vec<GroupState>, QueueError> {
        // No event published to the stream yet: nothing to trim.
        let infos = self.group_infos(key).await?;
        let mut groups = Vec::with_capacity(infos.len());
        for info in infos {
            let name: String = field(&info, "name").unwrap_or_default();
            let pending: u64 = field(&info, "pending").unwrap_or_default();
            let last = field::<String>(&info, "last-delivered-id")
                .and_then(|id| StreamId::parse(&id))
                .unwrap_or(StreamId { ms: 0, seq: 0 });
            let lag = match field::<Option<u64>>(&info, "lag").flatten() {
                Some(lag) => lag,
                None => self.count_after(key, last).await?,
            };
            let floor = if pending > 0 {
                self.oldest_pending(key, &name)
                    .await?
                    .unwrap_or(last.next())
            } else {
                last.next()
            };
            groups.push(GroupState {
                name,
                lag,
                pending,
                floor,
            });
        }
        Ok(groups)
    }

    async fn oldest_pending(&self, key: &str, group: &str) -> Result<Option<StreamId>, QueueError> {
        let oldest: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
            .arg(key)
            .arg(group)
            .arg("-")
            .arg("+")
            .arg(1)
            .query_async(&mut self.conn())
            .await?;
        Ok(oldest.first().and_then(|(id, ..)| StreamId::parse(id)))
    }

    /// Entries after `last`, counted a page at a time: Redis leaves a group's `lag` unknown
    /// when entries were deleted from the middle of the stream.
    async fn count_after(&self, key: &str, last: StreamId) -> Result<u64, QueueError> {
        const PAGE: usize = 1000;
        let mut count = 0;
        let mut after = last;
        loop {
            let page: Vec<(String, Value)> = redis::cmd("XRANGE")
                .arg(key)
                .arg(format!("({after}"))
                .arg("+")
                .arg("COUNT")
                .arg(PAGE)
                .query_async(&mut self.conn())
                .await?;
            count += page.len() as u64;
            match page.last().and_then(|(id, _)| StreamId::parse(id)) {
                Some(id) if page.len() == PAGE => after = id,
                _ => return Ok(count),
            }
        }
    }

    /// Removes the consumers of hookgate's group on `source`'s stream that have been idle
    /// longer than `limit` with nothing pending, except `own`. Returns the names removed.
    pub async fn remove_idle_consumers(
        &self,
        source: &str,
        own: &str,
        limit: Duration,
    ) -> Result<Vec<String>, QueueError> {
        let key = self.events_key(source);
        let consumers: Vec<Fields> = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(&key)
            .arg(GROUP)
            .query_async(&mut self.conn())
            .await?;
        let mut removed = Vec::new();
        for consumer in consumers {
            let name: String = field(&consumer, "name").unwrap_or_default();
            let idle: u64 = field(&consumer, "idle").unwrap_or(0);
            if name == own || u128::from(idle) <= limit.as_millis() {
                continue;
            }
            let deleted: i64 = redis::cmd("EVAL")
                .arg(DELETE_IDLE)
                .arg(1)
                .arg(&key)
                .arg(GROUP)
                .arg(&name)
                .query_async(&mut self.conn())
                .await?;
            if deleted == 0 {
                tracing::info!(source, consumer = %name, idle_ms = idle, "removed an idle consumer");
                removed.push(name);
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::StreamId;

    #[test]
    fn the_id_after_another_carries_into_the_milliseconds() {
        let id = |text| StreamId::parse(text).unwrap();
        assert_eq!(id("5-7").next(), id("5-8"));
        assert_eq!(id("5-18446744073709551615").next(), id("6-0"));
        assert_eq!(id("5-8").to_string(), "5-8");
        assert_eq!(StreamId::parse("5"), None);
    }
}
