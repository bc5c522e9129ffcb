//! Stripe: `Stripe-Signature: t=..,v1=..[,v1=..]`.

use super::cases;
use super::signed::{
    Signed, TOLERANCE, body, body_change, header_change, header_map, inserted, joined, mac, raw,
    secret, signature_text, skew, stale, stale_from, text, thirty_two_bytes, timestamp_text,
};
use super::{bytes, header_bytes, visible};
use hookgate::verify::Verifier;
use hookgate::verify::listed::Listed;
use hookgate::verify::mac::Algorithm;
use hookgate::verify::{Scheme, stripe};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use std::ops::Range;
use std::sync::LazyLock;

/// Stripe entries that are not the signature: other `v1`s, test-mode `v0`s, unknown keys.
fn extra() -> impl Strategy<Value = String> {
    prop_oneof![
        thirty_two_bytes().prop_map(|b| format!("v1={}", hex::encode(b))),
        thirty_two_bytes().prop_map(|b| format!("v0={}", hex::encode(b))),
        "[a-su-z][a-z0-9]{0,3}=[!-+\\--~]{0,12}",
    ]
}

fn header() -> impl Strategy<Value = Vec<u8>> {
    let item = prop_oneof![
        timestamp_text().prop_map(|t| format!("t={t}")),
        signature_text().prop_map(|s| format!("v1={s}")),
        signature_text().prop_map(|s| format!("v0={s}")),
        visible(12),
    ];
    prop_oneof![
        vec(item, 0..6).prop_map(|items| items.join(",").into_bytes()),
        header_bytes(120),
    ]
}

proptest! {
    #![proptest_config(cases(60_000))]

    #[test]
    fn no_stripe_header_panics_or_verifies(
        header in header(),
        body in bytes(32),
        now in any::<i64>(),
    ) {
        static STRIPE: LazyLock<Listed> =
            LazyLock::new(|| stripe::new(&["whsec_fixed".to_string()], TOLERANCE));
        let headers = header_map(&[("stripe-signature", raw(&header))]);
        prop_assert!(STRIPE.verify(&headers, &body, now).is_err());
    }
}

proptest! {
    #![proptest_config(cases(3_000))]

    #[test]
    fn stripe_signatures_verify_and_no_one_byte_change_does(
        (secret, old, rotated) in (secret(), secret(), any::<bool>()),
        (body, ts, skew, stale) in (body(), any::<i64>(), skew(), stale()),
        (extras, t_at, v1_at) in (vec(extra(), 0..4), any::<Index>(), any::<Index>()),
        (body_change, header_change) in (body_change(), header_change()),
    ) {
        let ts_text = ts.to_string();
        let key = secret.as_bytes();
        let signature = hex::encode(mac(Algorithm::Sha256, key, &[ts_text.as_bytes(), b".", &body]));
        let items = inserted(extras, t_at, format!("t={ts}"));
        let items = inserted(items, v1_at, format!("v1={signature}"));
        let (value, spans) = joined(&items, ",");
        let signed: Vec<Range<usize>> = items
            .iter()
            .zip(spans)
            .filter(|(item, _)| item.starts_with("t=") || item.contains(&signature))
            .map(|(_, span)| span)
            .collect();
        let v1 = value.find(&signature).unwrap();
        let secrets = if rotated { vec![old, secret] } else { vec![secret] };
        let signed = Signed {
            verifier: Verifier::new(stripe::new(&secrets, TOLERANCE)),
            headers: header_map(&[("stripe-signature", text(&value))]),
            body,
            now: ts.saturating_add(skew),
            signature_header: "stripe-signature",
            signed,
            hex: Some(v1..v1 + signature.len()),
        };
        signed.check(body_change, header_change, stale_from(ts, stale))?;
    }
}
