//! Schemes whose one header lists `key=value` items: a timestamp and one signature per live
//! secret (Stripe `t=..,v1=..`, Paddle `ts=..;h1=..`, Calendly, PagerDuty without a timestamp).
//! HMAC-SHA256, hex, over `{timestamp}{joiner}{body}` (or the body alone); any signature may
//! match any secret, because during a rotation both secrets sign.

use super::mac::{Algorithm, Encoding, KeyedMac, any_matches};
use super::{
    Message, Scheme, SignError, Signed, VerifyError, check_tolerance, parse_timestamp, required,
};
use axum::http::HeaderMap;
use std::time::Duration;

/// A scheme's header layout.
pub struct Layout {
    /// Lowercase header name.
    pub header: &'static str,
    pub separator: char,
    /// The timestamp's key and what joins it to the body in the signed content; `None`: the
    /// body alone is signed.
    pub timestamp: Option<(&'static str, &'static str)>,
    pub signature_key: &'static str,
}

pub struct Listed {
    layout: Layout,
    keys: Vec<KeyedMac>,
    tolerance: Duration,
}

impl Listed {
    pub fn new(layout: Layout, secrets: &[String], tolerance: Duration) -> Self {
        let keys = secrets
            .iter()
            .map(|s| KeyedMac::new(Algorithm::Sha256, s.as_bytes()))
            .collect();
        Self {
            layout,
            keys,
            tolerance,
        }
    }
}

impl Scheme for Listed {
    fn verify(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), VerifyError> {
        let layout = &self.layout;
        let name = layout.header;
        let header = required(headers, name)?;
        let mut timestamp = None;
        let mut signatures = Vec::new();
        for item in header.split(layout.separator) {
            let Some((key, value)) = item.trim().split_once('=') else {
                continue;
            };
            if key == layout.signature_key {
                signatures.extend(Encoding::Hex.decode(value));
            } else if layout.timestamp.is_some_and(|(ts_key, _)| ts_key == key) {
                timestamp = Some(value);
            }
        }
        if signatures.is_empty() {
            let reason = format!("no {}= hex signature", layout.signature_key);
            return Err(VerifyError::malformed(name, reason));
        }
        let Some((ts_key, joiner)) = layout.timestamp else {
            return match any_matches(&self.keys, &[body], &signatures) {
                true => Ok(()),
                false => Err(VerifyError::NoMatchingSignature),
            };
        };
        let ts_text =
            timestamp.ok_or_else(|| VerifyError::malformed(name, format!("no {ts_key}=")))?;
        let ts = parse_timestamp(name, ts_text)?;
        let parts = [ts_text.as_bytes(), joiner.as_bytes(), body];
        if !any_matches(&self.keys, &parts, &signatures) {
            return Err(VerifyError::NoMatchingSignature);
        }
        check_tolerance(ts, now, self.tolerance)
    }

    fn sign(&self, message: Message, _: Option<&str>) -> Result<Signed, SignError> {
        let layout = &self.layout;
        let key = self.keys.first().expect("a source has at least one secret");
        let sep = layout.separator;
        let value = match layout.timestamp {
            Some((ts_key, joiner)) => {
                let ts = message.timestamp.to_string();
                let tag = key.tag(&[ts.as_bytes(), joiner.as_bytes(), &message.body]);
                let sig = hex::encode(tag.as_bytes());
                format!("{ts_key}={ts}{sep}{}={sig}", layout.signature_key)
            }
            None => {
                let sig = hex::encode(key.tag(&[&message.body]).as_bytes());
                format!("{}={sig}", layout.signature_key)
            }
        };
        Ok(Signed {
            headers: vec![(layout.header.to_string(), value)],
            body: message.body,
        })
    }
}
