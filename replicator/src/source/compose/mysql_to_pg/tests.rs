//! The type map and the value converter on byte-built values (the real servers' behaviour is in
//! `replicator/tests/mysql_to_postgres.rs`).

use super::*;
use bytes::Bytes;
use turnout_decoders::TableName;

fn column(name: &str, column_type: &str, charset: Option<&str>) -> BlueColumn {
    let encoding = (charset == Some("latin1")).then(|| std::sync::Arc::new(crate::source::compose::charset::tests::latin1()));
    BlueColumn { charset: charset.map(Into::into), encoding, nullable: true, ..BlueColumn::own(name, column_type) }
}

fn table(columns: Vec<BlueColumn>) -> BlueTable {
    BlueTable { heartbeat: false, ..BlueTable::own(TableName::new("shop", "t"), columns, "id") }
}

fn green_of(c: &BlueColumn) -> (String, Class) {
    match MySqlToPg::default().map(&table(vec![c.clone()]), c) {
        Mapping::Mapped { green, class, .. } => (green, class),
        Mapping::Refused { why } => (why, Class::Lossy),
    }
}

#[test]
fn every_mapped_type_goes_where_the_table_in_the_module_docs_says() {
    let cases = [
        ("tinyint(4)", None, "smallint", Class::Exact),
        ("tinyint(1)", None, "smallint", Class::Exact),
        ("tinyint(3) unsigned", None, "smallint", Class::Exact),
        ("smallint(6)", None, "smallint", Class::Exact),
        ("smallint(5) unsigned", None, "integer", Class::Exact),
        ("mediumint(9)", None, "integer", Class::Exact),
        ("int(11)", None, "integer", Class::Exact),
        ("int unsigned", None, "bigint", Class::Exact),
        ("bigint(20)", None, "bigint", Class::Exact),
        ("bigint(20) unsigned", None, "numeric(20,0)", Class::Exact),
        ("decimal(65,30)", None, "numeric(65,30)", Class::Exact),
        ("float", None, "real", Class::Exact),
        ("double", None, "double precision", Class::Exact),
        ("date", None, "date", Class::Lossy),
        ("datetime(6)", None, "timestamp(6) without time zone", Class::Lossy),
        ("timestamp", None, "timestamp(0) with time zone", Class::Lossy),
        ("time(3)", None, "interval", Class::Widened),
        ("year(4)", None, "smallint", Class::Exact),
        ("varchar(20)", Some("utf8mb4"), "varchar(20)", Class::Lossy),
        ("longtext", Some("utf8mb3"), "text", Class::Lossy),
        ("varbinary(16)", None, "bytea", Class::Exact),
        ("binary(4)", None, "bytea", Class::Exact),
        ("mediumblob", None, "bytea", Class::Exact),
        ("point", None, "point", Class::Lossy),
        ("bit(3)", None, "bit(3)", Class::Exact),
        ("bit(64)", None, "bit(64)", Class::Exact),
        ("geometry", None, "point", Class::Lossy),
        ("json", None, "jsonb", Class::Lossy),
    ];
    for (ty, charset, green, class) in cases {
        assert_eq!(green_of(&column("c", ty, charset)), (green.to_owned(), class), "{ty}");
    }
    assert_eq!(green_of(&column("c", "char(2)", Some("utf8mb4"))), ("varchar(2)".to_owned(), Class::Lossy));
    assert_eq!(green_of(&column("c", "char(2)", Some("latin1"))), ("varchar(2)".to_owned(), Class::Lossy));
    assert_eq!(green_of(&column("c", "varchar(20)", Some("latin1"))), ("varchar(20)".to_owned(), Class::Lossy));
    for (ty, charset) in [
        ("char(2)", Some("latin2")),
        ("varchar(20)", Some("cp1251")),
        ("enum('a','{}')", Some("utf8mb4")),
        ("polygon", None),
        ("linestring", None),
        ("geometrycollection", None),
        ("year(2)", None),
    ] {
        let c = column("c", ty, charset);
        assert!(matches!(MySqlToPg::default().map(&table(vec![c.clone()]), &c), Mapping::Refused { .. }), "{ty} is refused");
    }
    let generated = BlueColumn { generated: true, ..column("c", "int(11)", None) };
    assert!(matches!(MySqlToPg::default().map(&table(vec![generated.clone()]), &generated), Mapping::Refused { why } if why.contains("generated int(11)")));
    // A BIGINT UNSIGNED key is green's bigint, so that the keys referring to it are of its type.
    let key = column("id", "bigint(20) unsigned", None);
    assert_eq!(
        MySqlToPg::default().map(&table(vec![key.clone()]), &key),
        Mapping::Mapped {
            green: "bigint".into(),
            class: Class::Lossy,
            note: "a key: bigint like every key it refers to or is referred by, values above 2⁶³ − 1 refused",
            affected: Some(Affected::AboveSigned),
            accepted: None
        }
    );
}

#[test]
fn green_keeps_blues_range_with_a_check_and_blues_nullability() {
    let mut id = column("id", "int(11)", None);
    id.nullable = false;
    let t = table(vec![id, column("u", "bigint(20) unsigned", None), column("y", "year(4)", None), column("b", "binary(4)", None)]);
    let green = MySqlToPg::default().green(&t).expect("mapped");
    assert_eq!(
        green.definitions,
        vec![
            r#""id" integer NOT NULL"#.to_owned(),
            r#""u" numeric(20,0) CHECK ("u" BETWEEN 0 AND 18446744073709551615)"#.to_owned(),
            r#""y" smallint CHECK ("y" = 0 OR "y" BETWEEN 1901 AND 2155)"#.to_owned(),
            r#""b" bytea CHECK (octet_length("b") = 4)"#.to_owned(),
        ]
    );
    assert_eq!(green.schema.columns[1].ty, ColumnType::pg(oid::NUMERIC, (20 << 16) + 4));
    assert!(green.schema.columns[0].is_key && !green.schema.columns[1].is_key);
    let refused = MySqlToPg::default().green(&table(vec![column("id", "int", None), column("note", "multipolygon", None)])).err().map(|e| e.to_string());
    assert_eq!(
        refused.as_deref(),
        Some(
            "column note of shop.t is multipolygon on blue: turnout does not carry multipolygon from MySQL/MariaDB to PostgreSQL yet; leave the table \
             out (tables.exclude = [\"shop.t\"])"
        )
    );
}

#[test]
fn values_arrive_exactly_or_stop_naming_row_column_and_value() {
    let t = table(vec![
        column("id", "int(11)", None),
        column("u", "bigint(20) unsigned", None),
        column("d", "datetime(3)", None),
        column("s", "varchar(8)", Some("utf8mb4")),
        column("f", "float", None),
    ]);
    let temporal = |t: &str| Value::Temporal(TemporalKind::Timestamp, Utf8Bytes::from(t));
    let row = MySqlToPg::default()
        .row(
            &t,
            vec![
                Value::Int8(-1),
                Value::UInt8(u64::MAX),
                temporal("2024-02-29 23:59:59.500"),
                Value::Bytes(Bytes::from_static("é".as_bytes())),
                Value::Float4(0.1),
            ],
        )
        .expect("exact values");
    assert_eq!(
        row,
        vec![
            Value::Int4(-1),
            Value::Numeric(Utf8Bytes::from("18446744073709551615")),
            temporal("2024-02-29 23:59:59.500"),
            Value::Text(Utf8Bytes::from("é")),
            Value::Float4(0.1)
        ]
    );
    let zero = MySqlToPg::default()
        .row(&t, vec![Value::Int8(7), Value::Null, temporal("0000-00-00 00:00:00"), Value::Null, Value::Null])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(zero.starts_with("shop.t.d (id = 7) holds '0000-00-00 00:00:00' on blue, which PostgreSQL cannot hold exactly as timestamp(3)"), "{zero}");
    let partial = MySqlToPg::default().row(&t, vec![Value::Int8(8), Value::Null, temporal("2024-00-10 00:00:00"), Value::Null, Value::Null]);
    assert!(partial.is_err(), "a zero month is refused");
    let nul = MySqlToPg::default()
        .row(&t, vec![Value::Int8(9), Value::Null, Value::Null, Value::Bytes(Bytes::from_static(b"a\0b")), Value::Null])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(nul.starts_with("shop.t.s (id = 9) holds 0x610062 on blue"), "{nul}");
    let latin = MySqlToPg::default().row(&t, vec![Value::Int8(10), Value::Null, Value::Null, Value::Bytes(Bytes::from_static(b"\xe9")), Value::Null]);
    assert!(latin.is_err(), "bytes that are not UTF-8 are refused");
    let kind = MySqlToPg::default().row(&t, vec![Value::Text(Utf8Bytes::from("x")), Value::Null, Value::Null, Value::Null, Value::Null]);
    assert!(kind.is_err(), "a value of another kind is refused");
    let short = MySqlToPg::default().row(&t, vec![Value::Int8(1)]);
    assert!(short.is_err(), "a row of the wrong width is refused");
}

#[test]
fn zero_dates_are_told_from_real_ones() {
    for zero in ["0000-00-00", "0000-00-00 00:00:00", "2024-00-10", "2024-01-00 10:00:00", "0000-01-01"] {
        assert!(zero_date(zero), "{zero}");
    }
    for real in ["0001-01-01", "2024-02-29 23:59:59.999999", "9999-12-31", "1000-01-01 00:00:00"] {
        assert!(!zero_date(real), "{real}");
    }
}

#[test]
fn latin1_bytes_arrive_as_windows_1252_with_its_five_holes_as_c1_controls() {
    let t = table(vec![column("id", "int(11)", None), column("s", "varchar(300)", Some("latin1"))]);
    let all: Vec<u8> = (1..=255).collect();
    let row = MySqlToPg::default().row(&t, vec![Value::Int8(1), Value::Bytes(Bytes::from(all))]).expect("every byte but 0");
    let Value::Text(text) = &row[1] else { panic!("{row:?}") };
    let chars: Vec<char> = text.as_str().chars().collect();
    assert_eq!(chars.len(), 255, "one character per byte");
    assert_eq!((chars[0x41 - 1], chars[0x80 - 1], chars[0x81 - 1], chars[0x9F - 1], chars[0xE9 - 1]), ('A', '€', '\u{81}', 'Ÿ', 'é'));
    // A bijection: no two bytes give one character.
    let distinct: std::collections::BTreeSet<char> = chars.iter().copied().collect();
    assert_eq!(distinct.len(), 255);
    let err = MySqlToPg::default().row(&t, vec![Value::Int8(2), Value::Bytes(Bytes::from_static(b"a\0b"))]).expect_err("NUL");
    assert!(err.to_string().contains("cannot hold the byte 0"), "{err}");
}

#[test]
fn enum_and_set_members_are_read_as_blue_prints_them_and_arrive_as_their_text() {
    assert_eq!(
        members::members("enum('a','it''s','a,b','back\\\\slash','')"),
        Some(vec!["a".into(), "it's".into(), "a,b".into(), "back\\slash".into(), String::new()])
    );
    assert_eq!(members::members("enum('a',b)"), None);
    assert_eq!(members::members("enum('a'"), None);
    let t = table(vec![column("id", "int(11)", None), column("r", "enum('G','PG')", Some("utf8mb4")), column("s", "set('a','b','c')", Some("utf8mb4"))]);
    let row = MySqlToPg::default().row(&t, vec![Value::Int8(1), Value::UInt8(2), Value::UInt8(0b101)]).expect("members");
    assert_eq!(row[1..], [Value::Text(Utf8Bytes::from("PG")), Value::Text(Utf8Bytes::from("a,c"))]);
    let row = MySqlToPg::default().row(&t, vec![Value::Int8(1), Value::UInt8(0), Value::UInt8(0)]).expect("error value, empty set");
    assert_eq!(row[1..], [Value::Text(Utf8Bytes::from("")), Value::Text(Utf8Bytes::from(""))]);
    assert!(MySqlToPg::default().row(&t, vec![Value::Int8(1), Value::UInt8(3), Value::Null]).is_err(), "no member 3");
    assert!(MySqlToPg::default().row(&t, vec![Value::Int8(1), Value::Null, Value::UInt8(0b1000)]).is_err(), "no bit 3");
    let green = MySqlToPg::default().green(&t).expect("mapped");
    assert_eq!(green.definitions[1], r#""r" text CHECK ("r" IN ('', 'G', 'PG'))"#);
    // The members, and (the way back's guard) in blue's order, each once.
    assert_eq!(
        green.definitions[2],
        r#""s" text CHECK (("s" = '' OR string_to_array("s", ',') <@ ARRAY['a', 'b', 'c']::text[]) AND ("s" ~ '^(?:a(?:,(?=.)|$))?(?:b(?:,(?=.)|$))?(?:c(?:,(?=.)|$))?$'))"#
    );
}

#[test]
fn an_action_green_repeats_is_refused_over_a_column_blue_compares_by_a_collation_and_long_names_are_cut() {
    let code = |collation: &str| BlueColumn { collation: Some(collation.into()), ..column("code", "varchar(3)", Some("utf8mb4")) };
    let child = |collation: &str, logged: bool, name: &str| {
        let mut t = table(vec![column("id", "int", None), code(collation)]);
        t.foreign_keys.push(crate::source::compose::BlueForeignKey {
            name: name.into(),
            columns: vec!["code".into()],
            parent: TableName::new("shop", "country"),
            parent_columns: vec!["code".into()],
            on_update: "CASCADE".into(),
            on_delete: "RESTRICT".into(),
            actions_logged: logged,
        });
        t
    };
    let refused = MySqlToPg::default().green(&child("utf8mb4_general_ci", false, "fk")).expect_err("refused").to_string();
    assert!(refused.contains("foreign key fk of shop.t acts on code, which blue compares by utf8mb4_general_ci"), "{refused}");
    assert!(MySqlToPg::default().green(&child("utf8mb4_bin", false, "fk")).is_err(), "MariaDB's utf8mb4_bin pads");
    assert!(MySqlToPg::default().green(&child("utf8mb4_nopad_bin", false, "fk")).is_ok());
    // Where blue logs its actions, green applies blue's rows and repeats nothing.
    assert!(MySqlToPg::default().green(&child("utf8mb4_0900_ai_ci", true, "fk")).is_ok());
    // A 64-character name is cut to PostgreSQL's 63 bytes in both statements that name it.
    let long = "f".repeat(64);
    let green = MySqlToPg::default().green(&child("utf8mb4_nopad_bin", false, &long)).expect("mapped");
    let cut = "f".repeat(63);
    assert!(green.references[0].contains(&format!("ADD CONSTRAINT \"{cut}\" FOREIGN KEY")), "{:?}", green.references);
    assert!(green.references[1].contains(&format!("c.conname = '{cut}'")) && green.references[1].contains("RAISE EXCEPTION"), "{:?}", green.references);
}

#[test]
fn a_json_document_arrives_as_jsonb_prints_it_from_the_stream_and_the_copy_or_is_refused_by_row() {
    let t = table(vec![column("id", "int(11)", None), column("doc", "json", None)]);
    let convert = |v: Value| MySqlToPg::default().row(&t, vec![Value::Int8(3), v]).map_err(|e| e.to_string());
    let jsonb = |text: &str| Ok(vec![Value::Int4(3), Value::Json { jsonb: true, text: Utf8Bytes::from(text) }]);
    // The binlog's text, the copy's (bytes), and a document whose typed scalars are DECIMALs.
    assert_eq!(convert(Value::Json { jsonb: false, text: r#"{"b": 1e2, "a": 1}"#.into() }), jsonb(r#"{"a": 1, "b": 100}"#));
    assert_eq!(convert(Value::Bytes(Bytes::from_static(br#"[1.50, "x"]"#))), jsonb(r#"[1.50, "x"]"#));
    let decimal = Value::TypedJson { text: "[1.50]".into(), sql: "JSON_ARRAY(CAST('1.50' AS DECIMAL(3,2)))".into() };
    assert_eq!(convert(decimal), jsonb("[1.50]"));
    // Typed dates, from either path, U+0000 and a negative zero: refused naming row and column.
    for refused in [
        Value::TypedJson { text: r#"["2024-01-01"]"#.into(), sql: "JSON_ARRAY(CAST('2024-01-01' AS DATE))".into() },
        Value::Bytes(Bytes::from_static(b"\0[\"2024-01-01\"]")),
        Value::Json { jsonb: false, text: r#"["a\u0000"]"#.into() },
        Value::Json { jsonb: false, text: "[-0.0]".into() },
    ] {
        let why = convert(refused.clone()).expect_err("refused");
        assert!(why.starts_with("shop.t.doc (id = 3) holds"), "{refused:?}: {why}");
    }
    assert!(convert(Value::Bytes(Bytes::from_static(b"\0[\"2024-01-01\"]"))).expect_err("typed").contains("typed DATE, TIME or DATETIME"));
}

#[test]
fn a_single_byte_set_is_decoded_as_blue_converts_it_and_a_byte_without_a_character_is_counted_and_refused() {
    // A set of blue's whose byte 0x98 converts to `?` (as cp1251's does): not a round trip.
    let mut converted: Vec<crate::source::compose::charset::Converted> =
        (0..=255u8).map(|b| (b, Some(char::from(b).to_string().into_bytes()), Some(vec![b]))).collect();
    converted[0x98] = (0x98, Some(b"?".to_vec()), Some(b"?".to_vec()));
    let set = crate::source::compose::charset::Encoding::from_blue("cp1251".into(), &converted, vec![14, 51, 52]).expect("a set");
    let c = BlueColumn { encoding: Some(std::sync::Arc::new(set)), ..column("s", "varchar(10)", Some("cp1251")) };
    let t = table(vec![column("id", "int(11)", None), c.clone()]);
    let Mapping::Mapped { affected, .. } = MySqlToPg::default().map(&t, &c) else { panic!("mapped") };
    assert_eq!(affected, Some(Affected::NulOrUnconverted));
    let row = MySqlToPg::default().row(&t, vec![Value::Int8(1), Value::Bytes(Bytes::from_static(b"a\xE9"))]).expect("decoded");
    assert_eq!(row[1], Value::Text("aé".into()));
    let err = MySqlToPg::default().row(&t, vec![Value::Int8(2), Value::Bytes(Bytes::from_static(b"a\x98"))]).expect_err("0x98");
    assert!(err.to_string().contains("converts to no character of their own") && err.to_string().contains("id = 2"), "{err}");
    // A multi-byte set blue's catalog names whose conversion is blue's own table: refused by name.
    let sjis = column("j", "varchar(10)", Some("sjis"));
    assert!(matches!(MySqlToPg::default().map(&table(vec![column("id", "int(11)", None), sjis.clone()]), &sjis), Mapping::Refused { .. }));
}

#[test]
fn a_unicode_encoding_is_decoded_by_its_standard_its_padding_and_u0000_found_by_character() {
    let utf16 = || std::sync::Arc::new(crate::source::compose::charset::Encoding::unicode("utf16", vec![54]).expect("utf16"));
    let c = BlueColumn { encoding: Some(utf16()), ..column("c", "char(4)", Some("utf16")) };
    let v = BlueColumn { encoding: Some(utf16()), ..column("v", "varchar(10)", Some("utf16")) };
    let t = table(vec![column("id", "int(11)", None), c.clone(), v.clone()]);
    let Mapping::Mapped { affected, .. } = MySqlToPg::default().map(&t, &v) else { panic!("mapped") };
    assert_eq!(affected, Some(Affected::NulOrUnconverted), "unpaired surrogates are counted with U+0000");
    let utf16_of = |s: &str| Bytes::from(s.encode_utf16().flat_map(u16::to_be_bytes).collect::<Vec<u8>>());
    // 'A' (00 41), U+2020 (20 20) and U+0120 (01 20) hold the bytes 0 and 0x20: none is padding or NUL.
    let row = MySqlToPg::default()
        .row(&t, vec![Value::Int8(1), Value::Bytes(utf16_of("A\u{2020}\u{120}  ")), Value::Bytes(utf16_of("😀 \u{120}"))])
        .expect("decoded");
    assert_eq!(row[1], Value::Text("A\u{2020}\u{120}".into()), "a CHAR without its trailing spaces, by character");
    assert_eq!(row[2], Value::Text("😀 \u{120}".into()));
    let nul = MySqlToPg::default().row(&t, vec![Value::Int8(2), Value::Bytes(utf16_of("a")), Value::Bytes(utf16_of("a\0b"))]).expect_err("U+0000");
    assert!(nul.to_string().contains("cannot hold the byte 0") && nul.to_string().contains("id = 2"), "{nul}");
    let lone = MySqlToPg::default()
        .row(&t, vec![Value::Int8(3), Value::Bytes(utf16_of("a")), Value::Bytes(Bytes::from_static(&[0xD8, 0x3D, 0x00, 0x41]))])
        .expect_err("a lone surrogate");
    assert!(lone.to_string().contains("no character of their own") && lone.to_string().contains("id = 3"), "{lone}");
}
