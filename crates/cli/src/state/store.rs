//! The SQLite file behind `--state`: every object's last version, the profile memberships that
//! revocation needs, and what each sink has acknowledged.
//!
//! One connection, held by one run at a time (`locking_mode=EXCLUSIVE`): a second ctiport on the
//! same file stops at once with a clear message instead of interleaving versions. WAL with
//! `synchronous=NORMAL` keeps every committed transaction through a killed process.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension as _, params};

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
-- The current version of every object ever emitted, in small rows that an unchanged run only
-- reads. `hash` is the digest of the object as the mapping produced it (source dates included);
-- `owner` is the profile whose listing carries it (profile objects, `indicates`), NULL for shared
-- objects; `restamped` says the emitted version differs from the mapping's (a later `modified`,
-- or a revocation).
CREATE TABLE IF NOT EXISTS objects(
    id TEXT PRIMARY KEY,
    hash BLOB NOT NULL,
    revoked INTEGER NOT NULL,
    version_run INTEGER NOT NULL,
    origin_run INTEGER NOT NULL,
    owner TEXT,
    restamped INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS objects_by_owner ON objects(owner) WHERE owner IS NOT NULL;
CREATE INDEX IF NOT EXISTS objects_revoked ON objects(version_run) WHERE revoked = 1;
-- The emitted version of each object that has versions (SCOs have none), written only when it
-- changes: revocations and later versions are built from it. A rowid table, so that these large
-- rows are appended in order and only the small index on `id` takes random inserts.
CREATE TABLE IF NOT EXISTS versions(id TEXT NOT NULL UNIQUE, json TEXT NOT NULL);
-- Which indicator each `indicates` relationship ties to which profile.
CREATE TABLE IF NOT EXISTS memberships(
    relationship_id TEXT PRIMARY KEY,
    profile_id TEXT NOT NULL,
    indicator_id TEXT NOT NULL,
    observable_type TEXT NOT NULL,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS memberships_by_indicator ON memberships(indicator_id);
-- The last run that listed each profile.
CREATE TABLE IF NOT EXISTS profiles(profile_id TEXT PRIMARY KEY, seen_run INTEGER NOT NULL)
    WITHOUT ROWID;
-- The last run each sink acknowledged in full: it holds every version made up to that run.
CREATE TABLE IF NOT EXISTS sinks(
    name TEXT PRIMARY KEY,
    acked_run INTEGER NOT NULL,
    acked_at TEXT NOT NULL
);
";

/// Writes per transaction while mapping: large enough to amortize the commit, small enough that a
/// killed run loses little work.
const WRITES_PER_TRANSACTION: usize = 50_000;

/// The stored version of one object.
#[derive(Clone, Debug)]
pub struct Stored {
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
    pub owner: Option<&'a str>,
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

pub struct Store {
    conn: Connection,
    writes: usize,
    in_transaction: bool,
}

fn sql_error(e: rusqlite::Error) -> String {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            "the state file is in use by another ctiport run".into()
        }
        _ => e.to_string(),
    }
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, String> {
        let describe = |e: String| format!("state file {}: {e}", path.display());
        let conn = Connection::open(path).map_err(|e| describe(sql_error(e)))?;
        conn.busy_timeout(std::time::Duration::from_secs(2))
            .map_err(|e| describe(sql_error(e)))?;
        // A bounded page cache (64 MiB): the store can be far larger than memory.
        conn.execute_batch(
            "PRAGMA locking_mode = EXCLUSIVE;
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
        match version.as_deref() {
            None => {
                conn.execute(
                    "INSERT INTO meta(key, value) VALUES ('schema', ?1)",
                    [SCHEMA_VERSION],
                )
                .map_err(|e| describe(sql_error(e)))?;
            }
            Some(SCHEMA_VERSION) => {}
            Some(other) => {
                return Err(describe(format!(
                    "written by another version of ctiport (schema {other}, this one reads {SCHEMA_VERSION})"
                )));
            }
        }
        conn.execute_batch("COMMIT")
            .map_err(|e| describe(sql_error(e)))?;
        Ok(Store {
            conn,
            writes: 0,
            in_transaction: false,
        })
    }

    /// Starts a run; runs a killed process left open are marked interrupted.
    pub fn begin_run(&mut self, started: &str) -> Result<u32, String> {
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

    pub fn finish_run(&mut self, run: u32, finished: &str, status: &str) -> Result<(), String> {
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
    pub fn acked_run(&self, sink: &str) -> Result<Option<u32>, String> {
        self.conn
            .query_row("SELECT acked_run FROM sinks WHERE name = ?1", [sink], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sql_error)
    }

    /// Records that `sink` holds everything up to `run`.
    pub fn acknowledge(&mut self, sink: &str, run: u32, at: &str) -> Result<(), String> {
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
    pub fn maybe_commit(&mut self) -> Result<(), String> {
        if self.writes >= WRITES_PER_TRANSACTION {
            self.commit()?;
        }
        Ok(())
    }

    pub fn commit(&mut self) -> Result<(), String> {
        if self.in_transaction {
            self.conn.execute_batch("COMMIT").map_err(sql_error)?;
            self.in_transaction = false;
            self.writes = 0;
        }
        Ok(())
    }

    pub fn lookup(&self, id: &str) -> Result<Option<Stored>, String> {
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT hash, revoked, version_run, origin_run, restamped
                 FROM objects WHERE id = ?1",
            )
            .map_err(sql_error)?;
        statement
            .query_row([id], |r| {
                Ok(Stored {
                    hash: r.get(0)?,
                    revoked: r.get(1)?,
                    version_run: r.get(2)?,
                    origin_run: r.get(3)?,
                    restamped: r.get(4)?,
                })
            })
            .optional()
            .map_err(sql_error)
    }

    /// The emitted version of an object that has versions.
    pub fn json(&self, id: &str) -> Result<Option<String>, String> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT json FROM versions WHERE id = ?1")
            .map_err(sql_error)?;
        statement
            .query_row([id], |r| r.get(0))
            .optional()
            .map_err(sql_error)
    }

    /// Stores a version.
    pub fn put(&mut self, row: &Row<'_>) -> Result<(), String> {
        self.write_started()?;
        let mut statement = self
            .conn
            .prepare_cached(
                "INSERT OR REPLACE INTO objects
                 (id, hash, revoked, version_run, origin_run, owner, restamped)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .map_err(sql_error)?;
        statement
            .execute(params![
                row.id,
                row.hash,
                row.revoked,
                row.version_run,
                row.origin_run,
                row.owner,
                row.restamped
            ])
            .map_err(sql_error)?;
        drop(statement);
        if let Some(json) = row.json {
            self.put_json(row.id, json)?;
        }
        Ok(())
    }

    fn put_json(&mut self, id: &str, json: &str) -> Result<(), String> {
        let mut statement = self
            .conn
            .prepare_cached(
                "INSERT INTO versions(id, json) VALUES (?1, ?2)
                 ON CONFLICT(id) DO UPDATE SET json = excluded.json",
            )
            .map_err(sql_error)?;
        statement.execute(params![id, json]).map_err(sql_error)?;
        Ok(())
    }

    pub fn remember_membership(
        &mut self,
        relationship_id: &str,
        profile_id: &str,
        indicator_id: &str,
        observable_type: &str,
        value: &str,
    ) -> Result<(), String> {
        self.write_started()?;
        let mut statement = self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO memberships
                 (relationship_id, profile_id, indicator_id, observable_type, value)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(sql_error)?;
        statement
            .execute(params![
                relationship_id,
                profile_id,
                indicator_id,
                observable_type,
                value
            ])
            .map_err(sql_error)?;
        Ok(())
    }

    /// Records that `run` listed the profile.
    pub fn profile_listed(&mut self, profile_id: &str, run: u32) -> Result<(), String> {
        self.write_started()?;
        let mut statement = self
            .conn
            .prepare_cached(
                "INSERT INTO profiles(profile_id, seen_run) VALUES (?1, ?2)
                 ON CONFLICT(profile_id) DO UPDATE SET seen_run = excluded.seen_run",
            )
            .map_err(sql_error)?;
        statement
            .execute(params![profile_id, run])
            .map_err(sql_error)?;
        Ok(())
    }

    /// Profiles listed before and not in `run`.
    pub fn unlisted_profiles(&self, run: u32) -> Result<Vec<String>, String> {
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT profile_id FROM profiles WHERE seen_run < ?1 ORDER BY profile_id",
            )
            .map_err(sql_error)?;
        let rows = statement
            .query_map([run], |r| r.get(0))
            .map_err(sql_error)?;
        rows.collect::<Result<_, _>>().map_err(sql_error)
    }

    /// The current (not revoked) objects a profile's listing carries.
    pub fn owned(&self, owner: &str) -> Result<Vec<String>, String> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT id FROM objects WHERE owner = ?1 AND revoked = 0 ORDER BY id")
            .map_err(sql_error)?;
        let rows = statement
            .query_map([owner], |r| r.get(0))
            .map_err(sql_error)?;
        rows.collect::<Result<_, _>>().map_err(sql_error)
    }

    /// The indicator an `indicates` relationship ties to its profile, if it is one.
    pub fn membership_indicator(&self, relationship_id: &str) -> Result<Option<String>, String> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT indicator_id FROM memberships WHERE relationship_id = ?1")
            .map_err(sql_error)?;
        statement
            .query_row([relationship_id], |r| r.get(0))
            .optional()
            .map_err(sql_error)
    }

    /// Whether some profile still lists the indicator (an `indicates` that is not revoked).
    pub fn still_listed(&self, indicator_id: &str) -> Result<bool, String> {
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT EXISTS(SELECT 1 FROM memberships m JOIN objects r ON r.id = m.relationship_id
                               WHERE m.indicator_id = ?1 AND r.revoked = 0)",
            )
            .map_err(sql_error)?;
        statement
            .query_row([indicator_id], |r| r.get(0))
            .map_err(sql_error)
    }

    /// Marks an object revoked, with the revoked version as emitted.
    pub fn revoke(&mut self, id: &str, json: &str, run: u32) -> Result<(), String> {
        self.write_started()?;
        let mut statement = self
            .conn
            .prepare_cached(
                "UPDATE objects SET revoked = 1, version_run = ?2, restamped = 1 WHERE id = ?1",
            )
            .map_err(sql_error)?;
        statement.execute(params![id, run]).map_err(sql_error)?;
        drop(statement);
        self.put_json(id, json)
    }

    /// Whether a current revocable object has a version made after run `after` and before
    /// `run`: a run that did not list everything may not have carried it.
    pub fn versions_between(&self, after: Option<u32>, run: u32) -> Result<bool, String> {
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
    pub fn revocations_after(
        &self,
        after: u32,
        mut each: impl FnMut(Revocable) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT o.id, v.json, o.version_run, o.origin_run,
                        m.profile_id, m.indicator_id, m.observable_type, m.value
                 FROM objects o JOIN versions v ON v.id = o.id
                 LEFT JOIN memberships m ON m.relationship_id = o.id
                 WHERE o.revoked = 1 AND o.version_run > ?1
                 ORDER BY o.version_run, o.id",
            )
            .map_err(sql_error)?;
        let mut rows = statement.query([after]).map_err(sql_error)?;
        while let Some(r) = rows.next().map_err(sql_error)? {
            let profile: Option<String> = r.get(4).map_err(sql_error)?;
            let membership = match profile {
                Some(profile) => Some((
                    profile,
                    r.get(5).map_err(sql_error)?,
                    r.get(6).map_err(sql_error)?,
                    r.get(7).map_err(sql_error)?,
                )),
                None => None,
            };
            each(Revocable {
                id: r.get(0).map_err(sql_error)?,
                json: r.get(1).map_err(sql_error)?,
                version_run: r.get(2).map_err(sql_error)?,
                origin_run: r.get(3).map_err(sql_error)?,
                membership,
            })?;
        }
        Ok(())
    }
}
