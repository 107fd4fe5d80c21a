//! Database-level settings (`ALTER DATABASE … SET`, `ALTER ROLE … IN DATABASE … SET`): a session on
//! green must start with the settings it starts with on blue (a `search_path`, a `DateStyle`, a
//! `statement_timeout` change what the application's statements mean or do). pg_dump's schema leaves
//! them out, so they are read from `pg_db_role_setting` on both sides and the other side's are made
//! equal. `default_transaction_read_only` is the read-only fence's and is left alone.

use crate::error::{Error, Side};
use std::collections::BTreeMap;
use tokio_postgres::Client;
use turnout_decoders::schema::quote_ident;

/// Settings whose value is a list of names, stored already quoted as a list (pg_dump's
/// `variable_is_guc_list_quote`): written back as they are, not as one string.
const LIST_SETTINGS: &[&str] =
    &["local_preload_libraries", "search_path", "session_preload_libraries", "shared_preload_libraries", "temp_tablespaces", "unix_socket_directories"];

/// (role, or `""` for every role; setting) → value.
pub(crate) type Settings = BTreeMap<(String, String), String>;

/// The settings of the database `client` is connected to.
pub(crate) async fn read(client: &Client, side: Side) -> Result<Settings, Error> {
    let rows = client
        .query(
            "SELECT COALESCE((SELECT rolname FROM pg_roles WHERE oid = s.setrole), '')::text, x \
             FROM pg_db_role_setting s, unnest(s.setconfig) x \
             WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND x NOT LIKE 'default\\_transaction\\_read\\_only=%'",
            &[],
        )
        .await
        .map_err(Error::sql(side, format!("reading {side}'s database settings")))?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let (role, entry): (String, String) = (r.get(0), r.get(1));
            let (name, value) = entry.split_once('=')?;
            Some(((role, name.to_ascii_lowercase()), value.to_owned()))
        })
        .collect())
}

/// One setting that differs: what it is, and the statement making the other side's like the
/// fenced side's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SettingChange {
    pub what: String,
    pub statement: String,
}

/// The statements that make `have` (the other side's, in database `database`) equal to `want`.
pub(crate) fn changes(want: &Settings, have: &Settings, database: &str) -> Vec<SettingChange> {
    let target = |role: &str| match role {
        "" => format!("ALTER DATABASE {}", quote_ident(database)),
        role => format!("ALTER ROLE {} IN DATABASE {}", quote_ident(role), quote_ident(database)),
    };
    let whose = |role: &str| if role.is_empty() { String::new() } else { format!(" for role {role}") };
    let mut out = Vec::new();
    for ((role, name), value) in want {
        if have.get(&(role.clone(), name.clone())) != Some(value) {
            let value = if LIST_SETTINGS.contains(&name.as_str()) { value.clone() } else { format!("'{}'", value.replace('\'', "''")) };
            out.push(SettingChange { what: format!("database setting {name}{}", whose(role)), statement: format!("{} SET {name} TO {value}", target(role)) });
        }
    }
    for (role, name) in have.keys() {
        if !want.contains_key(&(role.clone(), name.clone())) {
            out.push(SettingChange { what: format!("database setting {name}{} (reset)", whose(role)), statement: format!("{} RESET {name}", target(role)) });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(rows: &[(&str, &str, &str)]) -> Settings {
        rows.iter().map(|(r, n, v)| ((r.to_string(), n.to_string()), v.to_string())).collect()
    }

    #[test]
    fn settings_are_set_reset_and_lists_written_as_lists() {
        let want = settings(&[("", "search_path", "\"$user\", app"), ("", "datestyle", "SQL, DMY"), ("reporter", "work_mem", "64MB")]);
        let have = settings(&[("", "datestyle", "ISO, MDY"), ("", "timezone", "UTC")]);
        let c: Vec<String> = changes(&want, &have, "shop").into_iter().map(|c| c.statement).collect();
        assert_eq!(
            c,
            [
                "ALTER DATABASE \"shop\" SET datestyle TO 'SQL, DMY'",
                "ALTER DATABASE \"shop\" SET search_path TO \"$user\", app",
                "ALTER ROLE \"reporter\" IN DATABASE \"shop\" SET work_mem TO '64MB'",
                "ALTER DATABASE \"shop\" RESET timezone",
            ]
        );
        assert!(changes(&want, &want, "shop").is_empty());
    }
}
