//! `edge.ingest_memory`: bytes of webhook bodies held at once, from reading a body until its
//! batch is stored. A request that would pass it is refused before its body is read.

use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Clone)]
pub struct IngestBudget {
    bytes: Arc<Semaphore>,
}

/// Taking the bytes would pass the budget.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("{0} more bytes of webhook bodies would pass edge.ingest_memory")]
pub struct OverBudget(pub usize);

/// Bytes taken from the budget, given back when dropped.
pub struct Reservation {
    budget: Arc<Semaphore>,
    held: Option<OwnedSemaphorePermit>,
}

impl IngestBudget {
    pub fn new(bytes: usize) -> Self {
        Self {
            bytes: Arc::new(Semaphore::new(bytes)),
        }
    }

    /// Takes `bytes` now or refuses at once: waiting would hold the connection of a
    /// provider that can retry elsewhere or later.
    pub fn reserve(&self, bytes: usize) -> Result<Reservation, OverBudget> {
        let mut reservation = Reservation {
            budget: self.bytes.clone(),
            held: None,
        };
        reservation.grow(bytes)?;
        Ok(reservation)
    }
}

impl Reservation {
    /// Makes the reservation cover `bytes` in all.
    pub fn cover(&mut self, bytes: usize) -> Result<(), OverBudget> {
        self.grow(bytes.saturating_sub(self.bytes()))
    }

    fn bytes(&self) -> usize {
        self.held
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits)
    }

    fn grow(&mut self, more: usize) -> Result<(), OverBudget> {
        if more == 0 {
            return Ok(());
        }
        let permits = u32::try_from(more).map_err(|_| OverBudget(more))?;
        let taken = self
            .budget
            .clone()
            .try_acquire_many_owned(permits)
            .map_err(|_| OverBudget(more))?;
        match &mut self.held {
            Some(held) => held.merge(taken),
            None => self.held = Some(taken),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_the_budget_and_give_it_back_when_dropped() {
        let budget = IngestBudget::new(100);
        let mut first = budget.reserve(60).unwrap();
        assert!(budget.reserve(41).is_err(), "60 + 41 passes 100");
        let second = budget.reserve(40).unwrap();
        assert!(first.cover(61).is_err(), "growing passes it too");
        first.cover(50).unwrap();
        drop(second);
        first.cover(100).unwrap();
        assert!(budget.reserve(1).is_err());
        drop(first);
        budget.reserve(100).unwrap();
    }
}
