//! Where one connection stands (waiting for a head, answering, idle between requests) and
//! until when it may stay there.

use super::Timeouts;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio::time::Instant;

pub(super) struct Stage {
    timeouts: Timeouts,
    state: Mutex<State>,
    changed: Notify,
}

struct State {
    phase: Phase,
    /// Whether any request has reached the router: until then the connection owes nothing.
    begun: bool,
}

enum Phase {
    /// A head is arriving; a new connection is here from its first moment, so silence
    /// counts against the head.
    Head { until: Instant },
    /// Kept alive after a response, until the first byte of the next request.
    Idle { until: Instant },
    /// Requests being answered, until their response bodies are done. Their own deadlines
    /// apply (the body's, the handler's): the connection adds none.
    Busy { requests: usize },
}

impl Stage {
    pub(super) fn new(timeouts: Timeouts) -> Self {
        Self {
            timeouts,
            state: Mutex::new(State {
                phase: Phase::Head {
                    until: Instant::now() + timeouts.header,
                },
                begun: false,
            }),
            changed: Notify::new(),
        }
    }

    /// Bytes arrived: on an idle connection they start the next head.
    pub(super) fn read(&self) {
        let mut state = self.state();
        if let Phase::Idle { .. } = state.phase {
            state.phase = Phase::Head {
                until: Instant::now() + self.timeouts.header,
            };
            self.changed.notify_one();
        }
    }

    /// A request reached the router; the connection is busy until the guard is dropped,
    /// which the response body does once it is done.
    pub(super) fn begin(self: &Arc<Self>) -> Answering {
        let mut state = self.state();
        state.begun = true;
        state.phase = match state.phase {
            Phase::Busy { requests } => Phase::Busy {
                requests: requests + 1,
            },
            Phase::Head { .. } | Phase::Idle { .. } => Phase::Busy { requests: 1 },
        };
        self.changed.notify_one();
        Answering(self.clone())
    }

    fn end(&self) {
        let mut state = self.state();
        state.phase = match state.phase {
            Phase::Busy { requests } if requests > 1 => Phase::Busy {
                requests: requests - 1,
            },
            _ => Phase::Idle {
                until: Instant::now() + self.timeouts.idle,
            },
        };
        self.changed.notify_one();
    }

    /// When the connection is to be closed, unless its phase changes first.
    pub(super) fn deadline(&self) -> Option<Instant> {
        match self.state().phase {
            Phase::Head { until } | Phase::Idle { until } => Some(until),
            Phase::Busy { .. } => None,
        }
    }

    pub(super) fn begun(&self) -> bool {
        self.state().begun
    }

    /// Resolves after the next change of phase (at once if one happened since the last call).
    pub(super) async fn changed(&self) {
        self.changed.notified().await;
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is valid after any panic mid-update: each update is one assignment.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Held while a request is answered.
pub(super) struct Answering(Arc<Stage>);

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.end();
    }
}
