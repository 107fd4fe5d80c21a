//! The scratch database: the fenced side's schema created on the other side's server, so that both
//! sides' definitions are printed by one server and one pg_dump ([`super`]). Created for one settling
//! and dropped after it; one an interrupted run left is dropped before the next is made.

use super::super::setup;
use crate::error::{DefinitionRefusal, Error, Side};
use tokio_postgres::Client;
use turnout_connect::pg::ConnectOptions;
use turnout_decoders::schema::quote_ident;

/// A scratch database on one server, created and dropped through a session to another database
/// of that server.
pub(crate) struct Scratch {
    pub options: ConnectOptions,
    pub side: Side,
}

/// The scratch database's name for the other side's database `database`: one per database, so that
/// the pairs of a fleet sharing a server do not meet.
pub(crate) fn name(database: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, database.as_bytes());
    let hex: String = digest.as_ref()[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("turnout_defs_{hex}")
}

impl Scratch {
    /// Creates the scratch database (dropping a leftover first) like the database `admin` is
    /// connected to: same encoding and locale.
    pub async fn create(admin: &Client, other: &ConnectOptions, side: Side) -> Result<Scratch, Error> {
        let name = name(&other.database);
        let row = admin
            .query_one("SELECT pg_encoding_to_char(encoding), datcollate::text, datctype::text, current_user::text FROM pg_database WHERE datname = current_database()", &[])
            .await
            .map_err(Error::sql(side, format!("reading {side}'s database encoding")))?;
        let (encoding, collate, ctype, role): (String, Option<String>, Option<String>, String) = (row.get(0), row.get(1), row.get(2), row.get(3));
        drop_if_exists(admin, &name, side).await?;
        let literal = |s: &str| format!("'{}'", s.replace('\'', "''"));
        let mut create = format!("CREATE DATABASE {} TEMPLATE template0 ENCODING {}", quote_ident(&name), literal(&encoding));
        for (key, value) in [("LC_COLLATE", collate), ("LC_CTYPE", ctype)] {
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                create.push_str(&format!(" {key} {}", literal(&v)));
            }
        }
        admin.batch_execute(&create).await.map_err(|e| match e.code() {
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => {
                Error::from(DefinitionRefusal::NoScratch { to: side, role, cause: turnout_sinks::pg::describe_error(&e) })
            }
            _ => Error::sql(side, format!("creating the scratch database {name} on {side}"))(e),
        })?;
        let mut options = other.clone();
        options.database = name;
        Ok(Scratch { options, side })
    }

    /// Creates the fenced side's schema `script` here: in one go, or, when that fails, entry by
    /// entry, to name the first that cannot be created (entries that refer to a table `[tables]`
    /// leaves out are skipped when `filtered`).
    pub async fn restore(&self, script: &str, filtered: bool, from: Side) -> Result<(), Error> {
        let client = super::super::session_with(&self.options, self.side).await?;
        let script = setup::adapt_to_green(&client, script).await?;
        let whole = format!("BEGIN;\n{script}\nCOMMIT;");
        if client.batch_execute(&whole).await.is_ok() {
            return Ok(());
        }
        let _ = client.batch_execute("ROLLBACK").await;
        let not_creatable = |entry: String, e: &tokio_postgres::Error| {
            Error::from(DefinitionRefusal::NotCreatable { from, to: self.side, entry, cause: turnout_sinks::pg::describe_error(e) })
        };
        for entry in setup::dump_entries(&script) {
            match client.batch_execute(&entry).await {
                Ok(()) => {}
                Err(e) if filtered && setup::refers_to_left_out(&e) => {
                    tracing::debug!("scratch database: skipped {} (it refers to a table that is not replicated)", setup::entry_name(&entry));
                }
                Err(e) => return Err(not_creatable(setup::entry_name(&entry), &e)),
            }
        }
        Ok(())
    }

    /// Drops the scratch database (through `admin`, a session to another database of the server).
    pub async fn drop(self, admin: &Client) -> Result<(), Error> {
        drop_if_exists(admin, &self.options.database, self.side).await
    }
}

async fn drop_if_exists(admin: &Client, name: &str, side: Side) -> Result<(), Error> {
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name)))
        .await
        .map_err(Error::sql(side, format!("dropping the scratch database {name} on {side}")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_scratch_name_is_one_per_database_and_a_valid_identifier() {
        let (a, b) = (super::name("shop"), super::name("shop_eu"));
        assert_ne!(a, b);
        assert_eq!(a, super::name("shop"));
        assert!(a.len() < 64 && a.starts_with("turnout_defs_"), "{a}");
    }
}
