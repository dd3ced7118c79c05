//! Reads a model through `retl-source` as a run would, and reports rows and time.
//!
//! `scripts/bench.sh` runs it; by hand:
//!
//! ```text
//! cargo run --release -p retl-engine --example source_bench -- URL TABLE COL[,COL…] [--hash KEYCOLS]
//! ```
//!
//! With `--cursor` (last), a PostgreSQL source is read through a server-side
//! cursor instead of binary COPY (`source.read: cursor`). With `--adbc
//! LIBRARY` (last), it is read through that ADBC driver (`source.adbc`), the
//! URL given to it as its `uri` option.
//!
//! With `--hash`, every batch is also hashed as the diff stage does (key hash of
//! KEYCOLS, content hash of all columns), to show what the diff adds to the read.

use std::time::Instant;

use retl_source::{Model, Source, SourceSpec};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: source_bench URL TABLE COL[,COL...] [--hash KEYCOL[,KEYCOL...]]");
        std::process::exit(2);
    }
    let columns: Vec<String> = args[2].split(',').map(str::to_owned).collect();
    let key_columns: Option<Vec<usize>> = match args.get(3).map(String::as_str) {
        Some("--hash") => Some(
            args.get(4)
                .expect("--hash needs the key columns")
                .split(',')
                .map(|k| {
                    columns
                        .iter()
                        .position(|c| c == k)
                        .expect("key columns are among the columns")
                })
                .collect(),
        ),
        _ => None,
    };
    let all: Vec<usize> = (0..columns.len()).collect();
    let mut spec = SourceSpec::new(args[0].clone(), Model::Table(args[1].clone()), columns);
    // `--cursor`: PostgreSQL through a server-side cursor (Redshift's path).
    if args.iter().any(|a| a == "--cursor") {
        spec.read = retl_source::Read::Cursor;
    }
    // `--adbc LIBRARY`: through an ADBC driver, the URL as its `uri`.
    if let Some(at) = args.iter().position(|a| a == "--adbc") {
        let driver = args.get(at + 1).expect("--adbc needs the driver's library");
        spec.adbc = Some(retl_source::Adbc::new(
            driver.clone(),
            vec![(
                "uri".to_owned(),
                args[0].replace("postgres://", "postgresql://"),
            )],
        ));
    }
    let started = Instant::now();
    let mut source = Source::open(&spec).await.unwrap_or_else(|e| panic!("{e}"));
    let mut rows = 0usize;
    let mut checksum = 0u8;
    while let Some(batch) = source.next_batch().await {
        let batch = batch.unwrap_or_else(|e| panic!("{e}"));
        rows += batch.num_rows();
        if let Some(keys) = &key_columns {
            let key_hashes = retl_diff::hash_rows(&batch, keys).expect("hashable");
            let content_hashes = retl_diff::hash_rows(&batch, &all).expect("hashable");
            checksum ^=
                key_hashes.last().map_or(0, |h| h[0]) ^ content_hashes.last().map_or(0, |h| h[0]);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!("rows={rows} seconds={seconds:.3} checksum={checksum}");
}
