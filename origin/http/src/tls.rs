//! TLS for the byte servers: rustls (with the `ring` provider) from a PEM certificate
//! chain and private key, ALPN offering `h2` and `http/1.1`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// The ALPN protocols offered, best first.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// A loaded TLS configuration, ready to accept connections.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

/// Why TLS could not be set up from `tls-cert` and `tls-key`.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// One of the two options is set, the other is not.
    #[error("{missing}: must be set together with {given}")]
    Missing {
        missing: &'static str,
        given: &'static str,
    },
    /// The certificate file could not be read or holds no certificate.
    #[error("tls-cert: cannot read a PEM certificate chain from '{}': {reason}", path.display())]
    Cert { path: PathBuf, reason: String },
    /// The key file could not be read or holds no private key.
    #[error("tls-key: cannot read a PEM private key from '{}': {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    /// rustls refused the pair (e.g. the key does not match the certificate).
    #[error("tls-cert/tls-key: {0}")]
    Rejected(String),
}

impl Tls {
    /// Loads TLS from the configured options: `None` when neither is set (plain
    /// HTTP), an error when only one is, or when a file cannot be read or parsed.
    pub fn from_config(cert: Option<&Path>, key: Option<&Path>) -> Result<Option<Tls>, TlsError> {
        match (cert, key) {
            (None, None) => Ok(None),
            (Some(_), None) => Err(TlsError::Missing {
                missing: "tls-key",
                given: "tls-cert",
            }),
            (None, Some(_)) => Err(TlsError::Missing {
                missing: "tls-cert",
                given: "tls-key",
            }),
            (Some(cert), Some(key)) => Tls::load(cert, key).map(Some),
        }
    }

    /// Loads a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub fn load(cert: &Path, key: &Path) -> Result<Tls, TlsError> {
        let cert_err = |reason: String| TlsError::Cert {
            path: cert.to_path_buf(),
            reason,
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| cert_err(pem_reason(&e)))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| cert_err(pem_reason(&e)))?;
        if chain.is_empty() {
            return Err(cert_err("no CERTIFICATE section found".into()));
        }
        let private = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
            path: key.to_path_buf(),
            reason: pem_reason(&e),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Rejected(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| TlsError::Rejected(e.to_string()))?;
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// The acceptor that runs the server side of handshakes.
    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }
}

fn pem_reason(e: &rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) => io.to_string(),
        rustls::pki_types::pem::Error::NoItemsFound => "no matching PEM section found".into(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neither_is_plain_http() {
        assert!(matches!(Tls::from_config(None, None), Ok(None)));
    }

    #[test]
    fn one_without_the_other_names_the_missing_option() {
        let p = Path::new("/nonexistent/cert.pem");
        let e = Tls::from_config(Some(p), None).expect_err("must fail");
        assert!(e.to_string().starts_with("tls-key:"), "{e}");
        let e = Tls::from_config(None, Some(p)).expect_err("must fail");
        assert!(e.to_string().starts_with("tls-cert:"), "{e}");
    }

    #[test]
    fn unreadable_files_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("missing-cert.pem");
        let key = dir.path().join("key.pem");
        let e = Tls::load(&cert, &key).expect_err("must fail");
        assert!(e.to_string().contains("missing-cert.pem"), "{e}");
        std::fs::write(&cert, "not a certificate\n").expect("write");
        let e = Tls::load(&cert, &key).expect_err("must fail");
        assert!(e.to_string().starts_with("tls-cert:"), "{e}");
        assert!(!e.to_string().contains('\n'), "{e}");
    }
}
