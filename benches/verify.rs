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

criterion_group!(benches, verify);
criterion_main!(benches);
