//! What blue's and green's schema objects have in common is compared the same way for every source:
//! each side describes its objects as `key → description` (the per-source `drift` modules say which
//! objects and how), and every key one side lacks or describes differently is a line naming the
//! object and the fix. The cutover refuses while any line remains; `check` shows them.

use std::collections::BTreeMap;

/// Every compared object of one side: a key naming the object → its description.
pub type Objects = BTreeMap<String, String>;

/// One line per object missing on green, on green only, or described differently.
pub fn compare(blue: &Objects, green: &Objects) -> Vec<String> {
    let mut out = Vec::new();
    for (key, b) in blue {
        match green.get(key) {
            None => out.push(format!("{key} is on blue but not on green: create it on green as on blue")),
            Some(g) if g != b => out.push(format!("{key} differs: blue has `{b}`, green has `{g}`; change green's to blue's")),
            Some(_) => {}
        }
    }
    for key in green.keys().filter(|k| !blue.contains_key(*k)) {
        out.push(format!("{key} is on green but not on blue: drop it on green, or create it on blue"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_missing_extra_or_changed_object_is_named_with_its_fix() {
        let blue: Objects = [("index `t`.`i`", "BTREE (a)"), ("view `v`", "DEFINER select 1"), ("column `t`.`a`", "int(11) NULL")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let mut green = blue.clone();
        assert!(compare(&blue, &green).is_empty());
        green.remove("index `t`.`i`");
        green.insert("view `v`".into(), "DEFINER select 2".into());
        green.insert("routine `FUNCTION f`".into(), "x".into());
        let lines = compare(&blue, &green);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].starts_with("index `t`.`i` is on blue but not on green"));
        assert!(lines[1].contains("view `v` differs") && lines[1].contains("select 2"));
        assert!(lines[2].starts_with("routine `FUNCTION f` is on green but not on blue"));
    }
}
