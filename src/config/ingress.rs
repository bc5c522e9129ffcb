//! A source's ingress controls: which client addresses may post to it (`allow_ips`), which
//! proxies are believed about the client's address (`trusted_proxies`), and how many of its
//! verified webhooks are taken per second across every receiver process (`rate_limit`).

use super::units::{self, Rate};
use ipnet::IpNet;
use std::net::IpAddr;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ingress {
    /// `None`: every address.
    pub allow_ips: Option<Vec<IpNet>>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    pub rate_limit: Option<Rate>,
}

impl Ingress {
    pub fn allows(&self, client: IpAddr) -> bool {
        (self.allow_ips.as_ref()).is_none_or(|nets| contains(nets, client))
    }

    pub fn trusts(&self, peer: IpAddr) -> bool {
        contains(&self.trusted_proxies, peer)
    }
}

/// Whether `address` is in one of `nets`; an IPv4 address mapped into IPv6 (`::ffff:a.b.c.d`,
/// as a dual-stack listener sees IPv4 peers) counts as that IPv4 address.
fn contains(nets: &[IpNet], address: IpAddr) -> bool {
    let address = address.to_canonical();
    nets.iter().any(|net| net.contains(&address))
}

pub(super) fn validate(
    key: &str,
    allow_ips: Option<&[String]>,
    trusted_proxies: Option<&[String]>,
    rate_limit: Option<&str>,
    problems: &mut Vec<String>,
) -> Ingress {
    let allow_ips = allow_ips.map(|list| {
        if list.is_empty() {
            problems.push(format!(
                "{key}.allow_ips: lists no address (leave it out to allow every address)"
            ));
        }
        networks(&format!("{key}.allow_ips"), list, problems)
    });
    let trusted_proxies = trusted_proxies
        .map(|list| networks(&format!("{key}.trusted_proxies"), list, problems))
        .unwrap_or_default();
    if !trusted_proxies.is_empty() && allow_ips.is_none() {
        problems.push(format!(
            "{key}.trusted_proxies: only decides the client address allow_ips checks; set allow_ips too"
        ));
    }
    let rate_limit = rate_limit.and_then(|text| {
        units::rate(&format!("{key}.rate_limit"), text)
            .map_err(|p| problems.push(p))
            .ok()
    });
    Ingress {
        allow_ips,
        trusted_proxies,
        rate_limit,
    }
}

/// CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`) or single addresses.
fn networks(key: &str, list: &[String], problems: &mut Vec<String>) -> Vec<IpNet> {
    (list.iter())
        .filter_map(|entry| {
            let text = entry.trim();
            let parsed = (text.parse::<IpNet>())
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                .map(|net| net.trunc());
            parsed
                .map_err(|_| {
                    problems.push(format!(
                        "{key}: {entry:?} is not an address or a CIDR block like \"10.0.0.0/8\""
                    ))
                })
                .ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn addresses_and_blocks_are_allowed() {
        let mut problems = Vec::new();
        let allow = strings(&["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"]);
        let ingress = validate("s", Some(&allow), None, Some("200/s"), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        for yes in ["10.1.2.3", "192.0.2.7", "2001:db8::1", "::ffff:10.9.9.9"] {
            assert!(ingress.allows(yes.parse().unwrap()), "{yes}");
        }
        for no in ["11.0.0.1", "192.0.2.8", "2001:db9::1", "127.0.0.1"] {
            assert!(!ingress.allows(no.parse().unwrap()), "{no}");
        }
        assert_eq!(ingress.rate_limit.unwrap().count, 200);
        assert!(Ingress::default().allows("203.0.113.1".parse().unwrap()));
    }

    #[test]
    fn every_ingress_problem_is_listed() {
        let mut problems = Vec::new();
        let bad = strings(&["10.0.0.0/33", "example.com"]);
        let proxies = strings(&["10.0.0.1"]);
        validate("s", Some(&[]), None, None, &mut problems);
        validate("s", Some(&bad), None, Some("fast"), &mut problems);
        validate("s", None, Some(&proxies), None, &mut problems);
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert!(problems[0].starts_with("s.allow_ips: lists no address"));
        assert!(problems[1].starts_with("s.allow_ips: \"10.0.0.0/33\" is not"));
        assert!(problems[2].starts_with("s.allow_ips: \"example.com\" is not"));
        assert!(problems[3].starts_with("s.rate_limit: \"fast\""));
        assert!(problems[4].starts_with("s.trusted_proxies: only decides"));
    }
}
