//! One `[[sources]]` entry: a provider preset (or the generic HMAC scheme), its secrets, body
//! limit and event-id rule, validated into a ready-to-use [`Source`].

use super::delivery::{Destination, RawDestination, RawRetry, RetryPolicy, WorkerConfig};
use super::ingress::{self, Ingress};
use super::units;
use crate::event_id::{EventIdRule, IdSource};
use crate::event_type::EventTypeRule;
use crate::verify::Verifier;
use crate::verify::hmac::{HmacParams, HmacScheme, Template, TimeFormat, TimestampRule};
use crate::verify::mac::{Algorithm, Encoding};
use crate::verify::preset::{self, DEFAULT_MAX_BODY, KeyKind, Keys, Preset};
use serde::Deserialize;
use std::time::Duration;

/// Bodies are held in memory while they are verified and stored.
const MAX_BODY_CEILING: usize = 64 << 20;
/// The generic scheme's tolerance when `timestamp_header` is set without `tolerance`.
const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// A source's `provider`: a preset from the registry, or the generic HMAC scheme.
#[derive(Clone, Copy)]
pub enum Provider {
    Preset(&'static Preset),
    Hmac,
}

impl Provider {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "hmac" => Some(Self::Hmac),
            _ => preset::find(name).map(Self::Preset),
        }
    }

    /// The name used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Preset(preset) => preset.name,
            Self::Hmac => "hmac",
        }
    }

    fn preset(self) -> Option<&'static Preset> {
        match self {
            Self::Preset(preset) => Some(preset),
            Self::Hmac => None,
        }
    }
}

impl PartialEq for Provider {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated source, ready to verify and identify webhooks.
pub struct Source {
    pub name: String,
    pub provider: Provider,
    pub max_body: usize,
    pub verifier: Verifier,
    pub event_id: EventIdRule,
    /// `None`: its webhooks are stored without a type.
    pub event_type: Option<EventTypeRule>,
    pub destinations: Vec<Destination>,
    pub retry: RetryPolicy,
    /// Open dead letters at which an alert fires.
    pub dead_letter_alert: Option<u64>,
    /// How long its settled events are kept, when not the global `retention`.
    pub retention: Option<Duration>,
    pub ingress: Ingress,
}

impl Source {
    pub fn destination(&self, name: &str) -> Option<&Destination> {
        self.destinations.iter().find(|d| d.name == name)
    }
}

impl std::fmt::Debug for Source {
    // Hand-written so that secrets (inside the verifier) can never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("name", &self.name)
            .field("provider", &self.provider)
            .field("max_body", &self.max_body)
            .field("event_id", &self.event_id)
            .field("event_type", &self.event_type)
            .field("destinations", &self.destinations)
            .field("retry", &self.retry)
            .field("dead_letter_alert", &self.dead_letter_alert)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
pub(super) struct RawSource {
    name: String,
    provider: String,
    #[serde(default)]
    secrets: Vec<String>,
    // Asymmetric presets verify with the provider's public keys; some sign their URL.
    #[serde(default)]
    public_keys: Vec<String>,
    public_url: Option<String>,
    verify_token: Option<String>,
    max_body: Option<String>,
    tolerance: Option<String>,
    event_id: Option<RawEventId>,
    event_type: Option<RawEventType>,
    // The generic `hmac` provider's scheme; presets fix these.
    signature_header: Option<String>,
    algorithm: Option<String>,
    encoding: Option<String>,
    prefix: Option<String>,
    signed_content: Option<String>,
    timestamp_header: Option<String>,
    #[serde(default)]
    destinations: Vec<RawDestination>,
    retry: Option<RawRetry>,
    dead_letter_alert: Option<u64>,
    retention: Option<String>,
    allow_ips: Option<Vec<String>>,
    trusted_proxies: Option<Vec<String>>,
    rate_limit: Option<String>,
}

#[derive(Deserialize)]
struct RawEventId {
    header: Option<String>,
    json_pointer: Option<String>,
    #[serde(default)]
    body_sha256: bool,
}

#[derive(Deserialize)]
struct RawEventType {
    header: Option<String>,
    json_pointer: Option<String>,
}

/// Collects problems under one key prefix, so validation can go on after the first one.
struct Problems<'a> {
    key: String,
    list: &'a mut Vec<String>,
}

impl Problems<'_> {
    fn add(&mut self, problem: impl std::fmt::Display) {
        self.list.push(format!("{}.{problem}", self.key));
    }

    fn take<T>(&mut self, result: Result<T, String>) -> Option<T> {
        result.map_err(|p| self.list.push(p)).ok()
    }
}

impl RawSource {
    /// Validates the entry; `None` when it has problems, each pushed onto `problems`.
    pub(super) fn validate(
        mut self,
        index: usize,
        retry: &RawRetry,
        worker: &WorkerConfig,
        problems: &mut Vec<String>,
    ) -> Option<Source> {
        let before = problems.len();
        let key = format!("sources[{index}]");
        let retry = self
            .retry
            .take()
            .unwrap_or_default()
            .over(retry)
            .validate(&format!("{key}.retry"), problems);
        let mut destinations = Vec::new();
        for (i, raw) in std::mem::take(&mut self.destinations)
            .into_iter()
            .enumerate()
        {
            let dkey = format!("{key}.destinations[{i}]");
            if let Some(d) = raw.validate(&dkey, worker.visibility_timeout, problems) {
                if destinations.iter().any(|o: &Destination| o.name == d.name) {
                    problems.push(format!("{dkey}.name: {:?} is used twice", d.name));
                }
                destinations.push(d);
            }
        }
        let ingress = ingress::validate(
            &key,
            self.allow_ips.as_deref(),
            self.trusted_proxies.as_deref(),
            self.rate_limit.as_deref(),
            problems,
        );
        let mut p = Problems {
            key: key.clone(),
            list: problems,
        };
        if !valid_name(&self.name) {
            p.add(format_args!(
                "name: {:?} must be 1-64 characters of a-z, 0-9, '_' or '-' (it is part of the URL and the stream key)",
                self.name
            ));
        }
        let provider = Provider::parse(&self.provider);
        if provider.is_none() {
            p.add(format_args!(
                "provider: unknown provider {:?} ({})",
                self.provider,
                preset::names()
            ));
        }
        let key_kind = match provider {
            Some(Provider::Preset(preset)) => preset.keys,
            _ => KeyKind::Secrets,
        };
        self.check_key_lists(key_kind, &mut p);
        let default_max = provider
            .and_then(Provider::preset)
            .map_or(DEFAULT_MAX_BODY, |preset| preset.max_body);
        let max_body = match &self.max_body {
            Some(text) => p.take(units::size(&format!("{key}.max_body"), text)),
            None => Some(default_max),
        };
        if max_body.is_some_and(|m| m == 0 || m > MAX_BODY_CEILING) {
            p.add(format_args!(
                "max_body: must be between 1 byte and {}",
                bytesize::ByteSize(MAX_BODY_CEILING as u64).display().iec()
            ));
        }
        let default_tolerance = provider
            .and_then(Provider::preset)
            .and_then(|preset| preset.tolerance)
            .unwrap_or(DEFAULT_TOLERANCE);
        let tolerance = match &self.tolerance {
            Some(text) => p.take(units::duration(&format!("{key}.tolerance"), text)),
            None => Some(default_tolerance),
        };
        if self.dead_letter_alert == Some(0) {
            p.add("dead_letter_alert: must be at least 1 (leave it out for no alert)");
        }
        let retention_key = format!("{key}.retention");
        let retention = (self.retention.as_deref())
            .and_then(|text| p.take(super::retention::period(&retention_key, text)));
        let event_id = self.event_id_rule(provider, &mut p);
        let event_type = self.event_type_rule(provider, &mut p);
        self.check_preset_keys(provider, &mut p);
        let generic = match provider {
            Some(Provider::Hmac) => {
                let tolerance = tolerance.unwrap_or(DEFAULT_TOLERANCE);
                self.generic_params(tolerance, event_id.as_ref(), &mut p)
            }
            _ => None,
        };
        if p.list.len() != before {
            return None;
        }
        let provider = provider?;
        let verifier = self.verifier(provider, tolerance?, generic, &mut p)?;
        Some(Source {
            name: self.name,
            provider,
            max_body: max_body?,
            verifier,
            event_id: event_id?,
            event_type,
            destinations,
            retry,
            dead_letter_alert: self.dead_letter_alert,
            retention,
            ingress,
        })
    }

    /// The key lists the scheme needs are there, without empty entries, and no other.
    fn check_key_lists(&self, kind: KeyKind, p: &mut Problems) {
        let name = &self.provider;
        match kind {
            KeyKind::Secrets if self.secrets.is_empty() => p.add(
                "secrets: at least one secret is required (webhooks are never accepted unverified)",
            ),
            KeyKind::PublicKeys if self.public_keys.is_empty() => p.add(format_args!(
                "public_keys: at least one public key is required: provider = {name:?} signs with its private key"
            )),
            KeyKind::Either if self.secrets.is_empty() && self.public_keys.is_empty() => {
                p.add("secrets: set secrets (whsec_..) or public_keys (whpk_..), or both")
            }
            _ => {}
        }
        if kind == KeyKind::Secrets && !self.public_keys.is_empty() {
            p.add(format_args!(
                "public_keys: provider = {name:?} verifies with shared secrets; put them in secrets"
            ));
        }
        if kind == KeyKind::PublicKeys && !self.secrets.is_empty() {
            p.add(format_args!(
                "secrets: provider = {name:?} verifies with the provider's public keys; put them in public_keys"
            ));
        }
        for (list, keys) in [
            ("secrets", &self.secrets),
            ("public_keys", &self.public_keys),
        ] {
            if keys.iter().any(|s| s.is_empty()) {
                p.add(format_args!(
                    "{list}: an entry is empty (is its environment variable set to \"\"?)"
                ));
            }
        }
    }

    /// Presets fix their scheme: a generic key on one is a misunderstanding worth stopping for.
    fn check_preset_keys(&self, provider: Option<Provider>, p: &mut Problems) {
        let extra_keys = [
            ("public_url", self.public_url.is_some()),
            ("verify_token", self.verify_token.is_some()),
        ];
        let preset = provider.and_then(Provider::preset);
        let used = |name: &str| preset.is_some_and(|preset| preset.extra_keys.contains(&name));
        for (name, _) in extra_keys.iter().filter(|(name, set)| *set && !used(name)) {
            p.add(format_args!(
                "{name}: provider = {:?} does not use it",
                self.provider
            ));
        }
        let Some(preset) = preset else {
            return;
        };
        let generic_keys = [
            ("signature_header", self.signature_header.is_some()),
            ("algorithm", self.algorithm.is_some()),
            ("encoding", self.encoding.is_some()),
            ("prefix", self.prefix.is_some()),
            ("signed_content", self.signed_content.is_some()),
            ("timestamp_header", self.timestamp_header.is_some()),
        ];
        for (name, _) in generic_keys.iter().filter(|(_, set)| *set) {
            p.add(format_args!(
                "{name}: only for provider = \"hmac\"; the {:?} preset fixes it",
                self.provider
            ));
        }
        if self.tolerance.is_some() && preset.tolerance.is_none() {
            p.add(format_args!(
                "tolerance: {:?} signatures carry no timestamp",
                self.provider
            ));
        }
    }

    fn event_id_rule(&self, provider: Option<Provider>, p: &mut Problems) -> Option<EventIdRule> {
        let Some(raw) = &self.event_id else {
            return provider.map(|provider| match provider {
                Provider::Preset(preset) => (preset.event_id)(),
                Provider::Hmac => EventIdRule::body_sha256(),
            });
        };
        let from = match (&raw.header, &raw.json_pointer) {
            (Some(_), Some(_)) => {
                p.add("event_id: set header or json_pointer, not both");
                return None;
            }
            (Some(h), None) => Some(IdSource::Header(h.to_ascii_lowercase())),
            (None, Some(ptr)) if ptr.starts_with('/') => Some(IdSource::JsonPointer(ptr.clone())),
            (None, Some(ptr)) => {
                p.add(format_args!(
                    "event_id.json_pointer: {ptr:?} must start with '/' (RFC 6901)"
                ));
                return None;
            }
            (None, None) if raw.body_sha256 => None,
            (None, None) => {
                p.add("event_id: set header, json_pointer or body_sha256 = true");
                return None;
            }
        };
        Some(EventIdRule {
            from,
            fallback_body_sha256: raw.body_sha256,
        })
    }

    /// A preset fixes where its type is, as it fixes its scheme; `hmac` sources say.
    fn event_type_rule(
        &self,
        provider: Option<Provider>,
        p: &mut Problems,
    ) -> Option<EventTypeRule> {
        let Some(raw) = &self.event_type else {
            return provider
                .and_then(Provider::preset)
                .and_then(|preset| (preset.event_type)());
        };
        if provider.is_some_and(|p| p != Provider::Hmac) {
            p.add(format_args!(
                "event_type: only for provider = \"hmac\"; the {:?} preset fixes it",
                self.provider
            ));
            return None;
        }
        match (&raw.header, &raw.json_pointer) {
            (Some(h), None) if !h.is_empty() => Some(EventTypeRule::header(h)),
            (None, Some(ptr)) if ptr.starts_with('/') => Some(EventTypeRule::json_pointer(ptr)),
            (None, Some(ptr)) => {
                p.add(format_args!(
                    "event_type.json_pointer: {ptr:?} must start with '/' (RFC 6901)"
                ));
                None
            }
            _ => {
                p.add("event_type: set header or json_pointer, exactly one");
                None
            }
        }
    }

    /// Keys the scheme; `generic` is the validated scheme of a `provider = "hmac"` source.
    fn verifier(
        &self,
        provider: Provider,
        tolerance: Duration,
        generic: Option<HmacParams>,
        p: &mut Problems,
    ) -> Option<Verifier> {
        let Provider::Preset(preset) = provider else {
            return Some(Verifier::new(HmacScheme::new(generic?, &self.secrets)));
        };
        let keys = Keys {
            secrets: &self.secrets,
            public_keys: &self.public_keys,
            public_url: self.public_url.as_deref(),
            verify_token: self.verify_token.as_deref(),
            tolerance,
        };
        match (preset.build)(&keys) {
            Ok(scheme) => Some(scheme.into()),
            Err(problem) => {
                p.add(format_args!("{}: {}", problem.key, problem.message));
                None
            }
        }
    }

    fn generic_params(
        &self,
        tolerance: Duration,
        event_id: Option<&EventIdRule>,
        p: &mut Problems,
    ) -> Option<HmacParams> {
        let before = p.list.len();
        let signature_header = self.signature_header.clone().unwrap_or_else(|| {
            p.add("signature_header: required for provider = \"hmac\"");
            String::new()
        });
        let algorithm = self.algorithm.as_deref().unwrap_or("sha256");
        let algorithm = Algorithm::parse(algorithm).or_else(|| {
            p.add(format_args!(
                "algorithm: {algorithm:?} is not sha1, sha256 or sha512"
            ));
            None
        });
        let encoding = self.encoding.as_deref().unwrap_or("hex");
        let encoding = Encoding::parse(encoding).or_else(|| {
            p.add(format_args!("encoding: {encoding:?} is not hex or base64"));
            None
        });
        let template = Template::parse(self.signed_content.as_deref().unwrap_or("{body}"))
            .map_err(|e| p.add(format_args!("signed_content: {e}")))
            .ok();
        if let Some(t) = &template {
            if t.uses_timestamp() != self.timestamp_header.is_some() {
                p.add("timestamp_header: set it exactly when signed_content uses {timestamp}");
            }
            if self.tolerance.is_some() && self.timestamp_header.is_none() {
                p.add("tolerance: needs timestamp_header");
            }
        }
        let id_header = match event_id.and_then(|rule| rule.from.as_ref()) {
            Some(IdSource::Header(name)) => Some(name.clone()),
            _ => None,
        };
        // Without a valid event_id its own problem is already reported.
        let id_unknown = event_id.is_some() && id_header.is_none();
        if template.as_ref().is_some_and(Template::uses_id) && id_unknown {
            p.add("signed_content: {id} needs event_id.header, the header it is read from");
        }
        if p.list.len() != before {
            return None;
        }
        Some(HmacParams {
            algorithm: algorithm?,
            signature_header,
            encoding: encoding?,
            prefix: self.prefix.clone().unwrap_or_default(),
            template: template?,
            timestamp: self.timestamp_header.as_ref().map(|header| TimestampRule {
                header: header.to_ascii_lowercase(),
                tolerance,
                format: TimeFormat::Seconds,
            }),
            id_header,
        })
    }
}

pub(super) fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

#[cfg(test)]
#[path = "source_tests.rs"]
mod tests;
