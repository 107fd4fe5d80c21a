//! TLS for PostgreSQL connections (rustls with the ring provider), following libpq's `sslmode`:
//! `require`/`prefer` encrypt without verifying, `verify-full` checks the chain against `sslrootcert`
//! (or the system's roots) and the host name.

use super::conninfo::{ConnectOptions, SslMode};
use crate::error::DecodeError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::sync::Arc;

/// The rustls configuration for `opts.ssl_mode` (and `sslrootcert`), shared by every TLS session
/// turnout opens.
pub fn client_config(opts: &ConnectOptions) -> Result<Arc<ClientConfig>, DecodeError> {
    let tls_err = |reason: String| DecodeError::Tls { host: opts.host.clone(), reason };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider)).with_safe_default_protocol_versions().map_err(|e| tls_err(e.to_string()))?;
    let config = match opts.ssl_mode {
        SslMode::VerifyFull => {
            let mut roots = RootCertStore::empty();
            match &opts.ssl_root_cert {
                Some(path) => {
                    let certs = CertificateDer::pem_file_iter(path).map_err(|e| tls_err(format!("cannot read sslrootcert {}: {e}", path.display())))?;
                    for cert in certs {
                        let cert = cert.map_err(|e| tls_err(format!("sslrootcert {}: {e}", path.display())))?;
                        roots.add(cert).map_err(|e| tls_err(format!("sslrootcert {}: {e}", path.display())))?;
                    }
                }
                None => {
                    for cert in rustls_native_certs::load_native_certs().certs {
                        // Unparseable system certificates are skipped, as libpq does.
                        let _ = roots.add(cert);
                    }
                }
            }
            if roots.is_empty() {
                return Err(tls_err("sslmode=verify-full but no root certificate was found; set sslrootcert=/path/to/ca.pem in the URL".into()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        SslMode::Require | SslMode::Prefer | SslMode::Disable => {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(EncryptOnly(provider))).with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

pub(crate) fn server_name(opts: &ConnectOptions) -> Result<ServerName<'static>, DecodeError> {
    ServerName::try_from(opts.host.clone()).map_err(|e| DecodeError::Tls { host: opts.host.clone(), reason: format!("not a valid TLS server name: {e}") })
}

/// `sslmode=require`: encryption without authentication of the server (libpq's behaviour). Signatures
/// are still checked so the handshake itself is sound.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
