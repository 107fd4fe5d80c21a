//! The type matrix: every PostgreSQL type turnout must carry exactly — with its type modifier, in a
//! composite primary key, a plain column, an array, a composite, a domain and an array of that domain —
//! through every path rows take to green: the snapshot (COPY), inserts of ≥ 1,000 rows (COPY), small
//! inserts (unnest), multi-row UPDATE and DELETE by key (unnest joins), per-row statements (key
//! changes, REPLICA IDENTITY FULL tables) and UPDATEs that leave a TOASTed column unchanged. Blue and
//! green are compared by the text of every row, across version pairs (an older green too).
//!
//! Cases follow PostgreSQL's own regression and logical-replication suites (`src/test/regress`
//! type tests, `src/test/subscription/t/002_types.pl`): boundary values, special floats, infinities,
//! typmods that pad or round, domains over domains and a domain CHECK calling an SQL function.

use crate::common;

use common::*;
use turnout_testbed::PgServer;

/// One type under test.
struct TypeCase {
    /// Identifier used in table names (`m_<id>`).
    id: &'static str,
    /// The type as written in DDL, modifier included.
    sql: &'static str,
    /// Has a btree operator class, so it can be part of a primary key.
    btree: bool,
    /// Oldest major where the type (or one of the values) exists.
    min_major: u32,
    /// Small values (literals), distinct; used in keys.
    values: &'static [&'static str],
    /// A large value (kept out of keys: btree entries are limited to ~2.7 kB).
    large: Option<&'static str>,
}

const fn case(id: &'static str, sql: &'static str, btree: bool, values: &'static [&'static str]) -> TypeCase {
    TypeCase { id, sql, btree, min_major: 13, values, large: None }
}

const BIG_JSON: &str = "(SELECT json_build_object('n', json_agg(json_build_object('i', g, 's', repeat('é😀\\u0000x', 20), 'a', ARRAY[g, NULL])))::text FROM generate_series(1, 400) g)";

fn cases() -> Vec<TypeCase> {
    vec![
        case("bpchar3", "char(3)", true, &["'ab'", "'abc'", "''", "' x'"]),
        case("bpchar", "bpchar", true, &["'ab   '", "'x'"]),
        case("varchar5", "varchar(5)", true, &["'hello'", "'a b'", "''", "'é😀'"]),
        TypeCase {
            large: Some("repeat(md5('t'), 3000)"),
            ..case("text", "text", true, &["'x'", "E'tab\\there\\nnl \\\\ \"q\" \\'s'", "'ünï😀'", "'NULL'", "'\\N'", "'{a,b}'"])
        },
        case("qchar", "\"char\"", true, &["'a'", "'\\'", "''"]),
        case("name", "name", true, &["'a_name'", "'Mixed Case'"]),
        case("bit5", "bit(5)", true, &["B'10101'", "B'00000'", "B'11111'"]),
        case("varbit9", "varbit(9)", true, &["B'1'", "B'101010101'", "B''"]),
        case("int2", "smallint", true, &["-32768", "32767", "0"]),
        case("int4", "integer", true, &["-2147483648", "2147483647", "0"]),
        case("int8", "bigint", true, &["-9223372036854775808", "9223372036854775807", "0"]),
        case("float4", "real", true, &["'Infinity'", "'-Infinity'", "'NaN'", "'1.17549435e-38'", "'3.4028235e+38'", "'-0'", "'0.1'"]),
        case("float8", "double precision", true, &["'Infinity'", "'-Infinity'", "'NaN'", "'5e-324'", "'1.7976931348623157e308'", "'-0'", "'0.1'"]),
        case("numeric", "numeric", true, &["'NaN'", "'0.000000001'", "'-123456789012345678901234567890.123456789'", "'1e-20'", "'100.10'"]),
        TypeCase { min_major: 14, ..case("numinf", "numeric", true, &["'Infinity'", "'-Infinity'", "'1.5'"]) },
        case("numeric20_6", "numeric(20,6)", true, &["'12345678901234.123456'", "'-1.5'", "'0'"]),
        case("numeric5", "numeric(5,0)", true, &["'12345'", "'-7'"]),
        case("money", "money", true, &["'12.34'", "'-0.01'", "'92233720368547758.07'"]),
        case("bool", "boolean", true, &["true", "false"]),
        TypeCase { large: Some("decode(repeat('00ff10', 40000), 'hex')"), ..case("bytea", "bytea", true, &["'\\x00ff'", "''::bytea", "'\\x5c4e'"]) },
        case("date", "date", true, &["'2024-02-29'", "'infinity'", "'-infinity'", "'4713-01-01 BC'", "'5874897-12-31'"]),
        case("time0", "time(0)", true, &["'23:59:59'", "'00:00:00'"]),
        case("time", "time", true, &["'12:34:56.789012'", "'24:00:00'"]),
        case("timetz3", "timetz(3)", true, &["'12:34:56.789+05:30'", "'00:00:00-14:59'"]),
        case("timestamp3", "timestamp(3)", true, &["'2024-01-01 12:34:56.789'", "'infinity'", "'-infinity'", "'1999-12-31 23:59:59.999'"]),
        case("timestamptz", "timestamptz", true, &["'2024-02-29 12:34:56.789012+00'", "'-infinity'", "'0001-01-01 00:00:00+00'"]),
        case("interval_ds2", "interval day to second(2)", true, &["'1 day 02:03:04.56'", "'-3 days'", "'0'"]),
        case("interval", "interval", true, &["'1 year 2 mons -3 days 04:05:06.789'", "'0'", "'-178000000 years'"]),
        case("uuid", "uuid", true, &["'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "'00000000-0000-0000-0000-000000000000'"]),
        TypeCase {
            large: Some(BIG_JSON),
            ..case("json", "json", false, &["'{\"a\": [1, 2.50, \"\\u00e9\\ud83d\\ude00\"], \"b\": null,  \"a\": 2}'", "'[]'", "'\"x\"'"])
        },
        TypeCase {
            large: Some(BIG_JSON),
            ..case("jsonb", "jsonb", true, &["'{\"a\": [1, 2.50, \"\\u00e9\\ud83d\\ude00\"], \"b\": null}'", "'[]'", "'\"x\"'", "'1e400'"])
        },
        case("xml", "xml", false, &["'<a b=\"1\">t&amp;x</a>'", "'<r/>'"]),
        case("inet", "inet", true, &["'192.168.0.1/24'", "'::1'", "'10.1.2.3'"]),
        case("cidr", "cidr", true, &["'10.0.0.0/8'", "'2001:db8::/32'"]),
        case("macaddr", "macaddr", true, &["'08:00:2b:01:02:03'", "'ff:ff:ff:ff:ff:ff'"]),
        case("macaddr8", "macaddr8", true, &["'08:00:2b:01:02:03:04:05'"]),
        case("point", "point", false, &["'(1,2)'", "'(-1.5,1e+300)'"]),
        case("line", "line", false, &["'{1,-1,0}'"]),
        case("lseg", "lseg", false, &["'[(0,0),(1,1)]'"]),
        case("box", "box", false, &["'(1,1),(0,0)'"]),
        case("path", "path", false, &["'((0,0),(1,1),(2,0))'", "'[(0,0),(1,1)]'"]),
        case("polygon", "polygon", false, &["'((0,0),(1,1),(2,0))'"]),
        case("circle", "circle", false, &["'<(1,1),5>'"]),
        case("tsvector", "tsvector", true, &["'a fat cat'", "$$'x':1A 'y y':2$$"]),
        case("tsquery", "tsquery", true, &["'fat & (rat | cat)'", "'!a'"]),
        case("int4range", "int4range", true, &["'[1,10)'", "'empty'", "'(,5]'"]),
        case("int8range", "int8range", true, &["'[1,9223372036854775806]'", "'(-1,)'"]),
        case("numrange", "numrange", true, &["'(1.5,2.5]'", "'(,)'"]),
        case("tsrange", "tsrange", true, &["'[2024-01-01,2024-02-01)'", "'[-infinity,infinity]'"]),
        case("tstzrange", "tstzrange", true, &["'[2024-01-01 00:00+00,infinity)'"]),
        case("daterange", "daterange", true, &["'[2024-01-01,2024-12-31]'", "'empty'"]),
        TypeCase { min_major: 14, ..case("int4multirange", "int4multirange", true, &["'{[1,3),[5,7)}'", "'{}'"]) },
        TypeCase { min_major: 14, ..case("nummultirange", "nummultirange", true, &["'{(1.5,2.5]}'"]) },
        TypeCase { min_major: 14, ..case("datemultirange", "datemultirange", true, &["'{[2024-01-01,2024-02-01)}'"]) },
        case("mood", "mood", true, &["'sad'", "'happy'"]),
        case("outer_t", "outer_t", true, &["ROW(ROW(1, ARRAY['a', NULL, 'x,\"y\"'])::inner_t, 1.5, NULL)::outer_t", "ROW(NULL, NULL, 'w')::outer_t"]),
        case("pg_lsn", "pg_lsn", true, &["'16/B374D848'", "'0/0'"]),
        case("oid", "oid", true, &["4294967295", "0"]),
        case("posnum", "posnum", true, &["'1.5'", "'0.001'", "'999999999.999'"]),
        case("hstore", "hstore", true, &["'a=>1, \"b c\"=>NULL'", "''"]),
        case("citext", "citext", true, &["'MiXeD'", "'other'"]),
        case("ltree", "ltree", true, &["'a.b.c'", "''"]),
    ]
}

/// Types and functions the cases refer to.
const PRELUDE: &str = "
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE inner_t AS (x int, y text[]);
CREATE TYPE outer_t AS (i inner_t, z numeric, w text);
CREATE FUNCTION positive(numeric) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $1 > 0';
CREATE DOMAIN posnum AS numeric(12,3) CHECK (positive(VALUE));
";

const EXTENSIONS: &[&str] = &["hstore", "citext", "ltree"];

/// Extensions both servers can create.
async fn shared_extensions(blue: &PgServer, green: &PgServer) -> Vec<&'static str> {
    let mut out = Vec::new();
    for ext in EXTENSIONS {
        let mut both = true;
        for s in [blue, green] {
            let c = s.connect("postgres").await.expect("connect");
            let n: i64 = c.query_one("SELECT count(*) FROM pg_available_extensions WHERE name = $1", &[ext]).await.expect("extensions").get(0);
            both &= n > 0;
        }
        if both {
            out.push(*ext);
        } else {
            eprintln!("extension {ext} is not available on both servers: its type is not tested in this pair");
        }
    }
    out
}

/// `WITH vals(i, v) AS (VALUES (0, lit::T), …)` for a case.
fn vals(c: &TypeCase) -> String {
    let rows: Vec<String> = c.values.iter().enumerate().map(|(i, v)| format!("({i}, ({v})::{})", c.sql)).collect();
    format!("WITH vals(i, v) AS (VALUES {})", rows.join(", "))
}

/// DDL for one case: `m_` keyed by (value, id) (by id alone without btree), `x_` keyed by an array
/// and a composite of the type, `f_` without a key (REPLICA IDENTITY FULL).
fn ddl(c: &TypeCase) -> String {
    let (id, t) = (c.id, c.sql);
    let mut s = format!(
        "CREATE DOMAIN d_{id} AS {t} CHECK (length(VALUE::text) >= 0);
         CREATE TYPE c_{id} AS (a {t}, b {t}[], n int);
         CREATE TABLE m_{id} (k {t}, id int, v {t}, arr {t}[], comp c_{id}, dom d_{id}, darr d_{id}[], n int DEFAULT 0, pad text, PRIMARY KEY ({}));
         CREATE TABLE f_{id} (id int, v {t}, arr {t}[], comp c_{id}, dom d_{id}, n int DEFAULT 0);
         ALTER TABLE f_{id} REPLICA IDENTITY FULL;\n",
        if c.btree { "k, id" } else { "id" }
    );
    if c.btree {
        s.push_str(&format!("CREATE TABLE x_{id} (arr {t}[], comp c_{id}, v {t}, PRIMARY KEY (arr, comp));\n"));
    }
    s
}

/// Inserts rows `from..=to` into `m_` (and the matching `x_` rows): each row takes the value
/// `g mod n` as key and the next as its other columns; every 50th row carries a TOASTed pad and every
/// 50th + 25 the large value.
fn insert_rows(c: &TypeCase, from: i32, to: i32) -> String {
    let (id, t, n) = (c.id, c.sql, c.values.len());
    let large = c.large.map(|l| format!("({l})::{t}")).unwrap_or_else(|| "b.v".into());
    let mut s = format!(
        "{vals} INSERT INTO m_{id} (k, id, v, arr, comp, dom, darr, pad)
         SELECT a.v, g, CASE WHEN g % 50 = 25 THEN {large} ELSE b.v END, ARRAY[a.v, NULL, b.v], ROW(a.v, ARRAY[a.v, b.v], g)::c_{id},
                a.v, ARRAY[a.v, NULL]::d_{id}[],
                CASE WHEN g % 50 = 0 THEN (SELECT string_agg(md5(x::text || g), '') FROM generate_series(1, 1000) x) ELSE 'p' || g END
         FROM generate_series({from}, {to}) g JOIN vals a ON a.i = g % {n} JOIN vals b ON b.i = (g + 1) % {n};\n",
        vals = vals(c)
    );
    if c.btree {
        s.push_str(&format!("INSERT INTO x_{id} SELECT arr, comp, v FROM m_{id} WHERE id BETWEEN {from} AND {to};\n"));
    }
    s
}

/// The snapshot rows: 200 rows, a row of NULLs, and `f_` rows including an exact duplicate.
fn snapshot_rows(c: &TypeCase) -> String {
    let id = c.id;
    format!(
        "{}INSERT INTO m_{id} (k, id, v, arr, comp, dom, darr) SELECT k, 100000, NULL, NULL, ROW(NULL, NULL, NULL)::c_{id}, NULL, ARRAY[NULL]::d_{id}[] FROM m_{id} WHERE id = 0;
         INSERT INTO f_{id} (id, v, arr, comp, dom) SELECT id, v, arr, comp, dom FROM m_{id} WHERE id < 120;
         INSERT INTO f_{id} (id, v, arr, comp, dom) SELECT id, v, arr, comp, dom FROM m_{id} WHERE id = 1;
         INSERT INTO f_{id} (id) VALUES (NULL);\n",
        insert_rows(c, 0, 199)
    )
}

/// Changes while streaming, one transaction per step so each reaches green on its own path.
fn streaming_steps(c: &TypeCase) -> Vec<String> {
    let (id, n) = (c.id, c.values.len());
    let mut steps = vec![
        // ≥ 1,000 rows in one statement: COPY.
        insert_rows(c, 1000, 2199),
        // A few rows: INSERT … unnest.
        insert_rows(c, 3000, 3004),
        // Every column rewritten, key kept: multi-row UPDATE (rows with a TOASTed pad leave it unchanged).
        format!(
            "{vals} UPDATE m_{id} m SET v = b.v, arr = ARRAY[b.v, m.k], comp = ROW(b.v, ARRAY[m.k], m.id)::c_{id}, dom = b.v,
                    darr = ARRAY[b.v]::d_{id}[], n = m.n + 1
             FROM vals b WHERE b.i = (m.id + 2) % {n} AND m.id < 100000",
            vals = vals(c)
        ),
        // Only a small column changes; the TOASTed pad and the large values are not sent.
        format!("UPDATE m_{id} SET n = n + 10 WHERE id % 25 = 0"),
        // The key changes: one statement per row.
        format!("UPDATE m_{id} SET id = id + 200000 WHERE id % 7 = 3"),
        // Multi-row DELETE by key.
        format!("DELETE FROM m_{id} WHERE id % 5 = 4"),
        // No key: every row matched on all columns' text, exactly one row changed each time.
        format!("UPDATE f_{id} SET n = n + 1, v = NULL WHERE id % 2 = 0"),
        format!("UPDATE f_{id} SET n = n + 1 WHERE id = 1"),
        format!("DELETE FROM f_{id} WHERE id % 3 = 0"),
    ];
    if c.btree {
        steps.push(format!("UPDATE x_{id} SET v = NULL WHERE (comp).n % 3 = 1"));
        steps.push(format!("DELETE FROM x_{id} WHERE (comp).n % 3 = 0"));
    }
    steps
}

fn tables(c: &TypeCase) -> Vec<String> {
    let mut t = vec![format!("m_{}", c.id), format!("f_{}", c.id)];
    if c.btree {
        t.push(format!("x_{}", c.id));
    }
    t
}

/// Runs the whole matrix from a blue of `blue_major` to a green of `green_major`.
async fn type_matrix(blue_major: u32, green_major: u32) {
    // A pg_dump at least as new as blue, where turnout finds it without configuration.
    turnout_testbed::client_bin_dir(blue_major).expect("pg_dump");
    let (blue, green, db) = pair_versions(blue_major, green_major, "").await;
    let extensions = shared_extensions(&blue, &green).await;
    let cases: Vec<TypeCase> = cases()
        .into_iter()
        .filter(|c| c.min_major <= blue_major.min(green_major))
        .filter(|c| !EXTENSIONS.contains(&c.id) || extensions.contains(&c.id))
        .collect();
    let mut schema = String::from(PRELUDE);
    for ext in &extensions {
        schema.push_str(&format!("CREATE EXTENSION {ext};\n"));
    }
    for c in &cases {
        schema.push_str(&ddl(c));
    }
    blue.execute(&db, &schema).await.expect("schema");
    for c in &cases {
        blue.execute(&db, &snapshot_rows(c)).await.unwrap_or_else(|e| panic!("{}: snapshot rows: {e:?}", c.id));
    }
    let all: Vec<String> = cases.iter().flat_map(tables).collect();
    let names: Vec<&str> = all.iter().map(String::as_str).collect();
    let (_dir, mut t) = running(&blue, &green, &db).await;
    assert_converges(&blue, &green, &db, &names, &mut t).await;
    let mut statements = 0;
    for c in &cases {
        for step in streaming_steps(c) {
            blue.execute(&db, &step).await.unwrap_or_else(|e| panic!("{}: {step}: {e:?}", c.id));
            statements += 1;
        }
    }
    assert_converges(&blue, &green, &db, &names, &mut t).await;
    // Every path was really taken.
    let log = t.log_text();
    assert!(log.contains("inserting with COPY"), "no insert went through COPY\n{log}");
    let row_count = |server: &PgServer| {
        let url = server.url(&db);
        let all = all.clone();
        async move {
            let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connect");
            tokio::spawn(conn);
            let mut n = 0i64;
            for t in &all {
                n += c.query_one(&format!("SELECT count(*) FROM {t}"), &[]).await.expect("count").get::<_, i64>(0);
            }
            n
        }
    };
    let rows = row_count(&green).await;
    eprintln!(
        "type matrix {blue_major} -> {green_major}: {} types, {} tables, {statements} streamed statements, {rows} rows equal on both sides",
        cases.len(),
        all.len()
    );
    assert_eq!(t.sigterm(), Some(0), "{}", t.log_text());
}

#[tokio::test]
async fn every_type_arrives_exactly_from_15_to_17() {
    type_matrix(15, 17).await;
}

#[tokio::test]
async fn every_type_arrives_exactly_from_13_to_18() {
    type_matrix(13, 18).await;
}

#[tokio::test]
async fn every_type_arrives_exactly_from_18_down_to_16() {
    type_matrix(18, 16).await;
}
