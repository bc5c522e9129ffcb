//! W3C Trace Context on deliveries: every attempt of an event, at every destination, is one
//! trace, so a consumer can join its logs to hookgate's, which carry the same `trace_id`.

use uuid::Uuid;

/// The event's trace id: its UUID as 32 hex digits. Derived rather than stored, so a retry
/// hours later, or one by another worker, names the same trace.
pub fn trace_id(event: Uuid) -> String {
    event.simple().to_string()
}

/// The `traceparent` header of one attempt: the event's trace, a span of its own, sampled.
pub fn traceparent(event: Uuid) -> String {
    // W3C makes an all-zero span id invalid.
    let span = std::iter::repeat_with(rand::random::<u64>)
        .find(|s| *s != 0)
        .expect("the iterator is endless");
    format!("00-{}-{span:016x}-01", trace_id(event))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_trace_per_event_and_a_span_per_attempt() {
        let event = Uuid::now_v7();
        let (first, second) = (traceparent(event), traceparent(event));
        let parts: Vec<&str> = first.split('-').collect();
        assert_eq!(parts.len(), 4, "{first}");
        assert_eq!(parts[0], "00");
        assert_eq!(parts[1], event.simple().to_string());
        assert_eq!(parts[2].len(), 16);
        assert!(
            parts[2]
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(parts[3], "01");
        assert_eq!(first[..36], second[..36], "the same trace");
        assert_ne!(first[36..52], second[36..52], "a span each");
    }
}
