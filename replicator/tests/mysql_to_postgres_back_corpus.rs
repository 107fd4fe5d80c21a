//! The type corpus run the other way: in the rollback window the application writes on green every
//! type of the map at its edges — each reaches blue exactly, by the stream back — and, column by
//! column, the values PostgreSQL's types would hold but blue's would not: each is refused at the
//! application's own statement on green (by green's guard, or by the PostgreSQL type itself), so
//! none is silent and none can stop the stream back.

use crate::common::{self, Turnout};
use crate::mysql_to_postgres::{corpus_arrives, corpus_pair, CORPUS};
use turnout_testbed::Flavor;

/// Per column of the corpus, values green's type holds and blue's cannot: (column, value, what).
const BEYOND_BLUE: &[(&str, &str, &str)] = &[
    ("i1", "128", "TINYINT above 127"),
    ("i1", "-129", "TINYINT below -128"),
    ("u1", "-1", "TINYINT UNSIGNED below 0"),
    ("u1", "256", "TINYINT UNSIGNED above 255"),
    ("flag", "128", "TINYINT(1) above 127"),
    ("i2", "32768", "SMALLINT above 32767"),
    ("u2", "-1", "SMALLINT UNSIGNED below 0"),
    ("u2", "65536", "SMALLINT UNSIGNED above 65535"),
    ("i3", "8388608", "MEDIUMINT above 2^23-1"),
    ("i3", "-8388609", "MEDIUMINT below -2^23"),
    ("u3", "-1", "MEDIUMINT UNSIGNED below 0"),
    ("u3", "16777216", "MEDIUMINT UNSIGNED above 2^24-1"),
    ("i4", "2147483648", "INT above 2^31-1"),
    ("u4", "-1", "INT UNSIGNED below 0"),
    ("u4", "4294967296", "INT UNSIGNED above 2^32-1"),
    ("u8", "-1", "BIGINT UNSIGNED below 0"),
    ("u8", "18446744073709551616", "BIGINT UNSIGNED above 2^64-1"),
    ("dec", "1e35", "DECIMAL(65,30) with 36 integer digits"),
    ("dec", "'NaN'", "DECIMAL that is not a number"),
    ("money", "-0.01", "DECIMAL UNSIGNED below 0"),
    ("money", "100000000", "DECIMAL(10,2) with 9 integer digits"),
    ("f", "'NaN'", "FLOAT NaN"),
    ("f", "'Infinity'", "FLOAT infinity"),
    ("f", "'-0'", "FLOAT negative zero"),
    ("dbl", "'NaN'", "DOUBLE NaN"),
    ("dbl", "'-Infinity'", "DOUBLE infinity"),
    ("dbl", "'-0'", "DOUBLE negative zero"),
    ("d", "'10000-01-01'", "DATE after 9999"),
    ("d", "'0001-01-01 BC'", "DATE before the year 1"),
    ("dt", "'10000-01-01 00:00:00'", "DATETIME after 9999"),
    ("dt", "'0001-01-01 00:00:00 BC'", "DATETIME before the year 1"),
    ("ts", "'1970-01-01 00:00:00+00'", "TIMESTAMP before 1970-01-01 00:00:01 UTC"),
    ("ts", "'2038-01-19 03:14:08+00'", "TIMESTAMP after 2038-01-19 03:14:07 UTC"),
    ("ts", "'infinity'", "TIMESTAMP infinity"),
    ("tm", "'839:00:00'", "TIME above 838:59:59"),
    ("tm", "'-839:00:00'", "TIME below -838:59:59"),
    ("tm", "'1 day'", "TIME with a day part"),
    ("tm", "'1 mon'", "TIME with a month part"),
    ("y", "1900", "YEAR before 1901"),
    ("y", "2156", "YEAR after 2155"),
    ("y", "-1", "YEAR below 0"),
    ("vc", "'123456789'", "VARCHAR(8) of 9 characters"),
    ("ch", "'abcde'", "CHAR(4) of 5 characters"),
    ("ch", "'ab '", "CHAR ending in a space"),
    ("tx", "repeat('x', 65536)", "TEXT of 65,536 bytes"),
    ("tx", "repeat('é', 32768)", "TEXT of 32,768 characters, 65,536 bytes"),
    ("vb", "'\\x000102030405060708'", "VARBINARY(8) of 9 bytes"),
    ("bn", "'\\x010203'", "BINARY(4) of 3 bytes"),
    ("bn", "'\\x0102030405'", "BINARY(4) of 5 bytes"),
    ("bl", "decode(repeat('00', 65536), 'hex')", "BLOB of 65,536 bytes"),
];

#[tokio::test(flavor = "multi_thread")]
async fn the_type_corpus_written_on_green_reaches_a_mariadb_blue_exactly_or_is_refused_at_the_write() {
    corpus_back(Flavor::MariaDb10_11).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_type_corpus_written_on_green_reaches_an_oracle_mysql_9_7_blue_exactly_or_is_refused_at_the_write() {
    corpus_back(Flavor::MySql9_7).await;
}

async fn corpus_back(flavor: Flavor) {
    let (blue, green, db, _) = corpus_pair(flavor).await;
    let dir = tempfile::tempdir().expect("tmp");
    let toml = "[cutover]\nfence = \"read-only\"\nswitch = \"command\"\n[cutover.command]\nargv = [\"/bin/true\"]\nback_argv = [\"/bin/true\"]\n";
    let mut t = Turnout::with_config(dir.path(), &blue.url(&db), &green.url(&db), toml);
    t.start();
    common::wait_streaming(&mut t).await;
    let (code, out) = common::turnout_command(&t, "cutover", &["--when-lag", "<1s"]).await;
    assert_eq!(code, 0, "{out}\n{}", t.log_text());
    common::wait_for(&mut t, "the stream back", |t| t.status().filter(|v| v["direction"] == "reverse" && v["phase"] == "streaming")).await;

    // Every value beyond blue's type is refused at the application's statement on green.
    let client = green.connect(&db).await.expect("green");
    let mut accepted = Vec::new();
    for (i, (column, value, what)) in BEYOND_BLUE.iter().enumerate() {
        let sql = format!("INSERT INTO \"{db}\".types (id, {column}) VALUES ({}, {value})", 1000 + i);
        match client.batch_execute(&sql).await {
            Ok(()) => accepted.push(format!("{what}: {sql}")),
            Err(e) => {
                // A CHECK of the guard or the type map, or the PostgreSQL type itself: out of range,
                // too long, a date or time stamp it cannot hold, text it cannot read as the type.
                let code = e.code().map(|c| c.code().to_owned()).unwrap_or_default();
                assert!(["23514", "22003", "22001", "22008", "22007", "22P02", "22015"].contains(&code.as_str()), "{what}: refused for another reason: {e:?}");
            }
        }
    }
    assert!(accepted.is_empty(), "green took {} value(s) blue cannot hold:\n{}", accepted.len(), accepted.join("\n"));

    // Every edge value of every type, written on green: inserted, updated (each row takes another's
    // values, a key among them) and deleted — blue holds green's corpus exactly after each step.
    let q = format!("\"{db}\"");
    let set = CORPUS.iter().map(|(c, _, _)| format!("{c} = o.{c}")).collect::<Vec<_>>().join(", ");
    let plain = CORPUS.iter().map(|(c, _, _)| c.to_string()).collect::<Vec<_>>().join(", ");
    let steps = [
        format!("INSERT INTO {q}.types (id, {plain}) SELECT id + 10, {plain} FROM {q}.types WHERE id <= 4"),
        format!("UPDATE {q}.types t SET {set} FROM {q}.types o WHERE o.id = 5 - (t.id - 10) AND t.id BETWEEN 11 AND 14"),
        format!("UPDATE {q}.types SET id = id + 100 WHERE id = 12; DELETE FROM {q}.types WHERE id IN (1, 13)"),
        format!(
            "BEGIN; INSERT INTO {q}.types (id, {plain}) SELECT id + 20, {plain} FROM {q}.types WHERE id IN (2, 4); DELETE FROM {q}.types WHERE id = 24; COMMIT"
        ),
    ];
    for step in &steps {
        client.batch_execute(step).await.unwrap_or_else(|e| panic!("{step}: {e:?}"));
        corpus_arrives(&blue, &green, &db, &mut t).await;
    }
    assert!(t.status().is_some_and(|v| v["direction"] == "reverse" && v["phase"] == "streaming"), "the stream back stopped\n{}", t.log_text());
    let (code, out) = common::turnout_command(&t, "verify", &[]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("types") && !out.contains("DIFFERS"), "{out}");
    t.sigterm();
}
