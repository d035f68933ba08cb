//! Upstream URLs and the connector: plain HTTP or TLS by scheme, trusting the
//! system's roots and `upstream_ca`.

use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;

use crate::server::ConfigError;

/// Parses an upstream base URL (`http[s]://host:port[/prefix]`).
pub fn parse_upstream(s: &str) -> Result<Uri, ConfigError> {
    let uri: Uri = s
        .trim_end_matches('/')
        .parse()
        .map_err(|_| ConfigError::BadUpstream(s.into()))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
        return Err(ConfigError::BadUpstream(s.into()));
    }
    Ok(uri)
}

/// The connector for upstreams (and `keyframe healthcheck`): plain HTTP or TLS by
/// scheme, trusting the system's roots (read only with `system_roots`) and `ca`.
pub(crate) fn upstream_connector(
    ca: Option<&std::path::Path>,
    system_roots: bool,
    connect_timeout: Duration,
) -> Result<HttpsConnector<HttpConnector>, ConfigError> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    connector.enforce_http(false);
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(upstream_tls(ca, system_roots)?)
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector))
}

/// The TLS client configuration for `https://` upstreams: the system's roots (read
/// only when `system_roots`, that is when some upstream is `https://`), and the
/// certificates in `ca` (PEM) if given.
pub(crate) fn upstream_tls(
    ca: Option<&std::path::Path>,
    system_roots: bool,
) -> Result<tokio_rustls::rustls::ClientConfig, ConfigError> {
    use tokio_rustls::rustls::{self, pki_types::pem::PemObject, pki_types::CertificateDer};
    let bad = |why: String| ConfigError::UpstreamCa(why);
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system certificates only lose those roots; `upstream_ca` still works.
    if system_roots {
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
    }
    if let Some(path) = ca {
        let shown = path.display();
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(format!("{shown}: {e}")))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("{shown}: {e}")))?;
        if certs.is_empty() {
            return Err(bad(format!("{shown}: no certificate in it")));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| bad(format!("{shown}: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_must_be_http_or_https_urls() {
        assert!(parse_upstream("http://127.0.0.1:8082").is_ok());
        assert!(parse_upstream("http://h/prefix/").is_ok());
        assert!(parse_upstream("https://origin.example:443").is_ok());
        assert!(parse_upstream("ftp://h").is_err());
        assert!(parse_upstream("not a url").is_err());
        assert!(parse_upstream("127.0.0.1:8082").is_err());
    }
}
