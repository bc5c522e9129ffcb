//! Keyed HMAC state shared by every scheme.
//!
//! Each secret is keyed once at start and the keyed state cloned per request: that saves the two
//! compression-function calls of re-deriving the inner and outer pads on every webhook.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "sha1" => Some(Self::Sha1),
            "sha256" => Some(Self::Sha256),
            "sha512" => Some(Self::Sha512),
            _ => None,
        }
    }
}

/// How a signature is written in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Hex,
    Base64,
}

impl Encoding {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "hex" => Some(Self::Hex),
            "base64" => Some(Self::Base64),
            _ => None,
        }
    }

    /// Decodes a signature taken from a request; `None` when it is not valid in this encoding.
    pub fn decode(self, text: &str) -> Option<Vec<u8>> {
        match self {
            Self::Hex => hex::decode(text).ok(),
            Self::Base64 => BASE64.decode(text).ok(),
        }
    }

    pub fn encode(self, bytes: &[u8]) -> String {
        match self {
            Self::Hex => hex::encode(bytes),
            Self::Base64 => BASE64.encode(bytes),
        }
    }
}

/// One secret, keyed for one algorithm.
#[derive(Clone)]
pub enum KeyedMac {
    Sha1(Hmac<Sha1>),
    Sha256(Hmac<Sha256>),
    Sha512(Hmac<Sha512>),
}

impl KeyedMac {
    pub fn new(algorithm: Algorithm, key: &[u8]) -> Self {
        // HMAC takes keys of any length (long ones are hashed), so keying cannot fail.
        const ANY_LENGTH: &str = "HMAC accepts keys of any length";
        match algorithm {
            Algorithm::Sha1 => Self::Sha1(Hmac::new_from_slice(key).expect(ANY_LENGTH)),
            Algorithm::Sha256 => Self::Sha256(Hmac::new_from_slice(key).expect(ANY_LENGTH)),
            Algorithm::Sha512 => Self::Sha512(Hmac::new_from_slice(key).expect(ANY_LENGTH)),
        }
    }

    /// The MAC of the concatenation of `parts`, computed without copying them together.
    pub fn tag(&self, parts: &[&[u8]]) -> Tag {
        match self {
            Self::Sha1(mac) => tag_of(mac, parts),
            Self::Sha256(mac) => tag_of(mac, parts),
            Self::Sha512(mac) => tag_of(mac, parts),
        }
    }
}

fn tag_of<M: Mac + Clone>(mac: &M, parts: &[&[u8]]) -> Tag {
    let mut mac = mac.clone();
    for part in parts {
        mac.update(part);
    }
    let out = mac.finalize().into_bytes();
    let mut tag = Tag {
        bytes: [0; 64],
        len: out.len(),
    };
    tag.bytes[..out.len()].copy_from_slice(&out);
    tag
}

/// A computed MAC (at most SHA-512's 64 bytes), kept on the stack.
pub struct Tag {
    bytes: [u8; 64],
    len: usize,
}

impl Tag {
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Constant-time comparison with a signature from a request.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        self.bytes[..self.len].ct_eq(candidate).into()
    }
}

/// True when the MAC of `parts` under any key equals any candidate signature. Every secret is
/// tried because during a rotation the provider may sign with either the old or the new one.
pub fn any_matches(keys: &[KeyedMac], parts: &[&[u8]], candidates: &[Vec<u8>]) -> bool {
    keys.iter().any(|key| {
        let tag = key.tag(parts);
        candidates.iter().any(|c| tag.matches(c))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_over_parts_equals_tag_over_concatenation() {
        let key = KeyedMac::new(Algorithm::Sha256, b"key");
        let split = key.tag(&[b"hello ", b"world"]);
        let whole = key.tag(&[b"hello world"]);
        assert!(split.matches(&whole.bytes[..whole.len]));
    }

    #[test]
    fn known_answers_for_each_algorithm() {
        // RFC 4231 test case 2 (SHA-256, SHA-512) and RFC 2202 test case 2 (SHA-1).
        let cases = [
            (Algorithm::Sha1, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
            (
                Algorithm::Sha256,
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                Algorithm::Sha512,
                "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
            ),
        ];
        for (algorithm, expected) in cases {
            let tag = KeyedMac::new(algorithm, b"Jefe").tag(&[b"what do ya want for nothing?"]);
            assert!(
                tag.matches(&hex::decode(expected).unwrap()),
                "{algorithm:?}"
            );
        }
    }

    #[test]
    fn a_shorter_or_different_candidate_does_not_match() {
        let tag = KeyedMac::new(Algorithm::Sha256, b"k").tag(&[b"body"]);
        let good = tag.bytes[..tag.len].to_vec();
        assert!(tag.matches(&good));
        assert!(!tag.matches(&good[..31]));
        let mut flipped = good.clone();
        flipped[0] ^= 1;
        assert!(!tag.matches(&flipped));
    }

    #[test]
    fn any_secret_may_match() {
        let keys = [
            KeyedMac::new(Algorithm::Sha256, b"old"),
            KeyedMac::new(Algorithm::Sha256, b"new"),
        ];
        let by_new = KeyedMac::new(Algorithm::Sha256, b"new").tag(&[b"x"]);
        let sig = by_new.bytes[..by_new.len].to_vec();
        assert!(any_matches(&keys, &[b"x"], &[vec![0; 32], sig.clone()]));
        assert!(!any_matches(&keys[..1], &[b"x"], &[sig]));
    }
}
