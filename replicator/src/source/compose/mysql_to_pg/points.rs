//! Spatial values: a MySQL/MariaDB `POINT` with SRID 0 as PostgreSQL's built-in `point`.
//!
//! Blue holds a geometry as its SRID (4 bytes, little-endian) followed by its WKB; the binlog and
//! the binary protocol carry those bytes alike. A point of SRID 0 is two IEEE 754 doubles, and so is
//! PostgreSQL's `point`: the coordinates arrive bit for bit. Another shape or SRID has no value in
//! a green without PostGIS, and is refused by value (and counted by `check`). Green's text of a
//! point is `(x,y)` with each coordinate in its shortest exact decimal.

use super::{Affected, Class, GreenType};
use turnout_decoders::pg::types::oid;
use turnout_decoders::pg::types::point_coordinates as coordinates;
use turnout_decoders::value::Utf8Bytes;
use turnout_decoders::Value;

/// Green's type of a `POINT` (`any: false`) or `GEOMETRY` (`any: true`) column.
pub(super) fn green(any: bool) -> GreenType {
    GreenType {
        ddl: "point".into(),
        oid: oid::POINT,
        typmod: -1,
        check: Some("abs({}[0]) < 'Infinity' AND abs({}[1]) < 'Infinity'".into()),
        class: Class::Lossy,
        note: if any {
            "POINTs of SRID 0 only (two float8, as blue's); other shapes and SRIDs refused (no PostGIS mapping)"
        } else {
            "two float8, as blue's; SRIDs other than 0 refused (no PostGIS mapping)"
        },
        affected: Some(Affected::NotPlanePoint),
    }
}

/// WKB's type of a point.
const WKB_POINT: u32 = 1;

/// Green's `(x,y)` of blue's geometry bytes, or why it has none.
pub(super) fn point(bytes: &[u8]) -> Result<Value, &'static str> {
    let [s0, s1, s2, s3, order, rest @ ..] = bytes else { return Err(NOT_A_POINT) };
    if u32::from_le_bytes([*s0, *s1, *s2, *s3]) != 0 {
        return Err("a geometry with an SRID other than 0 has no PostgreSQL point (a green without PostGIS); make it SRID 0 on blue or leave the table out");
    }
    let little = match order {
        1 => true,
        0 => false,
        _ => return Err(NOT_A_POINT),
    };
    let word = |b: &[u8]| -> Option<[u8; 4]> { b.get(..4)?.try_into().ok() };
    let double = |b: &[u8]| -> Option<f64> {
        let b: [u8; 8] = b.get(..8)?.try_into().ok()?;
        Some(if little { f64::from_le_bytes(b) } else { f64::from_be_bytes(b) })
    };
    let kind = word(rest).map(|w| if little { u32::from_le_bytes(w) } else { u32::from_be_bytes(w) });
    if kind != Some(WKB_POINT) || rest.len() != 20 {
        return Err(NOT_A_POINT);
    }
    match (double(&rest[4..]), double(&rest[12..])) {
        (Some(x), Some(y)) if x.is_finite() && y.is_finite() => Ok(Value::Text(Utf8Bytes::from_string(format!("({x:?},{y:?})")))),
        _ => Err("a point that is not two finite numbers: report it"),
    }
}

const NOT_A_POINT: &str = "only a POINT has a PostgreSQL type without PostGIS; make the column POINT values only on blue, or leave the table out";

/// Blue's geometry bytes (SRID 0, little-endian WKB) of green's `(x,y)`.
pub(super) fn geometry(text: &str) -> Option<Value> {
    let (x, y) = coordinates(text)?;
    let mut out = Vec::with_capacity(25);
    out.extend_from_slice(&0u32.to_le_bytes());
    out.push(1);
    out.extend_from_slice(&WKB_POINT.to_le_bytes());
    out.extend_from_slice(&x.to_le_bytes());
    out.extend_from_slice(&y.to_le_bytes());
    Some(Value::Bytes(out.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wkb(srid: u32, little: bool, kind: u32, x: f64, y: f64) -> Vec<u8> {
        let mut b = srid.to_le_bytes().to_vec();
        b.push(u8::from(little));
        if little {
            b.extend_from_slice(&kind.to_le_bytes());
            b.extend_from_slice(&x.to_le_bytes());
            b.extend_from_slice(&y.to_le_bytes());
        } else {
            b.extend_from_slice(&kind.to_be_bytes());
            b.extend_from_slice(&x.to_be_bytes());
            b.extend_from_slice(&y.to_be_bytes());
        }
        b
    }

    #[test]
    fn a_point_of_srid_0_arrives_bit_for_bit_and_goes_back_as_the_same_bytes() {
        for (x, y) in [(0.0, -0.0), (1.5, -2.25), (f64::MAX, f64::MIN_POSITIVE), (0.1, 1e-300), (-73.98, 40.75)] {
            let bytes = wkb(0, true, 1, x, y);
            let Ok(Value::Text(t)) = point(&bytes) else { panic!("({x},{y}) converts") };
            let (gx, gy) = coordinates(t.as_str()).expect("green's text parses");
            assert_eq!((gx.to_bits(), gy.to_bits()), (x.to_bits(), y.to_bits()), "{t}");
            assert_eq!(geometry(t.as_str()), Some(Value::Bytes(bytes.into())));
            assert_eq!(point(&wkb(0, false, 1, x, y)), Ok(Value::Text(t)), "big-endian WKB");
        }
        // PostgreSQL's own spelling of a point.
        assert_eq!(coordinates("(1e+300,-0)").map(|(x, y)| (x, y.to_bits())), Some((1e300, (-0.0f64).to_bits())));
    }

    #[test]
    fn other_shapes_srids_and_broken_bytes_are_refused() {
        assert!(point(&wkb(4326, true, 1, 1.0, 2.0)).expect_err("another SRID").contains("SRID"));
        assert!(point(&wkb(0, true, 2, 1.0, 2.0)).expect_err("a line").contains("only a POINT"));
        assert!(point(&wkb(0, true, 1, f64::NAN, 2.0)).is_err());
        assert!(point(&wkb(0, true, 1, 1.0, 2.0)[..20]).is_err());
        assert!(point(&[]).is_err());
        assert_eq!(coordinates("(NaN,1)"), None);
        assert_eq!(coordinates("(1,2"), None);
    }
}
