//! Signature verification per provider beside raw HMAC-SHA256 over the same bytes.
//!
//! The target is verification within 1.5x of raw HMAC-SHA256: what a verifier adds
//! (header lookup, decoding the signature, assembling the signed content, constant-time
//! comparison, tolerance check) should be small next to hashing the body. Throughput is in
//! bytes, so criterion prints MiB/s and ns per KiB follows directly.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};
use hookgate::config::Config;
use sha2::Sha256;
use std::hint::black_box;

// Shared with the load generator so both sign alike; this bench uses only part of it.
#[allow(dead_code)]
#[path = "../src/bin/hookgate-bench/sign.rs"]
mod sign;

use sign::Preset;

const SIZES: [(usize, &str); 2] = [(1024, "1KiB"), (16 * 1024, "16KiB")];

/// One source per preset, built the way the gateway builds them: from configuration text.
fn config() -> Config {
    let mut text = String::from(
        "database_url = \"postgres://127.0.0.1/unused\"\nredis_url = \"redis://127.0.0.1\"\n",
    );
    for preset in Preset::ALL {
        text.push_str(&format!(
            "[[sources]]\nname = \"{name}\"\nprovider = \"{name}\"\nsecrets = [\"{secret}\"]\n{extra}\n",
            name = preset.name(),
            secret = preset.default_secret(),
            extra = preset.extra_source_keys(),
        ));
    }
    Config::parse("bench.toml", &text, &|_| None).expect("the bench configuration is valid")
}

fn header_map(headers: &[(&'static str, String)]) -> HeaderMap {
    headers
        .iter()
        .map(|(name, value)| {
            (
                // from_bytes lowercases, as HeaderMap lookups need.
                HeaderName::from_bytes(name.as_bytes()).expect("valid header name"),
                HeaderValue::from_str(value).expect("signed header values are ASCII"),
            )
        })
        .collect()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

fn verify(c: &mut Criterion) {
    let config = config();
    let now = now();
    for (size, label) in SIZES {
        let mut group = c.benchmark_group(format!("verify/{label}"));
        group.throughput(Throughput::Bytes(size as u64));
        let id = "0b6f9c1e-2f7a-4a8e-9d61-3c7a5f0e8b42";
        for preset in Preset::ALL {
            let body = sign::body(preset, id, size);
            let signed = sign::sign(preset, preset.default_secret(), id, now, body);
            let headers = header_map(&signed.headers);
            let verifier = &config
                .source(preset.name())
                .expect("every preset has a source")
                .verifier;
            // A bench that measures a refusal would look fast and mean nothing.
            assert!(
                verifier.verify(&headers, &signed.body, now).is_ok(),
                "{preset:?} must verify"
            );
            group.bench_function(BenchmarkId::from_parameter(preset.name()), |b| {
                b.iter(|| verifier.verify(black_box(&headers), black_box(&signed.body), now))
            });
        }
        let body = sign::body(Preset::Github, id, size);
        let key = Preset::Github.default_secret().as_bytes();
        // The baseline as most code writes it: key, hash, finalize on every call.
        group.bench_function(BenchmarkId::from_parameter("raw-hmac-sha256"), |b| {
            b.iter(|| {
                let mut mac = Hmac::<Sha256>::new_from_slice(black_box(key)).expect("any key");
                mac.update(black_box(&body));
                mac.finalize().into_bytes()
            })
        });
        // The strictest baseline: keyed once and cloned, as hookgate's verifiers do.
        let keyed = Hmac::<Sha256>::new_from_slice(key).expect("any key");
        group.bench_function(
            BenchmarkId::from_parameter("raw-hmac-sha256-prekeyed"),
            |b| {
                b.iter(|| {
                    let mut mac = keyed.clone();
                    mac.update(black_box(&body));
                    mac.finalize().into_bytes()
                })
            },
        );
        group.finish();
    }
}

/// RFC 8032 section 7.1 TEST 1: the seed, and its public key.
const ED25519_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const ED25519_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
/// A P-256 key made for hookgate's tests (`openssl genpkey -algorithm EC`), and its public key.
const P256_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg4itopXUrHIN/VXcb
MMC5wXb+T9i7FKghN7P+QhydQ7qhRANCAAQS6TUERVrAg/MrGFz2hizMpnRoNtQr
kxW0RBCW+DIQeeJ8NxLZ1BHoS0nhWoIfFuLofjuLgAfdlDkTaDjN3RHV
-----END PRIVATE KEY-----";
const P256_PUBLIC: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEuk1BEVawIPzKxhc9oYszKZ0aDbUK5MVtEQQlvgyEHnifDcS2dQR6EtJ4VqCHxbi6H47i4AH3ZQ5E2g4zd0R1Q==";

/// Ed25519 (Discord, Standard Webhooks v1a) and ECDSA P-256 (SendGrid) beside HMAC-SHA256:
/// asymmetric verification costs a fixed amount per request on top of hashing the body.
fn verify_asymmetric(c: &mut Criterion) {
    use base64::Engine as _;
    let seed = hex::decode(ED25519_SEED).expect("hex");
    let whpk = format!(
        "whpk_{}",
        base64::engine::general_purpose::STANDARD.encode(hex::decode(ED25519_PUBLIC).expect("hex"))
    );
    let whsk = format!(
        "whsk_{}",
        base64::engine::general_purpose::STANDARD.encode(&seed)
    );
    let text = format!(
        "database_url = \"postgres://127.0.0.1/unused\"\nredis_url = \"redis://127.0.0.1\"\n\
         [[sources]]\nname = \"discord\"\nprovider = \"discord\"\npublic_keys = [\"{ED25519_PUBLIC}\"]\n\
         [[sources]]\nname = \"standard-v1a\"\nprovider = \"standard\"\npublic_keys = [\"{whpk}\"]\n\
         [[sources]]\nname = \"sendgrid\"\nprovider = \"sendgrid\"\npublic_keys = [\"{P256_PUBLIC}\"]\n\
         [[sources]]\nname = \"github\"\nprovider = \"github\"\nsecrets = [\"bench-secret\"]\n"
    );
    let config = Config::parse("bench.toml", &text, &|_| None).expect("valid");
    let now = now();
    for (size, label) in SIZES {
        let mut group = c.benchmark_group(format!("verify-asymmetric/{label}"));
        group.throughput(Throughput::Bytes(size as u64));
        let body = sign::body(Preset::Github, "bench", size);
        for (source, key) in [
            ("discord", Some(ED25519_SEED)),
            ("standard-v1a", Some(whsk.as_str())),
            ("sendgrid", Some(P256_KEY)),
            ("github", None),
        ] {
            let verifier = &config.source(source).expect("configured").verifier;
            let message = hookgate::verify::Message {
                id: "msg_bench",
                timestamp: now,
                body: body.clone(),
            };
            let signed = verifier.sign(message, key).expect("signs");
            let headers: HeaderMap = (signed.headers.iter())
                .map(|(name, value)| {
                    (
                        HeaderName::from_bytes(name.as_bytes()).expect("valid header name"),
                        HeaderValue::from_str(value).expect("ASCII"),
                    )
                })
                .collect();
            assert!(
                verifier.verify(&headers, &signed.body, now).is_ok(),
                "{source} must verify"
            );
            group.bench_function(BenchmarkId::from_parameter(source), |b| {
                b.iter(|| verifier.verify(black_box(&headers), black_box(&signed.body), now))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, verify, verify_asymmetric);
criterion_main!(benches);
