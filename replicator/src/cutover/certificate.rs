//! The certificate of a cutover, a rollback or a rehearsal: what happened, from the journal it came
//! from, in a JSON document whose digest and signature an auditor can check without turnout's state
//! (`turnout certificate FILE`).
//!
//! Guarantees:
//! - `digest` is the SHA-256 of the document's canonical JSON (every object's keys in byte order,
//!   no whitespace) without `digest` and `signature`: changing, adding or removing any field breaks
//!   it ([`check`]). The digest has no key: it shows a file was changed by accident or by someone
//!   who did not recompute it; against someone who would, only a signature by a key the checker
//!   pins (`--public-key`) holds.
//! - `journal.sha256` is the SHA-256 over the journal entries the cutover wrote until it ended, each
//!   as stored and preceded by its length (8 bytes, big-endian), in the order written: the
//!   certificate names the exact record it summarises (checking it needs the state store, which
//!   keeps the entries).
//! - With `cutover.signing_key`, `signature` is an Ed25519 signature of the digest's 32 bytes by that
//!   key; the public key travels in the document, and [`check`] can be told which key to expect.

use serde::{Deserialize, Serialize};

/// The document's format version.
pub const FORMAT: u32 = 1;

/// One server as the certificate names it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Server {
    /// `blue` or `green`.
    pub role: String,
    /// `host:port/database`, never a password.
    pub address: String,
    /// What the server says it is (`version()`, `@@version` and its comment).
    pub version: String,
    /// What tells this server from another at the same address: PostgreSQL's system identifier,
    /// MySQL's `server_uuid`, MariaDB's `server_id`.
    pub identity: String,
}

/// How long one step took, in microseconds. (Every number in a certificate is an integer: a float
/// read back could print differently and break the digest.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepTime {
    pub step: String,
    pub us: u64,
}

/// The live verify a gated cutover relied on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerifyResult {
    /// Every table compared equal.
    pub equal: bool,
    pub tables: usize,
    pub source_rows: u64,
    /// The source positions of its rounds.
    pub positions: Vec<String>,
    /// When its oldest round's snapshot was taken, and how old that was when the gate passed.
    pub oldest_round_at: String,
    /// The same, in microseconds since the epoch (not in the certificate: `oldest_round_at` is).
    #[serde(skip)]
    pub oldest_round_at_us: i64,
    pub age_seconds: u64,
    pub finished_at: String,
    /// A whole run's result with the continuous verify's re-checks of what changed merged in: when
    /// that whole run finished (rows the stream did not change were compared by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whole_run_finished_at: Option<String>,
}

/// Writes on the side traffic moves to that did not come from turnout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RogueWrites {
    /// Whether anything watched for them during this stream.
    pub watched: bool,
    /// `green` (a cutover) or `blue` (a rollback, in the rollback window), when watched.
    pub side: Option<String>,
    /// Writes on that side that were not turnout's, seen by the time of the proof.
    pub seen: u64,
    /// Of those, acknowledged by the operator.
    pub acknowledged: u64,
}

/// The journal a certificate summarises.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JournalDigest {
    pub entries: usize,
    pub sha256: String,
}

/// An Ed25519 signature of the digest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    pub algorithm: String,
    /// The 32-byte public key, hex.
    pub public_key: String,
    /// The 64-byte signature of the digest's bytes, hex.
    pub value: String,
}

/// A cutover's, rollback's or rehearsal's certificate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Certificate {
    pub format: u32,
    /// `cutover`, `rollback`, `cutover rehearsal` or `rollback rehearsal`.
    pub kind: String,
    pub id: String,
    /// The replication stream (its slot, or progress record, name).
    pub stream: String,
    /// `done` (traffic moved), `rehearsed` (fence undone as planned), `failed` or `undone` (blue
    /// kept serving), `interrupted`.
    pub outcome: String,
    /// The journal's last message: the summary, or why it ended.
    pub message: Option<String>,
    pub started_at: String,
    pub finished_at: String,
    /// The side that was fenced, and the side traffic moved (or would move) to.
    pub from: Server,
    pub to: Server,
    pub fence: String,
    pub switch: String,
    /// The sentinel's commit position in the stream, and the fenced side's own final position where
    /// the proof also waited for it (Oracle MySQL's `gtid_executed`).
    pub sentinel: Option<String>,
    pub fenced_position: Option<String>,
    /// What the other side had durably applied when the proof held.
    pub applied_at_proof: Option<String>,
    /// Each step inside the write pause, in order.
    pub steps: Vec<StepTime>,
    pub write_pause_us: Option<u64>,
    /// The counters before the fence (moved ahead) and inside the pause (checked against the final
    /// values), as reported.
    pub counters: Vec<String>,
    /// The live verify that gated it, when `--verify` asked for one.
    pub verify: Option<VerifyResult>,
    pub rogue_writes: RogueWrites,
    /// What a rehearsal found would block or slow the real cutover.
    pub findings: Vec<String>,
    /// The fenced side's inventory before the fence: its digest and objects per handling (absent
    /// from certificates of versions that took none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<crate::source::contract::inventory::InventorySummary>,
    /// The consumers of blue's log handed over to green inside the pause: where each stopped on blue
    /// and resumes on green (absent when none was carried).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub handover: Vec<crate::handover::Handed>,
    /// What the definitions' settling compared and carried to the other side before the fence
    /// (PostgreSQL; absent where nothing was settled).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub definitions: Vec<String>,
    /// Between two engines: every replicated column's place in the type map — blue's type, green's,
    /// its class and why — as the pre-checks read it (absent within one engine).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub type_map: Vec<String>,
    pub journal: JournalDigest,
    pub digest: String,
    pub signature: Option<Signature>,
}

/// Why a certificate does not check.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("the certificate is not JSON of a turnout certificate: {0}")]
    Unreadable(String),
    #[error("the digest does not match the certificate's content (recorded {recorded}, computed {computed}): it was changed after it was written")]
    Digest { recorded: String, computed: String },
    #[error("the certificate is not signed, and a signature by {0} was required")]
    Unsigned(String),
    #[error("the certificate is signed by {found}, not by the expected key {expected}")]
    OtherKey { found: String, expected: String },
    #[error("the signature does not verify against the public key it names")]
    Signature,
}

/// The SHA-256 of a certificate's canonical JSON without `digest` and `signature`, hex.
pub fn digest_of(value: &serde_json::Value) -> String {
    let mut body = value.clone();
    if let Some(map) = body.as_object_mut() {
        map.remove("digest");
        map.remove("signature");
    }
    let mut text = String::new();
    canonical(&body, &mut text);
    hex(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref())
}

/// `value` as JSON with every object's keys in byte order and no whitespace — whatever order the
/// map kept them in.
fn canonical(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(key.clone()).to_string());
                out.push(':');
                canonical(&map[key], out);
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The SHA-256 over journal entries as [`JournalDigest::sha256`] defines it.
pub fn journal_digest(entries: &[Vec<u8>]) -> JournalDigest {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for entry in entries {
        ctx.update(&(entry.len() as u64).to_be_bytes());
        ctx.update(entry);
    }
    JournalDigest { entries: entries.len(), sha256: hex(ctx.finish().as_ref()) }
}

impl Certificate {
    /// Sets `digest`, and `signature` when a key is given.
    pub fn seal(&mut self, key: Option<&SigningKey>) {
        self.digest = String::new();
        self.signature = None;
        let value = serde_json::to_value(&*self).unwrap_or_default();
        self.digest = digest_of(&value);
        self.signature = key.map(|k| k.sign(&self.digest));
    }

    /// A few lines for people.
    pub fn summary(&self) -> String {
        let mut lines = vec![
            format!("turnout {} {} — {}", self.kind, self.id, self.outcome),
            format!("  from {} {} ({}, {})", self.from.role, self.from.address, self.from.version, self.from.identity),
            format!("  to   {} {} ({}, {})", self.to.role, self.to.address, self.to.version, self.to.identity),
            format!("  started {}, finished {}; fence {}, switch {}", self.started_at, self.finished_at, self.fence, self.switch),
        ];
        if let Some(m) = &self.message {
            lines.push(format!("  {m}"));
        }
        if let Some(s) = &self.sentinel {
            lines.push(format!("  sentinel {s}; applied at the proof {}", self.applied_at_proof.as_deref().unwrap_or("-")));
        }
        if let Some(us) = self.write_pause_us {
            let ms = |us: u64| us as f64 / 1000.0;
            let steps: Vec<String> = self.steps.iter().map(|s| format!("{} {:.1}", s.step, ms(s.us))).collect();
            lines.push(format!("  writes paused {:.1} ms ({} ms)", ms(us), steps.join(", ")));
        }
        lines.extend(self.counters.iter().map(|c| format!("  {c}")));
        lines.push(match &self.verify {
            Some(v) => format!(
                "  gated by a live verify: {} tables, {} rows, {}; oldest round {} s old",
                v.tables,
                v.source_rows,
                if v.equal { "equal" } else { "DIFFERENT" },
                v.age_seconds
            ),
            None => "  not gated by a live verify".into(),
        });
        lines.push(if self.rogue_writes.watched {
            format!(
                "  writes on {} not from turnout: {} seen, {} acknowledged",
                self.rogue_writes.side.as_deref().unwrap_or("?"),
                self.rogue_writes.seen,
                self.rogue_writes.acknowledged
            )
        } else {
            "  writes not from turnout: not watched".into()
        });
        lines.extend(self.findings.iter().map(|f| format!("  finding: {f}")));
        lines.push(format!("  journal: {} entries, sha256 {}", self.journal.entries, self.journal.sha256));
        lines.push(format!("  digest sha256 {}", self.digest));
        if let Some(s) = &self.signature {
            lines.push(format!("  signed ({}) by {}", s.algorithm, s.public_key));
        }
        lines.join("\n")
    }
}

/// Checks a certificate's text: its digest, and its signature if it has one (required when
/// `expected_key`, hex, is given). Returns the certificate.
pub fn check(text: &str, expected_key: Option<&str>) -> Result<Certificate, CheckError> {
    let Unique(value) = serde_json::from_str(text).map_err(|e| CheckError::Unreadable(e.to_string()))?;
    // Recomputed from the text as given, so that a field turnout does not know is covered too.
    let computed = digest_of(&value);
    let recorded = value.get("digest").and_then(|d| d.as_str()).unwrap_or_default();
    if computed != recorded {
        return Err(CheckError::Digest { recorded: recorded.to_owned(), computed });
    }
    let certificate: Certificate = serde_json::from_value(value).map_err(|e| CheckError::Unreadable(e.to_string()))?;
    match (&certificate.signature, expected_key) {
        (None, Some(expected)) => return Err(CheckError::Unsigned(expected.to_owned())),
        (Some(s), Some(expected)) if !s.public_key.eq_ignore_ascii_case(expected) => {
            return Err(CheckError::OtherKey { found: s.public_key.clone(), expected: expected.to_owned() })
        }
        (Some(s), _) => {
            let key = unhex(&s.public_key).ok_or(CheckError::Signature)?;
            let sig = unhex(&s.value).ok_or(CheckError::Signature)?;
            let digest = unhex(&certificate.digest).ok_or(CheckError::Signature)?;
            ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key).verify(&digest, &sig).map_err(|_| CheckError::Signature)?;
        }
        (None, None) => {}
    }
    Ok(certificate)
}

/// A JSON document whose objects each name a key once. A key given twice is refused: a person reading
/// the file could see one value while the digest covers the other (a parser keeps the last).
struct Unique(serde_json::Value);

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Unique, D::Error> {
        deserializer.deserialize_any(UniqueVisitor).map(Unique)
    }
}

struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }

    fn visit_i64<E>(self, v: i64) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }

    fn visit_str<E>(self, v: &str) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }

    fn visit_string<E>(self, v: String) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }

    fn visit_unit<E>(self) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<serde_json::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Unique(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(serde_json::Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<serde_json::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("the key \"{key}\" appears twice in one object")));
            }
            let Unique(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(serde_json::Value::Object(object))
    }
}

/// The key in `cutover.signing_key`, read; none when unset. The error names the key and the fix.
pub fn signing_key(config: &crate::config::CutoverConfig) -> Result<Option<SigningKey>, crate::error::Error> {
    let Some(path) = &config.signing_key else { return Ok(None) };
    let field = "cutover.signing_key";
    let text = std::fs::read_to_string(path).map_err(|e| crate::error::Error::config(field, format!("cannot read {}: {e}", path.display())))?;
    SigningKey::from_pem(&text).map(Some).map_err(|e| crate::error::Error::config(field, format!("{} {e}", path.display())))
}

/// The Ed25519 key certificates are signed with (`cutover.signing_key`).
pub struct SigningKey(ring::signature::Ed25519KeyPair);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use ring::signature::KeyPair;
        write!(f, "SigningKey({})", hex(self.0.public_key().as_ref()))
    }
}

impl SigningKey {
    /// Reads a PKCS#8 Ed25519 private key in PEM (`openssl genpkey -algorithm ed25519`). The error
    /// says what is wrong with the file.
    pub fn from_pem(text: &str) -> Result<SigningKey, String> {
        use base64::Engine;
        let body: String = text
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN PRIVATE KEY-----"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .map(str::trim)
            .collect();
        if body.is_empty() {
            return Err("holds no \"-----BEGIN PRIVATE KEY-----\" block; make one with `openssl genpkey -algorithm ed25519 -out FILE`".into());
        }
        let der = base64::engine::general_purpose::STANDARD.decode(body).map_err(|e| format!("its PEM block is not base64: {e}"))?;
        ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
            .map(SigningKey)
            .map_err(|e| format!("is not a PKCS#8 Ed25519 private key ({e}); make one with `openssl genpkey -algorithm ed25519 -out FILE`"))
    }

    fn sign(&self, digest: &str) -> Signature {
        use ring::signature::KeyPair;
        let bytes = unhex(digest).unwrap_or_default();
        Signature { algorithm: "ed25519".into(), public_key: hex(self.0.public_key().as_ref()), value: hex(self.0.sign(&bytes).as_ref()) }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| text.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PKCS#8 v1 Ed25519 key as `openssl genpkey -algorithm ed25519` writes it (RFC 8410's example).
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";

    fn sample() -> Certificate {
        let server = |role: &str| Server { role: role.into(), address: format!("{role}:5432/app"), version: "PostgreSQL 17.2".into(), identity: "7".into() };
        Certificate {
            format: FORMAT,
            kind: "cutover".into(),
            id: "00ff".into(),
            stream: "turnout_abc".into(),
            outcome: "done".into(),
            message: Some("cutover complete".into()),
            started_at: "2026-11-25T00:00:00.000Z".into(),
            finished_at: "2026-11-25T00:00:01.000Z".into(),
            from: server("blue"),
            to: server("green"),
            fence: "pgbouncer".into(),
            switch: "pgbouncer".into(),
            sentinel: Some("0/1A2B3C".into()),
            fenced_position: None,
            applied_at_proof: Some("0/1A2B3C".into()),
            steps: vec![StepTime { step: "fence".into(), us: 1_500 }],
            write_pause_us: Some(12_500),
            counters: vec!["moved 1 of 2 sequences".into()],
            verify: None,
            rogue_writes: RogueWrites { watched: false, side: None, seen: 0, acknowledged: 0 },
            findings: Vec::new(),
            inventory: Some(crate::source::contract::inventory::InventorySummary {
                sha256: "ab".repeat(32),
                objects: 12,
                handled: [("streamed".to_string(), 3), ("copied".to_string(), 9)].into_iter().collect(),
            }),
            handover: Vec::new(),
            definitions: vec!["green's definitions equal blue's (12 objects compared)".into()],
            type_map: Vec::new(),
            journal: journal_digest(&[b"{\"step\":\"waiting\"}".to_vec(), b"{\"step\":\"done\"}".to_vec()]),
            digest: String::new(),
            signature: None,
        }
    }

    /// Every leaf of a JSON document, by its path.
    fn leaves(value: &serde_json::Value, path: String, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(m) => m.iter().for_each(|(k, v)| leaves(v, format!("{path}/{k}"), out)),
            serde_json::Value::Array(a) => a.iter().enumerate().for_each(|(i, v)| leaves(v, format!("{path}/{i}"), out)),
            _ => out.push(path),
        }
    }

    #[test]
    fn editing_any_field_breaks_the_digest_and_the_signature() {
        let key = SigningKey::from_pem(KEY).expect("the key reads");
        for signed in [false, true] {
            let mut c = sample();
            c.seal(signed.then_some(&key));
            let text = serde_json::to_string_pretty(&c).expect("json");
            let back = check(&text, None).expect("an untouched certificate checks");
            assert_eq!(back, c);
            let value: serde_json::Value = serde_json::from_str(&text).expect("json");
            let mut paths = Vec::new();
            leaves(&value, String::new(), &mut paths);
            assert!(paths.len() > 30, "{paths:?}");
            for path in paths.iter().filter(|p| !p.starts_with("/digest") && !p.starts_with("/signature")) {
                let mut edited = value.clone();
                let leaf = edited.pointer_mut(path).expect("a leaf");
                let changed = match &*leaf {
                    serde_json::Value::String(s) => serde_json::Value::String(format!("{s}x")),
                    serde_json::Value::Number(n) => serde_json::json!(n.as_u64().unwrap_or(0) + 1),
                    serde_json::Value::Bool(b) => serde_json::Value::Bool(!*b),
                    other => serde_json::json!(format!("{other}x")),
                };
                *leaf = changed;
                let err = check(&edited.to_string(), None).expect_err(&format!("editing {path} must break the digest"));
                assert!(matches!(err, CheckError::Digest { .. }), "{path}: {err}");
            }
            // A field added, or one removed, breaks it too.
            let mut added = value.clone();
            added.as_object_mut().expect("object").insert("note".into(), serde_json::json!("later"));
            assert!(matches!(check(&added.to_string(), None), Err(CheckError::Digest { .. })));
            let mut removed = value.clone();
            removed.as_object_mut().expect("object").remove("findings");
            assert!(check(&removed.to_string(), None).is_err());
            // The same content with its keys in another order and other whitespace still checks.
            let compact = serde_json::to_string(&value).expect("json");
            assert!(check(&compact, None).is_ok());
        }
    }

    #[test]
    fn a_signature_is_checked_against_the_key_it_names_and_the_key_expected() {
        let key = SigningKey::from_pem(KEY).expect("the key reads");
        let mut c = sample();
        c.seal(Some(&key));
        let public = c.signature.as_ref().expect("signed").public_key.clone();
        let text = serde_json::to_string(&c).expect("json");
        assert!(check(&text, Some(&public)).is_ok());
        assert!(matches!(check(&text, Some(&"00".repeat(32))), Err(CheckError::OtherKey { .. })));
        // A digest recomputed after an edit, with the old signature kept, fails the signature.
        let mut forged = c.clone();
        forged.outcome = "failed".into();
        let signature = forged.signature.clone();
        forged.seal(None);
        forged.signature = signature;
        assert!(matches!(check(&serde_json::to_string(&forged).expect("json"), None), Err(CheckError::Signature)));
        // An unsigned certificate fails when a key is expected.
        let mut unsigned = sample();
        unsigned.seal(None);
        assert!(matches!(check(&serde_json::to_string(&unsigned).expect("json"), Some(&public)), Err(CheckError::Unsigned(_))));
    }

    #[test]
    fn a_bad_key_file_is_named() {
        assert!(SigningKey::from_pem("not a key").expect_err("refused").contains("openssl genpkey"));
        let rsa = "-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n";
        assert!(SigningKey::from_pem(rsa).expect_err("refused").contains("PKCS#8 Ed25519"));
    }

    #[test]
    fn the_journal_digest_frames_each_entry() {
        // Moving bytes from one entry to the next changes the digest.
        let a = journal_digest(&[b"ab".to_vec(), b"c".to_vec()]);
        let b = journal_digest(&[b"a".to_vec(), b"bc".to_vec()]);
        assert_ne!(a.sha256, b.sha256);
        assert_eq!(a.entries, 2);
    }

    #[test]
    fn a_key_given_twice_is_refused_even_where_the_digest_matches() {
        let mut c = sample();
        c.seal(None);
        let text = serde_json::to_string_pretty(&c).expect("json");
        assert!(check(&text, None).is_ok());
        // The first "outcome" is what a reader sees; a parser that keeps the last would check the digest
        // against the second.
        let doubled = text.replacen("\"outcome\": \"done\"", "\"outcome\": \"undone\",\n  \"outcome\": \"done\"", 1);
        assert_ne!(doubled, text);
        match check(&doubled, None) {
            Err(CheckError::Unreadable(e)) => assert!(e.contains("\"outcome\" appears twice"), "{e}"),
            other => panic!("a doubled key must be refused: {other:?}"),
        }
    }
}
