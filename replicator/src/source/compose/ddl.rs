//! Blue's additive DDL carried to green while streaming, as the type map translates it.
//!
//! Blue's statement is in blue's dialect; green's is never derived from its text. When an additive
//! `ALTER TABLE … ADD …` or `CREATE INDEX` reaches the stream, blue's catalog of the table is read
//! again and green's table as it is ([`GreenShape`]): what blue's has and green's lacks (columns after
//! green's last one, indexes) is translated by the same [`Convert::green`] that made green's table at
//! the copy, so green's new column has the type, `DEFAULT`, `NOT NULL` and guard a copy would have
//! given it, and the cutover's comparison of definitions finds nothing to tell apart. A change to
//! what the stream converts by (a column, key or foreign key changed since) stops it naming it.
//!
//! Comparing with green as it is makes a restart from before the statement safe: blue's catalog is
//! then already past it, and green still shows what it lacks (or, when the statements ran before the
//! crash, that it lacks nothing). Rows of the older shape are converted by blue's catalog cut back to
//! their table map's columns ([`as_of`]).
//!
//! A column added in a place other than the end is refused by name: green's column order is compared
//! at the switch, and PostgreSQL only appends.
//!
//! A table blue creates (a plain `CREATE TABLE`, empty) is made on green from blue's catalog as the
//! copy makes its tables ([`created`]); its rows follow in the stream. Green's table of that name
//! made by someone else is refused, not adopted.

use super::{BlueColumn, BlueIndex, BlueTable, Convert, GreenShape};
use crate::error::{Error, SchemaRefusal};
use turnout_decoders::schema::quote_ident;

/// What carrying a change the stream cannot make exact should do instead.
const START_OVER: &str = "start over (turnout teardown, turnout run) so the copy takes blue's table as it is now";

/// Green's statements for what blue's catalog of a table gained from `was` (what the stream
/// converts by) to `now`, and what of it green does not hold (an index left to the operator).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Carried {
    pub statements: Vec<String>,
    pub left_out: Vec<String>,
}

/// `now` as it was when blue's rows had only the columns `names` (a table map's): `now` cut to its
/// first `names.len()` columns, without the indexes on the columns cut. `None` when `names` is not
/// a strict prefix of `now`'s columns, or a key or foreign key uses a column cut (a change that is
/// not additive).
pub(crate) fn as_of(now: &BlueTable, names: &[&str]) -> Option<BlueTable> {
    let prefix = names.len() < now.columns.len() && names.iter().zip(&now.columns).all(|(n, c)| *n == c.name);
    if !prefix {
        return None;
    }
    let cut: Vec<&str> = now.columns[names.len()..].iter().map(|c| c.name.as_str()).collect();
    let uses_cut = |columns: &[String]| columns.iter().any(|c| cut.contains(&c.as_str()));
    if uses_cut(&now.key) || now.foreign_keys.iter().any(|f| uses_cut(&f.columns)) {
        return None;
    }
    let mut was = now.clone();
    was.columns.truncate(names.len());
    was.indexes.retain(|i| !i.columns.iter().any(|(c, _)| cut.contains(&c.as_str())));
    Some(was)
}

/// The refusal of a change to `table` that is not carried.
fn refused(table: &BlueTable, change: String, why: String) -> Error {
    SchemaRefusal::DdlNotCarried { table: table.name.to_string(), change, why, fix: START_OVER }.into()
}

/// Why a column blue added cannot be added to green with the values blue's existing rows took, if
/// it cannot.
fn unreproducible(convert: &impl Convert, table: &BlueTable, column: &BlueColumn) -> Option<String> {
    if column.generated {
        return Some("it is a generated column, which the type map does not translate".into());
    }
    if column.auto_increment {
        return Some("AUTO_INCREMENT numbers the existing rows in the order blue reads them".into());
    }
    match (&column.default, convert.green_default(table, column)) {
        (Some(default), None) => Some(format!("its default {default} fills blue's existing rows with values green's type map does not carry")),
        (None, _) if !column.nullable => {
            Some("it is NOT NULL without a default, so blue filled its existing rows with the type's implicit value (0, '', a zero date)".into())
        }
        _ => None,
    }
}

/// Refuses rows of `now` cut back to its first `kept` columns when blue filled a column cut with
/// values green cannot reproduce (its clock, an implicit value): green, holding that column
/// already, would give such a row its own default.
pub(crate) fn older_rows_fill(convert: &impl Convert, now: &BlueTable, kept: usize) -> Result<(), Error> {
    match now.columns.get(kept..).unwrap_or_default().iter().find_map(|c| Some((c, unreproducible(convert, now, c)?))) {
        Some((column, why)) => Err(refused(now, format!("added column {}", column.name), why)),
        None => Ok(()),
    }
}

/// `table` without its counter's next value, which moves with every insert and is not part of its
/// definition.
fn defined(table: &BlueTable) -> BlueTable {
    BlueTable { next_auto_increment: None, ..table.clone() }
}

/// Whether blue dropped `index` of `was` because an index of `now` took over the foreign key it
/// served (InnoDB drops the index it made for a foreign key when an index added later covers the
/// key's columns): a non-unique index on exactly a foreign key's columns, which an index of `now`
/// leads with.
fn served_a_foreign_key(index: &BlueIndex, now: &BlueTable) -> bool {
    let columns: Vec<&str> = index.columns.iter().map(|(c, _)| c.as_str()).collect();
    let plain = !index.unique && index.columns.iter().all(|(_, prefix)| prefix.is_none());
    let keyed = now.foreign_keys.iter().any(|f| f.columns.iter().map(String::as_str).eq(columns.iter().copied()));
    let covered = now.indexes.iter().any(|i| i.columns.len() >= columns.len() && i.columns.iter().zip(&columns).all(|((c, p), k)| c == k && p.is_none()));
    plain && keyed && covered
}

/// Green's statements for what blue's table `now` has that green's `green` lacks (see the module's
/// doc): columns after green's last one and indexes, each statement runnable again without effect,
/// and the drop of an index blue dropped for a foreign key's sake. `was` is the table as the stream
/// converts by: a column, key or foreign key that changed since refuses, naming it.
pub(crate) fn carried(convert: &impl Convert, was: &BlueTable, green: &GreenShape, now: &BlueTable) -> Result<Carried, Error> {
    let common = was.columns.len().min(now.columns.len());
    if now.columns.len() < was.columns.len() || was.columns[..common] != now.columns[..common] {
        let added = now.columns.iter().find(|c| !was.columns.iter().any(|w| w.name == c.name));
        let (changed, why) = match (added, was.columns.iter().find(|c| !now.columns.contains(c))) {
            (Some(c), _) if now.columns.len() > was.columns.len() => (
                format!("added column {}", c.name),
                "it was added before the last column (FIRST or AFTER), and green's columns keep blue's order; add it after the last one",
            ),
            (_, Some(c)) => (format!("changed column {}", c.name), "an existing column was changed, moved or dropped"),
            _ => ("changed its columns".to_owned(), "an existing column was changed, moved or dropped"),
        };
        return Err(refused(now, changed, why.into()));
    }
    if was.key != now.key || was.foreign_keys != now.foreign_keys {
        return Err(refused(now, "changed its primary key or foreign keys".into(), "only added columns and indexes are carried while streaming".into()));
    }
    let prefix = green.columns.len() <= now.columns.len() && green.columns.iter().zip(&now.columns).all(|(g, b)| *g == b.name);
    if !prefix {
        let columns = green.columns.join(", ");
        return Err(refused(now, "its columns".into(), format!("green's columns ({columns}) are not the first of blue's, in blue's order")));
    }
    let added = &now.columns[green.columns.len()..];
    for column in added {
        if let Some(why) = unreproducible(convert, now, column) {
            return Err(refused(now, format!("added column {}", column.name), why));
        }
    }
    let green_now = convert.green(&defined(now))?;
    let green_was = convert.green(&defined(was))?;
    let qualified = format!("{}.{}", quote_ident(&now.name.schema), quote_ident(&now.name.name));
    let mut statements: Vec<String> =
        green_now.definitions[green.columns.len()..].iter().map(|d| format!("ALTER TABLE {qualified} ADD COLUMN IF NOT EXISTS {d}")).collect();
    for index in was.indexes.iter().filter(|i| !now.indexes.iter().any(|n| n.name == i.name)) {
        let on_green = green_was.indexes.iter().find(|g| g.blue == index.name);
        match on_green {
            Some(g) if served_a_foreign_key(index, now) => {
                statements.push(format!("DROP INDEX IF EXISTS {}.{}", quote_ident(&now.name.schema), quote_ident(&g.name)));
            }
            None if served_a_foreign_key(index, now) => {}
            _ => return Err(refused(now, format!("dropped index {}", index.name), "an existing index was dropped".into())),
        }
    }
    if let Some(i) = was.indexes.iter().find(|i| now.indexes.iter().any(|n| n.name == i.name && n != *i)) {
        return Err(refused(now, format!("changed index {}", i.name), "an existing index was changed".into()));
    }
    for index in green_now.indexes.iter().filter(|i| !green.indexes.contains(&i.name)) {
        if green.taken.contains(&index.name) {
            return Err(refused(
                now,
                format!("added index {}", index.blue),
                format!("green already has a relation named {}, the name the index takes there; rename that relation on green and restart", index.name),
            ));
        }
        match index
            .statement
            .strip_prefix("CREATE UNIQUE INDEX ")
            .map(|r| ("UNIQUE ", r))
            .or_else(|| index.statement.strip_prefix("CREATE INDEX ").map(|r| ("", r)))
        {
            Some((unique, rest)) => statements.push(format!("CREATE {unique}INDEX IF NOT EXISTS {rest}")),
            None => return Err(Error::Internal(format!("an index statement of an unknown form: {}", index.statement))),
        }
    }
    let left_out = green_now.left_out.into_iter().filter(|l| !green_was.left_out.contains(l)).collect();
    Ok(Carried { statements, left_out })
}

/// Green's statements for `now`, a table blue created while streaming (a plain `CREATE TABLE`:
/// empty, its rows follow in the stream): the table as the copy makes it — columns, key, indexes,
/// identity at blue's counter, foreign keys with the actions green repeats —, so that the
/// cutover's comparison of definitions finds it as it finds a copied one.
pub(crate) fn created(convert: &impl Convert, now: &BlueTable) -> Result<Carried, Error> {
    let green = convert.green(now)?;
    let mut statements = vec![green.create()];
    statements.extend(green.after);
    statements.extend(green.references);
    Ok(Carried { statements, left_out: green.left_out })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::compose::mysql_to_pg::MySqlToPg;
    use crate::source::compose::BlueForeignKey;
    use turnout_decoders::schema::TableName;

    fn column(name: &str, ty: &str, nullable: bool, default: Option<&str>) -> BlueColumn {
        BlueColumn { nullable, default: default.map(str::to_owned), ..BlueColumn::own(name, ty) }
    }

    fn table(columns: Vec<BlueColumn>, indexes: Vec<BlueIndex>) -> BlueTable {
        BlueTable {
            name: TableName { schema: "app".into(), name: "t".into() },
            columns,
            key: vec!["id".into()],
            heartbeat: false,
            indexes,
            foreign_keys: Vec::new(),
            next_auto_increment: None,
        }
    }

    fn index(name: &str, column: &str, unique: bool) -> BlueIndex {
        BlueIndex { name: name.into(), unique, columns: vec![(column.into(), None)], kind: "BTREE".into() }
    }

    fn convert() -> MySqlToPg {
        MySqlToPg::default()
    }

    /// Green's shape of `t` as the copy makes it.
    fn green_of(t: &BlueTable) -> GreenShape {
        let indexes: Vec<String> = convert().green(t).expect("green").indexes.into_iter().map(|i| i.name).collect();
        GreenShape { columns: t.columns.iter().map(|c| c.name.clone()).collect(), taken: [vec![t.name.name.clone()], indexes.clone()].concat(), indexes }
    }

    #[test]
    fn columns_added_at_the_end_and_their_indexes_become_green_statements_that_can_run_again() {
        let was = table(vec![column("id", "int", false, None)], vec![]);
        let now = table(
            vec![column("id", "int", false, None), column("note", "int", true, None), column("n", "int unsigned", false, Some("'7'"))],
            vec![index("by_note", "note", false), index("n_uq", "n", true)],
        );
        let carried = carried(&convert(), &was, &green_of(&was), &now).expect("carried");
        assert_eq!(carried.statements.len(), 4, "{carried:?}");
        assert_eq!(carried.statements[0], r#"ALTER TABLE "app"."t" ADD COLUMN IF NOT EXISTS "note" integer"#);
        assert!(carried.statements[1].starts_with(r#"ALTER TABLE "app"."t" ADD COLUMN IF NOT EXISTS "n" bigint DEFAULT 7 NOT NULL CHECK"#), "{carried:?}");
        assert!(carried.statements[2].starts_with("CREATE INDEX IF NOT EXISTS "), "{carried:?}");
        assert!(carried.statements[3].starts_with("CREATE UNIQUE INDEX IF NOT EXISTS "), "{carried:?}");
        // The same catalog again: nothing to do.
        assert_eq!(carried_statements(&now, &now), Vec::<String>::new());
    }

    fn carried_statements(was: &BlueTable, now: &BlueTable) -> Vec<String> {
        carried(&convert(), was, &green_of(was), now).expect("carried").statements
    }

    #[test]
    fn what_green_cannot_reproduce_or_is_not_an_addition_is_refused_by_name() {
        let id = || column("id", "int", false, None);
        let was = table(vec![id(), column("a", "int", true, None)], vec![]);
        let refusal = |now: BlueTable| carried(&convert(), &was, &green_of(&was), &now).expect_err("refused").to_string();
        let first = refusal(table(vec![column("z", "int", true, None), id(), column("a", "int", true, None)], vec![]));
        assert!(first.contains("added column z") && first.contains("FIRST or AFTER"), "{first}");
        let changed = refusal(table(vec![id(), column("a", "bigint", true, None)], vec![]));
        assert!(changed.contains("(changed column a)"), "{changed}");
        let implicit = refusal(table(vec![id(), column("a", "int", true, None), column("b", "int", false, None)], vec![]));
        assert!(implicit.contains("added column b") && implicit.contains("implicit value"), "{implicit}");
        let stamped = refusal(table(vec![id(), column("a", "int", true, None), column("at", "datetime", true, Some("current_timestamp()"))], vec![]));
        assert!(stamped.contains("added column at") && stamped.contains("current_timestamp()"), "{stamped}");
        let generated = refusal(table(vec![id(), column("a", "int", true, None), BlueColumn { generated: true, ..column("g", "int", true, None) }], vec![]));
        assert!(generated.contains("generated column"), "{generated}");
        let indexed = table(vec![id()], vec![index("i", "id", false)]);
        let dropped = carried(&convert(), &indexed, &green_of(&indexed), &table(vec![id()], vec![])).expect_err("refused");
        assert!(dropped.to_string().contains("(dropped index i)"), "{dropped}");
        let mut taken = green_of(&was);
        taken.taken.push("t_by_a".into());
        let named =
            carried(&convert(), &was, &taken, &table(vec![id(), column("a", "int", true, None)], vec![index("by_a", "a", false)])).expect_err("refused");
        assert!(named.to_string().contains("green already has a relation named t_by_a"), "{named}");
        let counted = BlueTable { next_auto_increment: Some(42), ..table(vec![id(), column("a", "int", true, None)], vec![]) };
        let counted = BlueTable { columns: vec![BlueColumn { auto_increment: true, ..id() }, column("a", "int", true, None)], ..counted };
        let moved = BlueTable { next_auto_increment: Some(99), ..counted.clone() };
        assert_eq!(carried_statements(&counted, &moved), Vec::<String>::new(), "a counter that moved is no change");
    }

    #[test]
    fn an_index_blue_dropped_for_a_foreign_key_an_added_index_took_over_is_dropped_on_green() {
        let fk = BlueForeignKey {
            name: "fk_p".into(),
            columns: vec!["p".into()],
            parent: TableName { schema: "app".into(), name: "parent".into() },
            parent_columns: vec!["id".into()],
            on_update: "RESTRICT".into(),
            on_delete: "RESTRICT".into(),
            actions_logged: false,
        };
        let columns = vec![column("id", "int", false, None), column("p", "int", true, None), column("at", "int", true, None)];
        let was = BlueTable { foreign_keys: vec![fk.clone()], ..table(columns.clone(), vec![index("fk_p", "p", false)]) };
        let pc = BlueIndex { name: "pc".into(), unique: false, columns: vec![("p".into(), None), ("at".into(), None)], kind: "BTREE".into() };
        let now = BlueTable { foreign_keys: vec![fk], ..table(columns, vec![pc]) };
        let statements = carried_statements(&was, &now);
        assert_eq!(statements.len(), 2, "{statements:?}");
        assert_eq!(statements[0], r#"DROP INDEX IF EXISTS "app"."t_fk_p""#);
        assert_eq!(statements[1], r#"CREATE INDEX IF NOT EXISTS "t_pc" ON "app"."t" ("p", "at")"#);
    }

    #[test]
    fn a_table_map_of_an_older_shape_cuts_the_catalog_back_to_its_columns() {
        let now = table(
            vec![column("id", "int", false, None), column("a", "int", true, None), column("b", "int", true, None)],
            vec![index("by_a", "a", false), index("by_b", "b", false)],
        );
        let was = as_of(&now, &["id", "a"]).expect("a prefix");
        assert_eq!(was.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["id", "a"]);
        assert_eq!(was.indexes, vec![index("by_a", "a", false)]);
        assert_eq!(carried_statements(&was, &now).len(), 2, "the column b and its index");
        // Green ahead of the stream's catalog (the statements ran before a restart): nothing to add.
        assert_eq!(carried(&convert(), &was, &green_of(&now), &now).expect("carried").statements, Vec::<String>::new());
        // Green behind it (blue's catalog read after the statement when the stream opened): added.
        assert_eq!(carried(&convert(), &now, &green_of(&was), &now).expect("carried").statements.len(), 2);
        assert_eq!(as_of(&now, &["id", "a", "b"]), None, "not a strict prefix");
        assert_eq!(as_of(&now, &["id", "b"]), None, "not a prefix");
        let keyed = BlueTable { key: vec!["id".into(), "b".into()], ..now.clone() };
        assert_eq!(as_of(&keyed, &["id", "a"]), None, "a key column cut");
    }
}
