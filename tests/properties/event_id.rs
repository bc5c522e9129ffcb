//! The event id: from a header, from a JSON pointer into any body, or the body's hash.

use super::{any_text, bytes, cases, drawn, header_bytes, text_of};
use axum::http::{HeaderMap, HeaderValue};
use hookgate::event_id::{EventIdError, EventIdRule, IdSource, MAX_LEN};
use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// What a rule must answer for a candidate id it found (`None`: found nothing).
fn expected(found: Option<&str>, fallback: bool, body: &[u8]) -> Option<Result<String, ()>> {
    match found.filter(|id| !id.is_empty()) {
        Some(id) if id.len() > MAX_LEN || id.contains('\0') => Some(Err(())),
        Some(id) => Some(Ok(id.to_string())),
        None if fallback => Some(Ok(hex::encode(Sha256::digest(body)))),
        None => None,
    }
}

/// Checks `result` against [`expected`]: the id itself, a refusal of an unusable one (too
/// long before NUL), or `Missing` when nothing was found.
fn check(
    result: Result<String, EventIdError>,
    found: Option<&str>,
    fallback: bool,
    body: &[u8],
) -> Result<(), TestCaseError> {
    match (expected(found, fallback, body), result) {
        (Some(Ok(id)), Ok(got)) => prop_assert_eq!(got, id),
        (Some(Err(())), Err(EventIdError::TooLong)) => {
            prop_assert!(found.unwrap().len() > MAX_LEN)
        }
        (Some(Err(())), Err(EventIdError::Nul)) => {
            let id = found.unwrap();
            prop_assert!(id.len() <= MAX_LEN && id.contains('\0'))
        }
        (None, Err(EventIdError::Missing(message))) => prop_assert!(!message.is_empty()),
        (want, got) => prop_assert!(false, "expected {want:?}, got {got:?}"),
    }
    Ok(())
}

/// Ids as JSON can carry them: any text (NUL, non-ASCII, empty, over-long) or numbers.
fn json_id() -> impl Strategy<Value = Value> {
    prop_oneof![
        any_text(20).prop_map(Value::String),
        drawn(8, |r| char::from((r % 0x80) as u8))
            .prop_map(|id| Value::String(String::from_iter(id))),
        (MAX_LEN - 2..MAX_LEN + 3).prop_map(|n| Value::String("é".repeat(n / 2) + "x")),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        // Short decimals: what parses back to the same float.
        (any::<i32>(), 0..4u32).prop_map(|(m, e)| json!(f64::from(m) / 10f64.powi(e as i32))),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        Just(json!({"id": "nested"})),
        Just(json!(["evt_1"])),
    ]
}

/// Object keys, including the characters a JSON pointer must escape (`~` and `/`).
fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        any_text(8),
        text_of(6, &["a", "~", "/", "0", "1", "~0", "~1"])
    ]
}

/// RFC 6901: `~` is written `~0` and `/` is written `~1`.
fn pointer_to(keys: &[String]) -> String {
    keys.iter()
        .map(|key| format!("/{}", key.replace('~', "~0").replace('/', "~1")))
        .collect()
}

proptest! {
    #![proptest_config(cases(100_000))]

    #[test]
    fn a_header_id_is_its_trimmed_visible_text(
        value in prop_oneof![
            4 => header_bytes(40),
            // Ids about as long as the longest taken, with spaces around that do not count.
            1 => (MAX_LEN - 2..MAX_LEN + 3, 0..3usize, 0..3usize)
                .prop_map(|(n, before, after)| {
                    [" ".repeat(before), "x".repeat(n), " ".repeat(after)].concat().into_bytes()
                }),
        ],
        other in proptest::option::of(header_bytes(20)),
        first_of_two in any::<bool>(),
        fallback in any::<bool>(),
        body in bytes(16),
    ) {
        let mut rule = match first_of_two {
            true => EventIdRule::first_header(&["x-id", "x-other-id"]),
            false => EventIdRule::header("X-Id"),
        };
        rule.fallback_body_sha256 = fallback;
        let mut headers = HeaderMap::new();
        headers.insert("x-id", HeaderValue::from_bytes(&value).unwrap());
        if let Some(other) = &other {
            headers.insert("x-other-id", HeaderValue::from_bytes(other).unwrap());
        }
        // Only visible ASCII is text; spaces and tabs around it are not part of the id.
        let visible = |bytes: &[u8]| {
            std::str::from_utf8(bytes)
                .ok()
                .filter(|text| text.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)))
                .map(|text| text.trim_matches([' ', '\t']).to_string())
                .filter(|id| !id.is_empty())
        };
        let found = match (visible(&value), first_of_two) {
            (None, true) => other.as_deref().and_then(visible),
            (found, _) => found,
        };
        check(rule.extract(&headers, &body), found.as_deref(), fallback, &body)?;
    }

}

proptest! {
    #![proptest_config(cases(100_000))]

    #[test]
    fn a_json_pointer_into_any_bytes_never_panics(
        pointer in prop_oneof![
            any_text(12).prop_map(|p| format!("/{p}")),
            any_text(12),
            text_of(12, &["/", "0", "1", "01", "-", "~", "~0", "~1", "~2", "a", "é"]),
        ],
        body in prop_oneof![
            bytes(200),
            text_of(60, &["[", "]", "{", "}", "\"", ":", ",", "0", "1", "-1", "1e999", "a", " ",
                "~", "/", "\\", "\\u0000", "null", "true"]).prop_map(String::into_bytes),
        ],
        fallback in any::<bool>(),
    ) {
        let rule = EventIdRule {
            from: Some(IdSource::JsonPointer(pointer)),
            fallback_body_sha256: fallback,
        };
        match rule.extract(&HeaderMap::new(), &body) {
            Ok(id) => prop_assert!(!id.is_empty() && id.len() <= MAX_LEN && !id.contains('\0')),
            Err(EventIdError::Missing(_) | EventIdError::TooLong | EventIdError::Nul) => {
                prop_assert!(!fallback || serde_json::from_slice::<Value>(&body).is_ok())
            }
        }
    }
}

proptest! {
    #![proptest_config(cases(20_000))]

    /// A string or number at the pointer is the id, however deep and whatever its keys are
    /// called; anything else there is no id.
    #[test]
    fn a_json_pointer_finds_the_id_wherever_it_is(
        keys in vec(json_key(), 1..4),
        id in json_id(),
        sibling in json_id(),
        fallback in any::<bool>(),
    ) {
        let mut body = id.clone();
        for key in keys.iter().rev() {
            let mut object = serde_json::Map::new();
            object.insert(format!("{key}_"), sibling.clone());
            object.insert(key.clone(), body);
            body = Value::Object(object);
        }
        let body = serde_json::to_vec(&body).unwrap();
        let rule = EventIdRule {
            from: Some(IdSource::JsonPointer(pointer_to(&keys))),
            fallback_body_sha256: fallback,
        };
        let found = match &id {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        };
        check(rule.extract(&HeaderMap::new(), &body), found.as_deref(), fallback, &body)?;
    }
}
