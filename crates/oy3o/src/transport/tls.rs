//! The one rustls client setup of every connection the engine makes (reqwest's HTTP clients and
//! the WebSocket transport): aws-lc-rs (or the process's default provider) and the platform's
//! certificate verifier, as reqwest 0.13 would build it itself, except that the platform's
//! roots are loaded on the first TLS handshake instead of when a client is built.
//!
//! Why: on Linux the platform verifier reads every certificate under `/etc/ssl/certs` (about
//! 300 files here) when it is created. reqwest creates it in `ClientBuilder::build`, so every
//! `oy3o 'prompt'` paid ~3 ms for it, even against a plain `http://` server (a local model
//! server, Ollama, the tests' fakes): more than the rest of its start-up (bench/README.md,
//! "Terminal start-up"). Verification itself is unchanged: the same verifier, built once per
//! process, checks every certificate.

use std::sync::{Arc, OnceLock};

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// ALPN for HTTP clients (reqwest offers both when it builds its own config with `http2`).
pub(crate) const ALPN_HTTP: &[&[u8]] = &[b"h2", b"http/1.1"];
/// ALPN for WebSockets, which need HTTP/1.1.
pub(crate) const ALPN_WEBSOCKET: &[&[u8]] = &[b"http/1.1"];

/// A rustls client config verifying with the platform's roots (loaded at the first handshake)
/// and offering `alpn`.
pub(crate) fn client_config(alpn: &[&[u8]]) -> crate::Result<rustls::ClientConfig> {
    let provider = provider();
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| crate::Error::config(format!("cannot set up TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PlatformVerifier { provider }))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The process's default crypto provider if one is installed, else aws-lc-rs.
fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

/// `rustls_platform_verifier::Verifier`, created on first use and shared by every config.
#[derive(Debug)]
struct PlatformVerifier {
    provider: Arc<CryptoProvider>,
}

impl PlatformVerifier {
    /// The platform verifier, created (its roots read) on the first call in this process.
    fn get(&self) -> Result<&rustls_platform_verifier::Verifier, rustls::Error> {
        static VERIFIER: OnceLock<Result<rustls_platform_verifier::Verifier, String>> =
            OnceLock::new();
        VERIFIER
            .get_or_init(|| {
                rustls_platform_verifier::Verifier::new(self.provider.clone()).map_err(|e| {
                    format!(
                        "cannot load this system's certificate roots ({e}); install the \
                         ca-certificates package or set SSL_CERT_FILE"
                    )
                })
            })
            .as_ref()
            .map_err(|e| rustls::Error::General(e.clone()))
    }
}

impl ServerCertVerifier for PlatformVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.get()?
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.get()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.get()?.verify_tls13_signature(message, cert, dss)
    }

    /// What the platform verifier answers too (its webpki part asks the provider), without
    /// loading the roots: rustls asks this for every ClientHello.
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject as _;

    use super::*;

    #[test]
    fn each_config_offers_its_alpn_and_the_providers_schemes() {
        let config = client_config(ALPN_HTTP).unwrap();
        assert_eq!(
            config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        let ws = client_config(ALPN_WEBSOCKET).unwrap();
        assert_eq!(ws.alpn_protocols, vec![b"http/1.1".to_vec()]);
        let schemes = PlatformVerifier {
            provider: provider(),
        }
        .supported_verify_schemes();
        assert!(schemes.contains(&rustls::SignatureScheme::ECDSA_NISTP256_SHA256));
    }

    /// The roots load late but still decide: a server whose certificate no root signs (a
    /// self-signed `localhost`, tests/fixtures/tls) is refused by the shared HTTP client's
    /// certificate verifier.
    #[tokio::test]
    async fn a_certificate_no_root_signs_is_refused() {
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/tls");
        let cert = CertificateDer::from_pem_file(format!("{fixtures}/localhost.crt")).unwrap();
        let key = PrivateKeyDer::from_pem_file(format!("{fixtures}/localhost.key")).unwrap();
        let server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let handshakes = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            acceptor.accept(tcp).await.map(|_| ())
        });
        let client = crate::transport::client::shared(
            Some(crate::transport::client::NO_PROXY),
            Duration::from_secs(5),
        )
        .unwrap();
        let refused = client
            .get(format!("https://localhost:{port}/"))
            .send()
            .await
            .unwrap_err();
        // Refused by the verifier (which reason depends on the machine's roots: no issuer, or
        // a root of the same name whose key does not match), not by anything else.
        let chain = format!("{refused:?}");
        assert!(chain.contains("InvalidCertificate"), "{chain}");
        // The server saw the client give up on the handshake.
        assert!(handshakes.await.unwrap().is_err());
    }
}
