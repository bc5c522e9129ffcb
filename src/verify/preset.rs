//! The registry of provider presets: adding one is its file in `src/verify/`, its fixture in
//! `fixtures/` and one line in [`PRESETS`].

use super::Scheme;
use crate::event_id::EventIdRule;
use crate::event_type::EventTypeRule;
use std::time::Duration;

/// Bodies are held in memory while they are verified and stored; most providers send far less.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

/// Everything a provider fixes about its webhooks.
pub struct Preset {
    /// The `provider` value in configuration.
    pub name: &'static str,
    /// What the configuration gives the scheme to check with.
    pub keys: KeyKind,
    /// Settings of `[[sources]]` the scheme reads besides its keys: `public_url`,
    /// `verify_token`.
    pub extra_keys: &'static [&'static str],
    /// Keys the scheme from a source's configuration; a problem names the key at fault.
    pub build: fn(&Keys) -> Result<Box<dyn Scheme>, KeyProblem>,
    /// `None`: the scheme signs no timestamp, so `tolerance` cannot be set.
    pub tolerance: Option<Duration>,
    pub event_id: fn() -> EventIdRule,
    /// `None`: the provider names no type; its webhooks are stored without one.
    pub event_type: fn() -> Option<EventTypeRule>,
    pub max_body: usize,
    /// The body `hookgate send` signs when given none: `(id, event type)`. `None`: a JSON
    /// object holding the id and type where the preset reads them.
    pub sample: Option<fn(&str, &str) -> Vec<u8>>,
}

/// Which list of a `[[sources]]` entry the scheme needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `secrets`: shared secrets (or tokens).
    Secrets,
    /// `public_keys`: the provider signs with a private key.
    PublicKeys,
    /// Either list, or both (Standard Webhooks: `v1` and `v1a`).
    Either,
}

/// A source's keys and the settings a scheme may read.
pub struct Keys<'a> {
    pub secrets: &'a [String],
    pub public_keys: &'a [String],
    /// The URL the provider posts to, exactly as configured there (Twilio, Square, HubSpot).
    pub public_url: Option<&'a str>,
    /// What Meta's subscription `GET` must carry.
    pub verify_token: Option<&'a str>,
    pub tolerance: Duration,
}

impl Keys<'_> {
    /// The URL a scheme signs; its absence is the configuration's problem.
    pub fn public_url(&self, provider: &str) -> Result<String, KeyProblem> {
        match self.public_url {
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                Ok(url.to_string())
            }
            Some(url) => Err(KeyProblem::new(
                "public_url",
                format!("{url:?} must be an absolute http(s) URL"),
            )),
            None => Err(KeyProblem::new(
                "public_url",
                format!(
                    "required for provider = {provider:?}: it signs the URL it posts to; set it exactly as configured there"
                ),
            )),
        }
    }
}

/// A configuration key and what is wrong with it.
#[derive(Debug, PartialEq, Eq)]
pub struct KeyProblem {
    pub key: &'static str,
    pub message: String,
}

impl KeyProblem {
    pub fn new(key: &'static str, message: impl Into<String>) -> Self {
        Self {
            key,
            message: message.into(),
        }
    }
}

/// `build`'s success, boxed.
pub fn scheme(scheme: impl Scheme + 'static) -> Result<Box<dyn Scheme>, KeyProblem> {
    Ok(Box::new(scheme))
}

/// Every preset, in the order README lists them.
pub static PRESETS: &[&Preset] = &[
    &super::stripe::PRESET,
    &super::github::PRESET,
    &super::standard::PRESET,
    &super::shopify::PRESET,
    &super::slack::PRESET,
    &super::gitlab::PRESET,
    &super::twilio::PRESET,
    &super::square::PRESET,
    &super::paddle::PRESET,
    &super::linear::PRESET,
    &super::discord::PRESET,
    &super::zoom::PRESET,
    &super::twitch::PRESET,
    &super::meta::PRESET,
    &super::intercom::PRESET,
    &super::mailgun::PRESET,
    &super::sendgrid::PRESET,
    &super::hubspot::PRESET,
    &super::typeform::PRESET,
    &super::calendly::PRESET,
    &super::sentry::PRESET,
    &super::pagerduty::PRESET,
    &super::bitbucket::PRESET,
    &super::vercel::PRESET,
    &super::lemonsqueezy::PRESET,
];

pub fn find(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().copied().find(|p| p.name == name)
}

/// The names, for an error message.
pub fn names() -> String {
    let mut names: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
    names.push("hmac");
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PRESETS.len());
        assert!(find("hmac").is_none(), "hmac is configured, not a preset");
    }
}
