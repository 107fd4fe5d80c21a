//! QUERY_EVENT (0x02; MySQL internals "QUERY_EVENT", MariaDB KB "QUERY_EVENT"): a statement — DDL, `BEGIN`,
//! `COMMIT` of a non-transactional group, `XA COMMIT`, statement-based DML.
//!
//! The status variables are kept raw and the known ones decoded. They have no length of their own, so a
//! code this parser does not know cannot be skipped: that is an error, not a guess.

use super::reader::{utf8, Reader};
use super::BinlogError;
use std::borrow::Cow;

/// Status variable codes (`Query_event::Query_event_status_vars`, MariaDB's from 128).
pub mod status_code {
    pub const FLAGS2: u8 = 0;
    pub const SQL_MODE: u8 = 1;
    pub const CATALOG: u8 = 2;
    pub const AUTO_INCREMENT: u8 = 3;
    pub const CHARSET: u8 = 4;
    pub const TIME_ZONE: u8 = 5;
    pub const CATALOG_NZ: u8 = 6;
    pub const LC_TIME_NAMES: u8 = 7;
    pub const CHARSET_DATABASE: u8 = 8;
    pub const TABLE_MAP_FOR_UPDATE: u8 = 9;
    pub const MASTER_DATA_WRITTEN: u8 = 10;
    pub const INVOKER: u8 = 11;
    pub const UPDATED_DB_NAMES: u8 = 12;
    pub const MICROSECONDS: u8 = 13;
    pub const EXPLICIT_DEFAULTS_FOR_TIMESTAMP: u8 = 16;
    pub const DDL_LOGGED_WITH_XID: u8 = 17;
    pub const DEFAULT_COLLATION_FOR_UTF8MB4: u8 = 18;
    pub const SQL_REQUIRE_PRIMARY_KEY: u8 = 19;
    pub const DEFAULT_TABLE_ENCRYPTION: u8 = 20;
    pub const MARIADB_HRNOW: u8 = 128;
    pub const MARIADB_XID: u8 = 129;
    pub const MARIADB_GTID_FLAGS3: u8 = 130;
}

/// `OVER_MAX_DBS_IN_EVENT_MTS`: the updated-databases count says "too many to list".
const OVER_MAX_DBS: u8 = 254;

/// Q_CHARSET_CODE: the session's character set and collations (collation ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryCharset {
    pub client: u16,
    pub connection: u16,
    pub server: u16,
}

/// The decoded status variables; `None` for those the event does not carry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusVars {
    pub flags2: Option<u32>,
    pub sql_mode: Option<u64>,
    /// Q_CATALOG_NZ_CODE or the old Q_CATALOG_CODE (normally `std`).
    pub catalog: Option<String>,
    /// auto_increment_increment, auto_increment_offset.
    pub auto_increment: Option<(u16, u16)>,
    pub charset: Option<QueryCharset>,
    pub time_zone: Option<String>,
    pub lc_time_names: Option<u16>,
    pub charset_database: Option<u16>,
    pub table_map_for_update: Option<u64>,
    pub master_data_written: Option<u32>,
    /// The definer a stored routine runs as: user, host.
    pub invoker: Option<(String, String)>,
    /// `Some(empty)` when the server said there were too many to list.
    pub updated_db_names: Option<Vec<String>>,
    /// Q_MICROSECONDS (MySQL) or Q_HRNOW (MariaDB): the statement's start, microseconds part.
    pub microseconds: Option<u32>,
    pub explicit_defaults_for_timestamp: Option<bool>,
    pub ddl_xid: Option<u64>,
    pub default_collation_for_utf8mb4: Option<u16>,
    pub sql_require_primary_key: Option<u8>,
    pub default_table_encryption: Option<u8>,
    /// Q_XID (MariaDB): the xid of a DDL statement.
    pub xid: Option<u64>,
    /// Q_GTID_FLAGS3 (MariaDB): the GTID's extra flags, and the start-alter sequence number.
    pub gtid_flags3: Option<u8>,
    pub start_alter_seq_no: Option<u64>,
}

/// thread_id u32, exec_time u32, db_len u8, error_code u16, status_vars_len u16 (post-header of 13 bytes),
/// status variables, db name + NUL, SQL text (the rest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    pub thread_id: u32,
    pub exec_time: u32,
    pub error_code: u16,
    /// The status variable block as written.
    pub status_vars_raw: Vec<u8>,
    pub status: StatusVars,
    /// The default database (`USE db`), empty when none.
    pub schema: String,
    /// The statement, in the character set of `status.charset.client`.
    pub sql: Vec<u8>,
}

impl Query {
    pub(crate) fn parse(r: &mut Reader<'_>, post_header_len: usize) -> Result<Self, BinlogError> {
        if post_header_len < 11 {
            return Err(r.error(format!("query post-header of {post_header_len} bytes; at least 11 expected")));
        }
        let mut post = r.sub(post_header_len, "query post-header")?;
        let thread_id = post.u32("thread id")?;
        let exec_time = post.u32("execution time")?;
        let db_len = post.u8("database name length")?;
        let error_code = post.u16("error code")?;
        let status_len = if post_header_len >= 13 { post.u16("status variables length")? } else { 0 };
        let mut vars = r.sub(usize::from(status_len), "status variables")?;
        let status_vars_raw = vars.clone().rest().to_vec();
        let status = parse_status_vars(&mut vars)?;
        let schema = r.utf8(usize::from(db_len), "database name")?;
        let at = r.offset();
        if r.u8("database name terminator")? != 0 {
            return Err(r.error_at(at, "the database name is not NUL-terminated"));
        }
        let sql = r.rest().to_vec();
        Ok(Query { thread_id, exec_time, error_code, status_vars_raw, status, schema, sql })
    }

    /// The statement, with bytes that are not UTF-8 replaced.
    pub fn sql_text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.sql)
    }

    /// True for `BEGIN` (the start of a group written without a GTID event, or by an old server).
    pub fn is_begin(&self) -> bool {
        self.sql.eq_ignore_ascii_case(b"BEGIN")
    }

    /// True for `COMMIT`, which ends a group of non-transactional changes instead of an XID event.
    pub fn is_commit(&self) -> bool {
        self.sql.eq_ignore_ascii_case(b"COMMIT")
    }
}

fn parse_status_vars(r: &mut Reader<'_>) -> Result<StatusVars, BinlogError> {
    use status_code::*;
    let mut s = StatusVars::default();
    let text = |r: &mut Reader<'_>, what: &str| -> Result<String, BinlogError> {
        let at = r.offset();
        let bytes = r.u8_bytes(what)?;
        utf8(bytes).map_err(|e| r.error_at(at, format!("{what} is not UTF-8: {e}")))
    };
    while !r.is_empty() {
        let at = r.offset();
        let code = r.u8("status variable code")?;
        match code {
            FLAGS2 => s.flags2 = Some(r.u32("Q_FLAGS2")?),
            SQL_MODE => s.sql_mode = Some(r.u64("Q_SQL_MODE")?),
            CATALOG => {
                s.catalog = Some(text(r, "Q_CATALOG")?);
                r.take(1, "Q_CATALOG terminator")?;
            }
            AUTO_INCREMENT => s.auto_increment = Some((r.u16("Q_AUTO_INCREMENT")?, r.u16("Q_AUTO_INCREMENT")?)),
            CHARSET => {
                s.charset =
                    Some(QueryCharset { client: r.u16("Q_CHARSET client")?, connection: r.u16("Q_CHARSET connection")?, server: r.u16("Q_CHARSET server")? })
            }
            TIME_ZONE => s.time_zone = Some(text(r, "Q_TIME_ZONE")?),
            CATALOG_NZ => s.catalog = Some(text(r, "Q_CATALOG_NZ")?),
            LC_TIME_NAMES => s.lc_time_names = Some(r.u16("Q_LC_TIME_NAMES")?),
            CHARSET_DATABASE => s.charset_database = Some(r.u16("Q_CHARSET_DATABASE")?),
            TABLE_MAP_FOR_UPDATE => s.table_map_for_update = Some(r.u64("Q_TABLE_MAP_FOR_UPDATE")?),
            MASTER_DATA_WRITTEN => s.master_data_written = Some(r.u32("Q_MASTER_DATA_WRITTEN")?),
            INVOKER => {
                let user = text(r, "Q_INVOKER user")?;
                let host = text(r, "Q_INVOKER host")?;
                s.invoker = Some((user, host));
            }
            UPDATED_DB_NAMES => {
                let n = r.u8("Q_UPDATED_DB_NAMES count")?;
                let mut names = Vec::new();
                if n != OVER_MAX_DBS {
                    for _ in 0..n {
                        let at = r.offset();
                        let name = r.cstr("Q_UPDATED_DB_NAMES name")?;
                        names.push(utf8(name).map_err(|e| r.error_at(at, format!("database name is not UTF-8: {e}")))?);
                    }
                }
                s.updated_db_names = Some(names);
            }
            MICROSECONDS => s.microseconds = Some(u32::try_from(r.uint_le(3, "Q_MICROSECONDS")?).unwrap_or(0)),
            EXPLICIT_DEFAULTS_FOR_TIMESTAMP => s.explicit_defaults_for_timestamp = Some(r.u8("Q_EXPLICIT_DEFAULTS_FOR_TIMESTAMP")? != 0),
            DDL_LOGGED_WITH_XID => s.ddl_xid = Some(r.u64("Q_DDL_LOGGED_WITH_XID")?),
            DEFAULT_COLLATION_FOR_UTF8MB4 => s.default_collation_for_utf8mb4 = Some(r.u16("Q_DEFAULT_COLLATION_FOR_UTF8MB4")?),
            SQL_REQUIRE_PRIMARY_KEY => s.sql_require_primary_key = Some(r.u8("Q_SQL_REQUIRE_PRIMARY_KEY")?),
            DEFAULT_TABLE_ENCRYPTION => s.default_table_encryption = Some(r.u8("Q_DEFAULT_TABLE_ENCRYPTION")?),
            MARIADB_HRNOW => s.microseconds = Some(u32::try_from(r.uint_le(3, "Q_HRNOW")?).unwrap_or(0)),
            MARIADB_XID => s.xid = Some(r.u64("Q_XID")?),
            MARIADB_GTID_FLAGS3 => {
                let flags = r.u8("Q_GTID_FLAGS3")?;
                s.gtid_flags3 = Some(flags);
                // FL_COMMIT_ALTER_E1 | FL_ROLLBACK_ALTER_E1
                if flags & (4 | 8) != 0 {
                    s.start_alter_seq_no = Some(r.u64("Q_GTID_FLAGS3 start alter sequence number")?);
                }
            }
            other => {
                return Err(r.error_at(at, format!("unknown query status variable code {other}: status variables carry no length, so the rest cannot be read")))
            }
        }
    }
    Ok(s)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A MariaDB-style query body: status vars FLAGS2, SQL_MODE, CATALOG_NZ, CHARSET, TIME_ZONE, HRNOW.
    pub(crate) fn query_body(db: &str, sql: &str) -> Vec<u8> {
        let mut vars = vec![status_code::FLAGS2];
        vars.extend_from_slice(&0x0008_0000u32.to_le_bytes());
        vars.push(status_code::SQL_MODE);
        vars.extend_from_slice(&0x0000_0001_4000_0000u64.to_le_bytes());
        vars.extend_from_slice(&[status_code::CATALOG_NZ, 3, b's', b't', b'd']);
        vars.push(status_code::CHARSET);
        for c in [45u16, 45, 8] {
            vars.extend_from_slice(&c.to_le_bytes());
        }
        vars.extend_from_slice(&[status_code::TIME_ZONE, 6]);
        vars.extend_from_slice(b"+00:00");
        vars.extend_from_slice(&[status_code::MARIADB_HRNOW, 0x3f, 0x42, 0x0f]);
        let mut b = 7u32.to_le_bytes().to_vec();
        b.extend_from_slice(&1u32.to_le_bytes());
        b.push(u8::try_from(db.len()).unwrap_or(0));
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&u16::try_from(vars.len()).unwrap_or(0).to_le_bytes());
        b.extend_from_slice(&vars);
        b.extend_from_slice(db.as_bytes());
        b.push(0);
        b.extend_from_slice(sql.as_bytes());
        b
    }

    #[test]
    fn status_variables_database_and_statement_are_decoded() {
        let body = query_body("shop", "CREATE TABLE t (a int)");
        let q = Query::parse(&mut Reader::new(&body, 19, 2), 13).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((q.thread_id, q.exec_time, q.error_code), (7, 1, 0));
        assert_eq!(q.schema, "shop");
        assert_eq!(q.sql_text(), "CREATE TABLE t (a int)");
        assert_eq!(q.status.flags2, Some(0x0008_0000));
        assert_eq!(q.status.sql_mode, Some(0x0000_0001_4000_0000));
        assert_eq!(q.status.catalog.as_deref(), Some("std"));
        assert_eq!(q.status.charset, Some(QueryCharset { client: 45, connection: 45, server: 8 }));
        assert_eq!(q.status.time_zone.as_deref(), Some("+00:00"));
        assert_eq!(q.status.microseconds, Some(999_999));
        assert!(!q.is_commit());
    }

    #[test]
    fn an_unknown_status_variable_is_an_error_naming_its_code() {
        let mut body = query_body("", "BEGIN");
        // Replace the first code (FLAGS2) with 200.
        body[13] = 200;
        match Query::parse(&mut Reader::new(&body, 19, 2), 13) {
            Err(BinlogError::Malformed { offset, reason, .. }) => {
                assert_eq!(offset, 19 + 13);
                assert!(reason.contains("code 200"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_status_block_longer_than_the_event_is_an_error() {
        let mut body = query_body("", "COMMIT");
        body[11] = 0xff;
        body[12] = 0xff;
        assert!(Query::parse(&mut Reader::new(&body, 19, 2), 13).is_err());
    }

    #[test]
    fn updated_db_names_and_invoker_are_decoded() {
        let mut vars = vec![status_code::INVOKER, 1, b'u', 2, b'h', b'1'];
        vars.extend_from_slice(&[status_code::UPDATED_DB_NAMES, 2, b'a', 0, b'b', b'c', 0]);
        let mut r = Reader::new(&vars, 32, 2);
        let s = parse_status_vars(&mut r).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.invoker, Some(("u".into(), "h1".into())));
        assert_eq!(s.updated_db_names, Some(vec!["a".into(), "bc".into()]));
        for n in 0..vars.len() {
            if n == 6 {
                continue; // a complete INVOKER variable
            }
            assert!(parse_status_vars(&mut Reader::new(&vars[..n], 32, 2)).is_err() || n == 0, "{n}");
        }
    }
}
