//! Limits shared by every process, kept in Redis beside the source's other keys (one slot):
//! - a rate as GCRA's theoretical arrival time, `<prefix>:{<source>}:rate:<name>`: each caller
//!   reserves the next slot, one `interval` after the last, and learns how long until it;
//! - a bound on deliveries in flight as leases, `<prefix>:{<source>}:flight:<name>`: a sorted
//!   set of holders by lease end, so a holder that dies frees its place when its lease ends.
//!
//! Both are Lua scripts, so that reading and updating is one atomic step, and both take the
//! time from Redis, so processes whose clocks disagree still share one schedule.

use super::QueueError;
use super::stream::Streams;
use std::sync::LazyLock;
use std::time::Duration;

/// Reserves the next slot unless it is further away than the caller will wait. Times are in
/// microseconds and written with `%d`: Lua 5.1 would print them with 14 digits, losing some.
static RESERVE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
        local interval = tonumber(ARGV[1])
        local patience = tonumber(ARGV[2])
        local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
        if tat < now then tat = now end
        local wait = tat - now
        if wait > patience then return {0, wait - patience} end
        local after = tat + interval
        redis.call('SET', KEYS[1], string.format('%d', after),
                   'PX', math.floor((after - now) / 1000) + 1000)
        return {1, wait}
        ",
    )
});

/// Takes a place among at most `ARGV[1]` holders for `ARGV[2]` ms, as member `ARGV[3]`.
static TAKE_FLIGHT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
        if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
        redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
        redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
        return 1
        ",
    )
});

/// What asking for a slot of a rate gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Reserved: it starts this long from now.
    In(Duration),
    /// Nothing reserved: the next slot is this much further away than the caller would wait.
    Refused(Duration),
}

impl Streams {
    fn limit_key(&self, kind: &str, source: &str, name: &str) -> String {
        format!("{}:{{{source}}}:{kind}:{name}", self.prefix())
    }

    /// Reserves a slot of `source`'s rate `name`, slots `interval` apart, unless the next one
    /// is more than `patience` away.
    pub async fn reserve_slot(
        &self,
        source: &str,
        name: &str,
        interval: Duration,
        patience: Duration,
    ) -> Result<Slot, QueueError> {
        let (reserved, micros): (i64, i64) = RESERVE
            .key(self.limit_key("rate", source, name))
            .arg(micros(interval).max(1))
            .arg(micros(patience))
            .invoke_async(&mut self.conn())
            .await?;
        let after = Duration::from_micros(micros.max(0) as u64);
        Ok(match reserved {
            1 => Slot::In(after),
            _ => Slot::Refused(after),
        })
    }

    /// Takes one of the `limit` places of `source`'s bound `name` for `holder`, for at most
    /// `lease`; false when all are taken.
    pub async fn take_flight(
        &self,
        source: &str,
        name: &str,
        limit: u32,
        holder: &str,
        lease: Duration,
    ) -> Result<bool, QueueError> {
        let taken: i64 = TAKE_FLIGHT
            .key(self.limit_key("flight", source, name))
            .arg(limit)
            .arg(lease.as_millis().max(1) as u64)
            .arg(holder)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(taken == 1)
    }

    /// Gives `holder`'s place back.
    pub async fn end_flight(
        &self,
        source: &str,
        name: &str,
        holder: &str,
    ) -> Result<(), QueueError> {
        let _: i64 = redis::cmd("ZREM")
            .arg(self.limit_key("flight", source, name))
            .arg(holder)
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
