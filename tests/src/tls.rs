//! A throwaway certificate authority and server certificate for TLS tests.

use crate::error::TestbedError;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use std::path::{Path, PathBuf};

/// PEM files of a test CA and a server certificate for `localhost` / `127.0.0.1` signed by it.
#[derive(Debug, Clone)]
pub struct TestCertificates {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl TestCertificates {
    /// Writes `ca.crt`, `server.crt` and `server.key` (mode 0600) into `dir`.
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
        let out = TestCertificates { ca_cert: dir.join("ca.crt"), server_cert: dir.join("server.crt"), server_key: dir.join("server.key") };
        let write = |p: &Path, s: String| std::fs::write(p, s).map_err(TestbedError::io(format!("writing {}", p.display())));
        write(&out.ca_cert, ca.pem())?;
        write(&out.server_cert, cert.pem())?;
        write(&out.server_key, key.serialize_pem())?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&out.server_key, std::fs::Permissions::from_mode(0o600)).map_err(TestbedError::io("chmod server.key"))?;
        Ok(out)
    }
}
