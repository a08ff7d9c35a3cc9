//! The cluster store: a small trait the API and reconcilers use, and its
//! embedded SQLite implementation (one file under the state directory).
//!
//! Rows are `(kind, id, project, host, state, created, data-json)`; every
//! multi-row change goes through [`Store::commit`], one SQLite transaction,
//! so a crash never leaves half of it applied. Schema changes are numbered
//! migrations recorded in `PRAGMA user_version`. An external database (for
//! several stateless servers) implements the same trait.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{Map, Value};

use super::model::{Kind, Resource};

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused an operation.
    #[error("database error")]
    Db(#[from] rusqlite::Error),
    /// A stored row does not decode.
    #[error("corrupt row {kind}/{id}")]
    Corrupt {
        /// Kind column.
        kind: String,
        /// Id column.
        id: i64,
    },
    /// The store lock was poisoned by a panic elsewhere.
    #[error("store lock poisoned")]
    Poisoned,
    /// The database file's directory could not be created.
    #[error("cannot create {path}")]
    Dir {
        /// The directory.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Which rows a listing covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every row of the kind.
    All,
    /// Rows of one project.
    Project(u64),
    /// Rows assigned to one host.
    Host(u64),
}

/// What the API, the agent endpoints and the monitors need from a store.
pub trait Store: Send + Sync {
    /// One resource.
    fn get(&self, kind: Kind, id: u64) -> Result<Option<Resource>, StoreError>;
    /// Resources of a kind in a scope, by id.
    fn list(&self, kind: Kind, scope: Scope) -> Result<Vec<Resource>, StoreError>;
    /// A fresh id for `kind` (ids are never reused; gaps are fine).
    fn allocate(&self, kind: Kind) -> Result<u64, StoreError>;
    /// The id [`Store::allocate`] would hand out next, without taking it:
    /// a pure plan numbers its new rows from here, and committing them
    /// moves the sequence past them. Only under the server's write lock.
    fn next_id(&self, kind: Kind) -> Result<u64, StoreError>;
    /// Insert or replace every resource in one transaction.
    fn commit(&self, rows: &[Resource]) -> Result<(), StoreError>;
    /// True when a live (not removed) resource of `kind` in `project`
    /// (every project when `None`) other than `except` is named `name`.
    fn name_in_use(
        &self,
        kind: Kind,
        project: Option<u64>,
        name: &str,
        except: u64,
    ) -> Result<bool, StoreError>;
    /// Live resources of `kind` in `scope`.
    fn count_live(&self, kind: Kind, scope: Scope) -> Result<usize, StoreError>;
    /// A setting (auth config, CA …).
    fn setting(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Write a setting.
    fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError>;
    /// The store's revision: a number every commit raises (all rows of
    /// one commit share it).
    fn revision(&self) -> Result<u64, StoreError>;
    /// Every row (of any kind, removed ones included) written by a commit
    /// after revision `rev`, oldest first, with the revision they bring the
    /// reader to. A reader that keeps rows between reads (the reconcile
    /// driver's snapshot) asks for only what changed.
    fn changed_since(&self, rev: u64) -> Result<(u64, Vec<Resource>), StoreError>;
    /// The recorded state changes of `project` (every project when
    /// `None`) committed after revision `since`, newest first, at most
    /// `limit`: the environment's event history, kept across restarts
    /// (the last [`EVENTS_KEPT`]).
    fn events(
        &self,
        project: Option<u64>,
        since: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError>;
}

/// How many events the store keeps (older ones are dropped as new ones
/// are recorded).
pub const EVENTS_KEPT: i64 = 10_000;

/// One recorded state change: a host, stack, service or container that
/// appeared, or whose state, health or scale changed, in a commit.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Position in the history (ids are never reused).
    pub seq: u64,
    /// The commit's store revision (what the subscription's event ids are).
    pub rev: u64,
    /// The resource's project.
    pub project: u64,
    /// When it was recorded (ms since the epoch).
    pub at_ms: i64,
    /// The resource's kind.
    pub kind: Kind,
    /// The resource's id.
    pub id: u64,
    /// `name`, `state`, `previousState` (absent for a new resource),
    /// `healthState`, `scale`, `serviceIds`, `serviceKind`.
    pub data: Map<String, Value>,
}

/// Kinds whose changes are recorded as events.
const EVENT_KINDS: [Kind; 4] = [Kind::Host, Kind::Stack, Kind::Service, Kind::Container];

/// The event `new` makes, given the row it replaces (`old`: state,
/// healthState, scale as stored), if it is one.
fn event_of(
    new: &Resource,
    old: Option<&(String, Option<String>, Option<i64>)>,
) -> Option<Map<String, Value>> {
    if !EVENT_KINDS.contains(&new.kind) {
        return None;
    }
    let health = new.str("healthState").map(str::to_string);
    let scale = new.data.get("scale").and_then(Value::as_i64);
    if let Some((state, h, sc)) = old {
        if *state == new.state && *h == health && *sc == scale {
            return None;
        }
    }
    let mut d = Map::new();
    let name = new
        .str("name")
        .or_else(|| new.str("hostname"))
        .unwrap_or_default();
    d.insert("name".into(), Value::from(name));
    d.insert("state".into(), Value::from(new.state.clone()));
    if let Some((state, _, _)) = old {
        d.insert("previousState".into(), Value::from(state.clone()));
    }
    if let Some(h) = health {
        d.insert("healthState".into(), Value::from(h));
    }
    if let Some(sc) = scale {
        d.insert("scale".into(), Value::from(sc));
    }
    let services = match (new.data.get("serviceIds"), new.str("serviceId")) {
        (Some(Value::Array(a)), _) => Value::Array(a.clone()),
        (_, Some(s)) => Value::Array(vec![Value::from(s)]),
        _ => Value::Array(Vec::new()),
    };
    d.insert("serviceIds".into(), services);
    if let Some(k) = new.str("kind") {
        d.insert("serviceKind".into(), Value::from(k));
    }
    Some(d)
}

const MIGRATIONS: &[&str] = &[
    // 1: resources, id sequences, settings.
    "CREATE TABLE resources (
        kind TEXT NOT NULL, id INTEGER NOT NULL, project INTEGER NOT NULL,
        host INTEGER NOT NULL, state TEXT NOT NULL, created INTEGER NOT NULL,
        data TEXT NOT NULL, PRIMARY KEY (kind, id));
     CREATE INDEX resources_project ON resources (kind, project);
     CREATE INDEX resources_host ON resources (kind, host);
     CREATE TABLE sequences (prefix TEXT PRIMARY KEY, next INTEGER NOT NULL);
     CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    // 2: name lookups without scanning every row of a project.
    "CREATE INDEX resources_name ON resources (kind, project, json_extract(data, '$.name'));",
    // 3: the revision of each row's last commit (readers ask what changed).
    "ALTER TABLE resources ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;
     CREATE INDEX resources_rev ON resources (rev);",
    // 4: the event history (state changes, kept across restarts).
    "CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, rev INTEGER NOT NULL,
        project INTEGER NOT NULL, at INTEGER NOT NULL, kind TEXT NOT NULL,
        id INTEGER NOT NULL, data TEXT NOT NULL);
     CREATE INDEX events_project ON events (project, seq);",
];

/// The sequence the commit revisions come from (not an id prefix: those
/// are letters and digits).
const REV_SEQ: &str = "~rev";

/// The embedded SQLite store.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// Ends the checkpoint thread when the store goes (file stores only).
    _checkpointer: Option<std::sync::mpsc::Sender<()>>,
}

/// How often the checkpoint thread copies the WAL into the database file
/// (SQLite's automatic checkpoint, every 1000 pages, came about every 10 s
/// under the 3-host test cluster). Each completed checkpoint lets the next
/// commit start the WAL over, which fsyncs the new WAL header on the
/// serving connection: the one fsync left there, so not more often.
const CHECKPOINT_EVERY: std::time::Duration = if cfg!(test) {
    std::time::Duration::from_millis(20)
} else {
    std::time::Duration::from_secs(10)
};

/// Checkpoint `path`'s WAL every [`CHECKPOINT_EVERY`] from a connection
/// and thread of its own, until the sender returned is dropped.
///
/// With WAL + `synchronous=NORMAL` a checkpoint is where SQLite fsyncs
/// (the whole WAL, then the database file it wrote). Run automatically it
/// ran inside the commit that filled the WAL: under the store's mutex, on
/// one of the server's 2 tokio workers, with `app.write` held, so a slow
/// fsync (a disk shared with busy dockerds) held up every request that
/// touches the store, the agents' syncs and the reconciler at once. A
/// PASSIVE checkpoint from another connection takes no lock the serving
/// connection waits for: it keeps reading and appending meanwhile.
/// `None` when the second connection cannot be opened (the caller then
/// keeps SQLite's automatic checkpoints).
fn spawn_checkpointer(path: &Path) -> Option<std::sync::mpsc::Sender<()>> {
    let conn = Connection::open(path).ok()?;
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("store-checkpoint".into())
        .spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(CHECKPOINT_EVERY)
            {
                let r = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                if let Err(e) = r {
                    tracing::warn!(error = %e, "store checkpoint");
                }
            }
        })
        .ok()?;
    Some(stop)
}

impl SqliteStore {
    /// Open (creating and migrating) the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let conn = Connection::open(path)?;
        // The store holds the CA key and secret hashes: owner-only.
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        let mut store = Self::setup(conn)?;
        // Migrated and in WAL mode: checkpoints move off the serving
        // connection (see `spawn_checkpointer`).
        if let Some(stop) = spawn_checkpointer(path) {
            store.lock()?.pragma_update(None, "wal_autocheckpoint", 0)?;
            store._checkpointer = Some(stop);
        }
        Ok(store)
    }

    /// A private in-memory database (tests).
    pub fn memory() -> Result<SqliteStore, StoreError> {
        Self::setup(Connection::open_in_memory()?)
    }

    fn setup(mut conn: Connection) -> Result<SqliteStore, StoreError> {
        // WAL + NORMAL: a crash loses at most the last commits, never
        // consistency; writers do not block readers.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (i, sql) in MIGRATIONS.iter().enumerate() {
            let n = i64::try_from(i + 1).unwrap_or(i64::MAX);
            if n <= version {
                continue;
            }
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", n)?;
            tx.commit()?;
        }
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            _checkpointer: None,
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.conn.lock().map_err(|_| StoreError::Poisoned)
    }
}

fn row_to_resource(kind: Kind, r: &rusqlite::Row<'_>) -> Result<Resource, StoreError> {
    let id: i64 = r.get(0)?;
    let project: i64 = r.get(1)?;
    let host: i64 = r.get(2)?;
    let state: String = r.get(3)?;
    let created_ms: i64 = r.get(4)?;
    let data: String = r.get(5)?;
    let corrupt = || StoreError::Corrupt {
        kind: kind.type_name().to_string(),
        id,
    };
    let data: Map<String, Value> = serde_json::from_str(&data).map_err(|_| corrupt())?;
    Ok(Resource {
        kind,
        id: u64::try_from(id).map_err(|_| corrupt())?,
        project: u64::try_from(project).map_err(|_| corrupt())?,
        host: u64::try_from(host).map_err(|_| corrupt())?,
        state,
        created_ms,
        data,
    })
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

const COLS: &str = "id, project, host, state, created, data";

impl Store for SqliteStore {
    fn get(&self, kind: Kind, id: u64) -> Result<Option<Resource>, StoreError> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLS} FROM resources WHERE kind = ?1 AND id = ?2"
        ))?;
        let mut rows = stmt.query(params![kind.type_name(), to_i64(id)])?;
        match rows.next()? {
            Some(r) => Ok(Some(row_to_resource(kind, r)?)),
            None => Ok(None),
        }
    }

    fn list(&self, kind: Kind, scope: Scope) -> Result<Vec<Resource>, StoreError> {
        let conn = self.lock()?;
        let (cond, arg) = match scope {
            Scope::All => ("1 = ?2", 1),
            Scope::Project(p) => ("project = ?2", to_i64(p)),
            Scope::Host(h) => ("host = ?2", to_i64(h)),
        };
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLS} FROM resources WHERE kind = ?1 AND {cond} ORDER BY id"
        ))?;
        let mut rows = stmt.query(params![kind.type_name(), arg])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(row_to_resource(kind, r)?);
        }
        Ok(out)
    }

    fn allocate(&self, kind: Kind) -> Result<u64, StoreError> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        let next: Option<i64> = tx
            .query_row(
                "SELECT next FROM sequences WHERE prefix = ?1",
                [kind.id_prefix()],
                |r| r.get(0),
            )
            .optional()?;
        let n = next.unwrap_or(1);
        tx.execute(
            "INSERT INTO sequences (prefix, next) VALUES (?1, ?2)
             ON CONFLICT(prefix) DO UPDATE SET next = excluded.next",
            params![kind.id_prefix(), n + 1],
        )?;
        tx.commit()?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn next_id(&self, kind: Kind) -> Result<u64, StoreError> {
        let conn = self.lock()?;
        let next: Option<i64> = conn
            .query_row(
                "SELECT next FROM sequences WHERE prefix = ?1",
                [kind.id_prefix()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(u64::try_from(next.unwrap_or(1)).unwrap_or(1))
    }

    fn commit(&self, rows: &[Resource]) -> Result<(), StoreError> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        {
            let rev: i64 = tx
                .query_row(
                    "SELECT next FROM sequences WHERE prefix = ?1",
                    [REV_SEQ],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(1);
            tx.execute(
                "INSERT INTO sequences (prefix, next) VALUES (?1, ?2)
                 ON CONFLICT(prefix) DO UPDATE SET next = excluded.next",
                params![REV_SEQ, rev + 1],
            )?;
            let mut stmt = tx.prepare_cached(
                "INSERT OR REPLACE INTO resources (kind, id, project, host, state, created, data, rev)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            let mut bump = tx.prepare_cached(
                "INSERT INTO sequences (prefix, next) VALUES (?1, ?2)
                 ON CONFLICT(prefix) DO UPDATE SET next = max(next, excluded.next)",
            )?;
            let mut old = tx.prepare_cached(
                "SELECT state, json_extract(data, '$.healthState'), json_extract(data, '$.scale')
                 FROM resources WHERE kind = ?1 AND id = ?2",
            )?;
            let mut event = tx.prepare_cached(
                "INSERT INTO events (rev, project, at, kind, id, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let now = super::model::now_ms();
            let mut recorded = false;
            for r in rows {
                if EVENT_KINDS.contains(&r.kind) {
                    let prev: Option<(String, Option<String>, Option<i64>)> = old
                        .query_row(params![r.kind.type_name(), to_i64(r.id)], |x| {
                            Ok((x.get(0)?, x.get(1).ok(), x.get(2).ok()))
                        })
                        .optional()?;
                    if let Some(d) = event_of(r, prev.as_ref()) {
                        event.execute(params![
                            rev,
                            to_i64(r.project),
                            now,
                            r.kind.type_name(),
                            to_i64(r.id),
                            Value::Object(d).to_string()
                        ])?;
                        recorded = true;
                    }
                }
                let data = Value::Object(r.data.clone()).to_string();
                stmt.execute(params![
                    r.kind.type_name(),
                    to_i64(r.id),
                    to_i64(r.project),
                    to_i64(r.host),
                    r.state,
                    r.created_ms,
                    data,
                    rev
                ])?;
                bump.execute(params![r.kind.id_prefix(), to_i64(r.id) + 1])?;
            }
            if recorded {
                // Bounded history: drop what falls out of the last
                // EVENTS_KEPT (a range of the primary key).
                tx.execute(
                    "DELETE FROM events WHERE seq <= (SELECT max(seq) FROM events) - ?1",
                    [EVENTS_KEPT],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn name_in_use(
        &self,
        kind: Kind,
        project: Option<u64>,
        name: &str,
        except: u64,
    ) -> Result<bool, StoreError> {
        let conn = self.lock()?;
        let (cond, p) = match project {
            Some(p) => ("project = ?2", to_i64(p)),
            None => ("?2 = ?2", 0),
        };
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT count(*) FROM resources WHERE kind = ?1 AND {cond}
             AND json_extract(data, '$.name') = ?3 AND id != ?4
             AND state NOT IN ('removed', 'purged')"
        ))?;
        let n: i64 = stmt.query_row(params![kind.type_name(), p, name, to_i64(except)], |r| {
            r.get(0)
        })?;
        Ok(n > 0)
    }

    fn count_live(&self, kind: Kind, scope: Scope) -> Result<usize, StoreError> {
        let conn = self.lock()?;
        let (cond, arg) = match scope {
            Scope::All => ("1 = ?2", 1),
            Scope::Project(p) => ("project = ?2", to_i64(p)),
            Scope::Host(h) => ("host = ?2", to_i64(h)),
        };
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT count(*) FROM resources WHERE kind = ?1 AND {cond}
             AND state NOT IN ('removed', 'purged')"
        ))?;
        let n: i64 = stmt.query_row(params![kind.type_name(), arg], |r| r.get(0))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let conn = self.lock()?;
        Ok(conn
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let conn = self.lock()?;
        conn.execute(
            "INSERT OR REPLACE INTO settings (key, value) VALUES (?1, ?2)",
            params![key, value],
        )?;
        Ok(())
    }

    fn revision(&self) -> Result<u64, StoreError> {
        let conn = self.lock()?;
        let next: Option<i64> = conn
            .query_row(
                "SELECT next FROM sequences WHERE prefix = ?1",
                [REV_SEQ],
                |r| r.get(0),
            )
            .optional()?;
        Ok(u64::try_from(next.unwrap_or(1) - 1).unwrap_or(0))
    }

    fn changed_since(&self, rev: u64) -> Result<(u64, Vec<Resource>), StoreError> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLS}, kind, rev FROM resources WHERE rev > ?1 ORDER BY rev, kind, id"
        ))?;
        let mut rows = stmt.query([to_i64(rev)])?;
        let (mut out, mut at) = (Vec::new(), rev);
        while let Some(r) = rows.next()? {
            let kind: String = r.get(6)?;
            let Some(kind) = Kind::ALL.into_iter().find(|k| k.type_name() == kind) else {
                return Err(StoreError::Corrupt {
                    kind,
                    id: r.get(0)?,
                });
            };
            out.push(row_to_resource(kind, r)?);
            at = at.max(u64::try_from(r.get::<_, i64>(7)?).unwrap_or(0));
        }
        Ok((at, out))
    }

    fn events(
        &self,
        project: Option<u64>,
        since: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let conn = self.lock()?;
        let (cond, p) = match project {
            Some(p) => ("project = ?1", to_i64(p)),
            None => ("?1 = ?1", 0),
        };
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT seq, rev, project, at, kind, id, data FROM events
             WHERE {cond} AND rev > ?2 ORDER BY seq DESC LIMIT ?3"
        ))?;
        let mut rows = stmt.query(params![
            p,
            to_i64(since),
            i64::try_from(limit).unwrap_or(i64::MAX)
        ])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let seq: i64 = r.get(0)?;
            let kind: String = r.get(4)?;
            let corrupt = || StoreError::Corrupt {
                kind: format!("event {kind}"),
                id: seq,
            };
            let k = Kind::ALL
                .into_iter()
                .find(|k| k.type_name() == kind)
                .ok_or_else(corrupt)?;
            let data: String = r.get(6)?;
            out.push(Event {
                seq: u64::try_from(seq).map_err(|_| corrupt())?,
                rev: u64::try_from(r.get::<_, i64>(1)?).map_err(|_| corrupt())?,
                project: u64::try_from(r.get::<_, i64>(2)?).map_err(|_| corrupt())?,
                at_ms: r.get(3)?,
                kind: k,
                id: u64::try_from(r.get::<_, i64>(5)?).map_err(|_| corrupt())?,
                data: serde_json::from_str(&data).map_err(|_| corrupt())?,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_since_gives_only_rows_of_later_commits() {
        let s = SqliteStore::memory().unwrap();
        assert_eq!(s.revision().unwrap(), 0);
        assert_eq!(s.changed_since(0).unwrap(), (0, Vec::new()));
        let a = Resource::new(Kind::Host, 1, 5, "active");
        let mut b = Resource::new(Kind::Container, 7, 5, "running");
        s.commit(&[a.clone(), b.clone()]).unwrap();
        let r1 = s.revision().unwrap();
        assert_eq!(r1, 1);
        let (at, rows) = s.changed_since(0).unwrap();
        assert_eq!((at, rows.len()), (1, 2));
        assert!(rows.contains(&a) && rows.contains(&b));
        // Nothing new: nothing read.
        assert_eq!(s.changed_since(r1).unwrap(), (r1, Vec::new()));
        b.state = "removed".into();
        s.commit(std::slice::from_ref(&b)).unwrap();
        let (at, rows) = s.changed_since(r1).unwrap();
        assert_eq!((at, rows), (2, vec![b]));
        // Id sequences are not revisions.
        s.allocate(Kind::Container).unwrap();
        assert_eq!(s.revision().unwrap(), 2);
    }

    #[test]
    fn commit_is_atomic_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        {
            let s = SqliteStore::open(&path).unwrap();
            let id = s.allocate(Kind::Host).unwrap();
            let mut h = Resource::new(Kind::Host, id, 5, "active");
            h.set("name", "n1");
            s.commit(&[h]).unwrap();
            s.set_setting("k", "v").unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        let hosts = s.list(Kind::Host, Scope::Project(5)).unwrap();
        assert_eq!(hosts.len(), 1);
        assert_eq!(hosts[0].str("name"), Some("n1"));
        assert_eq!(s.setting("k").unwrap().as_deref(), Some("v"));
        assert_eq!(s.allocate(Kind::Host).unwrap(), 2);
        // Explicit ids bump the sequence, so allocation never collides.
        s.commit(&[Resource::new(Kind::Project, 5, 0, "active")])
            .unwrap();
        assert_eq!(s.allocate(Kind::Account).unwrap(), 6);
        assert!(s.name_in_use(Kind::Host, Some(5), "n1", 0).unwrap());
        assert!(!s.name_in_use(Kind::Host, Some(5), "n1", 1).unwrap());
        assert!(!s.name_in_use(Kind::Host, Some(6), "n1", 0).unwrap());
        assert_eq!(s.count_live(Kind::Host, Scope::Project(5)).unwrap(), 1);
    }

    /// The serving connection never checkpoints (no fsync under the
    /// store's mutex): the checkpoint thread copies the WAL into the
    /// database file, which a reader that ignores the WAL then sees.
    #[test]
    fn the_wal_is_checkpointed_off_the_serving_connection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let s = SqliteStore::open(&path).unwrap();
        let auto: i64 = s
            .lock()
            .unwrap()
            .pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))
            .unwrap();
        assert_eq!(auto, 0);
        s.commit(&[Resource::new(Kind::Host, 42, 5, "active")])
            .unwrap();
        let file_only = || {
            let c = Connection::open_with_flags(
                format!("file:{}?immutable=1", path.display()),
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
            )
            .unwrap();
            c.query_row(
                "SELECT count(*) FROM resources WHERE kind = 'host' AND id = 42",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap_or(0)
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while file_only() == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the commit never reached the database file"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    #[test]
    fn state_changes_are_recorded_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        {
            let s = SqliteStore::open(&path).unwrap();
            let mut svc = Resource::new(Kind::Service, 3, 5, "inactive");
            svc.set("name", "web");
            svc.data.insert("scale".into(), Value::from(2));
            let mut c = Resource::new(Kind::Container, 7, 5, "creating");
            c.set("name", "web-1");
            c.set("serviceId", "1s3");
            s.commit(&[svc.clone(), c.clone()]).unwrap();
            // Unchanged rows (a usage report) record nothing.
            c.data.insert("memoryMb".into(), Value::from(12));
            s.commit(std::slice::from_ref(&c)).unwrap();
            c.state = "running".into();
            s.commit(std::slice::from_ref(&c)).unwrap();
            svc.data.insert("scale".into(), Value::from(3));
            s.commit(std::slice::from_ref(&svc)).unwrap();
            // Other projects and kinds are not this project's history.
            s.commit(&[
                Resource::new(Kind::Container, 8, 6, "running"),
                Resource::new(Kind::ApiKey, 1, 5, "active"),
            ])
            .unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        let ev = s.events(Some(5), 0, 100).unwrap();
        let seen: Vec<(Kind, u64, &str, Option<&str>, u64)> = ev
            .iter()
            .map(|e| {
                (
                    e.kind,
                    e.id,
                    e.data["state"].as_str().unwrap(),
                    e.data.get("previousState").and_then(Value::as_str),
                    e.rev,
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                (Kind::Service, 3, "inactive", Some("inactive"), 4),
                (Kind::Container, 7, "running", Some("creating"), 3),
                (Kind::Container, 7, "creating", None, 1),
                (Kind::Service, 3, "inactive", None, 1),
            ]
        );
        assert_eq!(ev[0].data["scale"], 3);
        assert_eq!(ev[1].data["serviceIds"], serde_json::json!(["1s3"]));
        // Replay by revision; a limit keeps the newest.
        assert_eq!(s.events(Some(5), 3, 100).unwrap().len(), 1);
        assert_eq!(s.events(Some(5), 0, 1).unwrap()[0].rev, 4);
        assert_eq!(s.events(None, 0, 100).unwrap().len(), 5);
    }

    #[test]
    fn event_history_is_bounded() {
        let s = SqliteStore::memory().unwrap();
        let mut c = Resource::new(Kind::Container, 1, 5, "s0");
        for i in 0..(EVENTS_KEPT + 20) {
            c.state = format!("s{}", i + 1);
            s.commit(std::slice::from_ref(&c)).unwrap();
        }
        let all = s.events(None, 0, usize::MAX).unwrap();
        assert_eq!(all.len(), usize::try_from(EVENTS_KEPT).unwrap());
        assert_eq!(all[0].data["state"], format!("s{}", EVENTS_KEPT + 20));
    }

    #[test]
    fn failed_commit_applies_nothing() {
        let s = SqliteStore::memory().unwrap();
        s.lock()
            .unwrap()
            .execute_batch(
                "CREATE TRIGGER boom BEFORE INSERT ON resources WHEN NEW.id = 999
                 BEGIN SELECT RAISE(ABORT, 'simulated crash'); END;",
            )
            .unwrap();
        let ok = Resource::new(Kind::Host, 1, 5, "active");
        let bad = Resource::new(Kind::Host, 999, 5, "active");
        assert!(s.commit(&[ok, bad]).is_err());
        assert!(
            s.list(Kind::Host, Scope::All).unwrap().is_empty(),
            "half a change leaked"
        );
        assert_eq!(
            s.allocate(Kind::Host).unwrap(),
            1,
            "sequence bump rolled back too"
        );
    }
}
