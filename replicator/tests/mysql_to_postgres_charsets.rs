//! Character sets other than UTF-8 from MySQL/MariaDB to PostgreSQL: each value arrives as blue's
//! own conversion to UTF-8 prints it, copied and streamed, and what has no character of its own on
//! green stops the stream naming row and column and is counted by `check`.

use crate::common::{self, Turnout};
use crate::mysql_to_postgres::{green_column, pair_of};
use std::time::{Duration, Instant};
use turnout_testbed::{Flavor, MySqlServer, PgServer};

/// Every row of `table` on blue as `id|hex of each of columns in UTF-8` — what blue's own
/// `CONVERT(… USING utf8mb4)` makes of them — sorted.
pub(crate) fn blue_utf8(blue: &MySqlServer, db: &str, table: &str, columns: &[&str]) -> Vec<String> {
    let hex: Vec<String> = columns.iter().map(|c| format!("IFNULL(HEX(CONVERT({c} USING utf8mb4)), 'N')")).collect();
    let sql = format!("SELECT CONCAT_WS('|', id, {}) FROM {table}", hex.join(", "));
    let mut rows: Vec<String> = blue.execute(Some(db), &sql).expect("blue's rows").lines().map(str::to_owned).collect();
    rows.sort();
    rows
}

/// The same of green's `table`: each text column's UTF-8 bytes in hex.
pub(crate) async fn green_utf8(green: &PgServer, db: &str, table: &str, columns: &[&str]) -> Vec<String> {
    let hex: Vec<String> = columns.iter().map(|c| format!("COALESCE(upper(encode(convert_to({c}, 'UTF8'), 'hex')), 'N')")).collect();
    let sql = format!("SELECT concat_ws('|', id, {}) FROM \"{db}\".{table}", hex.join(", "));
    let mut rows = green_column(green, db, &sql).await.unwrap_or_default();
    rows.sort();
    rows
}

/// Waits until green's `table` holds blue's text of `columns` as blue's own conversion to UTF-8
/// prints it, row for row; green's rows.
async fn utf8_arrives(blue: &MySqlServer, green: &PgServer, db: &str, table: &str, columns: &[&str], t: &mut Turnout) -> Vec<String> {
    let deadline = Instant::now() + common::WAIT;
    loop {
        let (b, g) = (blue_utf8(blue, db, table, columns), green_utf8(green, db, table, columns).await);
        if b == g {
            return g;
        }
        assert!(t.exited().is_none(), "{}", t.log_text());
        assert!(Instant::now() < deadline, "green never held blue's text of {table}: {:?}", b.iter().zip(&g).find(|(x, y)| x != y));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// MariaDB's default character set, `latin1` (MySQL's Windows-1252): every byte but 0 in a
/// `VARCHAR`, a padded `CHAR` and a `TEXT`, half copied and half streamed (of each half of the bytes), arrives on green as the
/// characters blue's own conversion to UTF-8 makes of it — the five bytes Windows-1252 leaves
/// unassigned included.
#[tokio::test(flavor = "multi_thread")]
async fn latin1_strings_arrive_as_the_characters_blue_itself_converts_them_to() {
    let row = |n: u32| {
        let byte = format!("UNHEX('{n:02X}')");
        format!("({n}, {byte}, CONCAT({byte}, ' '), CONCAT('a', {byte}, 'z'))")
    };
    let rows = |from: u32, to: u32| (from..=to).map(row).collect::<Vec<_>>().join(", ");
    let (blue, green, db) = pair_of(
        Flavor::MariaDb10_11,
        &format!(
            "CREATE TABLE l (id INT PRIMARY KEY, v VARCHAR(10), c CHAR(3), t TEXT) ENGINE = InnoDB DEFAULT CHARSET = latin1; \
             INSERT INTO l VALUES {}, {}, (0, NULL, NULL, NULL)",
            rows(1, 63),
            rows(128, 191)
        ),
    )
    .await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::new(dir.path(), &blue.url(&db), &green.url(&db));
    let (code, out) = common::turnout_command(&t, "check", &[]).await;
    assert!(out.contains(&format!("{db}.l.v: varchar(10) → varchar(10)")), "latin1 is mapped: {out} ({code})");
    t.start();
    common::wait_streaming(&mut t).await;
    blue.execute(Some(&db), &format!("INSERT INTO l VALUES {}, {}", rows(64, 127), rows(192, 255))).expect("streamed rows");
    let g = utf8_arrives(&blue, &green, &db, "l", &["v", "c", "t"], &mut t).await;
    assert_eq!(g.len(), 256, "every byte, and NULLs");
    // The bytes Windows-1252 leaves unassigned are the C1 controls of the same number.
    assert!(g.contains(&"129|C281|C281|61C2817A".to_owned()), "{:?}", g.iter().find(|r| r.starts_with("129|")));
    let (code, out) = common::turnout_command(&t, "verify", &[]).await;
    assert_eq!(code, 0, "{out}");
    t.sigterm();
}

/// Single-byte character sets other than `latin1`, each byte as blue's own conversion makes it: every
/// byte but 0 in `koi8r`, `latin2` (a padded `CHAR`), `cp866` and `macroman` columns, half copied and
/// half streamed (of each half of the bytes), arrives on green as blue's `CONVERT(… USING utf8mb4)` prints it, and `verify`
/// agrees. A `cp1251` column holds the one byte that set leaves unassigned (0x98, which blue reads
/// as `?`) in no row at first: the stream stops at the row that writes it, naming row and column,
/// and `check` then counts it.
#[tokio::test(flavor = "multi_thread")]
async fn single_byte_sets_arrive_as_blue_converts_them_and_an_unassigned_byte_stops_by_row() {
    single_byte_on(Flavor::MariaDb10_11).await;
}

/// The same from an Oracle MySQL 9.7 blue, whose conversion is its own.
#[tokio::test(flavor = "multi_thread")]
async fn single_byte_sets_arrive_as_oracle_mysql_9_7_converts_them() {
    single_byte_on(Flavor::MySql9_7).await;
}

async fn single_byte_on(flavor: Flavor) {
    let row = |n: u32| {
        let byte = format!("UNHEX('{n:02X}')");
        format!("({n}, {byte}, CONCAT({byte}, ' '), CONCAT('a', {byte}, 'z'), {byte})")
    };
    let rows = |from: u32, to: u32| (from..=to).map(row).collect::<Vec<_>>().join(", ");
    let (blue, green, db) = pair_of(
        flavor,
        &format!(
            "CREATE TABLE s (id INT PRIMARY KEY, k VARCHAR(10) CHARACTER SET koi8r, l CHAR(3) CHARACTER SET latin2, \
               d TEXT CHARACTER SET cp866, m VARCHAR(5) CHARACTER SET macroman) ENGINE = InnoDB; \
             CREATE TABLE w (id INT PRIMARY KEY, v VARCHAR(10) CHARACTER SET cp1251, a VARCHAR(4) CHARACTER SET ascii) ENGINE = InnoDB; \
             INSERT INTO s VALUES {}, {}, (0, NULL, NULL, NULL, NULL); INSERT INTO w VALUES (1, UNHEX('C0E9'), 'ok'), (2, UNHEX('3F'), 'A~')",
            rows(1, 63),
            rows(128, 191)
        ),
    )
    .await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::new(dir.path(), &blue.url(&db), &green.url(&db));
    let (code, out) = common::turnout_command(&t, "check", &[]).await;
    assert!(out.contains(&format!("{db}.s.k: varchar(10) → varchar(10) (lossy: its bytes as blue converts them")), "koi8r is mapped: {out} ({code})");
    let line = |out: &str, column: &str| out.lines().find(|l| l.contains(&format!("{db}.{column}: "))).unwrap_or_default().to_owned();
    assert!(line(&out, "w.v").contains("0 rows hold a NUL byte, or a byte the column's character set converts to no character"), "{out}");
    t.start();
    common::wait_streaming(&mut t).await;
    // Half of each half streamed: both paths decode bytes above 0x7F.
    blue.execute(Some(&db), &format!("INSERT INTO s VALUES {}, {}", rows(64, 127), rows(192, 255))).expect("streamed rows");
    let g = utf8_arrives(&blue, &green, &db, "s", &["k", "l", "d", "m"], &mut t).await;
    assert_eq!(g.len(), 256, "every byte, and NULLs");
    // koi8r's 0xC1 is Cyrillic а (U+0430), latin2's 0xB1 ą (U+0105).
    assert!(g.iter().any(|r| r.starts_with("193|D0B0|")), "{:?}", g.iter().find(|r| r.starts_with("193|")));
    assert!(g.iter().any(|r| r.starts_with("177|") && r.split('|').nth(2) == Some("C485")), "{:?}", g.iter().find(|r| r.starts_with("177|")));
    // cp1251's 0xC0 0xE9 is Аé… as blue converts it: copied, equal.
    assert_eq!(blue_utf8(&blue, &db, "w", &["v", "a"]), green_utf8(&green, &db, "w", &["v", "a"]).await);
    let (code, out) = common::turnout_command(&t, "verify", &[]).await;
    assert_eq!(code, 0, "{out}");
    blue.execute(Some(&db), "INSERT INTO w VALUES (300, UNHEX('6198'), 'x')").expect("an unassigned byte");
    let code = common::wait_exit(&mut t).await;
    let log = t.log_text();
    assert_ne!(code, 0, "{log}");
    assert!(log.contains(&format!("{db}.w.v (id = 300)")) && log.contains("converts to no character of their own"), "{log}");
    let (_, out) = common::turnout_command(&t, "check", &[]).await;
    assert!(line(&out, "w.v").contains("1 row(s) on blue hold a NUL byte, or a byte the column's character set converts to no character"), "{out}");
    if flavor == Flavor::MariaDb10_11 {
        // MariaDB keeps any byte in an `ascii` column (strict mode too) and reads one above 0x7F as `?`:
        // counted like cp1251's, never carried as the UTF-8 it happens to spell.
        blue.execute(Some(&db), "INSERT INTO w VALUES (301, 'y', UNHEX('C3A9'))").expect("a high byte in ascii");
        let (_, out) = common::turnout_command(&t, "check", &[]).await;
        assert!(line(&out, "w.a").contains("1 row(s) on blue hold a NUL byte, or a byte the column's character set"), "{out}");
    }
}

/// Unicode's fixed encodings — `utf16`, `utf16le` (a padded `CHAR`), `utf32` and `ucs2` — whose
/// code units hold the bytes 0 and 0x20 inside other characters ('A' is 00 41 in `utf16`, U+2020
/// is 20 20): characters from ASCII to beyond U+FFFF, copied and streamed (inserts, an update, a
/// delete), arrive as blue's own conversion to UTF-8 prints them, and `verify` agrees. A U+0000 in
/// no row at first stops the stream at the row that writes it, naming row and column, and `check`
/// then counts it.
async fn unicode_encodings_on(flavor: Flavor) {
    // Characters whose code units hold the bytes 0, 0x20 and a surrogate pair, as SQL of each row.
    let values = |n: u32| {
        let text = match n % 5 {
            0 => "A",
            1 => "\u{2020}\u{120} x",
            2 => "é€",
            3 => "😀 ok",
            _ => "z\u{FFFD}",
        };
        // ucs2 holds only the characters up to U+FFFF.
        let bmp = if n % 5 == 3 { "ok" } else { text };
        format!("({n}, '{text}{n}', '{}', '{text}', '{bmp}')", if n.is_multiple_of(2) { "ab " } else { "\u{2020}" })
    };
    let rows = |from: u32, to: u32| (from..=to).map(values).collect::<Vec<_>>().join(", ");
    let (blue, green, db) = pair_of(
        flavor,
        &format!(
            "CREATE TABLE u (id INT PRIMARY KEY, a VARCHAR(20) CHARACTER SET utf16, b CHAR(4) CHARACTER SET utf16le, \
               c TEXT CHARACTER SET utf32, d VARCHAR(10) CHARACTER SET ucs2) ENGINE = InnoDB; \
             INSERT INTO u VALUES {}, (0, NULL, NULL, NULL, NULL)",
            rows(1, 20)
        ),
    )
    .await;
    if flavor == Flavor::MariaDb11_8 {
        // Its Unicode sets' default collations are the uca1400 ones, whose ids the binlog carries.
        let collation =
            blue.execute(Some(&db), "SELECT COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_NAME = 'u' AND COLUMN_NAME = 'a'").expect("collation");
        assert!(collation.contains("utf16_uca1400"), "{collation}");
    }
    let dir = tempfile::tempdir().expect("tmp");
    let mut t = Turnout::new(dir.path(), &blue.url(&db), &green.url(&db));
    let (code, out) = common::turnout_command(&t, "check", &[]).await;
    let line = |out: &str, column: &str| out.lines().find(|l| l.contains(&format!("{db}.{column}: "))).unwrap_or_default().to_owned();
    for (column, green_type) in [("a", "varchar(20)"), ("b", "varchar(4)"), ("c", "text"), ("d", "varchar(10)")] {
        assert!(line(&out, &format!("u.{column}")).contains(&format!("→ {green_type} (lossy: ")), "{column} is mapped: {out} ({code})");
        assert!(line(&out, &format!("u.{column}")).contains("0 rows hold a NUL byte"), "{column} counted: {out}");
    }
    t.start();
    common::wait_streaming(&mut t).await;
    blue.execute(
        Some(&db),
        &format!(
            "SET NAMES utf8mb4; INSERT INTO u VALUES {}; UPDATE u SET a = CONCAT(a, '😀'), b = 'x y' WHERE id % 7 = 0; DELETE FROM u WHERE id = 9",
            rows(21, 40)
        ),
    )
    .expect("streamed rows");
    let columns = ["a", "b", "c", "d"];
    let g = utf8_arrives(&blue, &green, &db, "u", &columns, &mut t).await;
    assert_eq!(g.len(), 40, "every row, and NULLs");
    // 'A' in utf16 is 00 41, in UTF-8 41; the CHAR's trailing space is gone, by character.
    assert!(g.contains(&"10|413130|6162|41|41".to_owned()), "{:?}", g.iter().find(|r| r.starts_with("10|")));
    assert!(g.contains(&"5|4135|E280A0|41|41".to_owned()), "{:?}", g.iter().find(|r| r.starts_with("5|")));
    assert!(g.iter().any(|r| r.starts_with("3|F09F988020")), "{:?}", g.iter().find(|r| r.starts_with("3|")));
    let (code, out) = common::turnout_command(&t, "verify", &[]).await;
    assert_eq!(code, 0, "{out}");
    blue.execute(Some(&db), "INSERT INTO u VALUES (300, CONCAT('a', CHAR(0 USING utf16)), 'x', 'y', 'z')").expect("U+0000");
    let code = common::wait_exit(&mut t).await;
    let log = t.log_text();
    assert_ne!(code, 0, "{log}");
    assert!(log.contains(&format!("{db}.u.a (id = 300)")) && log.contains("cannot hold the byte 0"), "{log}");
    let (_, out) = common::turnout_command(&t, "check", &[]).await;
    assert!(line(&out, "u.a").contains("1 row(s) on blue hold a NUL byte"), "{out}");
    assert!(line(&out, "u.b").contains("0 rows hold a NUL byte"), "the bytes 0 of 'x' (78 00) are no U+0000: {out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unicode_encodings_arrive_as_mariadb_converts_them_and_u0000_stops_by_row() {
    unicode_encodings_on(Flavor::MariaDb10_11).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unicode_encodings_arrive_as_oracle_mysql_9_7_converts_them_and_u0000_stops_by_row() {
    unicode_encodings_on(Flavor::MySql9_7).await;
}

/// MariaDB 11.8, whose Unicode sets default to the set-qualified `uca1400` collations, which its
/// `COLLATIONS` view does not list with their ids (the binlog names the column's by its id).
#[tokio::test(flavor = "multi_thread")]
async fn unicode_encodings_arrive_as_mariadb_11_8_converts_them_under_its_uca1400_collations() {
    unicode_encodings_on(Flavor::MariaDb11_8).await;
}
