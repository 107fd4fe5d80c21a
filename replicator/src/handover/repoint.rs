//! The commands `GET /handover` prints for each consumer: a summary line, then commands that run as
//! printed after `on <side>: ` / `then on <side>: ` (the consumer adds its password and output
//! options), then advice.

use super::Handed;
use turnout_decoders::Side;

/// One end of a repoint: the side and the URL its consumers read.
#[derive(Clone, Copy, Debug)]
pub struct End<'a> {
    pub side: Side,
    pub url: &'a str,
}

impl Handed {
    /// The operator's steps to repoint the consumer from `from` (at `from_url`) to `to` (at
    /// `to_url`): a summary line, then commands that run as printed (after `on <side>: `), then
    /// advice.
    pub fn repoint(&self, source: End<'_>, target: End<'_>) -> Vec<String> {
        let (from, from_url, to, to_url) = (source.side, source.url, target.side, target.url);
        let gap = self.gap.as_ref().map(|g| format!(" (still unread when the cutover ended: {g})")).unwrap_or_default();
        if self.plugin.is_empty() {
            return self.repoint_binlog(source, target, &gap);
        }
        let fence = self.fence.as_deref().unwrap_or("<fence>");
        let role = self.reader.as_deref().map(|r| format!(" -U {r}")).unwrap_or_default();
        let mut lines = vec![
            format!(
                "{}: read {from} up to the fence {fence}{gap}, then {to} from its slot {} there, which stands at {}",
                self.consumer, self.consumer, self.resume
            ),
            format!("  on {from}: pg_recvlogical -d '{}'{role} --slot {} --start --endpos {fence} -f -", conninfo(from_url), self.consumer),
            format!("  then on {to}: pg_recvlogical -d '{}'{role} --slot {} --start -f -", conninfo(to_url), self.consumer),
            format!(
                "  Debezium: stop the connector once it read {from} up to the fence, set database.hostname and database.port to {to}'s, keep \
                 slot.name = {} (and publication.name), start it",
                self.consumer
            ),
        ];
        lines.push(if self.filters_origin {
            format!("  its reader leaves out changes with an origin (filters_origin): it may keep reading {from} across the switch")
        } else {
            format!(
                "  a reader that keeps running on {from} past the fence receives the rollback window's changes there too: stop it at the fence \
                 (the stream back to {from} waits for it to let go of its slot), or have it leave out changes with an origin (test_decoding: \
                 -o only-local=1; pgoutput on PostgreSQL 16+: origin 'none') and set filters_origin = true"
            )
        });
        lines.extend(self.note.iter().map(|n| format!("  NOTE: {n}")));
        lines
    }

    /// MySQL/MariaDB: a place, not a slot.
    fn repoint_binlog(&self, source: End<'_>, target: End<'_>, gap: &str) -> Vec<String> {
        let (from, from_url, to, to_url) = (source.side, source.url, target.side, target.url);
        let fence = self.fence.as_deref().and_then(BinlogPlace::parse);
        let resume = BinlogPlace::parse(&self.resume);
        let mariadb = resume.as_ref().is_some_and(|p| !p.gtids.contains(':'));
        let tool = if mariadb { "mariadb-binlog" } else { "mysqlbinlog" };
        let (from_host, to_host) = (host_port(from_url), host_port(to_url));
        let account = &self.consumer;
        let mut lines =
            vec![format!("{account}: read {from}'s binlog up to {}{gap}, then {to}'s from {}", self.fence.as_deref().unwrap_or("the fence"), self.resume)];
        if let Some(f) = &fence {
            lines.push(format!("  on {from}: {tool} --read-from-remote-server {from_host} --user={account} --stop-position={} {}", f.offset, f.file));
        }
        if let Some(r) = &resume {
            lines.push(format!(
                "  then on {to}: {tool} --read-from-remote-server {to_host} --user={account} --start-position={} --stop-never {}",
                r.offset, r.file
            ));
            let (host, port) = host_and_port(to_url);
            lines.push(if mariadb {
                format!("  by GTID: a replica — SET GLOBAL gtid_slave_pos = '{}'; CHANGE MASTER TO MASTER_HOST = '{host}', MASTER_PORT = {port}, MASTER_USE_GTID = slave_pos", r.gtids)
            } else {
                // Green's own GTIDs name turnout's apply, which a replica of blue already holds: a
                // replica moves by file and position, a connector takes green's set as its offset.
                format!(
                    "  a replica — CHANGE REPLICATION SOURCE TO SOURCE_HOST = '{host}', SOURCE_PORT = {port}, SOURCE_AUTO_POSITION = 0, \
                     SOURCE_LOG_FILE = '{}', SOURCE_LOG_POS = {}; a connector by GTID: its offset {}",
                    r.file, r.offset, r.gtids
                )
            });
        }
        lines.push(format!(
            "  the {from} line reads the fence's file from its start: name the files before it the consumer has not read, and \
             --start-position where it stood; turnout's own tables (turnout_heartbeat in the application's database, the turnout \
             database) are in the feed: see the consumers guide for the filter"
        ));
        lines.extend(self.note.iter().map(|n| format!("  NOTE: {n}")));
        lines
    }
}

/// A binlog place as a position prints it: `file:offset (gtids)`.
struct BinlogPlace {
    file: String,
    offset: u64,
    gtids: String,
}

impl BinlogPlace {
    fn parse(text: &str) -> Option<BinlogPlace> {
        let (place, gtids) = text.split_once(' ').unwrap_or((text, ""));
        let (file, offset) = place.rsplit_once(':')?;
        let gtids = gtids.trim().trim_start_matches('(').trim_end_matches(')').to_owned();
        Some(BinlogPlace { file: file.to_owned(), offset: offset.parse().ok()?, gtids })
    }
}

/// `host=… port=… dbname=…` of a PostgreSQL URL, without its credentials.
fn conninfo(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!("host={} port={} dbname={}", u.host_str().unwrap_or("localhost"), u.port().unwrap_or(5432), u.path().trim_start_matches('/')),
        Err(_) => "<the server's connection string>".into(),
    }
}

/// `--host=… --port=…` of a MySQL URL.
fn host_port(url: &str) -> String {
    let (host, port) = host_and_port(url);
    format!("--host={host} --port={port}")
}

/// The host and port of a MySQL URL.
fn host_and_port(url: &str) -> (String, String) {
    match url::Url::parse(url) {
        Ok(u) => (u.host_str().unwrap_or("localhost").to_owned(), u.port().unwrap_or(3306).to_string()),
        Err(_) => ("<host>".into(), "<port>".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handed(plugin: &str, fence: &str, resume: &str) -> Handed {
        Handed {
            consumer: "dbz".into(),
            plugin: plugin.into(),
            publications: Vec::new(),
            consumed: String::new(),
            fence: Some(fence.into()),
            committed_before: None,
            resume: resume.into(),
            gap: None,
            wait_ms: 0,
            reader: Some("debezium".into()),
            filters_origin: false,
            reached: false,
            note: None,
        }
    }

    #[test]
    fn postgres_lines_name_the_servers_without_credentials_and_stop_at_the_fence() {
        let lines = handed("pgoutput", "0/3000A38", "0/5012F80").repoint(
            End { side: Side::Blue, url: "postgres://turnout:secret@10.0.0.5:5433/app" },
            End { side: Side::Green, url: "postgresql://turnout:secret@10.0.0.6/app?sslmode=require" },
        );
        assert_eq!(lines[1], "  on blue: pg_recvlogical -d 'host=10.0.0.5 port=5433 dbname=app' -U debezium --slot dbz --start --endpos 0/3000A38 -f -");
        assert_eq!(lines[2], "  then on green: pg_recvlogical -d 'host=10.0.0.6 port=5432 dbname=app' -U debezium --slot dbz --start -f -");
        assert!(lines.iter().all(|l| !l.contains("secret")), "{lines:?}");
    }

    #[test]
    fn binlog_lines_split_host_and_port_and_use_each_family_s_tool() {
        let mariadb = handed("", "mysql-bin.000003:87903 (0-1-347)", "mysql-bin.000001:4410 (0-2-12)").repoint(
            End { side: Side::Blue, url: "mysql://turnout:pw@127.0.0.1:36661/app" },
            End { side: Side::Green, url: "mysql://turnout:pw@127.0.0.1:36662/app" },
        );
        assert_eq!(
            mariadb[1],
            "  on blue: mariadb-binlog --read-from-remote-server --host=127.0.0.1 --port=36661 --user=dbz --stop-position=87903 mysql-bin.000003"
        );
        assert_eq!(
            mariadb[2],
            "  then on green: mariadb-binlog --read-from-remote-server --host=127.0.0.1 --port=36662 --user=dbz --start-position=4410 --stop-never mysql-bin.000001"
        );
        let mysql = handed("", "binlog.000002:1234 (3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5)", "binlog.000001:99 (3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5)")
            .repoint(End { side: Side::Blue, url: "mysql://a@db1/app" }, End { side: Side::Green, url: "mysql://a@db2:3307/app" });
        assert!(mysql[1].starts_with("  on blue: mysqlbinlog --read-from-remote-server --host=db1 --port=3306 "), "{mysql:?}");
        assert!(
            mysql[3].contains("SOURCE_HOST = 'db2', SOURCE_PORT = 3307, SOURCE_AUTO_POSITION = 0, SOURCE_LOG_FILE = 'binlog.000001', SOURCE_LOG_POS = 99"),
            "{mysql:?}"
        );
        assert!(mariadb[3].contains("gtid_slave_pos = '0-2-12'") && mariadb[3].contains("MASTER_PORT = 36662"), "{mariadb:?}");
    }
}
