//! SendGrid (Twilio) Event Webhook: `X-Twilio-Email-Event-Webhook-Signature: <base64 DER>`, ECDSA
//! P-256 with SHA-256 over `X-Twilio-Email-Event-Webhook-Timestamp` followed by the body, under
//! the verification key SendGrid shows (base64 DER, in `public_keys`). SendGrid states no
//! tolerance. Bodies are batches of events, so identical bodies are one event.

use super::preset::{DEFAULT_MAX_BODY, KeyKind, KeyProblem, Preset, scheme};
use super::{Message, Scheme, SignError, Signed, VerifyError, required};
use crate::event_id::EventIdRule;
use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _};

const SIGNATURE: &str = "x-twilio-email-event-webhook-signature";
const TIMESTAMP: &str = "x-twilio-email-event-webhook-timestamp";

pub const PRESET: Preset = Preset {
    name: "sendgrid",
    keys: KeyKind::PublicKeys,
    extra_keys: &[],
    build: |keys| {
        let keys = (keys.public_keys.iter())
            .map(|key| {
                BASE64
                    .decode(key.trim())
                    .ok()
                    .and_then(|der| VerifyingKey::from_public_key_der(&der).ok())
                    .ok_or_else(|| {
                        KeyProblem::new(
                            "public_keys",
                            "a SendGrid verification key is the base64 DER of a P-256 public key",
                        )
                    })
            })
            .collect::<Result<_, _>>()?;
        scheme(Sendgrid(keys))
    },
    tolerance: None,
    event_id: EventIdRule::body_sha256,
    event_type: || None,
    max_body: DEFAULT_MAX_BODY,
    sample: Some(|id, event| {
        serde_json::json!([{ "sg_event_id": id, "event": event, "email": "hello@example.com" }])
            .to_string()
            .into_bytes()
    }),
};

struct Sendgrid(Vec<VerifyingKey>);

impl Scheme for Sendgrid {
    fn verify(&self, headers: &HeaderMap, body: &[u8], _: i64) -> Result<(), VerifyError> {
        let signature = BASE64
            .decode(required(headers, SIGNATURE)?.trim())
            .ok()
            .and_then(|der| Signature::from_der(&der).ok())
            .ok_or_else(|| VerifyError::malformed(SIGNATURE, "not a base64 DER ECDSA signature"))?;
        let timestamp = required(headers, TIMESTAMP)?;
        let message = [timestamp.as_bytes(), body].concat();
        match self
            .0
            .iter()
            .any(|key| key.verify(&message, &signature).is_ok())
        {
            true => Ok(()),
            false => Err(VerifyError::NoMatchingSignature),
        }
    }

    /// `signing_key`: the private key as PKCS#8, PEM or base64 DER.
    fn sign(&self, message: Message, signing_key: Option<&str>) -> Result<Signed, SignError> {
        let text = signing_key
            .ok_or(SignError::NeedsSigningKey(
                "SendGrid's public verification key",
            ))?
            .trim();
        let key = SigningKey::from_pkcs8_pem(text)
            .ok()
            .or_else(|| {
                let der = BASE64.decode(text).ok()?;
                SigningKey::from_pkcs8_der(&der).ok()
            })
            .ok_or(SignError::BadSigningKey(
                "a P-256 private key (PKCS#8 PEM or base64 DER)",
            ))?;
        let timestamp = message.timestamp.to_string();
        let signature: Signature = key.sign(&[timestamp.as_bytes(), &message.body].concat());
        Ok(Signed {
            headers: vec![
                (SIGNATURE.to_string(), BASE64.encode(signature.to_der())),
                (TIMESTAMP.to_string(), timestamp),
            ],
            body: message.body,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::verify::fixtures;

    const FIXTURES: &str = include_str!("../../fixtures/sendgrid.json");
    /// The key sendgrid-nodejs's tests refuse as "invalid key".
    const OTHER_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDutdhXSJCWHw8REntlo7aNDthvj+y7GjUuFDb/R1NGe1OPzpA==";

    #[test]
    fn fixture_passes() {
        fixtures::assert_preset(&super::PRESET, FIXTURES, OTHER_KEY);
    }

    /// A key made for this test with `openssl genpkey -algorithm EC` (P-256), and its public key.
    const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg4itopXUrHIN/VXcb
MMC5wXb+T9i7FKghN7P+QhydQ7qhRANCAAQS6TUERVrAg/MrGFz2hizMpnRoNtQr
kxW0RBCW+DIQeeJ8NxLZ1BHoS0nhWoIfFuLofjuLgAfdlDkTaDjN3RHV
-----END PRIVATE KEY-----";
    const TEST_PUBLIC: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEuk1BEVawIPzKxhc9oYszKZ0aDbUK5MVtEQQlvgyEHnifDcS2dQR6EtJ4VqCHxbi6H47i4AH3ZQ5E2g4zd0R1Q==";

    #[test]
    fn signing_needs_the_private_key() {
        let mut v = fixtures::load(FIXTURES).remove(0);
        v.secret = TEST_PUBLIC.to_string();
        let sendgrid = fixtures::build(&super::PRESET, &v, std::slice::from_ref(&v.secret));
        let message = || crate::verify::Message {
            id: "x",
            timestamp: 1600112502,
            body: b"[]\r\n".to_vec(),
        };
        let signed = sendgrid.sign(message(), Some(TEST_KEY)).unwrap();
        let headers = signed
            .headers
            .iter()
            .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
            .collect();
        assert!(sendgrid.verify(&headers, &signed.body, 0).is_ok());
        assert!(sendgrid.verify(&headers, b"[ ]\r\n", 0).is_err());
        let needs = crate::verify::SignError::NeedsSigningKey("SendGrid's public verification key");
        assert_eq!(sendgrid.sign(message(), None).map(|_| ()), Err(needs));
        assert!(sendgrid.sign(message(), Some(TEST_PUBLIC)).is_err());
    }
}
