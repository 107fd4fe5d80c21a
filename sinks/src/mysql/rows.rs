//! How [`MySqlSink`] applies row changes: inserts, updates and deletes located by key (or by every
//! column for keyless tables), and folding runs of changes into one statement where provably equal.

use super::*;

impl MySqlSink {
    /// Applies changes inside the open transaction; a TRUNCATE commits what is before it at `before`.
    pub(super) async fn changes(&mut self, changes: &[&RowChange], before: Option<&Position>) -> Result<(), SinkError> {
        let mut i = 0;
        while i < changes.len() {
            // An update that leaves a column out (a PostgreSQL side's unchanged TOASTed value) writes
            // only what it sends: never folded into a whole-row rewrite, and after what was folded.
            let partial = matches!(changes[i], RowChange::Update { after, .. } if after.iter().any(Value::is_unchanged));
            if partial {
                self.emit_fold().await?;
            }
            if let RowChange::Insert { table, .. } | RowChange::Update { table, .. } | RowChange::Delete { table, .. } = changes[i] {
                if !partial && self.foldable(table).await? {
                    if !self.fold.accepts(table) {
                        self.emit_fold().await?;
                    }
                    self.fold.add(changes[i])?;
                    if self.fold.rows() >= FOLD_ROWS {
                        self.emit_fold().await?;
                    }
                    i += 1;
                    continue;
                }
            }
            match changes[i] {
                RowChange::Insert { table, .. } => {
                    // Consecutive inserts into the same table go together.
                    self.foreign_keys(table.foreign_key_checks).await?;
                    let mut j = i;
                    while j < changes.len()
                        && matches!(changes[j], RowChange::Insert { table: t, .. } if same_table(t, table) && t.columns.len() == table.columns.len())
                    {
                        j += 1;
                    }
                    self.insert(table, &changes[i..j]).await?;
                    i = j;
                }
                RowChange::Update { table, key, before: old, after } => {
                    self.foreign_keys(table.foreign_key_checks).await?;
                    self.update(table, key, old.as_ref(), after).await?;
                    i += 1;
                }
                RowChange::Delete { table, key, before: old } => {
                    self.foreign_keys(table.foreign_key_checks).await?;
                    if table.replica_identity == ReplicaIdentity::Full {
                        self.delete_one(table, old.as_ref().unwrap_or(key)).await?;
                        i += 1;
                    } else {
                        // One multi-row DELETE visits rows in key order: a table referencing itself
                        // is deleted from in blue's order, one row at a time, while checks are on.
                        let one_by_one = table.foreign_key_checks && self.info(&table.name).await?.self_referencing;
                        let mut j = i + 1;
                        while !one_by_one && j < changes.len() && matches!(changes[j], RowChange::Delete { table: t, .. } if same_table(t, table)) {
                            j += 1;
                        }
                        self.delete_by_key(table, &changes[i..j]).await?;
                        i = j;
                    }
                }
                RowChange::Truncate { tables, .. } => {
                    // TRUNCATE commits implicitly: commit what came before first.
                    if let Some(at) = before {
                        if self.in_transaction {
                            self.commit_at(at).await?;
                        }
                    }
                    self.foreign_keys(false).await?;
                    for t in tables {
                        self.run(&format!("TRUNCATE TABLE {}", qualified(&t.name)), None, &format!("truncating {}", t.name)).await?;
                    }
                    self.in_transaction = false;
                    self.begin_tx().await?;
                    i += 1;
                }
            }
        }
        Ok(())
    }

    async fn insert(&mut self, table: &TableSchema, rows: &[&RowChange]) -> Result<(), SinkError> {
        let mut after = Vec::with_capacity(rows.len());
        for c in rows {
            if let RowChange::Insert { after: row, .. } = c {
                after.push(row);
            }
        }
        self.insert_rows_of(table, &after).await
    }

    /// Queues multi-row INSERTs of whole rows (generated columns left out).
    async fn insert_rows_of(&mut self, table: &TableSchema, rows: &[&Vec<Value>]) -> Result<(), SinkError> {
        let generated = self.generated(&table.name).await?.clone();
        self.generated_rows.note(table, &generated, rows);
        let keep: Vec<usize> = table.columns.iter().enumerate().filter(|(_, c)| !generated.contains(&c.name)).map(|(i, _)| i).collect();
        let columns: Vec<(String, MySqlType)> = keep.iter().map(|&i| (table.columns[i].name.clone(), self.green_type(table, i).into_owned())).collect();
        let values: Vec<Vec<Value>> = rows.iter().map(|row| keep.iter().map(|&i| row.get(i).cloned().unwrap_or(Value::Null)).collect()).collect();
        if values.is_empty() {
            return Ok(());
        }
        for s in insert_statements(&table.name, &columns, &values)? {
            self.queue_rows(&s, format!("inserting into {}", table.name)).await?;
        }
        Ok(())
    }

    /// Queues multi-row INSERTs of whole rows into every column green has, by position (`DEFAULT` for
    /// generated ones) — the folded rows. Positional on purpose: a column added on green since the
    /// sink read its catalog (which would take its default where an ordered UPDATE keeps its value)
    /// makes the statement fail with "column count doesn't match" instead of passing; the batch is
    /// then retried by a new sink that reads green's catalog again and applies that table in order.
    async fn insert_all_columns(&mut self, table: &TableSchema, rows: &[&Vec<Value>]) -> Result<(), SinkError> {
        if rows.is_empty() {
            return Ok(());
        }
        let info = self.info(&table.name).await?;
        let (ordered, generated) = (info.ordered.clone(), info.generated.clone());
        self.generated_rows.note(table, &generated, rows);
        let mut columns: Vec<InsertColumn> = Vec::with_capacity(ordered.len());
        let mut from: Vec<Option<usize>> = Vec::with_capacity(ordered.len());
        for name in &ordered {
            let blue = table.columns.iter().position(|c| &c.name == name);
            match blue {
                Some(i) if !generated.contains(name) => {
                    columns.push(Some((name.clone(), self.green_type(table, i).into_owned())));
                    from.push(Some(i));
                }
                _ => {
                    columns.push(None);
                    from.push(None);
                }
            }
        }
        let values: Vec<Vec<Value>> =
            rows.iter().map(|row| from.iter().map(|i| i.and_then(|i| row.get(i).cloned()).unwrap_or(Value::Null)).collect()).collect();
        let head = format!("INSERT INTO {} VALUES ", qualified(&table.name));
        for s in multi_row_inserts(&table.name, &head, &columns, &values)? {
            self.queue_rows(&s, format!("{FOLDED_INSERT} {}", table.name)).await?;
        }
        Ok(())
    }

    /// Queues `DELETE … WHERE (key) IN (…)` of rows by their key values, each statement under
    /// [`STATEMENT_BYTES`] and required to delete every row it names.
    async fn delete_keys(&mut self, table: &TableSchema, keys: &[&Vec<Value>], what: &str) -> Result<(), SinkError> {
        let key_columns: Vec<usize> = table.key_indexes().collect();
        let names: Vec<String> = key_columns.iter().map(|&i| ident(&table.columns[i].name)).collect();
        let head = format!("DELETE FROM {} WHERE ({}) IN (", qualified(&table.name), names.join(", "));
        let mut sql = String::new();
        let mut n = 0u64;
        for (r, key) in keys.iter().enumerate() {
            if n == 0 {
                sql.clear();
                sql.push_str(&head);
            } else {
                sql.push(',');
            }
            sql.push('(');
            for (k, &i) in key_columns.iter().enumerate() {
                if k > 0 {
                    sql.push(',');
                }
                push(&mut sql, mysql_type(table, i), key.get(k).unwrap_or(&Value::Null)).map_err(|reason| SinkError::Value {
                    table: table.name.to_string(),
                    column: table.columns[i].name.clone(),
                    reason,
                })?;
            }
            sql.push(')');
            n += 1;
            if sql.len() >= STATEMENT_BYTES || r + 1 == keys.len() {
                sql.push(')');
                self.queue_statement(&sql, Some(n), format!("{what} {}", table.name)).await?;
                n = 0;
            }
        }
        Ok(())
    }

    /// Whether `table`'s changes may be folded (see [`fold`]): besides the table being independent,
    /// green must have no column blue does not send. A folded update replaces the whole row, so a
    /// column only green has (an expand-phase migration backfilled on green) would fall back to its
    /// default, where an ordered UPDATE leaves it alone.
    async fn foldable(&mut self, table: &TableSchema) -> Result<bool, SinkError> {
        if !fold::canonical_keys(table) {
            return Ok(false);
        }
        self.info(&table.name).await?;
        let info = self.tables.get_mut(&table.name).ok_or_else(|| SinkError::Schema { table: table.name.to_string(), reason: "not loaded".into() })?;
        if let Some(decided) = info.foldable {
            return Ok(decided);
        }
        let green_only = info.columns.iter().any(|c| !info.generated.contains(c) && !table.columns.iter().any(|b| &b.name == c));
        let parses_json = table.columns.iter().any(|c| info.json.contains(&c.name) && !matches!(&c.ty, ColumnType::MySql(t) if t.code == literal::JSON));
        // A positional INSERT (the folded rows') takes no value for an INVISIBLE column.
        let decided = info.independent && !green_only && !info.invisible && !parses_json;
        info.foldable = Some(decided);
        Ok(decided)
    }

    /// Queues the folded changes: per table, a DELETE of every row that existed before, then an
    /// INSERT of every row that exists after.
    pub(super) async fn emit_fold(&mut self) -> Result<(), SinkError> {
        for t in self.fold.take() {
            let mut existed = Vec::new();
            let mut after = Vec::new();
            for e in &t.entries {
                if e.existed {
                    existed.push(&e.key);
                }
                if let Some(row) = &e.after {
                    after.push(row);
                }
            }
            // Updated rows are replaced: the DELETE covers every row blue updated or deleted.
            self.delete_keys(&t.schema, &existed, "removing the rows blue updated or deleted in").await?;
            self.insert_all_columns(&t.schema, &after).await?;
        }
        Ok(())
    }

    /// `WHERE` for one row: the key columns, or every non-generated column (`<=>`) without a key.
    fn locate(&self, table: &TableSchema, generated: &HashSet<String>, key: &[Value], old: Option<&Vec<Value>>, sql: &mut String) -> Result<(), SinkError> {
        let full = table.replica_identity == ReplicaIdentity::Full;
        let value_err = |column: &str, reason: String| SinkError::Value { table: table.name.to_string(), column: column.to_owned(), reason };
        let mut first = true;
        if full {
            let row = old.map(Vec::as_slice).unwrap_or(key);
            for (i, c) in table.columns.iter().enumerate() {
                if generated.contains(&c.name) {
                    continue;
                }
                sql.push_str(if first { " WHERE " } else { " AND " });
                first = false;
                let v = row.get(i).cloned().unwrap_or(Value::Null);
                push_equals(sql, &ident(&c.name), &self.green_type(table, i), &v, true).map_err(|r| value_err(&c.name, r))?;
            }
        } else {
            for (k, i) in table.key_indexes().enumerate() {
                sql.push_str(if first { " WHERE " } else { " AND " });
                first = false;
                let c = &table.columns[i];
                let v = key.get(k).cloned().unwrap_or(Value::Null);
                push_equals(sql, &ident(&c.name), &self.green_type(table, i), &v, false).map_err(|r| value_err(&c.name, r))?;
            }
        }
        if first {
            return Err(SinkError::Schema { table: table.name.to_string(), reason: "has no columns to find a row by".into() });
        }
        if full {
            sql.push_str(" LIMIT 1");
        }
        Ok(())
    }

    /// Column `i`'s type as green takes its values: [`for_green`], and JSON where green's column is
    /// Oracle MySQL's JSON and the source sends text (a MariaDB side) — see [`Self::parses_json`].
    pub(super) fn green_type<'a>(&self, table: &'a TableSchema, i: usize) -> std::borrow::Cow<'a, MySqlType> {
        let ty = for_green(mysql_type(table, i), self.json_text);
        if self.parses_json(table, i) {
            return std::borrow::Cow::Owned(literal::as_json(&ty));
        }
        ty
    }

    /// Whether column `i` arrives as text and green's column is Oracle MySQL's JSON: the text is
    /// parsed there, which normalises it (key order, spacing). So such a column is written only where
    /// the source changed it ([`Self::update`]), and never by folding, which rewrites whole rows: a
    /// document nobody touched is not parsed again and stays as it was.
    /// Only a MariaDB source sends a JSON column as text, and only an Oracle MySQL green has JSON
    /// columns: within one family no row pays the catalog lookup.
    fn parses_json(&self, table: &TableSchema, i: usize) -> bool {
        !self.json_text
            && self.across_families()
            && mysql_type(table, i).code != literal::JSON
            && self.tables.get(&table.name).is_some_and(|info| table.columns.get(i).is_some_and(|c| info.json.contains(&c.name)))
    }

    async fn update(&mut self, table: &TableSchema, key: &[Value], old: Option<&Vec<Value>>, after: &[Value]) -> Result<(), SinkError> {
        let generated = self.generated(&table.name).await?.clone();
        let mut sql = format!("UPDATE {} SET ", qualified(&table.name));
        let mut first = true;
        let mut enum_errors = 0u16;
        for (i, c) in table.columns.iter().enumerate() {
            if generated.contains(&c.name) {
                continue;
            }
            let unchanged = old.is_some_and(|old| old.get(i) == after.get(i));
            // Not sent because it did not change: blue holds the same value.
            if (unchanged && self.parses_json(table, i)) || after.get(i).is_some_and(Value::is_unchanged) {
                continue;
            }
            if !first {
                sql.push_str(", ");
            }
            first = false;
            sql.push_str(&ident(&c.name));
            sql.push_str(" = ");
            let (ty, value) = (self.green_type(table, i), after.get(i).unwrap_or(&Value::Null));
            push(&mut sql, &ty, value).map_err(|reason| SinkError::Value { table: table.name.to_string(), column: c.name.clone(), reason })?;
            enum_errors += u16::from(literal::enum_error(&ty, value));
        }
        self.locate(table, &generated, key, old, &mut sql)?;
        self.generated_rows.note(table, &generated, &[&after.to_vec()]);
        self.queue_rows(&RowStatement { sql, rows: 1, enum_errors }, format!("updating {}", table.name)).await
    }

    async fn delete_one(&mut self, table: &TableSchema, row: &[Value]) -> Result<(), SinkError> {
        let generated = self.generated(&table.name).await?.clone();
        let mut sql = format!("DELETE FROM {}", qualified(&table.name));
        self.locate(table, &generated, row, Some(&row.to_vec()), &mut sql)?;
        self.queue_statement(&sql, Some(1), format!("deleting from {}", table.name)).await
    }

    async fn delete_by_key(&mut self, table: &TableSchema, rows: &[&RowChange]) -> Result<(), SinkError> {
        let mut keys = Vec::with_capacity(rows.len());
        for c in rows {
            if let RowChange::Delete { key, .. } = c {
                keys.push(key);
            }
        }
        self.delete_keys(table, &keys, "deleting from").await
    }
}
