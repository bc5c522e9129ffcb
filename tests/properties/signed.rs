//! Signing as each sender documents it, independently of hookgate's verifiers, and the one
//! property every scheme shares: a signed request verifies, and no one-byte change of its body
//! or signature does.

use super::{any_text, bytes, text_of, visible};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use hookgate::verify::mac::{Algorithm, Encoding};
use hookgate::verify::{Verifier, VerifyError};
use proptest::prelude::*;
use proptest::sample::Index;
use std::ops::Range;
use std::time::Duration;

pub const TOLERANCE: Duration = Duration::from_secs(300);

pub fn mac(algorithm: Algorithm, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    fn of<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        let mut mac = <M as KeyInit>::new_from_slice(key).unwrap();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }
    match algorithm {
        Algorithm::Sha1 => of::<Hmac<sha1::Sha1>>(key, parts),
        Algorithm::Sha256 => of::<Hmac<sha2::Sha256>>(key, parts),
        Algorithm::Sha512 => of::<Hmac<sha2::Sha512>>(key, parts),
    }
}

pub fn encode(encoding: Encoding, bytes: &[u8]) -> String {
    match encoding {
        Encoding::Hex => hex::encode(bytes),
        Encoding::Base64 => BASE64.encode(bytes),
    }
}

pub fn header_map(pairs: &[(&str, HeaderValue)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(name, value)| (HeaderName::try_from(*name).unwrap(), value.clone()))
        .collect()
}

pub fn text(value: &str) -> HeaderValue {
    HeaderValue::try_from(value).unwrap()
}

/// Header bytes made legal: what a client can actually put on the wire.
pub fn raw(bytes: &[u8]) -> HeaderValue {
    HeaderValue::from_bytes(bytes).unwrap()
}

/// Secrets as operators write them: any text, quotes and non-ASCII included.
pub fn secret() -> impl Strategy<Value = String> {
    any_text(40)
}

pub fn body() -> impl Strategy<Value = Vec<u8>> {
    bytes(200)
}

pub fn thirty_two_bytes() -> impl Strategy<Value = Vec<u8>> {
    (any::<u128>(), any::<u128>()).prop_map(|(a, b)| [a.to_le_bytes(), b.to_le_bytes()].concat())
}

/// Seconds between signing and checking, within the tolerance.
pub fn skew() -> impl Strategy<Value = i64> {
    -300i64..=300
}

/// How far outside the tolerance a replay (or a sender's bad clock) may be.
pub fn stale() -> impl Strategy<Value = i64> {
    prop_oneof![
        301i64..=3_600,
        301i64..=i64::MAX,
        i64::MIN..=-301,
        -3_600i64..=-301
    ]
}

/// Timestamps as text: integers of every size, and things that only look like one.
pub fn timestamp_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|t| t.to_string()),
        text_of(24, &["-", "+", " ", "0", "1", "5", "9"]),
        visible(12),
    ]
}

/// Signature-like text: hex, base64 and neither.
pub fn signature_text() -> impl Strategy<Value = String> {
    prop_oneof![
        bytes(70).prop_map(hex::encode),
        text_of(130, &["0", "7", "9", "a", "f", "A", "F"]),
        bytes(70).prop_map(|b| BASE64.encode(b)),
        text_of(90, &["A", "z", "0", "+", "/", "="]),
        visible(20),
    ]
}

/// A one-byte change of a body: where, and a non-zero XOR.
pub fn body_change() -> impl Strategy<Value = (Index, u8)> {
    (any::<Index>(), 1u8..=255)
}

/// A one-byte change of a header value: where, and which of the other legal bytes.
pub fn header_change() -> impl Strategy<Value = (Index, Index)> {
    (any::<Index>(), any::<Index>())
}

/// A request signed as its sender would, and the verifier that must accept it.
pub struct Signed {
    pub verifier: Verifier,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub now: i64,
    pub signature_header: &'static str,
    /// The bytes of the signature header's value that carry the signature (and its timestamp):
    /// any change there must be refused. Unsigned neighbours (other `v1` entries) are not.
    pub signed: Vec<Range<usize>>,
    /// Where the signature is hex. Hex reads either case, so there `ab` and `AB` are one
    /// signature and changing the case of a letter is no change.
    pub hex: Option<Range<usize>>,
}

impl Signed {
    fn verify_at(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), VerifyError> {
        self.verifier.verify(headers, body, now).map(|_| ())
    }

    /// It verifies; with any one byte of the body or of the signature changed, it does not; and
    /// `stale` seconds away from its timestamp (when it has one) it is refused as a replay.
    pub fn check(
        &self,
        (body_at, xor): (Index, u8),
        (header_at, to): (Index, Index),
        stale: Option<i64>,
    ) -> Result<(), TestCaseError> {
        prop_assert_eq!(self.verify_at(&self.headers, &self.body, self.now), Ok(()));

        if !self.body.is_empty() {
            let mut body = self.body.clone();
            let at = body_at.index(body.len());
            body[at] ^= xor;
            let result = self.verify_at(&self.headers, &body, self.now);
            prop_assert_eq!(result, Err(VerifyError::NoMatchingSignature));
        }

        let value = self.headers[self.signature_header].as_bytes();
        let positions: Vec<usize> = self.signed.iter().cloned().flatten().collect();
        let at = *header_at.get(&positions);
        let others: Vec<u8> = legal_header_bytes().filter(|b| *b != value[at]).collect();
        let to = *to.get(&others);
        let same = self.hex.as_ref().is_some_and(|hex| hex.contains(&at))
            && value[at].eq_ignore_ascii_case(&to);
        if !same {
            let mut changed = value.to_vec();
            changed[at] = to;
            let mut headers = self.headers.clone();
            headers.insert(self.signature_header, raw(&changed));
            let result = self.verify_at(&headers, &self.body, self.now);
            prop_assert!(
                result.is_err(),
                "{:?} verified",
                String::from_utf8_lossy(&changed)
            );
        }

        if let Some(now) = stale {
            let result = self.verify_at(&self.headers, &self.body, now);
            prop_assert!(
                matches!(result, Err(VerifyError::TimestampOutsideTolerance { .. })),
                "{result:?}"
            );
        }
        Ok(())
    }
}

fn legal_header_bytes() -> impl Iterator<Item = u8> {
    (0x20u8..=0x7e).chain([b'\t']).chain(0x80u8..=0xff)
}

/// `items` joined by `separator`, and where in the result each item is.
pub fn joined(items: &[String], separator: &str) -> (String, Vec<Range<usize>>) {
    let mut spans = Vec::new();
    let mut at = 0;
    for item in items {
        spans.push(at..at + item.len());
        at += item.len() + separator.len();
    }
    (items.join(separator), spans)
}

/// `list` with `item` inserted at `at`.
pub fn inserted(mut list: Vec<String>, at: Index, item: String) -> Vec<String> {
    list.insert(at.index(list.len() + 1), item);
    list
}

/// `stale` seconds from `ts`, when that is a time at all.
pub fn stale_from(ts: i64, stale: i64) -> Option<i64> {
    ts.checked_add(stale)
}
