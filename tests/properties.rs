//! Properties of every parser that reads what a sender or an operator wrote: signature headers,
//! event ids and configuration text. No input makes one panic; what is signed verifies, and any
//! one-byte change to the body or to the signature header does not.
//!
//! Pure functions, no services: hundreds of thousands of cases in all, sized per parser so the
//! whole file stays well under a minute in a debug build.

#[path = "properties/config.rs"]
mod config;
#[path = "properties/event_id.rs"]
mod event_id;
#[path = "properties/hmac.rs"]
mod hmac;
#[path = "properties/signed.rs"]
mod signed;
#[path = "properties/standard.rs"]
mod standard;
#[path = "properties/stripe.rs"]
mod stripe;

use proptest::prelude::*;

/// `cases` cases; failures are reported (and shrunk), not saved to files: a case that fails is
/// kept as a unit test next to the parser it broke.
fn cases(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Up to `max` values, each `pick(r)` of a random `r`, all drawn from one seed. A collection
/// strategy builds a tree per element, which costs more than the parsers under test; this
/// costs one draw, and still shrinks towards fewer values.
fn drawn<T: std::fmt::Debug>(max: usize, pick: fn(u64) -> T) -> impl Strategy<Value = Vec<T>> {
    (0..=max, any::<u64>()).prop_map(move |(len, seed)| {
        // SplitMix64: every output of a seed is a well-mixed 64-bit value.
        let mut state = seed;
        (0..len)
            .map(|_| {
                state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                pick(z ^ (z >> 31))
            })
            .collect()
    })
}

/// Any bytes.
fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    drawn(max, |r| r as u8)
}

/// Header values as a client can send them: mostly visible ASCII, sometimes a tab or obs-text
/// (0x80-0xFF), never a byte the HTTP stack would refuse.
fn header_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    drawn(max, |r| match (r % 8, (r >> 8) % 129) {
        (0, 128) => b'\t',
        (0, high) => 0x80 + high as u8,
        _ => 0x20 + ((r >> 16) % 95) as u8,
    })
}

/// Text made of up to `max` of `alphabet`'s pieces.
fn text_of(max: usize, alphabet: &'static [&'static str]) -> impl Strategy<Value = String> {
    // Draws numbers, not pieces: `drawn` takes a plain function, which cannot see `alphabet`.
    drawn(max, |r| r).prop_map(move |draws| {
        draws
            .iter()
            .map(|r| alphabet[(r % alphabet.len() as u64) as usize])
            .collect()
    })
}

/// Visible ASCII and spaces, up to `max` characters.
fn visible(max: usize) -> impl Strategy<Value = String> {
    drawn(max, |r| char::from(0x20 + (r % 95) as u8)).prop_map(String::from_iter)
}

/// Text of any characters, weighted towards the few that parsers treat specially, up to `max`.
fn any_text(max: usize) -> impl Strategy<Value = String> {
    drawn(max, |r| match r % 4 {
        0 => char::from_u32((r >> 8) as u32 % 0x11_0000).unwrap_or('\u{fffd}'),
        1 => [
            '{', '}', '$', '"', '\\', '/', '~', '=', ',', ' ', '\0', 'é', '😀',
        ][(r >> 8) as usize % 13],
        _ => char::from(0x20 + ((r >> 8) % 95) as u8),
    })
    .prop_map(String::from_iter)
}
