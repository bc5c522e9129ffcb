//! The generic HMAC scheme: one signature header, a configurable algorithm, encoding, prefix
//! and signed-content template. Most presets are this scheme with fixed parameters.

use super::mac::{Algorithm, Encoding, KeyedMac, any_matches};
use super::{
    Message, Scheme, SignError, Signed, VerifyError, check_tolerance, parse_timestamp, required,
};
use axum::http::HeaderMap;
use std::time::Duration;

/// What is signed, e.g. `v0:{timestamp}:{body}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Segment>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Body,
    Timestamp,
    Id,
}

impl Template {
    /// Parses `{body}`, `{timestamp}` and `{id}` placeholders. `{body}` must appear exactly
    /// once: a template without it would sign nothing an attacker cannot forge.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut segments = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                segments.push(Segment::Literal(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("unclosed {{ in signed_content {text:?}"))?;
            segments.push(match &rest[open + 1..open + close] {
                "body" => Segment::Body,
                "timestamp" => Segment::Timestamp,
                "id" => Segment::Id,
                other => {
                    return Err(format!(
                        "unknown placeholder {{{other}}} in signed_content (use {{body}}, {{timestamp}}, {{id}})"
                    ));
                }
            });
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Literal(rest.to_string()));
        }
        match segments.iter().filter(|s| **s == Segment::Body).count() {
            1 => Ok(Self(segments)),
            _ => Err(format!(
                "signed_content {text:?} must contain {{body}} exactly once"
            )),
        }
    }

    /// `literal` (e.g. the public URL a provider signs) followed by `rest`, parsed.
    pub fn after_literal(literal: &str, rest: &str) -> Self {
        let mut template = Self::parse(rest).expect("a preset's template is valid");
        template.0.insert(0, Segment::Literal(literal.to_string()));
        template
    }

    pub fn uses_timestamp(&self) -> bool {
        self.0.contains(&Segment::Timestamp)
    }

    pub fn uses_id(&self) -> bool {
        self.0.contains(&Segment::Id)
    }
}

/// Where the signed content's `{timestamp}` comes from, and how far it may be from now.
pub struct TimestampRule {
    pub header: String,
    pub tolerance: Duration,
    pub format: TimeFormat,
}

/// How a timestamp header writes the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeFormat {
    Seconds,
    Milliseconds,
    /// RFC 3339, e.g. `2023-07-19T14:56:51.634234626Z` (Twitch).
    Rfc3339,
}

impl TimeFormat {
    /// Unix seconds from a header's text.
    fn parse(self, header: &str, text: &str) -> Result<i64, VerifyError> {
        match self {
            Self::Seconds => parse_timestamp(header, text),
            Self::Milliseconds => parse_timestamp(header, text).map(|ms| ms.div_euclid(1000)),
            Self::Rfc3339 => chrono::DateTime::parse_from_rfc3339(text.trim())
                .map(|t| t.timestamp())
                .map_err(|_| VerifyError::malformed(header, "timestamp is not RFC 3339")),
        }
    }

    fn format(self, unix_seconds: i64) -> String {
        match self {
            Self::Seconds => unix_seconds.to_string(),
            Self::Milliseconds => (unix_seconds * 1000).to_string(),
            Self::Rfc3339 => chrono::DateTime::from_timestamp(unix_seconds, 0)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    }
}

/// Everything about a scheme except its secrets: what a preset fixes or a config spells out.
pub struct HmacParams {
    pub algorithm: Algorithm,
    pub signature_header: String,
    pub encoding: Encoding,
    /// Text before the signature in its header, e.g. `sha256=`.
    pub prefix: String,
    pub template: Template,
    pub timestamp: Option<TimestampRule>,
    /// Header holding the value of `{id}`.
    pub id_header: Option<String>,
}

impl HmacParams {
    /// `header: <prefix><encoded HMAC of the body>`, with no timestamp: most providers' scheme.
    pub fn body(algorithm: Algorithm, header: &str, encoding: Encoding, prefix: &str) -> Self {
        Self {
            algorithm,
            signature_header: header.to_string(),
            encoding,
            prefix: prefix.to_string(),
            template: Template::parse("{body}").expect("a valid template"),
            timestamp: None,
            id_header: None,
        }
    }
}

pub struct HmacScheme {
    params: HmacParams,
    keys: Vec<KeyedMac>,
}

impl HmacScheme {
    pub fn new(mut params: HmacParams, secrets: &[String]) -> Self {
        // HeaderMap lookups by &str need lowercase names.
        params.signature_header.make_ascii_lowercase();
        let keys = secrets
            .iter()
            .map(|s| KeyedMac::new(params.algorithm, s.as_bytes()))
            .collect();
        Self { params, keys }
    }

    /// The signed content's parts for these values.
    fn parts<'a>(&'a self, body: &'a [u8], timestamp: &'a str, id: &'a str) -> Vec<&'a [u8]> {
        (self.params.template.0.iter())
            .map(|segment| match segment {
                Segment::Literal(text) => text.as_bytes(),
                Segment::Body => body,
                Segment::Timestamp => timestamp.as_bytes(),
                Segment::Id => id.as_bytes(),
            })
            .collect()
    }
}

impl Scheme for HmacScheme {
    fn verify(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), VerifyError> {
        let p = &self.params;
        let header = required(headers, &p.signature_header)?;
        let encoded = header.trim().strip_prefix(&p.prefix).ok_or_else(|| {
            VerifyError::malformed(
                &p.signature_header,
                format!("expected the prefix {:?}", p.prefix),
            )
        })?;
        let signature = p.encoding.decode(encoded).ok_or_else(|| {
            VerifyError::malformed(&p.signature_header, "signature is not validly encoded")
        })?;
        let (timestamp, ts_text) = match &p.timestamp {
            Some(rule) => {
                let text = required(headers, &rule.header)?;
                (Some(rule.format.parse(&rule.header, text)?), text)
            }
            None => (None, ""),
        };
        let id = match &p.id_header {
            Some(name) => required(headers, name)?,
            None => "",
        };
        let parts = self.parts(body, ts_text, id);
        if !any_matches(&self.keys, &parts, std::slice::from_ref(&signature)) {
            return Err(VerifyError::NoMatchingSignature);
        }
        if let (Some(rule), Some(ts)) = (&p.timestamp, timestamp) {
            check_tolerance(ts, now, rule.tolerance)?;
        }
        Ok(())
    }

    fn sign(&self, message: Message, _: Option<&str>) -> Result<Signed, SignError> {
        let p = &self.params;
        let timestamp = (p.timestamp.as_ref())
            .map(|rule| rule.format.format(message.timestamp))
            .unwrap_or_default();
        let key = self.keys.first().expect("a source has at least one secret");
        let tag = key.tag(&self.parts(&message.body, &timestamp, message.id));
        let signature = format!("{}{}", p.prefix, p.encoding.encode(tag.as_bytes()));
        let mut signed = Signed {
            headers: vec![(p.signature_header.clone(), signature)],
            body: message.body,
        };
        if let Some(rule) = &p.timestamp {
            signed = signed.header(&rule.header, timestamp);
        }
        if let Some(name) = &p.id_header {
            signed = signed.header(name, message.id);
        }
        Ok(signed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn scheme(algorithm: Algorithm, encoding: Encoding, template: &str) -> HmacScheme {
        let params = HmacParams {
            algorithm,
            signature_header: "X-Signature".into(),
            encoding,
            prefix: "sig=".into(),
            template: Template::parse(template).unwrap(),
            timestamp: Some(TimestampRule {
                header: "x-timestamp".into(),
                tolerance: Duration::from_secs(60),
                format: TimeFormat::Seconds,
            }),
            id_header: template.contains("{id}").then(|| "x-id".to_string()),
        };
        HmacScheme::new(params, &["secret".to_string()])
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (k.parse().unwrap(), HeaderValue::from_str(v).unwrap()))
            .collect()
    }

    #[test]
    fn template_parsing() {
        assert!(
            Template::parse("{timestamp}.{body}")
                .unwrap()
                .uses_timestamp()
        );
        assert!(Template::parse("{id}{body}").unwrap().uses_id());
        assert!(Template::parse("{timestamp}").is_err());
        assert!(Template::parse("{body}{body}").is_err());
        assert!(Template::parse("{body}{nope}").is_err());
        assert!(Template::parse("{body").is_err());
    }

    #[test]
    fn signs_the_template_with_sha512_base64() {
        use base64::Engine as _;
        let s = scheme(
            Algorithm::Sha512,
            Encoding::Base64,
            "{id}:{timestamp}:{body}",
        );
        // Independent computation over the concatenated signed content.
        let expected = base64::engine::general_purpose::STANDARD
            .encode(hmac_sha512(b"secret", b"e1:1000:payload"));
        let h = headers(&[
            ("x-signature", &format!("sig={expected}")),
            ("x-timestamp", "1000"),
            ("x-id", "e1"),
        ]);
        assert_eq!(s.verify(&h, b"payload", 1000), Ok(()));
        assert_eq!(
            s.verify(&h, b"payload!", 1000),
            Err(VerifyError::NoMatchingSignature)
        );
        assert!(matches!(
            s.verify(&h, b"payload", 2000),
            Err(VerifyError::TimestampOutsideTolerance { .. })
        ));
    }

    fn hmac_sha512(key: &[u8], data: &[u8]) -> Vec<u8> {
        use ::hmac::{Hmac, KeyInit, Mac};
        let mut mac = Hmac::<sha2::Sha512>::new_from_slice(key).unwrap();
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }

    #[test]
    fn each_missing_or_malformed_piece_is_named() {
        let s = scheme(Algorithm::Sha1, Encoding::Hex, "{timestamp}.{body}");
        assert_eq!(
            s.verify(&headers(&[]), b"", 0),
            Err(VerifyError::MissingHeader("x-signature".into()))
        );
        assert!(matches!(
            s.verify(&headers(&[("x-signature", "deadbeef")]), b"", 0),
            Err(VerifyError::MalformedHeader { reason, .. }) if reason.contains("prefix")
        ));
        assert!(matches!(
            s.verify(&headers(&[("x-signature", "sig=zz")]), b"", 0),
            Err(VerifyError::MalformedHeader { .. })
        ));
        assert_eq!(
            s.verify(&headers(&[("x-signature", "sig=00")]), b"", 0),
            Err(VerifyError::MissingHeader("x-timestamp".into()))
        );
        assert!(matches!(
            s.verify(&headers(&[("x-signature", "sig=00"), ("x-timestamp", "soon")]), b"", 0),
            Err(VerifyError::MalformedHeader { header, .. }) if header == "x-timestamp"
        ));
    }
}
