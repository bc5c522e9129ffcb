//! Outbound TLS: whom hookgate trusts when it POSTs to an `https://` destination or alert
//! receiver, the client certificate it shows for mTLS, and certificate failures told in words
//! an operator can act on.
//!
//! The public roots are Mozilla's, compiled in (`webpki-roots`) rather than read from the
//! operating system: they are there on a machine without the `ca-certificates` package (slim
//! and distroless images), and a destination is trusted the same way on every host. A private
//! CA is added to them, never put in their place, so a destination that moves to a public
//! certificate keeps working.

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, TrustAnchor};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{AlertDescription, CertificateError, ClientConfig, RootCertStore};
use std::fmt;
use std::sync::Arc;

/// A PEM file that cannot serve as what its key asks for.
#[derive(Debug, thiserror::Error)]
pub enum PemFileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not valid PEM: {source}")]
    Syntax { path: String, source: pem::Error },
    #[error("{path} holds no {expected}")]
    Empty {
        path: String,
        expected: &'static str,
    },
    #[error("{path}: certificate {index} cannot be a CA: {source}")]
    NotACa {
        path: String,
        index: usize,
        source: rustls::Error,
    },
}

/// The CA certificates of a PEM file, as trust anchors.
pub struct PrivateCa {
    path: String,
    anchors: Vec<TrustAnchor<'static>>,
}

impl PrivateCa {
    pub fn load(path: &str) -> Result<Self, PemFileError> {
        let mut store = RootCertStore::empty();
        for (i, cert) in certificates(path)?.into_iter().enumerate() {
            store.add(cert).map_err(|source| PemFileError::NotACa {
                path: path.to_string(),
                index: i + 1,
                source,
            })?;
        }
        Ok(Self {
            path: path.to_string(),
            anchors: store.roots,
        })
    }
}

/// The certificate chain and key hookgate proves its identity with (mTLS).
pub struct ClientCertificate {
    path: String,
    key: Arc<CertifiedKey>,
}

impl ClientCertificate {
    /// Fails when the key cannot be used or is not the certificate's.
    pub fn new(
        path: &str,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, rustls::Error> {
        Ok(Self {
            path: path.to_string(),
            key: Arc::new(CertifiedKey::from_der(chain, key, &provider())?),
        })
    }
}

/// The PEM certificates in `path`, in file order; at least one.
pub fn certificates(path: &str) -> Result<Vec<CertificateDer<'static>>, PemFileError> {
    let text = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| PemFileError::Syntax {
            path: path.to_string(),
            source,
        })?;
    if certs.is_empty() {
        return Err(PemFileError::Empty {
            path: path.to_string(),
            expected: "PEM certificate",
        });
    }
    Ok(certs)
}

/// The first PEM private key (PKCS#8, PKCS#1 or SEC1) in `path`.
pub fn private_key(path: &str) -> Result<PrivateKeyDer<'static>, PemFileError> {
    let text = read(path)?;
    PrivateKeyDer::from_pem_slice(&text).map_err(|source| match source {
        pem::Error::NoItemsFound => PemFileError::Empty {
            path: path.to_string(),
            expected: "PEM private key",
        },
        source => PemFileError::Syntax {
            path: path.to_string(),
            source,
        },
    })
}

fn read(path: &str) -> Result<Vec<u8>, PemFileError> {
    std::fs::read(path).map_err(|source| PemFileError::Read {
        path: path.to_string(),
        source,
    })
}

/// What one HTTPS client trusts and shows: the public roots, plus a private CA if set, and a
/// client certificate if set. The default is the public roots alone.
#[derive(Default)]
pub struct TlsSettings {
    pub ca: Option<PrivateCa>,
    pub client_certificate: Option<ClientCertificate>,
}

impl fmt::Debug for TlsSettings {
    // The files' names say which settings these are; their contents are no one's business.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("ca_file", &self.ca.as_ref().map(|ca| &ca.path))
            .field(
                "client_cert",
                &self.client_certificate.as_ref().map(|c| &c.path),
            )
            .finish()
    }
}

impl TlsSettings {
    /// A reqwest client builder that speaks TLS with these settings.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(ca) = &self.ca {
            roots.roots.extend(ca.anchors.iter().cloned());
        }
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("the aws-lc-rs provider supports TLS 1.2 and 1.3")
            .with_root_certificates(roots);
        let config = match &self.client_certificate {
            Some(client) => builder
                .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(client.key.clone()))),
            None => builder.with_no_client_auth(),
        };
        reqwest::Client::builder().tls_backend_preconfigured(config)
    }
}

/// One provider for every client and for validating client certificates, so a key accepted
/// at load is one the handshake can use.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// rustls's error in `error` or in the io::Errors it wraps: an io::Error's `source()` skips
/// the error it wraps, and reqwest wraps rustls's in two.
fn rustls_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    match error.downcast_ref::<rustls::Error>() {
        Some(tls) => Some(tls),
        None => rustls_error(error.downcast_ref::<std::io::Error>()?.get_ref()?),
    }
}

/// What TLS refused in `error`'s chain, in plain words, when that is what failed.
pub fn refusal(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let tls = std::iter::successors(Some(error), |e| e.source()).find_map(rustls_error)?;
    let words = match tls {
        rustls::Error::InvalidCertificate(certificate) => match certificate {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "certificate expired".to_string()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate is not valid yet".to_string()
            }
            CertificateError::UnknownIssuer => {
                "unknown issuer: the certificate is not signed by a CA hookgate trusts; a private CA belongs in ca_file".to_string()
            }
            CertificateError::NotValidForNameContext { expected, .. } => {
                format!("certificate is not valid for {}", expected.to_str())
            }
            _ => return None,
        },
        rustls::Error::AlertReceived(AlertDescription::CertificateRequired) => {
            "the server requires a client certificate: set client_cert and client_key".to_string()
        }
        rustls::Error::AlertReceived(
            alert @ (AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnsupportedCertificate),
        ) => format!("the server refused hookgate's client certificate with alert {alert:?}"),
        _ => return None,
    };
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How hyper hands a failed handshake up: rustls's error inside an io::Error inside more.
    #[derive(Debug, thiserror::Error)]
    #[error("client error (Connect)")]
    struct Connect(#[source] std::io::Error);

    fn handshake_failure(tls: rustls::Error) -> Connect {
        let handshake = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        Connect(std::io::Error::other(handshake))
    }

    #[test]
    fn certificate_failures_are_found_inside_io_errors() {
        let unknown = handshake_failure(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ));
        assert!(refusal(&unknown).unwrap().starts_with("unknown issuer: "));
        let required = handshake_failure(rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired,
        ));
        assert_eq!(
            refusal(&required).unwrap(),
            "the server requires a client certificate: set client_cert and client_key"
        );
    }

    #[test]
    fn other_failures_have_no_plain_words() {
        let refused = Connect(std::io::ErrorKind::ConnectionRefused.into());
        assert_eq!(refusal(&refused), None);
        let garbled = handshake_failure(rustls::Error::DecryptError);
        assert_eq!(refusal(&garbled), None);
    }
}
