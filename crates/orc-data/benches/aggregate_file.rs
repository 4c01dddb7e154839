//! Aggregates a generated CSV file with `data_processing_with`, streamed, and
//! prints the wall time, the throughput and the peak resident memory.
//!
//! The file (1 GiB unless `ORC_AGG_BENCH_BYTES` says otherwise) is written to
//! a temporary directory that is deleted afterwards:
//!
//! ```text
//! ORC_AGG_BENCH_BYTES=50000000 cargo bench -p orc-data --bench aggregate_file
//! ```
#![allow(clippy::print_stdout)] // the figures are the output

#[path = "../tests/it/csvgen.rs"]
mod csvgen;

use anyhow::Context as _;
use csvgen::{Shape, write_csv};
use orc_data::{Limits, data_processing_with};
use serde_json::json;
use std::io::{BufWriter, Write as _};
use std::time::Instant;

const DEFAULT_BYTES: u64 = 1 << 30;

fn main() -> anyhow::Result<()> {
    let target = match std::env::var("ORC_AGG_BENCH_BYTES") {
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .with_context(|| format!("ORC_AGG_BENCH_BYTES={v:?} is not a number of bytes"))?,
        Err(_) => DEFAULT_BYTES,
    };
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let path = dir.path().join("aggregate_bench.csv");

    let started = Instant::now();
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
    let written = write_csv(
        &mut out,
        target,
        Shape {
            messy: false,
            codes: 100,
        },
        1,
    )?;
    out.flush()?;
    drop(out);
    println!(
        "generated {} bytes, {} rows in {:.2?}",
        written.bytes,
        written.rows,
        started.elapsed()
    );

    // Count the peak from here: writing "5" to clear_refs resets VmHWM.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = vm_hwm_kib();

    let limits = Limits::default();
    let params = json!({
        "data": path.to_str().context("the temporary path is not UTF-8")?,
        "group_by": ["region", "code"],
        "aggregations": {
            "n": "count", "total": "sum:amount", "avg": "mean:amount", "lo": "min:amount",
            "hi": "max:amount", "notes": "count_distinct:note", "last": "last:note",
            "big": "sum:big",
        },
    });
    let params = params.as_object().context("the parameters are an object")?;
    let started = Instant::now();
    let result = data_processing_with("aggregate", params, &limits)?;
    let elapsed = started.elapsed();
    let after = vm_hwm_kib();

    let rows: u64 = result["data"]
        .as_array()
        .context("the result has no `data`")?
        .iter()
        .filter_map(|g| g["n"].as_u64())
        .sum();
    anyhow::ensure!(
        rows == written.rows,
        "aggregated {rows} rows, wrote {}",
        written.rows
    );
    // Sizes are far below 2^52 bytes: the conversions are exact.
    #[allow(clippy::cast_precision_loss)]
    let mb = written.bytes as f64 / 1e6;
    println!(
        "aggregate: {} groups over {rows} rows, chunk_bytes {} ({} MiB)",
        result["groups"],
        limits.chunk_bytes,
        limits.chunk_bytes >> 20
    );
    println!(
        "wall time {elapsed:.2?}, throughput {:.1} MB/s",
        mb / elapsed.as_secs_f64()
    );
    match (before, after) {
        (Some(b), Some(a)) => println!(
            "peak resident memory (VmHWM) {} KiB during the aggregate{} (before it: {b} KiB)",
            a,
            if reset {
                ""
            } else {
                " (not reset: includes generation)"
            }
        ),
        _ => println!("peak resident memory: /proc/self/status has no VmHWM"),
    }
    dir.close().context("deleting the temporary directory")?;
    Ok(())
}

/// The peak resident set size, from `/proc/self/status`.
fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
