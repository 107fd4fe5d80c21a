//! Connection settings from a `postgres://` URL, with the libpq parameters operators already know
//! (`sslmode`, `sslrootcert`, `application_name`, `connect_timeout`). The password never appears in
//! `Debug` output or in [`ConnectOptions::redacted`].

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;
use turnout_decoders::error::DecodeError;

/// libpq's `sslmode`, minus `allow` and `verify-ca` (use `verify-full`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// TLS when the server offers it, plain otherwise (certificates are not verified).
    Prefer,
    /// TLS or fail; the certificate is not verified.
    Require,
    /// TLS or fail; the certificate must chain to `sslrootcert` (or the system roots) and name the host.
    VerifyFull,
}

/// Where and how to connect.
#[derive(Clone)]
pub struct ConnectOptions {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub database: String,
    pub ssl_mode: SslMode,
    pub ssl_root_cert: Option<PathBuf>,
    pub application_name: String,
    pub connect_timeout: Duration,
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("database", &self.database)
            .field("ssl_mode", &self.ssl_mode)
            .finish_non_exhaustive()
    }
}

impl ConnectOptions {
    /// Parses `postgres://user:password@host:port/database?sslmode=…`. `field` names the config entry
    /// in errors (e.g. `source.url`). Percent-encoded user names and passwords are decoded.
    pub fn from_url(url: &str, field: &'static str) -> Result<Self, DecodeError> {
        let bad = |reason: String| DecodeError::Config { field, reason };
        let u = url::Url::parse(url).map_err(|e| bad(format!("not a URL ({e}); expected postgres://user:password@host:5432/database")))?;
        if u.scheme() != "postgres" && u.scheme() != "postgresql" {
            return Err(bad(format!("scheme '{}' is not postgres:// or postgresql://", u.scheme())));
        }
        // Percent-decoding only: in a URL's user and password a '+' is a plus, not a space.
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        let host = match u.host() {
            Some(url::Host::Ipv6(a)) => a.to_string(),
            Some(h) => h.to_string(),
            None => return Err(bad("no host; expected postgres://user:password@host:5432/database".into())),
        };
        let user = decode(u.username());
        if user.is_empty() {
            return Err(bad("no user name; expected postgres://user:password@host:5432/database".into()));
        }
        let database = u.path().trim_start_matches('/');
        let database = if database.is_empty() { user.clone() } else { decode(database) };
        let mut opts = ConnectOptions {
            host,
            port: u.port().unwrap_or(5432),
            password: u.password().map(decode),
            user,
            database,
            ssl_mode: SslMode::Prefer,
            ssl_root_cert: None,
            application_name: "turnout".into(),
            connect_timeout: Duration::from_secs(10),
        };
        for (k, v) in u.query_pairs() {
            match &*k {
                "sslmode" => {
                    opts.ssl_mode = match &*v {
                        "disable" => SslMode::Disable,
                        "prefer" => SslMode::Prefer,
                        "require" => SslMode::Require,
                        "verify-full" => SslMode::VerifyFull,
                        other => return Err(bad(format!("sslmode '{other}' is not supported; use disable, prefer, require or verify-full"))),
                    }
                }
                "sslrootcert" => opts.ssl_root_cert = Some(PathBuf::from(&*v)),
                "application_name" => opts.application_name = v.into_owned(),
                "connect_timeout" => {
                    let secs: u64 = v.parse().map_err(|_| bad(format!("connect_timeout '{v}' is not a number of seconds")))?;
                    opts.connect_timeout = Duration::from_secs(secs.max(1));
                }
                other => return Err(bad(format!("unknown parameter '{other}'; supported: sslmode, sslrootcert, application_name, connect_timeout"))),
            }
        }
        Ok(opts)
    }

    /// `postgres://user@host:port/database` — safe to log.
    pub fn redacted(&self) -> String {
        format!("postgres://{}@{}:{}/{}", self.user, self.host, self.port, self.database)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parts_are_parsed_and_decoded() {
        let o = ConnectOptions::from_url("postgres://repl:p%40ss%2Fw+1@db.example:6543/app?sslmode=require", "source.url").expect("parses");
        assert_eq!((o.host.as_str(), o.port, o.user.as_str(), o.database.as_str()), ("db.example", 6543, "repl", "app"));
        assert_eq!(o.password.as_deref(), Some("p@ss/w+1"));
        assert_eq!(o.ssl_mode, SslMode::Require);
        assert!(!format!("{o:?}").contains("p@ss"));
        assert_eq!(o.redacted(), "postgres://repl@db.example:6543/app");
    }

    #[test]
    fn bad_urls_name_the_field() {
        for url in ["mysql://a@b/c", "postgres://b/c", "not a url", "postgres://a@b/c?sslmode=allow", "postgres://a@b/c?foo=1"] {
            let err = ConnectOptions::from_url(url, "target.url").expect_err(url);
            assert!(err.to_string().contains("target.url"), "{err}");
        }
    }
}
