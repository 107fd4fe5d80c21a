//! A throwaway certificate authority, server certificate and client certificate for TLS tests.

use crate::error::TestbedError;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType};
use std::path::{Path, PathBuf};

/// PEM files of a test CA, a server certificate for `localhost` / `127.0.0.1` and a client
/// certificate (common name `turnout`, for client authentication) signed by it.
#[derive(Debug, Clone)]
pub struct TestCertificates {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl TestCertificates {
    /// Writes `ca.crt`, `server.crt`, `server.key`, `client.crt` and `client.key` (keys mode 0600)
    /// into `dir`.
    pub fn generate(dir: &Path) -> Result<Self, TestbedError> {
        Self::generate_for(dir, "localhost", Some(std::net::IpAddr::from([127, 0, 0, 1])))
    }

    /// Like [`TestCertificates::generate`], for a server certificate naming only `name` (and `ip`).
    pub fn generate_for(dir: &Path, name: &str, ip: Option<std::net::IpAddr>) -> Result<Self, TestbedError> {
        let err = |e: rcgen::Error| TestbedError::Certificate(e.to_string());
        let ca_key = KeyPair::generate().map_err(err)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "turnout test CA");
        let ca = ca_params.self_signed(&ca_key).map_err(err)?;
        let key = KeyPair::generate().map_err(err)?;
        let mut params = CertificateParams::new(vec![name.to_string()]).map_err(err)?;
        params.subject_alt_names.extend(ip.map(SanType::IpAddress));
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.signed_by(&key, &ca, &ca_key).map_err(err)?;
        let client_key = KeyPair::generate().map_err(err)?;
        let mut client_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        client_params.distinguished_name.push(DnType::CommonName, "turnout");
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = client_params.signed_by(&client_key, &ca, &ca_key).map_err(err)?;
        let out = TestCertificates {
            ca_cert: dir.join("ca.crt"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.crt"),
            client_key: dir.join("client.key"),
        };
        let write = |p: &Path, s: String| std::fs::write(p, s).map_err(TestbedError::io(format!("writing {}", p.display())));
        write(&out.ca_cert, ca.pem())?;
        write(&out.server_cert, cert.pem())?;
        write(&out.server_key, key.serialize_pem())?;
        write(&out.client_cert, client.pem())?;
        write(&out.client_key, client_key.serialize_pem())?;
        use std::os::unix::fs::PermissionsExt;
        for key in [&out.server_key, &out.client_key] {
            std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600)).map_err(TestbedError::io(format!("chmod {}", key.display())))?;
        }
        Ok(out)
    }
}
