//! The MySQL-family cutover's pre-checks: what must hold before writes pause — the schemas equal,
//! triggers and events that can move, the inventory, turnout's privileges and the sessions that
//! could write through the fence.

use super::*;

impl MySqlCutover {
    /// Refuses, before anything changes, a cutover while the two sides' schema objects differ (see
    /// [`crate::source::mysql::drift`]), naming each difference and its fix.
    pub(super) async fn check_schemas_match(&mut self) -> Result<(), Error> {
        let (from, to) = self.sides;
        let db = self.blue_db.clone();
        if db != self.green_db {
            // Objects are compared by name in a database of the same name on both sides.
            return Ok(());
        }
        let filter = self.filter.clone();
        let (blue, green) = self.sessions().await?;
        let (selection, _) = crate::source::mysql::catalog::select_tables(blue, &db, &filter).await?;
        let tables: Vec<String> = selection.tables.iter().map(|t| t.name.clone()).collect();
        let differences = crate::source::mysql::drift::differences(blue, green, &db, &tables).await?;
        if differences.is_empty() {
            return Ok(());
        }
        Err(CutoverCheck::SchemasDiffer { from, to, count: differences.len(), differences: differences.join("; ") }.into())
    }

    /// Refuses, before anything changes, a cutover whose pause could not hand the fenced side's
    /// triggers over: turnout's account on the other side needs TRIGGER, and SET USER (or SUPER) to
    /// create a trigger whose definer is another account; on the fenced side TRIGGER to drop them.
    /// Across the MySQL family the triggers move as written, which is a warning: their bodies then
    /// run under the other family's SQL.
    async fn check_trigger_handover(&mut self) -> Result<Option<String>, Error> {
        let (from, to) = self.sides;
        let (from_db, to_user) = (self.blue_db.clone(), self.green_opts.user().unwrap_or_default().to_owned());
        let oracle = self.oracle;
        let green_oracle = self.green_oracle.unwrap_or(oracle);
        let (blue, green) = self.sessions().await?;
        let triggers = turnout_cutover::trigger_definitions(blue, &from_db, None, from).await.map_err(Error::from)?;
        if triggers.is_empty() {
            return Ok(None);
        }
        let mut missing = Vec::new();
        for (conn, name, user, oracle) in [(green, to, to_user.as_str(), green_oracle), (blue, from, "", oracle)] {
            // The handover keeps its DDL out of the binlogs: probe that the account may.
            if conn.query_drop("SET SESSION sql_log_bin = 0; SET SESSION sql_log_bin = 1").await.is_err() {
                let privilege = if oracle { "SYSTEM_VARIABLES_ADMIN" } else { "BINLOG ADMIN" };
                missing.push(format!("{privilege} on {name} (to keep the trigger changes out of its binlog)"));
            }
            let grants: Vec<String> = conn.query("SHOW GRANTS").await.map_err(Error::mysql(name, "reading turnout's grants"))?;
            let grants = grants.join("\n").to_ascii_uppercase();
            if !grants.contains("ALL PRIVILEGES") && !grants.contains("TRIGGER") {
                missing.push(format!("TRIGGER on {name}"));
            }
            let foreign_definer = !user.is_empty() && triggers.iter().any(|t| !t.definer.starts_with(&format!("{user}@")));
            // MariaDB: SET USER; MySQL: SET_ANY_DEFINER (SET_USER_ID before 8.2).
            let may_set_definer = ["ALL PRIVILEGES ON *.*", "SUPER", "SET USER", "SET_ANY_DEFINER", "SET_USER_ID"].iter().any(|p| grants.contains(p));
            if foreign_definer && !may_set_definer {
                let privilege = if oracle { "SET_ANY_DEFINER" } else { "SET USER" };
                missing.push(format!("{privilege} on {name} (a trigger's definer is another account)"));
            }
        }
        if missing.is_empty() {
            // Created inside the switch, past the proof, where a failure can only be completed: each
            // is tried on a scratch copy of its table first.
            let (to_db, (_, green)) = (self.green_db.clone(), self.sessions().await?);
            turnout_cutover::try_create_triggers(green, &to_db, &triggers, to).await.map_err(|e| CutoverCheck::TriggerNotCreatable {
                from,
                to,
                cause: e.to_string(),
            })?;
        }
        if missing.is_empty() {
            let names: Vec<&str> = triggers.iter().map(|t| t.name.as_str()).collect();
            return Ok((oracle != green_oracle).then(|| {
                format!(
                    "{} triggers move from {from} to {to} as written, into the other MySQL family: {}; their bodies then run under {to}'s \
                     SQL (functions, JSON, collations), so check each there before the cutover",
                    triggers.len(),
                    names.join(", ")
                )
            }));
        }
        let example = if green_oracle { "TRIGGER, SET_ANY_DEFINER, SYSTEM_VARIABLES_ADMIN" } else { "TRIGGER, SET USER, BINLOG ADMIN" };
        Err(CutoverCheck::TriggerGrants { from, to, count: triggers.len(), missing: missing.join(", "), example }.into())
    }

    /// The fenced side's inventory ([`crate::source::mysql::inventory`]): a refused class refuses the
    /// cutover; its summary goes into the certificate.
    async fn check_inventory(&mut self) -> Result<Option<String>, Error> {
        let (db, filter) = (self.blue_db.clone(), self.filter.clone());
        let (blue, green) = self.sessions().await?;
        let (selection, _) = crate::source::mysql::catalog::select_tables(blue, &db, &filter).await?;
        let heartbeat = crate::source::HEARTBEAT_TABLE;
        let inventory = crate::source::mysql::inventory::take(blue, Some(green), &db, &selection, heartbeat).await?;
        inventory.refusal("the cutover cannot go on")?;
        self.inventory = Some(inventory.summary());
        if self.reverse.is_none() {
            return Ok(None);
        }
        let tables: Vec<String> = selection.tables.iter().map(|t| t.name.clone()).collect();
        let (green_db, same_family) = (self.green_db.clone(), self.green_oracle == Some(self.oracle));
        let (blue, green) = self.sessions().await?;
        crate::source::mysql::inventory::way_back(blue, green, &green_db, &tables, same_family).await
    }

    /// Refuses a cutover while an event is enabled on the side traffic moves to (it fires there while
    /// turnout applies the fenced side's rows, which its twin on the fenced side also changes); warns
    /// when events will be enabled there and its event scheduler is off (they would never fire).
    async fn check_event_handover(&mut self) -> Result<Option<String>, Error> {
        let (from, to) = self.sides;
        let (from_db, to_db) = (self.blue_db.clone(), self.green_db.clone());
        let (blue, green) = self.sessions().await?;
        let enabled = "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? AND STATUS = 'ENABLED' ORDER BY 1";
        let on_to: Vec<String> = green.exec(enabled, (&to_db,)).await.map_err(Error::mysql(to, "listing the events"))?;
        if !on_to.is_empty() {
            return Err(CutoverCheck::EventsEnabled { from, to, events: on_to.join(", ") }.into());
        }
        let on_from: Vec<String> = blue.exec(enabled, (&from_db,)).await.map_err(Error::mysql(from, "listing the events"))?;
        if on_from.is_empty() {
            return Ok(None);
        }
        let scheduler: Option<String> = green.query_first("SELECT @@GLOBAL.event_scheduler").await.map_err(Error::mysql(to, "reading event_scheduler"))?;
        Ok((scheduler.as_deref() != Some("ON")).then(|| {
            format!(
                "{} events enabled on {from} ({}) are enabled on {to} by the cutover, but {to}'s event_scheduler is {}: they will not fire there until SET GLOBAL event_scheduler = ON",
                on_from.len(),
                on_from.join(", "),
                scheduler.unwrap_or_default()
            )
        }))
    }

    /// [`Procedure::preflight`]: every pre-check, with the warnings they leave.
    pub(super) async fn preflight_checks(&mut self) -> Result<Vec<String>, Error> {
        let (from, to) = self.sides;
        let oracle = self.oracle;
        let (_, green) = self.sessions().await?;
        let green_oracle = !crate::source::mysql::is_mariadb(green, to).await?;
        self.green_oracle = Some(green_oracle);
        self.refuse_no_way_back(green_oracle).await?;
        self.blue.refuse_a_replica(to).await?;
        let mut warnings: Vec<String> = self.check_trigger_handover().await?.into_iter().collect();
        warnings.extend(self.check_event_handover().await?);
        warnings.extend(self.check_inventory().await?);
        self.check_schemas_match().await?;
        let unfenced = self.blue.sessions_check(to).await?;
        warnings.extend(unfenced.warnings);
        // Toward an Oracle MySQL green the hand-off is read once green holds the sentinel, and a
        // MariaDB side has no seal: such an account's write after it would be applied to green after
        // the hand-off and come back — an insert or a delete stops the reverse stream at the row, an
        // update is applied again with the values the row already has.
        let back = self.reverse.is_some() && green_oracle && !oracle;
        warnings.extend(unfenced.accounts.into_iter().map(|(account, revoke)| {
            let mut line = unfenced_warning(&account, &revoke, from, oracle);
            if back {
                line.push_str(&format!(
                    "; a write of theirs after the sentinel would also come back from {to} through the reverse stream (an insert or \
                     delete stops it there, naming the row; an update is applied again with the values the row has)"
                ));
            }
            line
        }));
        Ok(warnings)
    }

    /// Refuses a reverse stream that green cannot feed: an Oracle MySQL green without the read-only
    /// fence (the hand-off is taken when the forward apply has nothing left to write; without the
    /// seal a late write on blue would be applied after it and come back), or green's settings.
    async fn refuse_no_way_back(&mut self, green_oracle: bool) -> Result<(), Error> {
        let to = self.sides.1;
        if self.reverse.is_some() && green_oracle && self.blue.fence.is_none() {
            return Err(CutoverCheck::UnfencedWayBack { to }.into());
        }
        if self.reverse.is_some() {
            let user = self.green_opts.user().unwrap_or_default().to_owned();
            let (_, green) = self.sessions().await?;
            let problems = crate::source::mysql::check::reverse_problems(green, &user, green_oracle).await;
            if !problems.is_empty() {
                let each: Vec<String> = problems.into_iter().map(|(what, fix)| format!("{what}: {fix}")).collect();
                return Err(CutoverCheck::CannotFeedReverse { problems: each.join("; ") }.into());
            }
        }
        Ok(())
    }
}
