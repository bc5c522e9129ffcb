//! A source's ingress controls at its door: the client's address against `allow_ips` (told
//! through `trusted_proxies`), before the body is read; the source's `rate_limit`, after the
//! signature check, so that requests nobody signed cannot use up what its provider may send.
//! Neither lets anything through that the signature check would refuse: both only refuse.

use crate::config::{Ingress, Rate, Source};
use crate::edge::PeerAddr;
use crate::queue::stream::Streams;
use crate::queue::throttle::Slot;
use axum::http::HeaderMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The rate's scope among the source's limits in Redis.
const SCOPE: &str = "ingress";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error("client address {0} is not in this source's allow_ips")]
    AddressNotAllowed(IpAddr),
    #[error("the client address cannot be told: {0}")]
    AddressUnknown(&'static str),
    #[error("this source takes at most {rate} webhooks; retry in {retry_after} s")]
    RateLimited { rate: Rate, retry_after: u64 },
}

/// Refuses a client outside the source's `allow_ips`.
pub fn check_address(
    ingress: &Ingress,
    peer: Option<PeerAddr>,
    headers: &HeaderMap,
) -> Result<(), Refused> {
    if ingress.allow_ips.is_none() {
        return Ok(());
    }
    let peer = peer.ok_or(Refused::AddressUnknown("no peer address"))?;
    let client = client_address(peer.0, headers, ingress)?;
    match ingress.allows(client) {
        true => Ok(()),
        false => Err(Refused::AddressNotAllowed(client.to_canonical())),
    }
}

/// The client's address: the peer's, or, when the peer is a trusted proxy, the nearest
/// address in `X-Forwarded-For` (read from the right, as each proxy appends the address it
/// saw) that is not itself a trusted proxy. Entries left of it were written by whoever sent
/// the request, and are never believed.
fn client_address(
    peer: SocketAddr,
    headers: &HeaderMap,
    ingress: &Ingress,
) -> Result<IpAddr, Refused> {
    let mut client = peer.ip();
    if !ingress.trusts(client) {
        return Ok(client);
    }
    let forwarded: Vec<&str> = (headers.get_all("x-forwarded-for").iter())
        .map(|value| value.to_str().map_err(|_| unreadable()))
        .collect::<Result<_, _>>()?;
    let hops: Vec<&str> = forwarded.iter().flat_map(|v| v.split(',')).collect();
    for hop in hops.iter().rev() {
        client = parse_hop(hop.trim()).ok_or_else(unreadable)?;
        if !ingress.trusts(client) {
            break;
        }
    }
    Ok(client)
}

fn unreadable() -> Refused {
    Refused::AddressUnknown("X-Forwarded-For from a trusted proxy holds something not an address")
}

/// An address, with or without a port (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
fn parse_hop(text: &str) -> Option<IpAddr> {
    (text.parse::<IpAddr>().ok()).or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// Takes one of the source's `rate_limit` slots, shared by every receiver process through
/// Redis: a burst of up to one unit's worth (`200/s`: 200 at once), then the rate. Redis out of
/// reach lets the webhook through: the receiver keeps accepting into Postgres without Redis,
/// and a limit it cannot check must not turn that into an outage.
pub async fn take_slot(streams: &Streams, source: &Source) -> Result<(), Refused> {
    let Some(rate) = source.ingress.rate_limit else {
        return Ok(());
    };
    let interval = rate.interval();
    let burst = rate.per.saturating_sub(interval);
    match streams
        .reserve_slot(&source.name, SCOPE, interval, burst)
        .await
    {
        Ok(Slot::In(_)) => Ok(()),
        Ok(Slot::Refused(after)) => Err(Refused::RateLimited {
            rate,
            retry_after: whole_seconds(after),
        }),
        Err(error) => {
            tracing::debug!(%error, source = %source.name, "cannot check the source's rate_limit; letting the webhook through");
            metrics::counter!("hookgate_rate_limit_unchecked_total", "source" => source.name.clone()).increment(1);
            Ok(())
        }
    }
}

/// Retry-After in whole seconds, at least 1.
fn whole_seconds(after: Duration) -> u64 {
    after.as_secs() + u64::from(after.subsec_nanos() > 0).max(u64::from(after.is_zero()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusting(list: &[&str]) -> Ingress {
        Ingress {
            trusted_proxies: list.iter().map(|s| s.parse().unwrap()).collect(),
            ..Ingress::default()
        }
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", v.parse().unwrap());
        }
        headers
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 443)
    }

    #[test]
    fn only_a_trusted_proxy_is_believed_and_only_about_its_own_hop() {
        let trusted = trusting(&["10.0.0.0/8"]);
        let spoof = forwarded(&["203.0.113.9"]);
        // An untrusted peer is the client, whatever it says.
        assert_eq!(
            client_address(peer("198.51.100.1"), &spoof, &trusted),
            Ok("198.51.100.1".parse().unwrap())
        );
        // A trusted proxy's last hop is the client...
        assert_eq!(
            client_address(peer("10.0.0.1"), &spoof, &trusted),
            Ok("203.0.113.9".parse().unwrap())
        );
        // ... even when the client wrote addresses of its own in front of it ...
        let prefixed = forwarded(&["192.0.2.1, 203.0.113.9"]);
        assert_eq!(
            client_address(peer("10.0.0.1"), &prefixed, &trusted),
            Ok("203.0.113.9".parse().unwrap())
        );
        // ... through proxies in a row, in one header or several, with ports.
        let chain = forwarded(&["192.0.2.1, 203.0.113.9:4711", "10.2.0.1"]);
        assert_eq!(
            client_address(peer("10.0.0.1"), &chain, &trusted),
            Ok("203.0.113.9".parse().unwrap())
        );
        let v6 = forwarded(&["[2001:db8::7]:80"]);
        assert_eq!(
            client_address(peer("10.0.0.1"), &v6, &trusted),
            Ok("2001:db8::7".parse().unwrap())
        );
        // A trusted proxy that says nothing is the client itself.
        assert_eq!(
            client_address(peer("10.0.0.1"), &HeaderMap::new(), &trusted),
            Ok("10.0.0.1".parse().unwrap())
        );
        let garbage = forwarded(&["203.0.113.9, unknown"]);
        assert!(client_address(peer("10.0.0.1"), &garbage, &trusted).is_err());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::ZERO), 1);
        assert_eq!(whole_seconds(Duration::from_millis(5)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(2)), 2);
        assert_eq!(whole_seconds(Duration::from_millis(2001)), 3);
    }
}
