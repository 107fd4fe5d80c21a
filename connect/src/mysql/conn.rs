//! MySQL/MariaDB connection options shared by every session turnout opens (blue's binlog, snapshot,
//! check, cutover; green's apply and cancel), including TLS.
//!
//! TLS is set in the URL with the MySQL client's own names, `ssl-mode` and `ssl-ca` (`ssl_mode`,
//! `ssl_ca` and PostgreSQL's `sslmode`/`sslrootcert` spellings are accepted too), plus `ssl-host`:
//!
//! | `ssl-mode` | encrypted | server certificate verified | falls back to plain text |
//! | --- | --- | --- | --- |
//! | `DISABLED` | no | — | — |
//! | `PREFERRED` (default) | when the server offers TLS | no | yes, when the server has no TLS |
//! | `REQUIRED` | yes | no | never |
//! | `VERIFY_IDENTITY` (`verify-full`) | yes | chains to `ssl-ca` (or the built-in web roots) and names the host — or `ssl-host`, when the URL gives an address the certificate does not name | never |
//!
//! `VERIFY_CA` (chain without name) is refused with the fix: the driver's "skip the name" switch
//! does not work with the TLS library it uses (it matches an error text that library no longer
//! prints), and a check that silently did more or less than it says is worse than none.
//!
//! Guarantee: in `REQUIRED`, `VERIFY_CA` and `VERIFY_IDENTITY` no byte of a session travels
//! unencrypted — a server without TLS is an error, never a silent downgrade — and sessions stay on
//! TCP (no move to a same-host unix socket unless the URL says `prefer_socket=true`).

use mysql_async::{DriverError, Opts, OptsBuilder, SslOpts};
use std::path::PathBuf;

/// How a session uses TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    Disabled,
    Preferred,
    Required,
    VerifyCa,
    VerifyIdentity,
}

impl TlsMode {
    fn parse(value: &str) -> Option<TlsMode> {
        Some(match value.to_ascii_uppercase().replace('-', "_").as_str() {
            "DISABLED" | "DISABLE" => TlsMode::Disabled,
            "PREFERRED" | "PREFER" => TlsMode::Preferred,
            "REQUIRED" | "REQUIRE" => TlsMode::Required,
            "VERIFY_CA" => TlsMode::VerifyCa,
            "VERIFY_IDENTITY" | "VERIFY_FULL" => TlsMode::VerifyIdentity,
            _ => return None,
        })
    }

    /// The mode `opts` were built with (see [`options`]).
    ///
    /// When certificates are not verified at all (`accept_invalid_certs`), mysql_async ignores
    /// `skip_domain_validation`; that otherwise meaningless bit tells `PREFERRED` (false) from
    /// `REQUIRED` (true).
    pub fn of(opts: &Opts) -> TlsMode {
        match opts.ssl_opts() {
            None => TlsMode::Disabled,
            Some(s) if s.accept_invalid_certs() && !s.skip_domain_validation() => TlsMode::Preferred,
            Some(s) if s.accept_invalid_certs() => TlsMode::Required,
            Some(_) => TlsMode::VerifyIdentity,
        }
    }
}

/// Connection options from a `mysql://` or `mariadb://` URL. The error says what is wrong and
/// how to write it; the caller adds the field's name.
pub fn options(url: &str) -> Result<Opts, String> {
    let url = match url.strip_prefix("mariadb://") {
        Some(rest) => format!("mysql://{rest}"),
        None => url.to_owned(),
    };
    let (base, query) = url.split_once('?').unwrap_or((&url, ""));
    let mut mode = None;
    let mut ca = None;
    let mut host = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded = percent_encoding::percent_decode_str(value).decode_utf8_lossy().into_owned();
        match key {
            "ssl-mode" | "ssl_mode" | "sslmode" => {
                mode = Some(
                    TlsMode::parse(&decoded)
                        .ok_or_else(|| format!("{key}={decoded} is not a TLS mode; use DISABLED, PREFERRED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY"))?,
                );
            }
            "ssl-ca" | "ssl_ca" | "sslrootcert" => ca = Some(PathBuf::from(decoded)),
            "ssl-host" | "ssl_host" => host = Some(decoded),
            "require_ssl" | "verify_ca" | "verify_identity" | "built_in_roots" => {
                return Err(format!("set TLS with ssl-mode (and ssl-ca) instead of {key}"));
            }
            _ => rest.push(pair),
        }
    }
    let url = if rest.is_empty() { base.to_owned() } else { format!("{base}?{}", rest.join("&")) };
    let opts = Opts::from_url(&url).map_err(|e| format!("not a usable mysql:// URL ({e}); write mysql://user:password@host:3306/database"))?;
    let mode = mode.unwrap_or(if ca.is_some() { TlsMode::VerifyIdentity } else { TlsMode::Preferred });
    if mode == TlsMode::VerifyCa {
        return Err("ssl-mode=VERIFY_CA is not supported (the chain is checked only together with the name); use \
                    ssl-mode=VERIFY_IDENTITY, adding ssl-host=<a name in the server's certificate> when the URL's host is \
                    an address or alias the certificate does not name"
            .into());
    }
    if (ca.is_some() || host.is_some()) && mode != TlsMode::VerifyIdentity {
        return Err("ssl-ca and ssl-host are used only with ssl-mode=VERIFY_IDENTITY; set it".into());
    }
    if let Some(path) = &ca {
        std::fs::metadata(path).map_err(|e| format!("ssl-ca {}: {e}; give the path of the CA certificate (PEM) that signed the server's", path.display()))?;
    }
    let ssl = match mode {
        TlsMode::Disabled => None,
        TlsMode::Preferred => Some(SslOpts::default().with_danger_accept_invalid_certs(true)),
        TlsMode::Required => Some(SslOpts::default().with_danger_accept_invalid_certs(true).with_danger_skip_domain_validation(true)),
        TlsMode::VerifyCa | TlsMode::VerifyIdentity => {
            let roots = match &ca {
                Some(path) => SslOpts::default().with_root_certs(vec![path.clone().into()]).with_disable_built_in_roots(true),
                None => SslOpts::default(),
            };
            Some(match host {
                Some(name) => roots.with_danger_tls_hostname_override(Some(name)),
                None => roots,
            })
        }
    };
    // Asked for TLS, every session keeps to TCP: mysql_async would otherwise move a session to the
    // server's unix socket when it is on the same host (unless the URL says prefer_socket=true).
    let keep_tcp = !matches!(mode, TlsMode::Disabled | TlsMode::Preferred) && !rest.iter().any(|p| p.starts_with("prefer_socket="));
    let builder = OptsBuilder::from_opts(opts).ssl_opts(ssl);
    Ok(if keep_tcp { builder.prefer_socket(false) } else { builder }.into())
}

/// Opens a session. `PREFERRED` retries without TLS when the server offers none; every other mode
/// connects exactly as configured. The session's connection id is remembered as one of this
/// process's own (see [`own_sessions`]).
pub async fn open(opts: &Opts) -> Result<mysql_async::Conn, mysql_async::Error> {
    let conn = match mysql_async::Conn::new(opts.clone()).await {
        Err(mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer)) if TlsMode::of(opts) == TlsMode::Preferred => {
            mysql_async::Conn::new(OptsBuilder::from_opts(opts.clone()).ssl_opts(None::<SslOpts>)).await
        }
        other => other,
    }?;
    remember_session(opts, conn.id());
    Ok(conn)
}

/// Records connection `id` to the server `opts` names as one of this process's own sessions (one
/// opened through a proxy to that server, for example).
pub fn remember_session(opts: &Opts, id: u32) {
    if let Ok(mut own) = OWN_SESSIONS.lock() {
        own.entry(server_key(opts)).or_default().insert(id);
    }
}

/// Connection ids of the sessions this process opened, per server (`host:port`).
static OWN_SESSIONS: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, std::collections::HashSet<u32>>>> =
    std::sync::LazyLock::new(Default::default);

fn server_key(opts: &Opts) -> String {
    format!("{}:{}", opts.ip_or_hostname(), opts.tcp_port())
}

/// The connection ids of every session this process opened to the server `opts` names (closed
/// ones included: a server does not reuse an id while it runs). What tells turnout's own sessions
/// from an application's that logs in with the same account.
pub fn own_sessions(opts: &Opts) -> Vec<u32> {
    OWN_SESSIONS.lock().map(|own| own.get(&server_key(opts)).map(|ids| ids.iter().copied().collect()).unwrap_or_default()).unwrap_or_default()
}

/// What an operator should change when a session could not be opened because of TLS; `None` when
/// the error (its text, which may have been wrapped) is not about TLS. `field` names the URL.
pub fn tls_fix(error: &str, field: &str) -> Option<String> {
    let lower = error.to_ascii_lowercase();
    if lower.contains("server does not have this capability") {
        return Some(format!("the server does not offer TLS but {field} requires it: enable TLS on the server (ssl_cert, ssl_key) or lower ssl-mode"));
    }
    if ["certificate", "unknownissuer", "notvalidforname", "tls", "handshake"].iter().any(|w| lower.contains(w)) {
        return Some(format!(
            "TLS failed: set ssl-ca in {field} to the CA that signed the server's certificate, and connect by a host \
             name the certificate names (or add ssl-host=<that name>)"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip_through_the_options() {
        for (query, want) in [
            ("", TlsMode::Preferred),
            ("?ssl-mode=DISABLED", TlsMode::Disabled),
            ("?ssl-mode=preferred", TlsMode::Preferred),
            ("?ssl_mode=REQUIRED", TlsMode::Required),
            ("?sslmode=require", TlsMode::Required),
            ("?ssl-mode=VERIFY_IDENTITY", TlsMode::VerifyIdentity),
            ("?sslmode=verify-full", TlsMode::VerifyIdentity),
        ] {
            let opts = options(&format!("mysql://u:p@h:3306/db{query}")).expect(query);
            assert_eq!(TlsMode::of(&opts), want, "{query}");
            assert_eq!(opts.db_name(), Some("db"));
        }
    }

    #[test]
    fn other_parameters_pass_through_and_bad_ones_are_named() {
        let opts = options("mariadb://u:p@h:3306/db?ssl-mode=REQUIRED&prefer_socket=false").expect("url");
        assert!(!opts.prefer_socket());
        assert_eq!(TlsMode::of(&opts), TlsMode::Required);
        let e = options("mysql://u:p@h/db?ssl-mode=sometimes").expect_err("bad mode");
        assert!(e.contains("sometimes") && e.contains("VERIFY_IDENTITY"), "{e}");
        let e = options("mysql://u:p@h/db?ssl-ca=/nonexistent/ca.pem").expect_err("missing CA file");
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        let e = options("mysql://u:p@h/db?ssl-mode=REQUIRED&ssl-ca=/etc/hostname").expect_err("CA without verification");
        assert!(e.contains("VERIFY_IDENTITY"), "{e}");
        let e = options("mysql://u:p@h/db?ssl-mode=VERIFY_CA&ssl-ca=/etc/hostname").expect_err("VERIFY_CA");
        assert!(e.contains("not supported") && e.contains("ssl-host"), "{e}");
        let e = options("mysql://u:p@h/db?require_ssl=true").expect_err("driver's own TLS switch");
        assert!(e.contains("ssl-mode"), "{e}");
    }

    #[test]
    fn a_ca_alone_means_verify_identity_with_only_that_root() {
        let opts = options("mysql://u:p@h/db?ssl-ca=%2Fetc%2Fhostname&ssl-host=db.example").expect("url");
        assert_eq!(TlsMode::of(&opts), TlsMode::VerifyIdentity);
        let ssl = opts.ssl_opts().expect("tls");
        assert!(ssl.disable_built_in_roots());
        assert_eq!(ssl.root_certs().len(), 1);
        assert_eq!(ssl.tls_hostname_override(), Some("db.example"));
        assert!(!opts.prefer_socket());
    }
}
