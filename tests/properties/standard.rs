//! Standard Webhooks: `webhook-signature: v1,<base64> ..`, and the same under Svix's
//! `svix-*` names.

use super::cases;
use super::signed::{
    Signed, TOLERANCE, body, body_change, header_change, header_map, inserted, joined, mac, raw,
    signature_text, skew, stale, stale_from, text, thirty_two_bytes, timestamp_text,
};
use super::{any_text, bytes, header_bytes, text_of, visible};
use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hookgate::verify::mac::Algorithm;
use hookgate::verify::standard::{SigningKey, Standard};
use hookgate::verify::{Scheme, Verifier};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use std::sync::LazyLock;

/// Keys for Standard Webhooks secrets: any non-empty bytes.
fn key() -> impl Strategy<Value = Vec<u8>> {
    bytes(47).prop_map(|mut key| {
        key.push(0x5a);
        key
    })
}

/// The three Standard Webhooks headers under one naming.
fn names(svix: bool) -> [&'static str; 3] {
    match svix {
        false => ["webhook-id", "webhook-timestamp", "webhook-signature"],
        true => ["svix-id", "svix-timestamp", "svix-signature"],
    }
}

fn whsec(key: &[u8]) -> String {
    format!("whsec_{}", BASE64.encode(key))
}

/// Standard Webhooks entries that are not the signature: Ed25519 `v1a`s, other `v1`s, others.
fn extra() -> impl Strategy<Value = String> {
    prop_oneof![
        (thirty_two_bytes(), thirty_two_bytes())
            .prop_map(|(a, b)| format!("v1a,{}", BASE64.encode([a, b].concat()))),
        thirty_two_bytes().prop_map(|b| format!("v1,{}", BASE64.encode(b))),
        "[!-~]{1,16}",
    ]
}

fn signature_header() -> impl Strategy<Value = Vec<u8>> {
    let entry = prop_oneof![
        signature_text().prop_map(|s| format!("v1,{s}")),
        signature_text().prop_map(|s| format!("v1a,{s}")),
        visible(12),
    ];
    let separator = prop_oneof![Just(" "), Just("  "), Just("\t"), Just(",")];
    prop_oneof![
        (vec(entry, 0..5), separator).prop_map(|(entries, s)| entries.join(s).into_bytes()),
        header_bytes(120),
    ]
}

/// A header under one of the two names, or absent.
fn either_name(
    value: impl Strategy<Value = Vec<u8>>,
) -> impl Strategy<Value = Option<(bool, Vec<u8>)>> {
    proptest::option::weighted(0.9, (any::<bool>(), value))
}

proptest! {
    #![proptest_config(cases(60_000))]

    #[test]
    fn no_standard_headers_panic_or_verify(
        id in either_name(header_bytes(40)),
        ts in either_name(timestamp_text().prop_map(String::into_bytes)),
        signature in either_name(signature_header()),
        body in bytes(32),
        now in any::<i64>(),
    ) {
        static STANDARD: LazyLock<Standard> =
            LazyLock::new(|| Standard::new(&[whsec(b"fixed key")], TOLERANCE).unwrap());
        let mut headers = HeaderMap::new();
        for (which, header) in [(0, id), (1, ts), (2, signature)] {
            if let Some((svix, value)) = header {
                headers.insert(names(svix)[which], raw(&value));
            }
        }
        prop_assert!(STANDARD.verify(&headers, &body, now).is_err());
    }
}

proptest! {
    #![proptest_config(cases(3_000))]

    #[test]
    fn standard_signatures_verify_and_no_one_byte_change_does(
        (key, old_key, rotated, svix) in
            (key(), key(), any::<bool>(), any::<bool>()),
        (id, body, ts, skew, stale) in (visible(30), body(), any::<i64>(), skew(), stale()),
        (extras, at) in (vec(extra(), 0..4), any::<Index>()),
        (body_change, header_change) in (body_change(), header_change()),
    ) {
        let secret = whsec(&key);
        // What hookgate signs for its destinations is what a Standard Webhooks sender signs.
        let entry = SigningKey::parse(&secret).unwrap().sign(&id, ts, &body);
        let ts_text = ts.to_string();
        let expected = mac(Algorithm::Sha256, &key, &[id.as_bytes(), b".", ts_text.as_bytes(), b".", &body]);
        prop_assert_eq!(&entry, &format!("v1,{}", BASE64.encode(expected)));

        let entries = inserted(extras, at, entry.clone());
        let (value, spans) = joined(&entries, " ");
        let signed = entries.iter().zip(spans).filter(|(e, _)| **e == entry).map(|(_, s)| s).collect();
        let secrets = if rotated { vec![whsec(&old_key), secret] } else { vec![secret] };
        let [id_name, ts_name, signature_name] = names(svix);
        let signed = Signed {
            verifier: Verifier::new(Standard::new(&secrets, TOLERANCE).unwrap()),
            headers: header_map(&[
                (id_name, text(&id)),
                (ts_name, text(&ts_text)),
                (signature_name, text(&value)),
            ]),
            body,
            now: ts.saturating_add(skew),
            signature_header: signature_name,
            signed,
            hex: None,
        };
        signed.check(body_change, header_change, stale_from(ts, stale))?;
    }
}

proptest! {
    #![proptest_config(cases(20_000))]

    /// A secret is usable exactly when it is (`whsec_` and) non-empty base64, for receiving
    /// and for signing alike.
    #[test]
    fn standard_secrets_are_taken_exactly_when_they_are_base64(
        secret in prop_oneof![
            any_text(30),
            text_of(40, &["A", "z", "0", "+", "/", "=", " "]).prop_map(|b64| format!("whsec_{b64}")),
            bytes(40).prop_map(|key| whsec(&key)),
        ],
    ) {
        let encoded = secret.strip_prefix("whsec_").unwrap_or(&secret);
        let usable = BASE64.decode(encoded).is_ok_and(|key| !key.is_empty());
        prop_assert_eq!(Standard::new(std::slice::from_ref(&secret), TOLERANCE).is_ok(), usable);
        prop_assert_eq!(SigningKey::parse(&secret).is_ok(), usable);
    }
}
