//! The generic HMAC scheme, any algorithm, encoding, prefix and signed content, and its
//! GitHub, Shopify and Slack presets.

use super::cases;
use super::signed::{
    Signed, TOLERANCE, body, body_change, encode, header_change, header_map, mac, raw, secret,
    signature_text, skew, stale, stale_from, text, timestamp_text,
};
use super::{any_text, bytes, header_bytes, text_of, visible};
use hookgate::verify::hmac::{HmacParams, HmacScheme, Template, TimeFormat, TimestampRule};
use hookgate::verify::mac::{Algorithm, Encoding};
use hookgate::verify::{Scheme, Verifier, github, shopify, slack};
use proptest::collection::vec;
use proptest::prelude::*;

/// What a generic-HMAC sender signs, piece by piece.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Body,
    Timestamp,
    Id,
}

#[derive(Debug, Clone, Copy)]
enum Preset {
    Github,
    Shopify,
    Slack,
}

const TIMESTAMP_HEADER: &str = "x-timestamp";
const ID_HEADER: &str = "x-event-id";

/// How a sender of the generic scheme, or of one of its presets, signs: spelled out here from
/// each provider's documentation, not taken from hookgate.
#[derive(Debug, Clone)]
struct Recipe {
    preset: Option<Preset>,
    algorithm: Algorithm,
    encoding: Encoding,
    prefix: String,
    pieces: Vec<Piece>,
    signature_header: &'static str,
    timestamp_header: &'static str,
}

impl Recipe {
    fn preset(preset: Preset) -> Self {
        let (encoding, prefix, pieces, signature_header) = match preset {
            Preset::Github => (
                Encoding::Hex,
                "sha256=",
                vec![Piece::Body],
                "x-hub-signature-256",
            ),
            Preset::Shopify => (
                Encoding::Base64,
                "",
                vec![Piece::Body],
                "x-shopify-hmac-sha256",
            ),
            Preset::Slack => (
                Encoding::Hex,
                "v0=",
                vec![
                    Piece::Text("v0:".into()),
                    Piece::Timestamp,
                    Piece::Text(":".into()),
                    Piece::Body,
                ],
                "x-slack-signature",
            ),
        };
        Self {
            preset: Some(preset),
            algorithm: Algorithm::Sha256,
            encoding,
            prefix: prefix.into(),
            pieces,
            signature_header,
            timestamp_header: match preset {
                Preset::Slack => "x-slack-request-timestamp",
                _ => TIMESTAMP_HEADER,
            },
        }
    }

    fn uses(&self, piece: &Piece) -> bool {
        self.pieces.contains(piece)
    }

    /// The verifier's parameters: the preset's own, or the generic scheme configured as the
    /// recipe says.
    fn params(&self) -> HmacParams {
        match self.preset {
            Some(Preset::Github) => github::params(),
            Some(Preset::Shopify) => shopify::params(),
            Some(Preset::Slack) => slack::params(TOLERANCE),
            None => {
                let template: String = self
                    .pieces
                    .iter()
                    .map(|piece| match piece {
                        Piece::Text(text) => text.as_str(),
                        Piece::Body => "{body}",
                        Piece::Timestamp => "{timestamp}",
                        Piece::Id => "{id}",
                    })
                    .collect();
                HmacParams {
                    algorithm: self.algorithm,
                    signature_header: self.signature_header.into(),
                    encoding: self.encoding,
                    prefix: self.prefix.clone(),
                    template: Template::parse(&template).unwrap(),
                    timestamp: self.uses(&Piece::Timestamp).then(|| TimestampRule {
                        header: self.timestamp_header.into(),
                        tolerance: TOLERANCE,
                        format: TimeFormat::Seconds,
                    }),
                    id_header: self.uses(&Piece::Id).then(|| ID_HEADER.to_string()),
                }
            }
        }
    }

    fn signature(&self, secret: &str, body: &[u8], ts: &str, id: &str) -> String {
        let parts: Vec<&[u8]> = self
            .pieces
            .iter()
            .map(|piece| match piece {
                Piece::Text(text) => text.as_bytes(),
                Piece::Body => body,
                Piece::Timestamp => ts.as_bytes(),
                Piece::Id => id.as_bytes(),
            })
            .collect();
        encode(
            self.encoding,
            &mac(self.algorithm, secret.as_bytes(), &parts),
        )
    }
}

/// The generic scheme with any algorithm, encoding, prefix and signed content, or a preset.
fn recipe() -> impl Strategy<Value = Recipe> {
    let extra = prop_oneof![
        // Any text but braces, which would be placeholders.
        any_text(6).prop_map(|text| Piece::Text(text.replace(['{', '}'], "|"))),
        Just(Piece::Timestamp),
        Just(Piece::Id),
    ];
    let generic = (
        prop_oneof![
            Just(Algorithm::Sha1),
            Just(Algorithm::Sha256),
            Just(Algorithm::Sha512)
        ],
        prop_oneof![Just(Encoding::Hex), Just(Encoding::Base64)],
        // Headers arrive trimmed: a prefix cannot start with a space.
        visible(7).prop_map(|prefix| prefix.trim_start().to_string()),
        vec(extra.clone(), 0..3),
        vec(extra, 0..3),
    )
        .prop_map(|(algorithm, encoding, prefix, before, after)| Recipe {
            preset: None,
            algorithm,
            encoding,
            prefix,
            pieces: [before, vec![Piece::Body], after].concat(),
            signature_header: "x-signature",
            timestamp_header: TIMESTAMP_HEADER,
        });
    prop_oneof![
        3 => generic,
        1 => Just(Recipe::preset(Preset::Github)),
        1 => Just(Recipe::preset(Preset::Shopify)),
        1 => Just(Recipe::preset(Preset::Slack)),
    ]
}

proptest! {
    #![proptest_config(cases(30_000))]

    #[test]
    fn no_hmac_headers_panic_or_verify(
        recipe in recipe(),
        signature in prop_oneof![
            signature_text().prop_map(String::into_bytes),
            header_bytes(100),
        ],
        with_prefix in any::<bool>(),
        ts in proptest::option::weighted(0.9, timestamp_text()),
        id in proptest::option::weighted(0.9, header_bytes(30)),
        body in bytes(32),
        now in any::<i64>(),
    ) {
        let verifier = HmacScheme::new(recipe.params(), &["fixed".to_string()]);
        let mut value = if with_prefix { recipe.prefix.clone().into_bytes() } else { Vec::new() };
        value.extend(signature);
        let mut headers = header_map(&[(recipe.signature_header, raw(&value))]);
        if let Some(ts) = ts {
            headers.insert(recipe.timestamp_header, raw(ts.as_bytes()));
        }
        if let Some(id) = id {
            headers.insert(ID_HEADER, raw(&id));
        }
        prop_assert!(verifier.verify(&headers, &body, now).is_err());
    }

}

proptest! {
    #![proptest_config(cases(100_000))]

    /// Whatever the text, parsing a template never panics, and what it accepts signs the body
    /// exactly once and uses what it names.
    #[test]
    fn templates_parse_without_panic_and_sign_the_body_once(
        text in prop_oneof![
            any_text(40),
            text_of(8, &["{", "}", "{body}", "{timestamp}", "{id}", "{x}", "{}", ".", "é", ":"]),
        ],
    ) {
        if let Ok(template) = Template::parse(&text) {
            prop_assert_eq!(text.matches("{body}").count(), 1);
            prop_assert_eq!(template.uses_timestamp(), text.contains("{timestamp}"));
            prop_assert_eq!(template.uses_id(), text.contains("{id}"));
        }
    }
}

proptest! {
    #![proptest_config(cases(6_000))]

    #[test]
    fn hmac_signatures_verify_and_no_one_byte_change_does(
        recipe in recipe(),
        (secret, old, rotated) in (secret(), secret(), any::<bool>()),
        (body, ts, skew, stale) in (body(), any::<i64>(), skew(), stale()),
        id in visible(20),
        (body_change, header_change) in (body_change(), header_change()),
    ) {
        let ts_text = ts.to_string();
        let signature = recipe.signature(&secret, &body, &ts_text, &id);
        let value = format!("{}{signature}", recipe.prefix);
        let mut headers = header_map(&[(recipe.signature_header, text(&value))]);
        if recipe.uses(&Piece::Timestamp) {
            headers.insert(recipe.timestamp_header, text(&ts_text));
        }
        if recipe.uses(&Piece::Id) {
            headers.insert(ID_HEADER, text(&id));
        }
        let secrets = if rotated { vec![old, secret] } else { vec![secret] };
        let start = recipe.prefix.len();
        let signed = Signed {
            verifier: Verifier::new(HmacScheme::new(recipe.params(), &secrets)),
            headers,
            body,
            now: ts.saturating_add(skew),
            signature_header: recipe.signature_header,
            signed: std::iter::once(0..value.len()).collect(),
            hex: (recipe.encoding == Encoding::Hex).then_some(start..value.len()),
        };
        let stale = recipe.uses(&Piece::Timestamp).then(|| stale_from(ts, stale)).flatten();
        signed.check(body_change, header_change, stale)?;
    }
}
