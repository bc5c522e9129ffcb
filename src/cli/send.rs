//! `hookgate send <source>`: a webhook signed as the source's provider signs it, posted to the
//! gateway's public listener, the answer printed. Like `stripe trigger`, for your own gateway.

use crate::config::{Config, Provider, Source};
use crate::event_id::IdSource;
use crate::event_type::EventTypeRule;
use crate::verify::Message;
use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Map, Value};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

/// Where a private key comes from when the flag is not given.
pub const SIGNING_KEY_ENV: &str = "HOOKGATE_SIGNING_KEY";

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The `[[sources]]` name to send to.
    pub source: String,
    /// The body to sign and send (default: a small sample for the source's provider).
    #[arg(long, value_name = "FILE")]
    pub body: Option<PathBuf>,
    /// The event type, put where the provider puts it (default: hookgate.test).
    #[arg(long, value_name = "TYPE", default_value = "hookgate.test")]
    pub event: String,
    /// The provider's event or delivery id (default: a new UUID).
    #[arg(long)]
    pub id: Option<String>,
    /// Where to post (default: http://<listen>/webhooks/<source>).
    #[arg(long)]
    pub url: Option<String>,
    /// The provider's private key, for providers configured with public keys only (discord,
    /// sendgrid, standard v1a). Default: the key itself in $HOOKGATE_SIGNING_KEY.
    #[arg(long, value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
}

pub async fn run(config: &Config, args: SendArgs) -> anyhow::Result<()> {
    let source = (config.sources.iter())
        .find(|s| s.name == args.source)
        .with_context(|| format!("no source named {:?} in the configuration", args.source))?;
    let id = args.id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let body = match &args.body {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => sample(source, &id, &args.event),
    };
    let signing_key = match &args.signing_key {
        Some(path) => Some(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        ),
        None => std::env::var(SIGNING_KEY_ENV).ok(),
    };
    let message = Message {
        id: &id,
        timestamp: chrono::Utc::now().timestamp(),
        body,
    };
    let signed = (source.verifier.sign(message, signing_key.as_deref()))
        .with_context(|| format!("cannot sign for source {:?}", source.name))?;
    let mut headers = signed.headers;
    add_rule_headers(source, &id, &args.event, &mut headers);
    let url = args
        .url
        .unwrap_or_else(|| default_url(config.listen, &source.name));
    let mut request = reqwest::Client::new().post(&url).body(signed.body);
    for (name, value) in &headers {
        request = request.header(name, value);
    }
    let response = (request.send().await).with_context(|| format!("posting to {url}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    println!("{status}");
    println!("{text}");
    if !status.is_success() {
        bail!("the gateway answered {status}");
    }
    Ok(())
}

/// A JSON object holding the id and type where the source reads them, unless the preset has a
/// body of its own shape.
fn sample(source: &Source, id: &str, event_type: &str) -> Vec<u8> {
    if let Provider::Preset(preset) = source.provider
        && let Some(sample) = preset.sample
    {
        return sample(id, event_type);
    }
    let mut body = Value::Object(Map::new());
    if let Some(IdSource::JsonPointer(pointer)) = &source.event_id.from {
        set(&mut body, pointer, id);
    }
    if let Some(EventTypeRule::JsonPointer(pointer)) = &source.event_type {
        set(&mut body, pointer, event_type);
    }
    body.as_object_mut()
        .expect("an object")
        .insert("sent_by".into(), "hookgate send".into());
    body.to_string().into_bytes()
}

/// Sets the string at an RFC 6901 pointer, making the objects on the way.
fn set(root: &mut Value, pointer: &str, text: &str) {
    let mut at = root;
    for token in pointer.split('/').skip(1) {
        let key = token.replace("~1", "/").replace("~0", "~");
        if !at.is_object() {
            *at = Value::Object(Map::new());
        }
        at = at
            .as_object_mut()
            .expect("just made an object")
            .entry(key)
            .or_insert(Value::Null);
    }
    *at = Value::String(text.to_string());
}

/// The id and type headers the source reads, where the signature did not already set them.
fn add_rule_headers(
    source: &Source,
    id: &str,
    event_type: &str,
    headers: &mut Vec<(String, String)>,
) {
    let mut wanted = Vec::new();
    match &source.event_id.from {
        Some(IdSource::Header(name)) => wanted.push((name.clone(), id)),
        Some(IdSource::FirstHeader(names)) => wanted.extend(names.first().map(|n| (n.clone(), id))),
        _ => {}
    }
    if let Some(EventTypeRule::Header(name)) = &source.event_type {
        wanted.push((name.clone(), event_type));
    }
    wanted.push(("content-type".to_string(), "application/json"));
    for (name, value) in wanted {
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
            headers.push((name, value.to_string()));
        }
    }
}

/// The public listener as a client reaches it: an unspecified address means this host.
fn default_url(listen: SocketAddr, source: &str) -> String {
    let host = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!(
        "http://{}/webhooks/{source}",
        SocketAddr::new(host, listen.port())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_make_their_objects() {
        let mut body = Value::Object(Map::new());
        set(&mut body, "/event/id", "e1");
        set(&mut body, "/type", "t");
        set(&mut body, "/a~1b", "x");
        assert_eq!(
            body,
            serde_json::json!({"event": {"id": "e1"}, "type": "t", "a/b": "x"})
        );
    }

    #[test]
    fn an_unspecified_listen_address_is_posted_to_on_localhost() {
        let url = default_url("0.0.0.0:8080".parse().unwrap(), "gh");
        assert_eq!(url, "http://127.0.0.1:8080/webhooks/gh");
        let url = default_url("[::]:8080".parse().unwrap(), "gh");
        assert_eq!(url, "http://[::1]:8080/webhooks/gh");
        let url = default_url("10.0.0.5:80".parse().unwrap(), "gh");
        assert_eq!(url, "http://10.0.0.5:80/webhooks/gh");
    }
}
