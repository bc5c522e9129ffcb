//! The keys naming TLS files: read and checked at load, so a missing file, a file that holds
//! no certificate or a key that is not the certificate's stops the start, not a delivery.

use crate::tls::{self, ClientCertificate, PrivateCa};
use rustls::InconsistentKeys;

/// The CA certificates in `path`, set under `key`.
pub(super) fn private_ca(key: &str, path: &str, problems: &mut Vec<String>) -> Option<PrivateCa> {
    PrivateCa::load(path)
        .map_err(|e| problems.push(format!("{key}: {e}")))
        .ok()
}

/// `client_cert` and `client_key` under `key`: both or neither.
pub(super) fn client_certificate(
    key: &str,
    cert: Option<&str>,
    private_key: Option<&str>,
    problems: &mut Vec<String>,
) -> Option<ClientCertificate> {
    let (cert_path, key_path) = match (cert, private_key) {
        (None, None) => return None,
        (Some(cert), Some(private_key)) => (cert, private_key),
        (Some(_), None) => {
            problems.push(format!("{key}.client_key: required with client_cert"));
            return None;
        }
        (None, Some(_)) => {
            problems.push(format!("{key}.client_cert: required with client_key"));
            return None;
        }
    };
    let chain = tls::certificates(cert_path)
        .map_err(|e| problems.push(format!("{key}.client_cert: {e}")))
        .ok();
    let private_key = tls::private_key(key_path)
        .map_err(|e| problems.push(format!("{key}.client_key: {e}")))
        .ok();
    ClientCertificate::new(cert_path, chain?, private_key?)
        .map_err(|e| {
            problems.push(match e {
                rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch) => format!(
                    "{key}.client_key: {key_path} is not the key of client_cert {cert_path}"
                ),
                e => format!(
                    "{key}.client_key: {key_path} cannot be used with client_cert {cert_path}: {e}"
                ),
            })
        })
        .ok()
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

    /// PEM files in a directory of their own: a CA, a client certificate and key, another
    /// key, and text that is not PEM.
    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let mut ca = CertificateParams::default();
            ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let ca_key = KeyPair::generate().unwrap();
            let client_key = KeyPair::generate().unwrap();
            let client = CertificateParams::new(vec!["hookgate.test".to_string()]).unwrap();
            let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text);
            write("ca.pem", &ca.self_signed(&ca_key).unwrap().pem()).unwrap();
            write(
                "client.pem",
                &client.self_signed(&client_key).unwrap().pem(),
            )
            .unwrap();
            write("client.key", &client_key.serialize_pem()).unwrap();
            write("other.key", &KeyPair::generate().unwrap().serialize_pem()).unwrap();
            write(
                "garbled.pem",
                "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
            )
            .unwrap();
            Self { dir }
        }

        fn path(&self, name: &str) -> String {
            self.dir.path().join(name).to_str().unwrap().to_string()
        }

        /// A config whose source has `destinations` and whose top level has `settings`.
        fn parse(&self, settings: &str, destinations: &str) -> Result<Config, ConfigError> {
            let text = format!(
                r#"
                database_url = "postgres://127.0.0.1/hookgate"
                redis_url = "redis://127.0.0.1"
                {settings}
                [[sources]]
                name = "s"
                provider = "github"
                secrets = ["x"]
                {destinations}
                "#
            )
            .replace("$DIR", self.dir.path().to_str().unwrap());
            Config::parse("test.toml", &text, &|_| None)
        }

        fn problems(&self, settings: &str, destinations: &str) -> Vec<String> {
            match self.parse(settings, destinations) {
                Err(ConfigError::Invalid { problems, .. }) => {
                    problems.into_iter().map(|p| p.message).collect()
                }
                other => panic!("expected invalid config, got {other:?}"),
            }
        }
    }

    #[test]
    fn https_destinations_take_a_ca_and_a_client_certificate() {
        let files = Files::new();
        let config = files
            .parse(
                r#"
                alert_webhook_url = "https://alerts.example/hook"
                alert_ca_file = "$DIR/ca.pem"
                "#,
                r#"
                [[sources.destinations]]
                name = "mtls"
                url = "https://billing.internal/hook"
                ca_file = "$DIR/ca.pem"
                client_cert = "$DIR/client.pem"
                client_key = "$DIR/client.key"
                [[sources.destinations]]
                name = "public"
                url = "https://hooks.example/in"
                "#,
            )
            .unwrap();
        let source = config.source("s").unwrap();
        let tls = source.destination("mtls").unwrap().tls.as_ref().unwrap();
        assert!(tls.ca.is_some() && tls.client_certificate.is_some());
        assert!(source.destination("public").unwrap().tls.is_none());
        assert!(config.alert_tls.ca.is_some());
        let shown = format!("{tls:?}");
        assert!(
            shown.contains("client.pem") && shown.contains("ca.pem"),
            "{shown}"
        );
    }

    #[test]
    fn every_unusable_tls_file_and_misplaced_tls_key_is_listed() {
        let files = Files::new();
        let found = files.problems(
            r#"
            alert_webhook_url = "http://alerts.example/hook"
            alert_ca_file = "$DIR/ca.pem"
            "#,
            r#"
            [[sources.destinations]]
            name = "missing"
            url = "https://a.internal/"
            ca_file = "$DIR/nowhere.pem"
            client_cert = "$DIR/client.pem"
            [[sources.destinations]]
            name = "wrong-files"
            url = "https://b.internal/"
            ca_file = "$DIR/client.key"
            client_cert = "$DIR/garbled.pem"
            client_key = "$DIR/ca.pem"
            [[sources.destinations]]
            name = "mismatch"
            url = "https://c.internal/"
            client_cert = "$DIR/client.pem"
            client_key = "$DIR/other.key"
            [[sources.destinations]]
            name = "plain"
            url = "http://d.internal/"
            ca_file = "$DIR/ca.pem"
            [[sources.destinations]]
            name = "stream"
            stream = "s"
            client_key = "$DIR/client.key"
            [[sources.destinations]]
            name = "no-scheme"
            url = "ftp://e.internal/"
            "#,
        );
        let dir = files.path("");
        let expected = [
            "alert_ca_file: only for an https:// alert_webhook_url".to_string(),
            format!("sources[0].destinations[0].ca_file: cannot read {dir}nowhere.pem: "),
            "sources[0].destinations[0].client_key: required with client_cert".to_string(),
            format!("sources[0].destinations[1].ca_file: {dir}client.key holds no PEM certificate"),
            format!("sources[0].destinations[1].client_cert: {dir}garbled.pem is not valid PEM"),
            format!("sources[0].destinations[1].client_key: {dir}ca.pem holds no PEM private key"),
            format!(
                "sources[0].destinations[2].client_key: {dir}other.key is not the key of client_cert {dir}client.pem"
            ),
            "sources[0].destinations[3]: ca_file, client_cert and client_key are for https:// URLs"
                .to_string(),
            "sources[0].destinations[4]: ca_file, client_cert and client_key are for https:// URLs"
                .to_string(),
            "sources[0].destinations[5].url: \"ftp://e.internal/\" must start with http:// or https://"
                .to_string(),
        ];
        for e in &expected {
            assert!(
                found.iter().any(|p| p.starts_with(e.as_str())),
                "missing {e:?} in {found:#?}"
            );
        }
        assert_eq!(found.len(), expected.len(), "{found:#?}");
    }

    #[test]
    fn an_unreadable_alert_ca_file_and_an_alert_url_of_another_scheme_are_refused() {
        let files = Files::new();
        let found = files.problems(
            r#"
            alert_webhook_url = "https://alerts.example/hook"
            alert_ca_file = "$DIR/nowhere.pem"
            "#,
            "",
        );
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].starts_with("alert_ca_file: cannot read "),
            "{found:#?}"
        );
        let found = files.problems(r#"alert_webhook_url = "ftp://alerts.example/""#, "");
        assert_eq!(
            found,
            ["alert_webhook_url: \"ftp://alerts.example/\" must start with http:// or https://"]
        );
    }
}
