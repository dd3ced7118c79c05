//! Properties over random histories: for random sequences of inserts (some
//! of them late, behind the cursor's lookback), updates and deletes between
//! runs, no key is ever sent twice and every inserted key is sent exactly
//! once, in full-scan and cursor mode, with the state on SQLite and on
//! PostgreSQL. With a baseline (`first_run: skip_existing`), the rows there
//! before the first run are never sent, however they change: they live in
//! the key segments only. Small key-segment writes (`--key-flush-rows`) make
//! every run write and merge blocks. With `source.diff: warehouse` the same
//! holds while half of retl's key table is deleted now and then. Seeded, so
//! a failure names the history that made it.

use std::collections::BTreeSet;

use serde_json::Value;

use super::World;

/// A small deterministic generator (xorshift64*): the seed is the history.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Which kind of history.
#[derive(Clone, Copy)]
struct Mode {
    /// `source.incremental` with a cursor, or full scans.
    cursor: bool,
    /// Rows before the first run, recorded by `first_run: skip_existing`.
    baseline: bool,
    /// `source.diff: warehouse`, with half of the key table deleted now and
    /// then (the state must decide, and the table catch up).
    warehouse: bool,
}

fn run(world: &World, offset: Option<&str>) -> (i32, Value) {
    let mut command = world.command(
        &[
            "run",
            "orders",
            "--json",
            "--key-flush-rows",
            "7",
            "--key-push-rows",
            "3",
        ],
        "emulator-secret",
    );
    if let Some(offset) = offset {
        command.env("RETL_CLOCK_OFFSET", offset);
    }
    let out = command.output().unwrap();
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (out.status.code().unwrap_or(-1), summary)
}

fn history(world: &World, seed: u64, mode: Mode) {
    let Mode {
        cursor,
        baseline,
        warehouse,
    } = mode;
    world.sql("ALTER TABLE orders ADD COLUMN created_at TEXT");
    if warehouse {
        world.edit_activation(|yaml| {
            yaml.replace(
                "  primary_key: [order_id]\n",
                "  primary_key: [order_id]\n  diff: warehouse\n",
            )
        });
    }
    if cursor {
        world.edit_activation(|yaml| {
            yaml.replace(
                "  primary_key: [order_id]\n",
                "  primary_key: [order_id]\n  incremental:\n    cursor: created_at\n    lookback: 2h\n    full_scan_every: 30d\n",
            )
        });
    }
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut inserted: BTreeSet<u64> = BTreeSet::new();
    // Rows a run has surely read (a late row waits for a full scan in cursor mode).
    let mut read_by_a_run: Vec<u64> = Vec::new();
    let mut on_time: Vec<u64> = Vec::new();
    let mut next_id = 1;
    let mut hour: u64 = 0;
    let mut before_first_run = BTreeSet::new();
    if baseline {
        world.edit_activation(|yaml| {
            yaml.replace("first_run: send_all", "first_run: skip_existing")
        });
        for _ in 0..5 + rng.below(20) {
            hour += 1;
            world.sql(&format!(
                "INSERT INTO orders (order_id, full_name, email, locale, created_at) VALUES ({next_id}, 'C {next_id}', 'c{next_id}@shop.example', 'en-US', datetime('2026-01-01', '+{hour} hours'))"
            ));
            before_first_run.insert(next_id);
            on_time.push(next_id);
            next_id += 1;
        }
        let (code, summary) = run(world, None);
        assert_eq!(code, 0, "seed {seed}: the baseline run: {summary}");
        read_by_a_run = on_time.clone();
    }
    for round in 0..6 {
        for _ in 0..rng.below(12) {
            // Mostly in order; now and then a late row, far behind.
            hour += 1;
            let late = rng.below(5) == 0;
            let at = if late { hour.saturating_sub(50) } else { hour };
            if !late {
                on_time.push(next_id);
            }
            world.sql(&format!(
                "INSERT INTO orders (order_id, full_name, email, locale, created_at) VALUES ({next_id}, 'C {next_id}', 'c{next_id}@shop.example', 'en-US', datetime('2026-01-01', '+{at} hours'))"
            ));
            inserted.insert(next_id);
            next_id += 1;
        }
        for _ in 0..rng.below(3) {
            if let Some(&id) = read_by_a_run
                .get(usize::try_from(rng.below(read_by_a_run.len().max(1) as u64)).unwrap())
            {
                world.sql(&format!(
                    "UPDATE orders SET email = 'changed{round}@shop.example' WHERE order_id = {id}"
                ));
            }
        }
        if rng.below(3) == 0
            && let Some(&id) = read_by_a_run.first()
        {
            // Only rows a full scan has read go: every inserted key still gets its run.
            world.sql(&format!("DELETE FROM orders WHERE order_id = {id}"));
            read_by_a_run.remove(0);
            on_time.retain(|&i| i != id);
        }
        if warehouse && (round > 0 || baseline) && rng.below(4) == 0 {
            // Someone deletes half of retl's key table.
            world.server_or_sqlite(&format!(
                "DELETE FROM {} WHERE order_id % 2 = 0",
                super::warehouse::key_table(world)
            ));
        }
        let (code, summary) = run(world, None);
        assert!(
            code == 0,
            "seed {seed} round {round}: exit {code}: {summary}"
        );
        read_by_a_run = if cursor {
            on_time.clone()
        } else {
            before_first_run.union(&inserted).copied().collect()
        };
    }
    // A last full scan (cursor mode: one is due 31 days on) sends the late rows.
    let (code, last) = run(world, Some("31d"));
    assert_eq!(code, 0, "seed {seed}: {last}");
    let sent = world.accepted_references();
    let twice: Vec<_> = sent.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "seed {seed}: sent twice: {twice:?}");
    let sent: BTreeSet<u64> = sent.keys().map(|r| r.parse().unwrap()).collect();
    assert_eq!(sent, inserted, "seed {seed}: every inserted key, once");
}

#[test]
fn random_histories_in_full_scan_mode_send_each_key_once() {
    for seed in 1..=3 {
        history(
            &World::new(),
            seed,
            Mode {
                cursor: false,
                baseline: seed == 3,
                warehouse: false,
            },
        );
    }
}

#[test]
fn random_histories_in_cursor_mode_send_each_key_once() {
    for seed in 1..=3 {
        history(
            &World::new(),
            seed,
            Mode {
                cursor: true,
                baseline: seed == 3,
                warehouse: false,
            },
        );
    }
}

#[test]
fn random_histories_with_a_postgresql_state_send_each_key_once() {
    for (seed, cursor, baseline) in [(4, false, true), (5, true, false), (6, true, true)] {
        let Some(world) = World::new().with_postgres_state() else {
            return;
        };
        history(
            &world,
            seed,
            Mode {
                cursor,
                baseline,
                warehouse: false,
            },
        );
    }
}

#[test]
fn random_histories_with_the_diff_in_the_warehouse_send_each_key_once() {
    for (seed, cursor, baseline) in [
        (7, false, false),
        (8, true, false),
        (9, false, true),
        (10, true, true),
    ] {
        history(
            &World::new(),
            seed,
            Mode {
                cursor,
                baseline,
                warehouse: true,
            },
        );
    }
}
