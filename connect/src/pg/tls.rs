//! TLS for PostgreSQL connections, following libpq's `sslmode`: `require`/`prefer` encrypt without
//! verifying, `verify-full` checks the chain against `sslrootcert` (or the system's roots) and the host
//! name.

use super::conninfo::{ConnectOptions, SslMode};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::ServerName;
use std::sync::Arc;
use turnout_decoders::error::DecodeError;

/// The rustls configuration for `opts.ssl_mode` (and `sslrootcert`), shared by every TLS session
/// turnout opens.
pub fn client_config(opts: &ConnectOptions) -> Result<Arc<ClientConfig>, DecodeError> {
    let tls_err = |reason: String| DecodeError::Tls { host: opts.host.clone(), reason };
    let config = match opts.ssl_mode {
        SslMode::VerifyFull => {
            let mut roots = RootCertStore::empty();
            match &opts.ssl_root_cert {
                Some(path) => crate::tls::add_pem(&mut roots, path).map_err(|e| tls_err(format!("sslrootcert {e}")))?,
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
            crate::tls::verifying(roots).map_err(tls_err)?
        }
        SslMode::Require | SslMode::Prefer | SslMode::Disable => crate::tls::encrypt_only().map_err(tls_err)?,
    };
    Ok(Arc::new(config))
}

pub(crate) fn server_name(opts: &ConnectOptions) -> Result<ServerName<'static>, DecodeError> {
    crate::tls::server_name(&opts.host).map_err(|reason| DecodeError::Tls { host: opts.host.clone(), reason })
}
