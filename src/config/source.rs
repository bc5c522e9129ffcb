//! One `[[sources]]` entry: a provider preset (or the generic HMAC scheme), its secrets, body
//! limit and event-id rule, validated into a ready-to-use [`Source`].

use super::delivery::{Destination, RawDestination, RawRetry, RetryPolicy, WorkerConfig};
use super::units;
use crate::event_id::{EventIdRule, IdSource};
use crate::event_type::EventTypeRule;
use crate::verify::hmac::{HmacParams, HmacScheme, Template, TimestampRule};
use crate::verify::mac::{Algorithm, Encoding};
use crate::verify::standard::Standard;
use crate::verify::stripe::Stripe;
use crate::verify::{Verifier, github, shopify, slack};
use serde::Deserialize;
use std::time::Duration;

const DEFAULT_MAX_BODY: usize = 1 << 20;
/// GitHub caps payloads at 25 MB.
const GITHUB_MAX_BODY: usize = 25 << 20;
/// Bodies are held in memory while they are verified and stored.
const MAX_BODY_CEILING: usize = 64 << 20;
const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Stripe,
    Github,
    Standard,
    Shopify,
    Slack,
    Hmac,
}

impl Provider {
    const ALL: [Self; 6] = [
        Self::Stripe,
        Self::Github,
        Self::Standard,
        Self::Shopify,
        Self::Slack,
        Self::Hmac,
    ];

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// The name used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stripe => "stripe",
            Self::Github => "github",
            Self::Standard => "standard",
            Self::Shopify => "shopify",
            Self::Slack => "slack",
            Self::Hmac => "hmac",
        }
    }

    fn has_timestamp(self) -> bool {
        matches!(self, Self::Stripe | Self::Standard | Self::Slack)
    }

    fn default_event_id(self) -> EventIdRule {
        match self {
            Self::Stripe => EventIdRule::json_pointer("/id"),
            Self::Github => EventIdRule::header("X-GitHub-Delivery"),
            // The verifier takes Svix's `svix-*` names as well: so must the id.
            Self::Standard => EventIdRule::first_header(&["webhook-id", "svix-id"]),
            Self::Shopify => EventIdRule::header("X-Shopify-Webhook-Id"),
            Self::Slack => EventIdRule {
                from: Some(IdSource::JsonPointer("/event_id".into())),
                fallback_body_sha256: true,
            },
            Self::Hmac => EventIdRule {
                from: None,
                fallback_body_sha256: true,
            },
        }
    }

    /// Where the preset's webhooks name their type; `hmac` sources configure it.
    fn event_type(self) -> Option<EventTypeRule> {
        match self {
            Self::Stripe | Self::Standard => Some(EventTypeRule::json_pointer("/type")),
            Self::Github => Some(EventTypeRule::header("X-GitHub-Event")),
            Self::Shopify => Some(EventTypeRule::header("X-Shopify-Topic")),
            Self::Slack => Some(EventTypeRule::json_pointer("/event/type")),
            Self::Hmac => None,
        }
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
                "provider: unknown provider {:?} (stripe, github, standard, shopify, slack, hmac)",
                self.provider
            ));
        }
        if self.secrets.is_empty() {
            p.add(
                "secrets: at least one secret is required (webhooks are never accepted unverified)",
            );
        }
        if self.secrets.iter().any(|s| s.is_empty()) {
            p.add("secrets: a secret is empty (is its environment variable set to \"\"?)");
        }
        let default_max = match provider {
            Some(Provider::Github) => GITHUB_MAX_BODY,
            _ => DEFAULT_MAX_BODY,
        };
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
        let tolerance = match &self.tolerance {
            Some(text) => p.take(units::duration(&format!("{key}.tolerance"), text)),
            None => Some(DEFAULT_TOLERANCE),
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
        })
    }

    /// Presets fix their scheme: a generic key on one is a misunderstanding worth stopping for.
    fn check_preset_keys(&self, provider: Option<Provider>, p: &mut Problems) {
        let Some(provider) = provider.filter(|p| *p != Provider::Hmac) else {
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
        if self.tolerance.is_some() && !provider.has_timestamp() {
            p.add(format_args!(
                "tolerance: {:?} signatures carry no timestamp",
                self.provider
            ));
        }
    }

    fn event_id_rule(&self, provider: Option<Provider>, p: &mut Problems) -> Option<EventIdRule> {
        let Some(raw) = &self.event_id else {
            return provider.map(Provider::default_event_id);
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
            return provider.and_then(Provider::event_type);
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

    /// Keys the secrets; `generic` is the validated scheme of a `provider = "hmac"` source.
    fn verifier(
        &self,
        provider: Provider,
        tolerance: Duration,
        generic: Option<HmacParams>,
        p: &mut Problems,
    ) -> Option<Verifier> {
        let secrets = &self.secrets;
        Some(match provider {
            Provider::Stripe => Verifier::Stripe(Stripe::new(secrets, tolerance)),
            Provider::Standard => match Standard::new(secrets, tolerance) {
                Ok(s) => Verifier::Standard(s),
                Err(e) => {
                    p.add(format_args!("secrets: {e}"));
                    return None;
                }
            },
            Provider::Github => Verifier::Hmac(HmacScheme::new(github::params(), secrets)),
            Provider::Shopify => Verifier::Hmac(HmacScheme::new(shopify::params(), secrets)),
            Provider::Slack => Verifier::Hmac(HmacScheme::new(slack::params(tolerance), secrets)),
            Provider::Hmac => Verifier::Hmac(HmacScheme::new(generic?, secrets)),
        })
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
