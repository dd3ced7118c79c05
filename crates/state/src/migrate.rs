//! Versioned schema migrations.
//!
//! `schema_migrations (version, description, applied_at)` records every
//! version applied. Opening the state applies the missing ones, in order, in
//! one transaction that holds the schema lock (SQLite's write lock; a
//! transaction-scoped advisory lock on PostgreSQL), so two processes opening
//! a new state database at the same moment do not collide, and a crash
//! half-way leaves the database at its previous version.
//!
//! A database whose newest version is above [`LATEST`] was written by a newer
//! retl and is refused ([`Error::TooNew`]) rather than misread.
//!
//! To change the schema, add a [`Migration`] with the next version and its
//! arm in `apply`; never edit one that has shipped.

use crate::db::{Db, Tx, on};
use crate::{Clock, Error, Result};

/// One schema version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// Its number, from 1, without gaps.
    pub version: i64,
    /// What it changes.
    pub description: &'static str,
}

/// Every migration this build knows, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "ledger, runs, run_rows and leases, as the first releases made them",
    },
    Migration {
        version: 2,
        description: "ledger keys of digit-only text hashed as the integer they spell (canonical keys)",
    },
    Migration {
        version: 3,
        description: "run-log indexes: rows by reference and by key (runs find), runs by status",
    },
    Migration {
        version: 4,
        description: "cursors: each activation's high-water mark and last full scan (cursor mode)",
    },
    Migration {
        version: 5,
        description: "key_segments: settled keys in sorted blocks, for the full-scan diff",
    },
    Migration {
        version: 6,
        description: "activation_sources: which source each activation reads, to catch a renamed activation",
    },
    Migration {
        version: 7,
        description: "run_rows: a destination's answer as external_id and details, not Trustpilot's columns",
    },
    Migration {
        version: 8,
        description: "ledger.failing_since: when a row's current run of transient failures began (retry.give_up_after)",
    },
    Migration {
        version: 9,
        description: "approvals: `retl approve`, who let an activation's next run past its safety limits, and which run used it",
    },
    Migration {
        version: 10,
        description: "incidents: an alert rule's open incidents, so each alerts once and its recovery once, across processes",
    },
    Migration {
        version: 11,
        description: "run_rows.contact_hash and state_keys: find a person's rows by a keyed hash of their email, never the email",
    },
    Migration {
        version: 12,
        description: "erasures: when `retl forget` erased a person's traces and how many rows, without the address",
    },
    Migration {
        version: 13,
        description: "content_shapes: the mapped columns an activation's content hashes were made under",
    },
    Migration {
        version: 14,
        description: "contacts: who was last invited in each dedupe scope, by the keyed hash of their email",
    },
    Migration {
        version: 15,
        description: "run_rows.request: what was sent for a row, without the person's name and email",
    },
    Migration {
        version: 16,
        description: "key_prefixes: four bytes of each key of a key-segment block, to look a few keys up without reading the blocks",
    },
    Migration {
        version: 17,
        description: "activation_destinations, key_table_keys, allowance_uses, forgotten: where settled keys went, the keys written to a warehouse key table, monthly allowances claimed row by row, forgotten people",
    },
    Migration {
        version: 18,
        description: "approvals.expires_at, revoked_at, revoked_by: approvals given ahead of a refusal expire, and any can be revoked",
    },
    Migration {
        version: 19,
        description: "ledger_needing_attention, settlements: the rows failing, uncertain or given up found without a scan; who settled uncertain rows by hand (`retl runs settle`), and when",
    },
    Migration {
        version: 20,
        description: "key_bounds: each key-segment block's first and last key and level, so that a lookup reads the one block a key can be in",
    },
];

/// The newest schema version this build knows.
pub const LATEST: i64 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// Any fixed number: it names retl's schema lock on PostgreSQL.
const SCHEMA_LOCK: i64 = 7_265_071_101;

/// The newest applied version, or `None` when no migration table exists yet
/// (a new database, or one made before versions were recorded).
async fn current(db: &Db) -> Option<i64> {
    let sql = "SELECT MAX(version) FROM schema_migrations";
    let row: Result<(Option<i64>,), sqlx::Error> =
        on!(db.executor(), |c| sqlx::query_as(sql).fetch_one(c).await);
    row.ok().map(|(v,)| v.unwrap_or(0))
}

/// Applies every missing migration; returns the versions applied now.
pub(crate) async fn run(db: &Db, clock: &dyn Clock) -> Result<Vec<i64>> {
    // The common case, a database already up to date, takes no write lock.
    if let Some(version) = current(db).await {
        if version == LATEST {
            return Ok(Vec::new());
        }
        if version > LATEST {
            return Err(Error::TooNew {
                found: version,
                known: LATEST,
            });
        }
    }
    let mut tx = db.begin().await?;
    if let Tx::Postgres(c) = &mut tx {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SCHEMA_LOCK)
            .execute(&mut **c)
            .await
            .map_err(Error::db("take the schema lock"))?;
    }
    exec(
        &mut tx,
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version     BIGINT PRIMARY KEY,
            description TEXT NOT NULL,
            applied_at  TEXT NOT NULL
         )",
    )
    .await?;
    // Read again under the lock: another process may have migrated meanwhile.
    let (found,): (Option<i64>,) = on!(tx.executor(), |c| sqlx::query_as(
        "SELECT MAX(version) FROM schema_migrations"
    )
    .fetch_one(c)
    .await)
    .map_err(Error::db("read the schema version"))?;
    let found = found.unwrap_or(0);
    if found > LATEST {
        return Err(Error::TooNew {
            found,
            known: LATEST,
        });
    }
    let now = clock
        .now()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut applied = Vec::new();
    for migration in MIGRATIONS.iter().filter(|m| m.version > found) {
        apply(&mut tx, migration.version).await?;
        on!(tx.executor(), |c| sqlx::query(
            "INSERT INTO schema_migrations (version, description, applied_at) VALUES ($1, $2, $3)"
        )
        .bind(migration.version)
        .bind(migration.description)
        .bind(&now)
        .execute(c)
        .await
        .map(|_| ()))
        .map_err(Error::db("record a migration"))?;
        applied.push(migration.version);
    }
    tx.commit().await?;
    if !applied.is_empty() {
        tracing::info!(?applied, "state database migrated");
    }
    Ok(applied)
}

async fn exec(tx: &mut Tx, sql: &str) -> Result<()> {
    on!(tx.executor(), |c| sqlx::query(sql)
        .execute(c)
        .await
        .map(|_| ()))
    .map_err(Error::db("change the schema"))?;
    Ok(())
}

/// The migrations that are plain statements, the same on both databases.
fn statements(version: i64) -> Option<&'static [&'static str]> {
    Some(match version {
        8 => &["ALTER TABLE ledger ADD COLUMN failing_since TEXT"],
        11 => &[
            "ALTER TABLE run_rows ADD COLUMN contact_hash TEXT",
            "CREATE INDEX IF NOT EXISTS run_rows_by_contact ON run_rows (contact_hash)",
            "CREATE TABLE IF NOT EXISTS state_keys (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
        ],
        12 => &["CREATE TABLE IF NOT EXISTS erasures (
                    at           TEXT NOT NULL,
                    rows_erased  BIGINT NOT NULL,
                    destinations TEXT NOT NULL
                 )"],
        14 => &["CREATE TABLE IF NOT EXISTS contacts (
                    scope        TEXT NOT NULL,
                    contact_hash TEXT NOT NULL,
                    activation   TEXT NOT NULL,
                    key_hash     TEXT NOT NULL,
                    run_id       TEXT NOT NULL,
                    invited_at   TEXT NOT NULL,
                    PRIMARY KEY (scope, contact_hash)
                 )"],
        15 => &["ALTER TABLE run_rows ADD COLUMN request TEXT"],
        13 => &[
            "CREATE TABLE IF NOT EXISTS content_shapes (activation TEXT PRIMARY KEY, shape TEXT NOT NULL)",
        ],
        17 => &[
            "CREATE TABLE IF NOT EXISTS activation_destinations (
                activation TEXT PRIMARY KEY,
                identity   TEXT NOT NULL,
                updated_at TEXT NOT NULL
             )",
            "CREATE TABLE IF NOT EXISTS key_table_keys (
                activation TEXT PRIMARY KEY,
                keys       BIGINT NOT NULL
             )",
            "CREATE TABLE IF NOT EXISTS allowance_uses (
                scope TEXT NOT NULL,
                month TEXT NOT NULL,
                used  BIGINT NOT NULL,
                PRIMARY KEY (scope, month)
             )",
            "CREATE TABLE IF NOT EXISTS forgotten (
                contact_hash TEXT PRIMARY KEY,
                forgotten_at TEXT NOT NULL
             )",
        ],
        18 => &[
            "ALTER TABLE approvals ADD COLUMN expires_at TEXT",
            "ALTER TABLE approvals ADD COLUMN revoked_at TEXT",
            "ALTER TABLE approvals ADD COLUMN revoked_by TEXT",
        ],
        19 => &[
            "CREATE INDEX IF NOT EXISTS ledger_needing_attention ON ledger (activation, status)
             WHERE status IN ('failed', 'uncertain', 'given_up', 'in_flight')",
            "CREATE TABLE IF NOT EXISTS settlements (
                activation TEXT NOT NULL,
                run_id     TEXT NOT NULL,
                row_key    TEXT NOT NULL,
                settled_as TEXT NOT NULL,
                settled_by TEXT NOT NULL,
                settled_at TEXT NOT NULL
             )",
            "CREATE INDEX IF NOT EXISTS settlements_by_key ON settlements (row_key)",
        ],
        _ => return None,
    })
}

/// The type of a column of bytes on `tx`'s database.
fn bytes_type(tx: &Tx) -> &'static str {
    if matches!(tx, Tx::Postgres(_)) {
        "BYTEA"
    } else {
        "BLOB"
    }
}

async fn apply(tx: &mut Tx, version: i64) -> Result<()> {
    if let Some(statements) = statements(version) {
        for statement in statements {
            exec(tx, statement).await?;
        }
        return Ok(());
    }
    match version {
        1 => v1(tx).await,
        2 => v2(tx).await,
        4 => {
            exec(
                tx,
                "CREATE TABLE IF NOT EXISTS cursors (
                activation   TEXT PRIMARY KEY,
                kind         TEXT,
                high_water   TEXT,
                full_scan_at TEXT,
                updated_at   TEXT NOT NULL
             )",
            )
            .await
        }
        20 => v20(tx).await,
        16 => {
            let bytes = bytes_type(tx);
            // A table of its own: SQLite reaches a column stored after a
            // large blob only by walking the blob's overflow pages.
            exec(
                tx,
                &format!(
                    "CREATE TABLE IF NOT EXISTS key_prefixes (
                    activation TEXT NOT NULL,
                    part       BIGINT NOT NULL,
                    seq        BIGINT NOT NULL,
                    prefixes   {bytes} NOT NULL,
                    PRIMARY KEY (activation, part, seq)
                 )"
                ),
            )
            .await
        }
        5 => {
            let bytes = bytes_type(tx);
            exec(
                tx,
                &format!(
                    "CREATE TABLE IF NOT EXISTS key_segments (
                    activation TEXT NOT NULL,
                    part       BIGINT NOT NULL,
                    seq        BIGINT NOT NULL,
                    records    BIGINT NOT NULL,
                    data       {bytes} NOT NULL,
                    PRIMARY KEY (activation, part, seq)
                 )"
                ),
            )
            .await
        }
        6 => {
            exec(
                tx,
                "CREATE TABLE IF NOT EXISTS activation_sources (
                activation TEXT PRIMARY KEY,
                source_id  TEXT NOT NULL,
                updated_at TEXT NOT NULL
             )",
            )
            .await?;
            exec(
                tx,
                "CREATE INDEX IF NOT EXISTS activation_sources_by_source ON activation_sources (source_id)",
            )
            .await
        }
        7 => v7(tx).await,
        10 => v10(tx).await,
        9 => v9(tx).await,
        3 => {
            for statement in [
                "CREATE INDEX IF NOT EXISTS run_rows_by_reference ON run_rows (reference)",
                "CREATE INDEX IF NOT EXISTS run_rows_by_key ON run_rows (row_key)",
                "CREATE INDEX IF NOT EXISTS runs_by_started ON runs (started_at)",
            ] {
                exec(tx, statement).await?;
            }
            Ok(())
        }
        other => unreachable!("migration {other} is listed but has no body"),
    }
}

/// Version 20: `key_bounds`, a row per key-segment block: its level and
/// its first and last key. Blocks written before are level 1 (they may
/// overlap); the next merge of their part rewrites them as level 0.
async fn v20(tx: &mut Tx) -> Result<()> {
    let bytes = bytes_type(tx);
    exec(
        tx,
        &format!(
            "CREATE TABLE IF NOT EXISTS key_bounds (
                activation TEXT NOT NULL,
                part       BIGINT NOT NULL,
                seq        BIGINT NOT NULL,
                level      BIGINT NOT NULL,
                lo         {bytes} NOT NULL,
                hi         {bytes} NOT NULL,
                PRIMARY KEY (activation, part, seq)
             )"
        ),
    )
    .await?;
    // With `seq`, the index alone answers "the block a key can be in".
    exec(
        tx,
        "CREATE INDEX IF NOT EXISTS key_bounds_by_level ON key_bounds (activation, level, part, hi, seq)",
    )
    .await?;
    // A record is 32 bytes, its key the first 16.
    exec(
        tx,
        "INSERT INTO key_bounds (activation, part, seq, level, lo, hi)
         SELECT activation, part, seq, 1, substr(data, 1, 16), substr(data, length(data) - 31, 16)
         FROM key_segments WHERE records > 0",
    )
    .await
}

/// Version 9: `approvals` (`retl approve`).
async fn v9(tx: &mut Tx) -> Result<()> {
    exec(
        tx,
        "CREATE TABLE IF NOT EXISTS approvals (
            activation  TEXT NOT NULL,
            approved_at TEXT NOT NULL,
            approved_by TEXT NOT NULL,
            refused_run TEXT,
            used_by     TEXT,
            used_at     TEXT
         )",
    )
    .await?;
    exec(
        tx,
        "CREATE INDEX IF NOT EXISTS approvals_by_activation ON approvals (activation, used_by)",
    )
    .await
}

/// Version 10: `incidents` (alerts), one open per activation and event.
async fn v10(tx: &mut Tx) -> Result<()> {
    exec(
        tx,
        "CREATE TABLE IF NOT EXISTS incidents (
            activation TEXT NOT NULL,
            event      TEXT NOT NULL,
            opened_at  TEXT NOT NULL,
            run_id     TEXT,
            closed_at  TEXT
         )",
    )
    .await?;
    // One open incident per activation and event: a second process
    // opening the same one finds it open.
    exec(
        tx,
        "CREATE UNIQUE INDEX IF NOT EXISTS incidents_open ON incidents (activation, event) WHERE closed_at IS NULL",
    )
    .await
}

/// Version 7: the run log keeps a destination's answer in neutral columns,
/// `external_id` (the id of what it created) and `details` (JSON: `status`,
/// `error_code`, `correlation_id`, `url`), instead of Trustpilot's
/// `status_code`, `error_code`, `correlation_id`, `invitation_id`,
/// `link_url`. Old rows are carried over, then those columns dropped.
async fn v7(tx: &mut Tx) -> Result<()> {
    let object = if matches!(tx, Tx::Postgres(_)) {
        "CAST(json_strip_nulls(json_build_object('status', status_code, 'error_code', error_code,
              'correlation_id', correlation_id, 'url', link_url)) AS TEXT)"
    } else {
        "json_object('status', status_code, 'error_code', error_code,
              'correlation_id', correlation_id, 'url', link_url)"
    };
    exec(tx, "ALTER TABLE run_rows ADD COLUMN external_id TEXT").await?;
    exec(tx, "ALTER TABLE run_rows ADD COLUMN details TEXT").await?;
    exec(
        tx,
        &format!(
            "UPDATE run_rows SET external_id = invitation_id,
                details = CASE WHEN status_code IS NULL AND error_code IS NULL
                                    AND correlation_id IS NULL AND link_url IS NULL
                               THEN NULL ELSE {object} END"
        ),
    )
    .await?;
    for column in [
        "status_code",
        "error_code",
        "correlation_id",
        "invitation_id",
        "link_url",
    ] {
        exec(tx, &format!("ALTER TABLE run_rows DROP COLUMN {column}")).await?;
    }
    Ok(())
}

/// Version 1: the tables of the first releases. Written with `IF NOT EXISTS`,
/// so a database those releases made (which has them, but no
/// `schema_migrations`) is adopted as version 1 unchanged.
async fn v1(tx: &mut Tx) -> Result<()> {
    let postgres = matches!(tx, Tx::Postgres(_));
    let (bytes, rowid) = if postgres {
        ("BYTEA", "")
    } else {
        ("BLOB", " WITHOUT ROWID")
    };
    let ledger = format!(
        "CREATE TABLE IF NOT EXISTS ledger (
            activation   TEXT NOT NULL,
            key_hash     {bytes} NOT NULL,
            content_hash {bytes} NOT NULL,
            status       TEXT NOT NULL,
            attempts     BIGINT NOT NULL DEFAULT 0,
            row_key      TEXT,
            reference    TEXT,
            first_run    TEXT NOT NULL,
            last_run     TEXT NOT NULL,
            last_error   TEXT,
            updated_at   TEXT NOT NULL,
            PRIMARY KEY (activation, key_hash)
        ){rowid}"
    );
    exec(tx, &ledger).await?;
    for statement in [
        "CREATE TABLE IF NOT EXISTS runs (
            run_id      TEXT PRIMARY KEY,
            activation  TEXT NOT NULL,
            status      TEXT NOT NULL,
            started_at  TEXT NOT NULL,
            finished_at TEXT,
            counts      TEXT NOT NULL,
            error       TEXT
         )",
        "CREATE INDEX IF NOT EXISTS runs_by_activation ON runs (activation, started_at)",
        "CREATE TABLE IF NOT EXISTS leases (
            activation    TEXT PRIMARY KEY,
            holder        TEXT NOT NULL,
            fencing_token BIGINT NOT NULL,
            expires_at    BIGINT NOT NULL
         )",
        "CREATE TABLE IF NOT EXISTS run_rows (
            run_id         TEXT NOT NULL,
            seq            BIGINT NOT NULL,
            row_key        TEXT NOT NULL,
            reference      TEXT,
            outcome        TEXT NOT NULL,
            reason         TEXT,
            status_code    BIGINT,
            error_code     TEXT,
            correlation_id TEXT,
            invitation_id  TEXT,
            link_url       TEXT,
            at             TEXT NOT NULL,
            PRIMARY KEY (run_id, seq)
         )",
    ] {
        exec(tx, statement).await?;
    }
    // The very first releases made `run_rows` without `link_url`.
    match tx.executor() {
        crate::db::DbRef::Postgres(c) => {
            sqlx::query("ALTER TABLE run_rows ADD COLUMN IF NOT EXISTS link_url TEXT")
                .execute(c)
                .await
                .map_err(Error::db("change the schema"))?;
        }
        crate::db::DbRef::Sqlite(c) => {
            let has: Option<(String,)> = sqlx::query_as(
                "SELECT name FROM pragma_table_info('run_rows') WHERE name = 'link_url'",
            )
            .fetch_optional(&mut *c)
            .await
            .map_err(Error::db("read the schema"))?;
            if has.is_none() {
                sqlx::query("ALTER TABLE run_rows ADD COLUMN link_url TEXT")
                    .execute(c)
                    .await
                    .map_err(Error::db("change the schema"))?;
            }
        }
    }
    Ok(())
}

/// Ledger rows per page while rewriting keys.
const REHASH_PAGE: i64 = 5_000;

/// Version 2: keys are hashed from a canonical form of their values
/// ([`retl_diff::hash_keys`]), so a text key of digits (a PostgreSQL
/// `numeric`, a MySQL `decimal`) now has its integer's identity. Each ledger
/// row whose logged key text proves its stored hash was the old text hash is
/// given the canonical one ([`retl_diff::canonical_from_legacy`]); a key
/// already held under its canonical hash is left as it is. Rows recorded
/// without key text (the baseline of releases before this one) cannot be
/// proven and keep their hash: integer keys, the common case, never changed.
async fn v2(tx: &mut Tx) -> Result<()> {
    let read = Error::db("read the ledger to migrate it");
    let write = Error::db("rewrite a ledger key");
    let mut after: (String, Vec<u8>) = (String::new(), Vec::new());
    loop {
        let page: Vec<(String, Vec<u8>, String)> = on!(tx.executor(), |c| sqlx::query_as(
            "SELECT activation, key_hash, row_key FROM ledger
             WHERE row_key IS NOT NULL
               AND (activation > $1 OR (activation = $1 AND key_hash > $2))
             ORDER BY activation, key_hash LIMIT $3"
        )
        .bind(&after.0)
        .bind(&after.1)
        .bind(REHASH_PAGE)
        .fetch_all(c)
        .await)
        .map_err(read)?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = (last.0.clone(), last.1.clone());
        for (activation, key, row_key) in &page {
            let Ok(stored) = <[u8; 16]>::try_from(key.as_slice()) else {
                continue;
            };
            let Some(canonical) = retl_diff::canonical_from_legacy(&stored, row_key) else {
                continue;
            };
            on!(tx.executor(), |c| sqlx::query(
                "UPDATE ledger SET key_hash = $3
                 WHERE activation = $1 AND key_hash = $2
                   AND NOT EXISTS (SELECT 1 FROM ledger l2
                                   WHERE l2.activation = $1 AND l2.key_hash = $3)"
            )
            .bind(activation)
            .bind(key.as_slice())
            .bind(canonical.as_slice())
            .execute(c)
            .await
            .map(|_| ()))
            .map_err(write)?;
        }
    }
}
