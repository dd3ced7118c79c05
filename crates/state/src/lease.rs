//! Leases: one run per activation at a time, and the fenced transaction every
//! write of a run goes through.

use std::path::Path;
use std::time::Duration;

use crate::db::{DbRef, Tx, on};
use crate::{Error, Result, State};

/// The right to run one activation, held by one process until it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The activation.
    pub activation: String,
    /// The run holding it.
    pub run_id: String,
    /// `host:pid:space:run_id` of the holder (`space`: the PID namespace and boot).
    pub holder: String,
    /// Grows by one with every new holder.
    pub token: i64,
    /// How long the lease lasts without renewal.
    pub ttl: Duration,
}

/// A write transaction of a run, begun by checking its lease.
///
/// The only way to write the ledger or the run log; see the crate's
/// "Fenced writes". Dropped without [`commit`](Self::commit), it rolls back.
#[derive(Debug)]
pub struct Fenced {
    pub(crate) tx: Tx,
    pub(crate) activation: String,
    pub(crate) run_id: String,
    /// The time of the transaction, as stored.
    pub(crate) now: String,
}

impl Fenced {
    /// The activation whose lease this transaction checked.
    pub fn activation(&self) -> &str {
        &self.activation
    }

    /// Commits every write of the transaction together.
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await
    }
}

/// This machine's name, to recognise leases left by dead local processes.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "localhost".to_owned(), |h| h.trim().to_owned())
}

/// What makes a PID mean one process: the PID namespace (`/proc/self/ns/pid`)
/// and the boot (`/proc/sys/kernel/random/boot_id`). Two containers, or two
/// machines, can share a host name and hand out the same PIDs; only a holder
/// with this identity can be proven dead by looking at `/proc`. `None` where
/// these cannot be read (not Linux): then no holder is ever taken as dead,
/// and a lease is taken over only once it expires.
fn process_space() -> Option<String> {
    let namespace = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let namespace = namespace
        .to_str()?
        .trim_start_matches("pid:")
        .trim_matches(['[', ']']);
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let boot: String = boot
        .trim()
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(12)
        .collect();
    Some(format!("{namespace}.{boot}"))
}

/// The lease holder this process writes: `host:pid:space:run_id`, with
/// `space` from [`process_space`] (`-` when unknown).
fn holder_of(host: &str, pid: u32, space: Option<&str>, run_id: &str) -> String {
    format!("{host}:{pid}:{}:{run_id}", space.unwrap_or("-"))
}

/// Whether a lease holder is a process that is proven gone: on this host,
/// in this PID namespace and boot, with no such PID. A holder written by an
/// earlier release (`host:pid:run_id`, no space) or from another namespace
/// is never proven dead: its lease is taken over only when it expires.
fn holder_is_dead(
    holder: &str,
    host: &str,
    space: Option<&str>,
    alive: impl Fn(u32) -> bool,
) -> bool {
    let mut parts = holder.splitn(4, ':');
    let (Some(their_host), Some(pid), Some(their_space), Some(_run)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Some(space) = space else {
        return false;
    };
    their_host == host
        && their_space == space
        && pid
            .parse::<u32>()
            .is_ok_and(|pid| pid != std::process::id() && !alive(pid))
}

/// Whether a lease holder (see [`holder_is_dead`]) is a process of this machine that no longer exists.
fn holder_is_dead_here(holder: &str) -> bool {
    Path::new("/proc/self").exists()
        && holder_is_dead(holder, &host_name(), process_space().as_deref(), |pid| {
            Path::new(&format!("/proc/{pid}")).exists()
        })
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl State {
    /// Takes the lease on `activation` for `ttl`, if nobody holds it. A lease
    /// that expired, or whose holder was a process of this machine that is
    /// gone (killed), is taken over with a new fencing token.
    pub async fn acquire_lease(
        &self,
        activation: &str,
        run_id: &str,
        ttl: Duration,
    ) -> Result<Lease> {
        let holder = holder_of(
            &host_name(),
            std::process::id(),
            process_space().as_deref(),
            run_id,
        );
        let now = self.clock.now_ms();
        let current: Option<(String, i64)> = on!(self.db.executor(), |c| sqlx::query_as(
            "SELECT holder, expires_at FROM leases WHERE activation = $1"
        )
        .bind(activation)
        .fetch_optional(c)
        .await)
        .map_err(Error::db("read a lease"))?;
        // A dead local holder's lease is taken over at once, if still theirs.
        let dead = current
            .as_ref()
            .filter(|(h, _)| holder_is_dead_here(h))
            .map(|(h, _)| h.clone());
        let taken: Option<(i64,)> = on!(self.db.executor(), |c| {
            sqlx::query_as(
                "INSERT INTO leases (activation, holder, fencing_token, expires_at) VALUES ($1, $2, 1, $3)
                 ON CONFLICT (activation) DO UPDATE SET
                    holder = excluded.holder,
                    fencing_token = leases.fencing_token + 1,
                    expires_at = excluded.expires_at
                 WHERE leases.expires_at < $4 OR leases.holder = $5
                 RETURNING fencing_token",
            )
            .bind(activation)
            .bind(&holder)
            .bind(now.saturating_add(millis(ttl)))
            .bind(now)
            .bind(&dead)
            // Every row, so that the statement runs to its end: a row handed
            // back before a failed commit (a full disk) is no lease.
            .fetch_all(c)
            .await
        })
        .map_err(Error::db("take a lease"))?
        .into_iter()
        .next();
        match taken {
            Some((token,)) => Ok(Lease {
                activation: activation.to_owned(),
                run_id: run_id.to_owned(),
                holder,
                token,
                ttl,
            }),
            None => {
                // Taken between our look and our insert: look again for who holds it.
                let current = match current {
                    Some(current) => Some(current),
                    None => on!(self.db.executor(), |c| sqlx::query_as(
                        "SELECT holder, expires_at FROM leases WHERE activation = $1"
                    )
                    .bind(activation)
                    .fetch_optional(c)
                    .await)
                    .map_err(Error::db("read a lease"))?,
                };
                let (other, expires_at) = current.unwrap_or_default();
                Err(Error::Locked {
                    activation: activation.to_owned(),
                    holder: other,
                    expires_in: Duration::from_millis(u64::try_from(expires_at - now).unwrap_or(0)),
                })
            }
        }
    }

    /// Who holds the lease on `activation` now, and for how long more, if
    /// anyone alive does (an expired lease, or one whose holder was a
    /// process of this machine that is gone, is held by nobody).
    pub async fn lease_holder(&self, activation: &str) -> Result<Option<(String, Duration)>> {
        let now = self.clock.now_ms();
        let current: Option<(String, i64)> = on!(self.db.executor(), |c| sqlx::query_as(
            "SELECT holder, expires_at FROM leases WHERE activation = $1"
        )
        .bind(activation)
        .fetch_optional(c)
        .await)
        .map_err(Error::db("read a lease"))?;
        Ok(current
            .filter(|(holder, expires_at)| *expires_at >= now && !holder_is_dead_here(holder))
            .map(|(holder, expires_at)| {
                let left = u64::try_from(expires_at - now).unwrap_or(0);
                (holder, Duration::from_millis(left))
            }))
    }

    /// Extends the lease; `false` if it was lost (expired and taken over).
    pub async fn renew_lease(&self, lease: &Lease) -> Result<bool> {
        let expires_at = self.clock.now_ms().saturating_add(millis(lease.ttl));
        let updated = on!(self.db.executor(), |c| sqlx::query(
            "UPDATE leases SET expires_at = $3 WHERE activation = $1 AND fencing_token = $2",
        )
        .bind(&lease.activation)
        .bind(lease.token)
        .bind(expires_at)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(Error::db("renew a lease"))?;
        Ok(updated == 1)
    }

    /// Gives the lease up (nothing happens if it was already taken over).
    pub async fn release_lease(&self, lease: &Lease) -> Result<()> {
        on!(self.db.executor(), |c| sqlx::query(
            "DELETE FROM leases WHERE activation = $1 AND fencing_token = $2"
        )
        .bind(&lease.activation)
        .bind(lease.token)
        .execute(c)
        .await
        .map(|_| ()))
        .map_err(Error::db("release a lease"))?;
        Ok(())
    }

    /// Begins a write transaction of the run holding `lease`, after checking
    /// that the lease is still its own and unexpired ([`Error::LeaseLost`]
    /// otherwise). The check holds until the commit: SQLite's write
    /// transaction holds the database's write lock from its start; PostgreSQL
    /// locks the lease row (`FOR SHARE`) until the commit.
    pub async fn fenced(&self, lease: &Lease) -> Result<Fenced> {
        let mut tx = self.db.begin().await?;
        let read = Error::db("check the lease");
        let row: Option<(i64, i64)> = match tx.executor() {
            DbRef::Sqlite(c) => {
                sqlx::query_as("SELECT fencing_token, expires_at FROM leases WHERE activation = $1")
                    .bind(&lease.activation)
                    .fetch_optional(c)
                    .await
            }
            DbRef::Postgres(c) => {
                sqlx::query_as(
                    "SELECT fencing_token, expires_at FROM leases WHERE activation = $1 FOR SHARE",
                )
                .bind(&lease.activation)
                .fetch_optional(c)
                .await
            }
        }
        .map_err(read)?;
        match row {
            Some((token, expires_at))
                if token == lease.token && expires_at > self.clock.now_ms() =>
            {
                Ok(Fenced {
                    tx,
                    activation: lease.activation.clone(),
                    run_id: lease.run_id.clone(),
                    now: self.now_text(),
                })
            }
            _ => Err(Error::LeaseLost {
                activation: lease.activation.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{Clock as _, ManualClock, OpenOptions};

    async fn state() -> (tempfile::TempDir, State, Arc<ManualClock>) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("state.db").display());
        let clock = Arc::new(ManualClock::new(
            chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
                .unwrap()
                .to_utc(),
        ));
        let options = OpenOptions {
            clock: clock.clone(),
            ..OpenOptions::default()
        };
        let state = State::open_with(&url, &options).await.unwrap();
        (dir, state, clock)
    }

    #[test]
    fn only_a_holder_in_this_pid_namespace_and_boot_is_proven_dead() {
        let gone = |_pid: u32| false;
        let here = Some("4026531836.abc123");
        let holder = holder_of("box", 4242, here, "run-a");
        assert!(holder_is_dead(&holder, "box", here, gone));
        assert!(!holder_is_dead(&holder, "box", here, |_| true), "alive");
        // The same host name and PID in another namespace (a container, a
        // second machine with the default host name): not provably dead.
        assert!(!holder_is_dead(
            &holder,
            "box",
            Some("4026532000.abc123"),
            gone
        ));
        assert!(!holder_is_dead(
            &holder,
            "box",
            Some("4026531836.def456"),
            gone
        ));
        assert!(!holder_is_dead(&holder, "other", here, gone));
        // Where the namespace is unknown, on either side, nobody is.
        assert!(!holder_is_dead(
            &holder_of("box", 4242, None, "r"),
            "box",
            here,
            gone
        ));
        assert!(!holder_is_dead(&holder, "box", None, gone));
        // An earlier release's `host:pid:run_id`.
        assert!(!holder_is_dead("box:4242:run-a", "box", here, gone));
    }

    #[tokio::test]
    async fn a_held_lease_refuses_a_second_run_and_is_free_after_release() {
        let (_dir, state, _) = state().await;
        let lease = state
            .acquire_lease("orders", "run-a", Duration::from_mins(1))
            .await
            .unwrap();
        let err = state
            .acquire_lease("orders", "run-b", Duration::from_mins(1))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Locked { .. }), "{err}");
        assert!(err.to_string().contains("run-a"), "{err}");
        state
            .acquire_lease("other", "run-c", Duration::from_mins(1))
            .await
            .unwrap();
        state.release_lease(&lease).await.unwrap();
        let again = state
            .acquire_lease("orders", "run-b", Duration::from_mins(1))
            .await
            .unwrap();
        assert_eq!(again.token, 1, "a released lease starts over");
    }

    #[tokio::test]
    async fn an_expired_lease_is_taken_over_and_its_zombie_cannot_write() {
        let (_dir, state, clock) = state().await;
        let zombie = state
            .acquire_lease("orders", "run-a", Duration::from_mins(1))
            .await
            .unwrap();
        state.fenced(&zombie).await.unwrap().commit().await.unwrap();
        clock.advance(Duration::from_secs(61));
        let err = state.fenced(&zombie).await.unwrap_err();
        assert!(matches!(err, Error::LeaseLost { .. }), "expired: {err}");
        let fresh = state
            .acquire_lease("orders", "run-b", Duration::from_mins(1))
            .await
            .unwrap();
        assert_eq!(fresh.token, zombie.token + 1);
        let err = state.fenced(&zombie).await.unwrap_err();
        assert!(matches!(err, Error::LeaseLost { .. }), "taken over: {err}");
        state.fenced(&fresh).await.unwrap().commit().await.unwrap();
        assert!(
            !state.renew_lease(&zombie).await.unwrap(),
            "the zombie cannot renew either"
        );
    }

    #[tokio::test]
    async fn a_renewed_lease_outlives_its_first_expiry() {
        let (_dir, state, clock) = state().await;
        let lease = state
            .acquire_lease("orders", "run-a", Duration::from_mins(1))
            .await
            .unwrap();
        clock.advance(Duration::from_secs(40));
        assert!(state.renew_lease(&lease).await.unwrap());
        clock.advance(Duration::from_secs(40));
        state.fenced(&lease).await.unwrap().commit().await.unwrap();
        let err = state
            .acquire_lease("orders", "run-b", Duration::from_mins(1))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Locked { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_lease_of_a_dead_local_process_is_taken_over_at_once() {
        let (_dir, state, clock) = state().await;
        let crate::db::Db::Sqlite(pool) = &state.db else {
            unreachable!()
        };
        // A process id that cannot exist (above the kernel's pid_max).
        sqlx::query("INSERT INTO leases VALUES ('orders', ?1, 7, ?2)")
            .bind(holder_of(
                &host_name(),
                4_294_967,
                process_space().as_deref(),
                "run-x",
            ))
            .bind(clock.now_ms() + 3_600_000)
            .execute(pool)
            .await
            .unwrap();
        let lease = state
            .acquire_lease("orders", "run-y", Duration::from_mins(1))
            .await
            .unwrap();
        assert_eq!(lease.token, 8);
    }
}
