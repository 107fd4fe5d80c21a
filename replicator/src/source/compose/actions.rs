//! Foreign-key actions across engines: green repeats on its own what blue did not log.
//!
//! InnoDB's own foreign keys (MariaDB; MySQL before 9, or with `innodb_native_foreign_keys = ON`)
//! change the referring rows of an `ON UPDATE`/`ON DELETE` `CASCADE` or `SET NULL` without writing
//! them to the binlog; MySQL 9's foreign keys in the SQL layer write them, and flag the rows event.
//! Green fires the action itself exactly where blue does not log it (the type map makes those
//! triggers `ENABLE ALWAYS`), so a rows event must say blue acted as green will: a change to a
//! referred row whose event disagrees — a session with `foreign_key_checks = 0` on blue, which skips
//! the action, or a server whose foreign keys moved between the two kinds — stops the stream naming
//! the row, the key and the action, before green applies it.

use super::{key_text, BlueForeignKey, BlueTable};
use crate::error::{Error, SchemaRefusal};
use std::collections::HashMap;
use turnout_decoders::event::Row;
use turnout_decoders::schema::{TableName, TableSchema};

/// A foreign key with an action, seen from the table it refers to.
#[derive(Clone, Debug)]
struct Acting {
    child: TableName,
    constraint: String,
    /// The referred columns' positions in the referred table.
    columns: Vec<usize>,
    on_update: Option<String>,
    on_delete: Option<String>,
    /// Whether green repeats the action while it applies blue's rows.
    green_acts: bool,
}

/// The foreign keys with an action of the selected tables, by the table they refer to.
#[derive(Debug, Default)]
pub(crate) struct Actions {
    by_parent: HashMap<TableName, Vec<Acting>>,
}

impl Actions {
    /// From blue's catalog of the selected tables and the foreign keys whose actions green repeats
    /// (`green_acting`, read from green's triggers). Refuses a foreign key whose kind changed since
    /// the copy: green repeats its action though blue now logs it, or the other way round.
    pub(crate) fn new<'a>(tables: impl Iterator<Item = &'a BlueTable> + Clone, green_acting: &[(TableName, String)]) -> Result<Actions, Error> {
        let mut actions = Actions::default();
        for table in tables.clone() {
            actions.add(table, tables.clone(), |fk| {
                let green_name = super::pg_name(&fk.name);
                let green_acts = green_acting.iter().any(|(t, c)| *t == table.name && *c == green_name);
                if green_acts == fk.actions_logged {
                    return Err(SchemaRefusal::ActionsChangedKind {
                        constraint: fk.name.clone(),
                        table: table.name.to_string(),
                        green: if green_acts { "repeats its actions" } else { "applies the rows blue logs" },
                        blue: if fk.actions_logged { "logs the rows its actions change" } else { "does not log the rows its actions change" },
                    }
                    .into());
                }
                Ok(green_acts)
            })?;
        }
        Ok(actions)
    }

    /// Adds the foreign keys of `table`, a table green has just been given as the type map makes it
    /// (its triggers repeat exactly the actions blue does not log), among `tables`.
    pub(crate) fn created<'a>(&mut self, table: &BlueTable, tables: impl Iterator<Item = &'a BlueTable> + Clone) -> Result<(), Error> {
        self.add(table, tables, |fk| Ok(!fk.actions_logged))
    }

    /// Adds `table`'s foreign keys with an action to a table among `tables`, whether green repeats
    /// each as `green_acts` says.
    fn add<'a>(
        &mut self,
        table: &BlueTable,
        tables: impl Iterator<Item = &'a BlueTable> + Clone,
        green_acts: impl Fn(&BlueForeignKey) -> Result<bool, Error>,
    ) -> Result<(), Error> {
        for fk in &table.foreign_keys {
            let rule = |r: &String| BlueForeignKey::acts(r).then(|| r.to_ascii_uppercase());
            let (on_update, on_delete) = (rule(&fk.on_update), rule(&fk.on_delete));
            if on_update.is_none() && on_delete.is_none() {
                continue;
            }
            let Some(parent) = tables.clone().find(|t| t.name == fk.parent).or((fk.parent == table.name).then_some(table)) else { continue };
            let green_acts = green_acts(fk)?;
            let columns = fk.parent_columns.iter().filter_map(|c| parent.columns.iter().position(|p| p.name == *c)).collect();
            self.by_parent.entry(fk.parent.clone()).or_default().push(Acting {
                child: table.name.clone(),
                constraint: fk.name.clone(),
                columns,
                on_update,
                on_delete,
                green_acts,
            });
        }
        Ok(())
    }

    /// Refuses an update of `table`'s row (blue's values, before the conversion) whose referred
    /// columns change, when blue acted otherwise than green would.
    pub(crate) fn update(&self, blue: &TableSchema, table: &BlueTable, before: Option<&Row>, after: &Row) -> Result<(), Error> {
        let Some(keys) = self.by_parent.get(&blue.name) else { return Ok(()) };
        for k in keys.iter().filter(|k| k.green_acts != blue.foreign_key_checks) {
            let Some(on) = &k.on_update else { continue };
            // Without the row's before image every update may have changed the referred columns.
            let changed = before.is_none_or(|b| k.columns.iter().any(|&i| !after.get(i).is_some_and(|a| a.is_unchanged()) && b.get(i) != after.get(i)));
            if changed {
                return Err(skipped(k, table, before.unwrap_or(after), "updated", "UPDATE", on));
            }
        }
        Ok(())
    }

    /// Refuses a delete of `table`'s row when blue acted otherwise than green would.
    pub(crate) fn delete(&self, blue: &TableSchema, table: &BlueTable, before: Option<&Row>) -> Result<(), Error> {
        let Some(keys) = self.by_parent.get(&blue.name) else { return Ok(()) };
        match keys.iter().find(|k| k.green_acts != blue.foreign_key_checks && k.on_delete.is_some()) {
            Some(k) => Err(skipped(k, table, before.map_or(&Row::new(), |b| b), "deleted", "DELETE", k.on_delete.as_deref().unwrap_or_default())),
            None => Ok(()),
        }
    }
}

fn skipped(k: &Acting, table: &BlueTable, row: &Row, change: &'static str, on: &'static str, action: &str) -> Error {
    SchemaRefusal::CascadeSkipped {
        row: format!("{} ({}) was {change}", table.name, key_text(table, row)),
        action: format!("ON {on} {action} of foreign key {} of {}", k.constraint, k.child),
        why: if k.green_acts {
            "blue did not apply it, or logged the rows it changed (a session with foreign_key_checks = 0, or MySQL's foreign keys \
             in the SQL layer), and green would apply it once more"
        } else {
            "blue applied it without logging the rows it changed (InnoDB's own foreign keys), and green would not"
        },
    }
    .into()
}
