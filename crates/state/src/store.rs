//! The SQLite file behind `--state`: every object's last version, the profile memberships that
//! revocation needs, and what each sink has acknowledged.
//!
//! One connection, held by one run at a time (`locking_mode=EXCLUSIVE`): a second ctiport on the
//! same file stops at once with a clear message instead of interleaving versions. WAL with
//! `synchronous=NORMAL` keeps every committed transaction through a killed process.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension as _, params};

use crate::error::StateError;

/// Bumped when the tables change; an older file is refused rather than misread.
const SCHEMA_VERSION: &str = "1";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs(
    run INTEGER PRIMARY KEY AUTOINCREMENT,
    started TEXT NOT NULL,
    finished TEXT,
    status TEXT NOT NULL
);
-- Every profile met: `seen_run` is the last run that listed it (NULL while only its indicators
-- were met), `profile` the small key that `objects.owner` holds instead of the 64-character id.
CREATE TABLE IF NOT EXISTS profiles(
    profile INTEGER PRIMARY KEY,
    profile_id TEXT NOT NULL UNIQUE,
    seen_run INTEGER
);
-- The current version of every object ever emitted, in small rows that an unchanged run only
-- reads. `hash` is the digest of the object as the mapping produced it (source dates included);
-- `owner` is the profile whose listing carries it (profile objects, `indicates`), NULL for shared
-- objects; `restamped` says the emitted version differs from the mapping's (a later `modified`,
-- or a revocation).
--
-- A rowid table: rows are appended in the order a run meets them, and the other tables refer to
-- an object by that integer (`object`). Of everything a first run writes, only the index on `id`
-- takes random inserts (ids are UUIDs), which keeps the part of the file a run writes all over
-- small enough for the page cache; the next run meets the objects in the same order.
CREATE TABLE IF NOT EXISTS objects(
    object INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    hash BLOB NOT NULL,
    revoked INTEGER NOT NULL,
    version_run INTEGER NOT NULL,
    origin_run INTEGER NOT NULL,
    owner INTEGER REFERENCES profiles(profile),
    restamped INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS objects_by_owner ON objects(owner) WHERE owner IS NOT NULL;
CREATE INDEX IF NOT EXISTS objects_revoked ON objects(version_run) WHERE revoked = 1;
-- The emitted version of each object that has versions (SCOs have none), written only when it
-- changes: revocations and later versions are built from it. Apart from the small rows above, so
-- that an unchanged run does not read these large ones.
--
-- `json` is compressed: its length as 4 bytes (little-endian), then one LZ4 block compressed with
-- the dictionary stored in `meta` under `json_dictionary`. One object's JSON is too short to
-- compress well on its own, while most of its bytes are property names, the producer's and the
-- marking's ids and a few fixed texts: with the dictionary it takes about 30% of its length.
CREATE TABLE IF NOT EXISTS versions(
    object INTEGER PRIMARY KEY REFERENCES objects(object),
    json BLOB NOT NULL
);
-- Which indicator each `indicates` relationship ties to its profile (the relationship's owner).
CREATE TABLE IF NOT EXISTS memberships(
    relationship INTEGER PRIMARY KEY REFERENCES objects(object),
    indicator INTEGER NOT NULL REFERENCES objects(object),
    observable_type TEXT NOT NULL,
    value TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS memberships_by_indicator ON memberships(indicator);
-- The last run each sink acknowledged in full: it holds every version made up to that run.
CREATE TABLE IF NOT EXISTS sinks(
    name TEXT PRIMARY KEY,
    acked_run INTEGER NOT NULL,
    acked_at TEXT NOT NULL
);
";

/// The dictionary of a new store (see `versions`): what most stored objects share. It only has to
/// resemble them: a store keeps the dictionary it was created with, so this one can change without
/// making older files unreadable. Kept short, since LZ4 hashes it again for every object.
const JSON_DICTIONARY: &str = concat!(
    // The markings other than the default (TLP 2.0, TLP 1.0, OpenCTI's AMBER+STRICT).
    r#""marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487","#,
    r#""marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb","#,
    r#""marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003","#,
    r#""marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1","#,
    r#""marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9","#,
    r#""marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da","#,
    r#""marking-definition--f88d31f6-486f-44da-b317-01333bde0b82","#,
    r#""marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed","#,
    r#""marking-definition--826578e1-40ad-459f-bc73-ede076f81f37""#,
    // What differs between indicators of different kinds and sources.
    r#"{"type":"indicator","spec_version":"2.1","id":"indicator--","#,
    r#""description":"X.509 certificate SHA-1 reported by Microsoft Defender Threat Intelligence "#,
    r#"(source: microsoft). Reputation: Malicious (score 100); Registrar: Registrant: "#,
    r#"Country or region: Hosting provider: Netblock: ","#,
    r#""pattern":"[x509-certificate:hashes.'SHA-1' = ''][file:hashes.'SHA-512' = '']"#,
    r#"[file:hashes.'SHA-1' = ''][file:hashes.MD5 = ''][file:hashes.'SHA-256' = '']"#,
    r#"[email-addr:value = ''][ipv6-addr:value = ''][ipv4-addr:value = ''][url:value = 'https://']"#,
    r#"[domain-name:value = ''] File SHA-512 File SHA-1 File MD5 File SHA-256 E-mail address "#,
    r#"IPv6 address IPv4 address URL Domain name reported by Microsoft Defender Threat "#,
    r#"Intelligence (source: osint)."#,
    // An indicator and its `indicates`: nearly all stored objects.
    r#"{"type":"indicator","spec_version":"2.1","id":"indicator--","#,
    r#""created_by_ref":"identity--b6fced30-06fd-5aec-8b4f-e2c3b34376bd","#,
    r#""created":"2024-01-01T00:00:00.000Z","modified":"2024-01-01T00:00:00.000Z","#,
    r#""labels":["mdti","source-microsoft"],"confidence":85,"#,
    r#""object_marking_refs":["marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"],"#,
    r#""name":"","description":"Domain name reported by Microsoft Defender Threat Intelligence "#,
    r#"(source: microsoft).","indicator_types":["malicious-activity"],"#,
    r#""pattern":"[domain-name:value = '']","pattern_type":"stix","pattern_version":"2.1","#,
    r#""valid_from":"2024-01-01T00:00:00.000Z","valid_until":"2024-01-01T00:00:00.000Z"}"#,
    r#"{"type":"relationship","spec_version":"2.1","id":"relationship--","#,
    r#""created_by_ref":"identity--b6fced30-06fd-5aec-8b4f-e2c3b34376bd","#,
    r#""created":"2024-01-01T00:00:00.000Z","modified":"2024-01-01T00:00:00.000Z","#,
    r#""external_references":[{"source_name":"microsoft-defender-threat-intelligence","#,
    r#""description":"intelligenceProfileIndicator id","external_id":""}],"#,
    r#""object_marking_refs":["marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"],"#,
    r#""relationship_type":"indicates","source_ref":"indicator--","target_ref":""#,
);

/// Compresses and expands the stored JSON with the store's dictionary. LZ4 rather than DEFLATE:
/// with a dictionary both shrink these objects to 26-30%, and DEFLATE (zlib-rs, the pure-Rust one
/// that takes a dictionary) takes three to four times as long, mostly resetting its state and
/// hashing the dictionary again for every object.
struct Codec {
    dictionary: Vec<u8>,
    /// Reused from one object to the next.
    buffer: Vec<u8>,
}

impl Codec {
    /// The stored form of `json` (what `lz4_flex::block::compress_prepend_size_with_dict` makes,
    /// without allocating).
    fn compress(&mut self, json: &str) -> Result<&[u8], String> {
        let json = json.as_bytes();
        let length = u32::try_from(json.len()).map_err(|_| "an object of 4 GiB or more")?;
        let end = 4 + lz4_flex::block::get_maximum_output_size(json.len());
        if self.buffer.len() < end {
            self.buffer.resize(end, 0);
        }
        self.buffer[..4].copy_from_slice(&length.to_le_bytes());
        let written = lz4_flex::block::compress_into_with_dict(
            json,
            &mut self.buffer[4..end],
            &self.dictionary,
        )
        .map_err(|e| format!("compressing a version: {e}"))?;
        Ok(&self.buffer[..4 + written])
    }

    fn expand(&self, data: &[u8]) -> Result<String, String> {
        let damaged = |why: &str| format!("a stored version is damaged: {why}");
        let (length, block) =
            lz4_flex::block::uncompressed_size(data).map_err(|e| damaged(&e.to_string()))?;
        // LZ4 expands at most about 255 to 1: a longer length is damage, not memory to allocate.
        if length > block.len().saturating_mul(255) + 64 {
            return Err(damaged("its length does not fit its size"));
        }
        let mut json = vec![0; length];
        let written =
            lz4_flex::block::decompress_into_with_dict(block, &mut json, &self.dictionary)
                .map_err(|e| damaged(&e.to_string()))?;
        if written != length {
            return Err(damaged("it is shorter than its length"));
        }
        String::from_utf8(json).map_err(|_| damaged("not UTF-8"))
    }
}

/// Writes per transaction while mapping: large enough to amortize the commit, small enough that a
/// killed run loses little work.
const WRITES_PER_TRANSACTION: usize = 50_000;

/// An object's row in the store (`objects.object`).
pub type Key = i64;

/// The stored version of one object.
#[derive(Clone, Debug)]
pub struct Stored {
    pub key: Key,
    pub hash: Vec<u8>,
    pub revoked: bool,
    pub version_run: u32,
    pub origin_run: u32,
    pub restamped: bool,
}

/// A new or changed version to store.
pub struct Row<'a> {
    pub id: &'a str,
    pub hash: &'a [u8],
    pub revoked: bool,
    pub version_run: u32,
    pub origin_run: u32,
    /// The owning profile, from [`Store::profile_key`].
    pub owner: Option<i64>,
    pub restamped: bool,
    /// The emitted version, for objects that have versions.
    pub json: Option<&'a str>,
}

/// A stored object that can be revoked, with its membership when it is an `indicates`.
pub struct Revocable {
    pub id: String,
    pub json: String,
    pub version_run: u32,
    pub origin_run: u32,
    pub membership: Option<(String, String, String, String)>,
}

/// The state file, open for one run at a time.
pub struct Store {
    /// The file, as messages name it.
    file: String,
    conn: Connection,
    writes: usize,
    in_transaction: bool,
    /// `profiles.profile` of the profiles met in this run: a few per run, looked up per record.
    profile_keys: HashMap<String, i64>,
    codec: Codec,
    /// The store had no object when it was opened.
    was_empty: bool,
}

fn sql_error(e: rusqlite::Error) -> String {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            "the state file is in use by another ctiport run".into()
        }
        _ => e.to_string(),
    }
}

fn stored(r: &rusqlite::Row<'_>) -> rusqlite::Result<Stored> {
    Ok(Stored {
        key: r.get(0)?,
        hash: r.get(1)?,
        revoked: r.get(2)?,
        version_run: r.get(3)?,
        origin_run: r.get(4)?,
        restamped: r.get(5)?,
    })
}

impl Store {
    /// Opens the state file, creating it when missing; a second run on the same file stops here
    /// with a clear message.
    pub fn open(path: &Path) -> Result<Store, StateError> {
        Ok(Store::open_file(path)?)
    }

    fn open_file(path: &Path) -> Result<Store, String> {
        let describe = |e: String| format!("state file {}: {e}", path.display());
        let conn = Connection::open(path).map_err(|e| describe(sql_error(e)))?;
        conn.busy_timeout(std::time::Duration::from_secs(2))
            .map_err(|e| describe(sql_error(e)))?;
        // A bounded page cache (64 MiB): the store can be far larger than memory. 16 KiB pages
        // (set before anything is written; an existing file keeps its own): fewer levels and
        // less bookkeeping per row than 4 KiB ones, a first run about 10% faster.
        conn.execute_batch(
            "PRAGMA page_size = 16384;
             PRAGMA locking_mode = EXCLUSIVE;
             PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA cache_size = -65536;",
        )
        .map_err(|e| describe(sql_error(e)))?;
        conn.execute_batch(&format!("BEGIN IMMEDIATE; {SCHEMA}"))
            .map_err(|e| describe(sql_error(e)))?;
        let version: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| describe(sql_error(e)))?;
        let dictionary: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'json_dictionary'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| describe(sql_error(e)))?;
        let dictionary = match (version.as_deref(), dictionary) {
            (None, _) => {
                conn.execute(
                    "INSERT INTO meta(key, value) VALUES ('schema', ?1), ('json_dictionary', ?2)",
                    [SCHEMA_VERSION, JSON_DICTIONARY],
                )
                .map_err(|e| describe(sql_error(e)))?;
                JSON_DICTIONARY.to_owned()
            }
            (Some(SCHEMA_VERSION), Some(dictionary)) => dictionary,
            (Some(SCHEMA_VERSION), None) => {
                return Err(describe(
                    "written by an earlier build of ctiport, before the store kept its JSON \
                     compressed; start a new state file"
                        .into(),
                ));
            }
            (Some(other), _) => {
                return Err(describe(format!(
                    "written by another version of ctiport (schema {other}, this one reads {SCHEMA_VERSION})"
                )));
            }
        };
        let was_empty: bool = conn
            .query_row("SELECT NOT EXISTS(SELECT 1 FROM objects)", [], |r| r.get(0))
            .map_err(|e| describe(sql_error(e)))?;
        conn.execute_batch("COMMIT")
            .map_err(|e| describe(sql_error(e)))?;
        Ok(Store {
            file: path.display().to_string(),
            conn,
            writes: 0,
            in_transaction: false,
            profile_keys: HashMap::new(),
            codec: Codec {
                dictionary: dictionary.into_bytes(),
                buffer: Vec::new(),
            },
            was_empty,
        })
    }

    /// The file, as messages name it.
    pub(crate) fn file(&self) -> &str {
        &self.file
    }

    /// Whether the store had no object when it was opened.
    pub(crate) fn was_empty(&self) -> bool {
        self.was_empty
    }

    /// Records a new run as running; returns its number. Runs a killed process left open are
    /// marked interrupted.
    pub(crate) fn begin_run(&mut self, started: &str) -> Result<u32, String> {
        self.conn
            .execute(
                "UPDATE runs SET status = 'interrupted' WHERE status = 'running'",
                [],
            )
            .map_err(sql_error)?;
        self.conn
            .execute(
                "INSERT INTO runs(started, status) VALUES (?1, 'running')",
                [started],
            )
            .map_err(sql_error)?;
        u32::try_from(self.conn.last_insert_rowid()).map_err(|e| e.to_string())
    }

    pub(crate) fn finish_run(
        &mut self,
        run: u32,
        finished: &str,
        status: &str,
    ) -> Result<(), String> {
        self.commit()?;
        self.conn
            .execute(
                "UPDATE runs SET finished = ?2, status = ?3 WHERE run = ?1",
                params![run, finished, status],
            )
            .map_err(sql_error)?;
        Ok(())
    }

    /// The run each named sink last acknowledged; `None` for a sink never acknowledged.
    pub(crate) fn acked_run(&self, sink: &str) -> Result<Option<u32>, String> {
        self.conn
            .query_row("SELECT acked_run FROM sinks WHERE name = ?1", [sink], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sql_error)
    }

    /// Records that `sink` holds everything up to `run`.
    pub(crate) fn acknowledge(&mut self, sink: &str, run: u32, at: &str) -> Result<(), String> {
        self.commit()?;
        self.conn
            .execute(
                "INSERT INTO sinks(name, acked_run, acked_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(name) DO UPDATE SET acked_run = excluded.acked_run, acked_at = excluded.acked_at",
                params![sink, run, at],
            )
            .map_err(sql_error)?;
        Ok(())
    }

    fn write_started(&mut self) -> Result<(), String> {
        if !self.in_transaction {
            self.conn.execute_batch("BEGIN").map_err(sql_error)?;
            self.in_transaction = true;
        }
        self.writes += 1;
        Ok(())
    }

    /// Commits when enough writes have gathered.
    pub(crate) fn maybe_commit(&mut self) -> Result<(), String> {
        if self.writes >= WRITES_PER_TRANSACTION {
            self.commit()?;
        }
        Ok(())
    }

    pub(crate) fn commit(&mut self) -> Result<(), String> {
        if self.in_transaction {
            self.conn.execute_batch("COMMIT").map_err(sql_error)?;
            self.in_transaction = false;
            self.writes = 0;
        }
        Ok(())
    }

    pub(crate) fn lookup(&self, id: &str) -> Result<Option<Stored>, String> {
        self.stored_where("id", id)
    }

    /// The stored version of the object in row `key`.
    fn lookup_key(&self, key: Key) -> Result<Option<Stored>, String> {
        self.stored_where("object", key)
    }

    /// The stored version of the object whose `column` (`id` or `object`) is `value`.
    fn stored_where(
        &self,
        column: &'static str,
        value: impl rusqlite::ToSql,
    ) -> Result<Option<Stored>, String> {
        let mut statement = self
            .conn
            .prepare_cached(&format!(
                "SELECT object, hash, revoked, version_run, origin_run, restamped
                 FROM objects WHERE {column} = ?1"
            ))
            .map_err(sql_error)?;
        statement
            .query_row([value], stored)
            .optional()
            .map_err(sql_error)
    }

    /// Whether the object in row `key` is current (stored and not revoked).
    pub(crate) fn current(&self, key: Key) -> Result<bool, String> {
        Ok(self.lookup_key(key)?.is_some_and(|s| !s.revoked))
    }

    /// The emitted version of an object that has versions.
    pub(crate) fn json(&self, key: Key) -> Result<Option<String>, String> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT json FROM versions WHERE object = ?1")
            .map_err(sql_error)?;
        let compressed: Option<Vec<u8>> = statement
            .query_row([key], |r| r.get(0))
            .optional()
            .map_err(sql_error)?;
        compressed
            .map(|compressed| self.codec.expand(&compressed))
            .transpose()
    }

    /// Stores a version: in the row `key` of an object the store has, as a new row otherwise.
    /// Returns the object's key.
    pub(crate) fn put(&mut self, key: Option<Key>, row: &Row<'_>) -> Result<Key, String> {
        let Some(key) = key else {
            return self
                .insert(row)?
                .ok_or_else(|| format!("{} is stored already", row.id));
        };
        self.write_row(
            "UPDATE objects SET hash = ?2, revoked = ?3, version_run = ?4,
             origin_run = ?5, owner = ?6, restamped = ?7 WHERE object = ?1",
            key,
            row,
        )?;
        if let Some(json) = row.json {
            self.put_json(key, json)?;
        }
        Ok(key)
    }

    /// Stores the first version of an object unless the store has it; returns its key when it
    /// was stored. One probe of the index on `id` where a lookup and an insert take two.
    pub(crate) fn insert(&mut self, row: &Row<'_>) -> Result<Option<Key>, String> {
        let inserted = self.write_row(
            "INSERT INTO objects (id, hash, revoked, version_run, origin_run, owner, restamped)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(id) DO NOTHING",
            row.id,
            row,
        )?;
        if inserted == 0 {
            return Ok(None);
        }
        let key = self.conn.last_insert_rowid();
        if let Some(json) = row.json {
            // A plain INSERT: `OR REPLACE` would make SQLite journal every statement's pages.
            let mut statement = self
                .conn
                .prepare_cached("INSERT INTO versions(object, json) VALUES (?1, ?2)")
                .map_err(sql_error)?;
            statement
                .execute(params![key, self.codec.compress(json)?])
                .map_err(sql_error)?;
        }
        Ok(Some(key))
    }

    /// Runs `sql` on an `objects` row: `?1` is `first` (its key or its id), `?2` to `?7` the
    /// row's columns. Returns the number of rows written.
    fn write_row(
        &mut self,
        sql: &'static str,
        first: impl rusqlite::ToSql,
        row: &Row<'_>,
    ) -> Result<usize, String> {
        self.write_started()?;
        let mut statement = self.conn.prepare_cached(sql).map_err(sql_error)?;
        statement
            .execute(params![
                first,
                row.hash,
                row.revoked,
                row.version_run,
                row.origin_run,
                row.owner,
                row.restamped
            ])
            .map_err(sql_error)
    }

    /// Replaces the emitted version of an object the store has.
    fn put_json(&mut self, key: Key, json: &str) -> Result<(), String> {
        let mut statement = self
            .conn
            .prepare_cached(
                "INSERT INTO versions(object, json) VALUES (?1, ?2)
                 ON CONFLICT(object) DO UPDATE SET json = excluded.json",
            )
            .map_err(sql_error)?;
        statement
            .execute(params![key, self.codec.compress(json)?])
            .map_err(sql_error)?;
        Ok(())
    }

    /// The key of a profile, stored on first use (not yet listed: `seen_run` stays NULL).
    pub(crate) fn profile_key(&mut self, profile_id: &str) -> Result<i64, String> {
        if let Some(key) = self.profile_keys.get(profile_id) {
            return Ok(*key);
        }
        self.write_started()?;
        let mut statement = self
            .conn
            .prepare_cached(
                "INSERT INTO profiles(profile_id) VALUES (?1)
                 ON CONFLICT(profile_id) DO UPDATE SET profile_id = excluded.profile_id
                 RETURNING profile",
            )
            .map_err(sql_error)?;
        let key: i64 = statement
            .query_row([profile_id], |r| r.get(0))
            .map_err(sql_error)?;
        drop(statement);
        self.profile_keys.insert(profile_id.to_owned(), key);
        Ok(key)
    }

    /// Records that the `indicates` relationship in row `relationship` ties the indicator in row
    /// `indicator` to the relationship's owner.
    pub(crate) fn remember_membership(
        &mut self,
        relationship: Key,
        indicator: Key,
        observable_type: &str,
        value: &str,
    ) -> Result<(), String> {
        self.write_started()?;
        let mut statement = self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO memberships(relationship, indicator, observable_type, value)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(sql_error)?;
        statement
            .execute(params![relationship, indicator, observable_type, value])
            .map_err(sql_error)?;
        Ok(())
    }

    /// Records that `run` listed the profile; returns its key.
    pub(crate) fn profile_listed(&mut self, profile_id: &str, run: u32) -> Result<i64, String> {
        let key = self.profile_key(profile_id)?;
        self.write_started()?;
        let mut statement = self
            .conn
            .prepare_cached("UPDATE profiles SET seen_run = ?2 WHERE profile = ?1")
            .map_err(sql_error)?;
        statement.execute(params![key, run]).map_err(sql_error)?;
        Ok(key)
    }

    /// Profiles listed before and not in `run`, by key.
    pub(crate) fn unlisted_profiles(&self, run: u32) -> Result<Vec<i64>, String> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT profile FROM profiles WHERE seen_run < ?1 ORDER BY profile_id")
            .map_err(sql_error)?;
        let rows = statement
            .query_map([run], |r| r.get(0))
            .map_err(sql_error)?;
        rows.collect::<Result<_, _>>().map_err(sql_error)
    }

    /// The current (not revoked) objects a profile's listing carries: key and id, in id order.
    pub(crate) fn owned(&self, owner: i64) -> Result<Vec<(Key, String)>, String> {
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT object, id FROM objects WHERE owner = ?1 AND revoked = 0 ORDER BY id",
            )
            .map_err(sql_error)?;
        let rows = statement
            .query_map([owner], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(sql_error)?;
        rows.collect::<Result<_, _>>().map_err(sql_error)
    }

    /// The indicator an `indicates` relationship ties to its profile, if it is one.
    pub(crate) fn membership_indicator(&self, relationship: Key) -> Result<Option<Key>, String> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT indicator FROM memberships WHERE relationship = ?1")
            .map_err(sql_error)?;
        statement
            .query_row([relationship], |r| r.get(0))
            .optional()
            .map_err(sql_error)
    }

    /// Whether some profile still lists the indicator (an `indicates` that is not revoked).
    pub(crate) fn still_listed(&self, indicator: Key) -> Result<bool, String> {
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT EXISTS(SELECT 1 FROM memberships m JOIN objects r ON r.object = m.relationship
                               WHERE m.indicator = ?1 AND r.revoked = 0)",
            )
            .map_err(sql_error)?;
        statement
            .query_row([indicator], |r| r.get(0))
            .map_err(sql_error)
    }

    /// Marks an object revoked, with the revoked version as emitted.
    pub(crate) fn revoke(&mut self, key: Key, json: &str, run: u32) -> Result<(), String> {
        self.write_started()?;
        let mut statement = self
            .conn
            .prepare_cached(
                "UPDATE objects SET revoked = 1, version_run = ?2, restamped = 1 WHERE object = ?1",
            )
            .map_err(sql_error)?;
        statement.execute(params![key, run]).map_err(sql_error)?;
        drop(statement);
        self.put_json(key, json)
    }

    /// Whether a current revocable object has a version made after run `after` and before
    /// `run`: a run that did not list everything may not have carried it.
    pub(crate) fn versions_between(&self, after: Option<u32>, run: u32) -> Result<bool, String> {
        self.conn
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM objects
                 WHERE version_run > ?1 AND version_run < ?2 AND revoked = 0
                   AND (owner IS NOT NULL OR id LIKE 'indicator--%'))",
                params![after.unwrap_or(0), run],
                |r| r.get(0),
            )
            .map_err(sql_error)
    }

    /// Revoked versions made after run `after`, in the order they were made, handed to `each`
    /// one at a time so that memory holds one of them.
    pub(crate) fn revocations_after(
        &self,
        after: u32,
        mut each: impl FnMut(Revocable) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT o.id, v.json, o.version_run, o.origin_run,
                        p.profile_id, i.id, m.observable_type, m.value
                 FROM objects o JOIN versions v ON v.object = o.object
                 LEFT JOIN memberships m ON m.relationship = o.object
                 LEFT JOIN objects i ON i.object = m.indicator
                 LEFT JOIN profiles p ON p.profile = o.owner
                 WHERE o.revoked = 1 AND o.version_run > ?1
                 ORDER BY o.version_run, o.id",
            )
            .map_err(sql_error)?;
        let mut rows = statement.query([after]).map_err(sql_error)?;
        while let Some(r) = rows.next().map_err(sql_error)? {
            let indicator: Option<String> = r.get(5).map_err(sql_error)?;
            let membership = match indicator {
                Some(indicator) => Some((
                    r.get(4).map_err(sql_error)?,
                    indicator,
                    r.get(6).map_err(sql_error)?,
                    r.get(7).map_err(sql_error)?,
                )),
                None => None,
            };
            let compressed: Vec<u8> = r.get(1).map_err(sql_error)?;
            each(Revocable {
                id: r.get(0).map_err(sql_error)?,
                json: self.codec.expand(&compressed)?,
                version_run: r.get(2).map_err(sql_error)?,
                origin_run: r.get(3).map_err(sql_error)?,
                membership,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec() -> Codec {
        Codec {
            dictionary: JSON_DICTIONARY.as_bytes().to_vec(),
            buffer: Vec::new(),
        }
    }

    const INDICATES: &str = r#"{"type":"relationship","spec_version":"2.1","id":"relationship--2b823a09-a4df-5eae-a98b-c55938448ba1","created_by_ref":"identity--b6fced30-06fd-5aec-8b4f-e2c3b34376bd","created":"2021-03-13T22:35:22.588Z","modified":"2021-03-13T22:35:22.588Z","external_references":[{"source_name":"microsoft-defender-threat-intelligence","description":"intelligenceProfileIndicator id","external_id":"86c07b28-df37-4db9-b671-9f9f50a93059"}],"object_marking_refs":["marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"],"relationship_type":"indicates","source_ref":"indicator--8c52ff04-d4da-5f9d-b206-ffddf157bd73","target_ref":"tool--a479a194-a15f-5c05-aaf3-8aae28aa68fe"}"#;

    #[test]
    fn a_stored_version_expands_to_what_was_compressed() {
        let mut codec = codec();
        let long = format!(
            r#"{{"type":"note","content":"{}"}}"#,
            "caf\u{e9} \\n \u{1F600} ".repeat(20_000)
        );
        for json in ["", "{}", INDICATES, &long] {
            let stored = codec.compress(json).unwrap().to_vec();
            assert_eq!(codec.expand(&stored).unwrap(), json);
        }
    }

    #[test]
    fn the_dictionary_makes_an_indicates_small() {
        let stored = codec().compress(INDICATES).unwrap().len();
        assert!(
            stored * 100 < INDICATES.len() * 40,
            "{stored} of {}",
            INDICATES.len()
        );
    }

    #[test]
    fn a_damaged_version_is_an_error() {
        let mut codec = codec();
        let stored = codec.compress(INDICATES).unwrap().to_vec();
        let mut huge = stored.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut long = stored.clone();
        long[..4].copy_from_slice(&(INDICATES.len() as u32 + 1).to_le_bytes());
        for damaged in [&stored[..2], &stored[..stored.len() - 3], &huge, &long] {
            let error = codec.expand(damaged).unwrap_err();
            assert!(error.contains("damaged"), "{error}");
        }
    }

    #[test]
    fn a_store_of_an_earlier_build_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let connection = Connection::open(&path).unwrap();
        connection
            .execute_batch(
                "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 INSERT INTO meta VALUES ('schema', '1');",
            )
            .unwrap();
        drop(connection);
        let error = Store::open(&path).err().unwrap().to_string();
        assert!(error.contains("earlier build"), "{error}");
    }
}
