//! Secrets in URLs stay out of everything hookgate shows: logs, recorded errors, dead letters,
//! the admin API, the CLI and `check-config`. Destination and alert URLs often carry a
//! credential (`user:password@`, `?token=...`), and an operator reading an error does not need
//! it to tell which endpoint failed.

/// What stands in for a hidden part.
const HIDDEN: &str = "***";

/// `url` with its password and query replaced: `http://user:***@host/path?***`. A user name
/// without a password is usually a token itself, so it is replaced too (`http://***@host/`).
/// The fragment is dropped. Text that is not an absolute URL could hide a secret anywhere, so
/// none of it is shown.
pub fn url(url: &str) -> String {
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        return "(unparsable URL)".to_string();
    };
    // Setting these fails only for URLs that cannot have them (no host), which have none.
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some(HIDDEN));
    } else if !parsed.username().is_empty() {
        let _ = parsed.set_username(HIDDEN);
    }
    if parsed.query().is_some() {
        parsed.set_query(Some(HIDDEN));
    }
    parsed.set_fragment(None);
    parsed.into()
}

/// Only the scheme, host and port of `url`: for receivers whose path is as likely to carry a
/// token as their query (alert webhooks such as Slack's `/services/T.../B.../<secret>`).
pub fn origin(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => format!(
            "{}://{}{}",
            parsed.scheme(),
            parsed.host_str().unwrap_or("?"),
            parsed.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "(unparsable URL)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_queries_are_hidden_and_the_rest_is_kept() {
        assert_eq!(
            url("http://user:hunter2@hooks.internal:9000/v1/in?token=s3cret&x=1#frag"),
            "http://user:***@hooks.internal:9000/v1/in?***"
        );
        assert_eq!(
            url("http://ghp_t0ken@hooks.internal/in"),
            "http://***@hooks.internal/in"
        );
        assert_eq!(
            url("http://hooks.internal/plain"),
            "http://hooks.internal/plain"
        );
        assert_eq!(url("not a url ?token=s3cret"), "(unparsable URL)");
    }

    #[test]
    fn an_origin_is_scheme_host_and_port_only() {
        assert_eq!(
            origin("http://user:secret@alerts.internal:9000/hooks/T0K3N?key=abc"),
            "http://alerts.internal:9000"
        );
    }
}
