//! Each source's epoch key, `<prefix>:{<source>}:epoch`: a random value set once and then
//! only read. A Redis that lost its data (restarted without persistence, flushed, failed over
//! to an empty replica) has lost it with the source's stream and set, so a missing or changed
//! epoch tells the scheduler to requeue everything it had queued there.

use super::QueueError;
use super::stream::Streams;

impl Streams {
    fn epoch_key(&self, source: &str) -> String {
        format!("{}:{{{source}}}:epoch", self.prefix())
    }

    /// `source`'s epoch, if its keys have one.
    pub async fn epoch(&self, source: &str) -> Result<Option<String>, QueueError> {
        Ok(redis::cmd("GET")
            .arg(self.epoch_key(source))
            .query_async(&mut self.conn())
            .await?)
    }

    /// Gives `source`'s keys the epoch `fresh` unless they have one already; returns the one
    /// they have now.
    pub async fn start_epoch(&self, source: &str, fresh: &str) -> Result<String, QueueError> {
        let key = self.epoch_key(source);
        let mut pipe = redis::pipe();
        pipe.cmd("SET").arg(&key).arg(fresh).arg("NX").ignore();
        pipe.cmd("GET").arg(&key);
        let (epoch,): (String,) = pipe.query_async(&mut self.conn()).await?;
        Ok(epoch)
    }
}
