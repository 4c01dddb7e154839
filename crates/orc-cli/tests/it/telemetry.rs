//! Watching runs: `/metrics` during a run, `--profile`, `--trace`, memory admission, the
//! config's validation and `orc config show`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::Sandbox;

/// A port nobody listens on now.
pub(crate) fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// `GET path` over a plain connection; the status line and the body.
pub(crate) fn get(addr: SocketAddr, path: &str) -> Option<(String, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_owned(), body.to_owned()))
}

/// The value of the sample line that starts with `series` (name and labels).
pub(crate) fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn metrics_are_served_during_a_run() {
    let sb = Sandbox::new();
    // Three quick echo steps, then a step that waits until the test has scraped.
    let gate = sb.path("scraped");
    let pipeline = sb.file(
        "watched.yaml",
        &format!(
            "name: watched\nsteps:\n  - id: a\n    action: echo\n    parameters: {{ message: one }}\n  - id: b\n    action: echo\n    parameters: {{ message: two }}\n  - id: c\n    action: echo\n    parameters: {{ message: three }}\n  - id: wait\n    tool: terminal\n    action: execute\n    depends_on: [a, b, c]\n    parameters:\n      command: \"for i in $(seq 200); do [ -e '{}' ] && exit 0; sleep 0.05; done; exit 1\"\n",
            gate.display()
        ),
    );
    let addr = free_addr();
    let child = sb
        .command()
        .args(["run", pipeline.to_str().unwrap(), "-q"])
        .args(["--metrics-addr", &addr.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        assert!(
            Instant::now() < deadline,
            "no metrics with 3 finished steps"
        );
        if let Some((status, body)) = get(addr, "/metrics")
            && sample(
                &body,
                "orc_steps_total{tool=\"\",action=\"echo\",outcome=\"completed\"}",
            ) == Some(3.0)
        {
            assert!(status.contains("200"), "{status}");
            break body;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (status, _) = get(addr, "/nothing").unwrap();
    assert!(status.contains("404"), "{status}");
    std::fs::write(&gate, "").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A real histogram: cumulative buckets ending in +Inf, with a sum and a count.
    let series = "orc_step_duration_seconds_bucket{tool=\"\",action=\"echo\",outcome=\"completed\",le=\"+Inf\"}";
    assert_eq!(sample(&metrics, series), Some(3.0), "{metrics}");
    assert!(
        metrics.contains(
            "orc_step_duration_seconds_count{tool=\"\",action=\"echo\",outcome=\"completed\"} 3"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE orc_step_duration_seconds histogram"),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "orc_scheduler_running_steps"),
        Some(1.0),
        "the waiting step runs: {metrics}"
    );
    assert!(sample(&metrics, "orc_process_resident_memory_bytes").is_some_and(|b| b > 1e6));
    // The server is gone with the run.
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err());
}

#[test]
fn a_metrics_address_in_use_is_a_clear_error() {
    let sb = Sandbox::new();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let hello = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello.yaml");
    let r = sb.orc(&["run", hello.to_str().unwrap(), "--metrics-addr", &addr]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("cannot listen on {addr} for metrics")),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty(), "nothing ran: {}", r.stdout);
}

/// A diamond whose slow branch is `b`: the critical path is a → b → d.
const DIAMOND: &str = "name: diamond\nsteps:\n  - id: a\n    action: echo\n    parameters: { message: a }\n  - id: b\n    tool: terminal\n    action: execute\n    depends_on: [a]\n    parameters: { command: 'sleep 0.3' }\n  - id: c\n    action: echo\n    depends_on: [a]\n    parameters: { message: c }\n  - id: d\n    action: echo\n    depends_on: [b, c]\n    parameters: { message: d }\n";

#[test]
fn the_profile_has_its_schema_and_the_critical_path() {
    let sb = Sandbox::new();
    let pipeline = sb.file("diamond.yaml", DIAMOND);
    let r = sb.orc(&[
        "run",
        pipeline.to_str().unwrap(),
        "-q",
        "--profile",
        "profile.json",
        "--trace",
        "trace.json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let profile: Value = serde_json::from_str(&sb.read("profile.json")).unwrap();
    assert_eq!(profile["schema"], "orc-profile/1");
    assert_eq!(profile["pipeline"], "diamond");
    assert_eq!(profile["run_id"], r.doc()["execution_id"]);
    assert!(profile["total_ms"].as_f64().unwrap() >= 300.0, "{profile}");
    assert!(profile["peak_memory_bytes"].as_u64().unwrap() > 1_000_000);
    let steps = profile["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 4);
    for s in steps {
        for key in [
            "id",
            "tool",
            "action",
            "status",
            "queue_wait_ms",
            "run_ms",
            "model_ms",
            "cache",
        ] {
            assert!(s.get(key).is_some(), "{key} missing in {s}");
        }
        assert!(s["queue_wait_ms"].as_f64().unwrap() >= 0.0);
    }
    let b = steps.iter().find(|s| s["id"] == "b").unwrap();
    assert!(b["run_ms"].as_f64().unwrap() >= 300.0, "{b}");
    assert_eq!(
        profile["critical_path"]["steps"],
        serde_json::json!(["a", "b", "d"])
    );
    assert_eq!(profile["slowest_steps"][0]["id"], "b");

    let trace: Value = serde_json::from_str(&sb.read("trace.json")).unwrap();
    let spans: Vec<&Value> = trace["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ph"] == "X" && e["cat"] != "queue")
        .collect();
    let names: Vec<&str> = spans.iter().filter_map(|e| e["name"].as_str()).collect();
    for id in ["a", "b", "c", "d"] {
        assert!(names.contains(&id), "{id} not in the trace: {trace}");
    }
    let b = spans.iter().find(|e| e["name"] == "b").unwrap();
    assert!(b["dur"].as_f64().unwrap() >= 300_000.0, "µs: {b}");
}

/// Four independent steps of 0.2 s each.
const PARALLEL: &str = "name: parallel\nsteps:\n  - id: s1\n    tool: terminal\n    action: execute\n    parameters: { command: 'sleep 0.2' }\n  - id: s2\n    tool: terminal\n    action: execute\n    parameters: { command: 'sleep 0.2' }\n  - id: s3\n    tool: terminal\n    action: execute\n    parameters: { command: 'sleep 0.2' }\n  - id: s4\n    tool: terminal\n    action: execute\n    parameters: { command: 'sleep 0.2' }\n";

/// The most steps whose [started_at, completed_at] intervals overlap at one moment.
fn peak_overlap(doc: &Value) -> usize {
    let mut edges = Vec::new();
    for step in doc["steps"].as_object().unwrap().values() {
        let at =
            |k: &str| chrono_micros(step[k].as_str().unwrap_or_else(|| panic!("{k} of {step}")));
        edges.push((at("started_at"), 1i32));
        edges.push((at("completed_at"), -1i32));
    }
    edges.sort();
    let (mut now, mut peak) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        peak = peak.max(now);
    }
    usize::try_from(peak).unwrap()
}

/// Microseconds of the time of day in an RFC 3339 UTC timestamp (`…THH:MM:SS.ffffffZ`).
fn chrono_micros(ts: &str) -> i64 {
    let time = ts.split('T').nth(1).unwrap().trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: i64 = parts.next().unwrap().parse().unwrap();
    let m: i64 = parts.next().unwrap().parse().unwrap();
    let s: f64 = parts.next().unwrap().parse().unwrap();
    #[allow(clippy::cast_possible_truncation)]
    let micros = (s * 1e6).round() as i64;
    (h * 3600 + m * 60) * 1_000_000 + micros
}

#[test]
fn no_step_starts_while_memory_is_above_the_limit() {
    let sb = Sandbox::new();
    let pipeline = sb.file("parallel.yaml", PARALLEL);
    let free = sb.orc(&["run", pipeline.to_str().unwrap(), "-q"]);
    assert_eq!(free.code, 0, "{}", free.stderr);
    assert!(
        peak_overlap(&free.doc()) > 1,
        "without a limit the steps run together"
    );
    // Any process is bigger than 1 MB: every step waits for the one before.
    let config = sb.file(
        "tight.yaml",
        "performance:\n  resource_limits:\n    max_memory: 1MB\n    memory_cleanup_threshold: 0.5\n",
    );
    let tight = sb.orc(&[
        "run",
        pipeline.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(tight.code, 0, "{}", tight.stderr);
    assert_eq!(peak_overlap(&tight.doc()), 1, "{}", tight.stdout);
    assert!(
        tight.stderr.contains("resident memory is above"),
        "{}",
        tight.stderr
    );
}

#[test]
fn config_errors_name_file_line_and_key() {
    let sb = Sandbox::new();
    let config = sb.file(
        "orc.yaml",
        "performance:\n  parallel_execution:\n    max_workers: 0\n  database:\n    query_timeout: -1\n",
    );
    let r = sb.orc(&["config", "show"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let file = config.file_name().unwrap().to_str().unwrap();
    assert!(
        r.stderr.contains(&format!(
            "{file}:3:5: performance.parallel_execution.max_workers: must be at least 1"
        )),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains(&format!("{file}:5:5: performance.database.query_timeout:")),
        "{}",
        r.stderr
    );
    let typo = sb.file(
        "typo.yaml",
        "performance:\n  caching:\n    model_cach: {}\n",
    );
    let r = sb.orc(&["--config", typo.to_str().unwrap(), "config", "show"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("typo.yaml:3:") && r.stderr.contains("model_cach"),
        "{}",
        r.stderr
    );
}

#[test]
fn config_show_says_where_each_value_came_from() {
    let sb = Sandbox::new();
    sb.file(
        "orc.yaml",
        "state:\n  url: postgres://orc:hunter2@127.0.0.1/orc\nperformance:\n  parallel_execution:\n    max_workers: 4\n",
    );
    let r: crate::support::Run = sb
        .command()
        .args(["config", "show", "--json"])
        .env("ORC_PERFORMANCE__DATABASE__QUERY_TIMEOUT", "12.5")
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc: Value = serde_json::from_str(&r.stdout).unwrap();
    let workers = &doc["performance.parallel_execution.max_workers"];
    assert_eq!(workers["value"], 4);
    assert_eq!(workers["source"], "orc.yaml:5");
    let timeout = &doc["performance.database.query_timeout"];
    assert_eq!(timeout["value"], 12.5);
    assert_eq!(
        timeout["source"],
        "env ORC_PERFORMANCE__DATABASE__QUERY_TIMEOUT"
    );
    assert_eq!(
        doc["performance.database.connection_pool_size"]["source"],
        "default"
    );
    assert!(!r.stdout.contains("hunter2"), "{}", r.stdout);
    assert_eq!(
        doc["state.url"]["value"],
        "postgres://orc:***@127.0.0.1/orc"
    );
}

#[test]
fn a_large_csv_is_aggregated_in_bounded_memory() {
    let sb = Sandbox::new();
    // About 40 MB: 600,000 rows over 50 groups. Loaded whole as JSON rows it would take
    // hundreds of MB; streamed, the process stays near its usual size.
    let csv = sb.path("big.csv");
    {
        use std::io::BufWriter;
        let mut w = BufWriter::new(std::fs::File::create(&csv).unwrap());
        writeln!(w, "region,product,units,price,note").unwrap();
        for i in 0..600_000u64 {
            writeln!(
                w,
                "r{},p{},{},{}.25,\"some text, with a comma and padding {i:012}\"",
                i % 50,
                i % 7,
                i % 10,
                i % 100
            )
            .unwrap();
        }
    }
    let pipeline = sb.file(
        "agg.yaml",
        &format!(
            "name: agg\nsteps:\n  - id: totals\n    tool: data-processing\n    action: aggregate\n    parameters:\n      data: '{}'\n      group_by: [region]\n      aggregations: {{ units: 'sum:units', rows: count, top: 'max:price' }}\noutputs:\n  groups: '{{{{ totals.result.groups }}}}'\n",
            csv.display()
        ),
    );
    let config = sb.file(
        "small.yaml",
        "performance:\n  resource_limits:\n    max_memory: 256MB\n    max_cpu_cores: 1\n",
    );
    let r = sb.orc(&[
        "run",
        pipeline.to_str().unwrap(),
        "-q",
        "--config",
        config.to_str().unwrap(),
        "--profile",
        "profile.json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = r.doc();
    assert_eq!(doc["outputs"]["groups"], 50);
    let rows = doc["steps"]["totals"]["value"]["result"]["data"]
        .as_array()
        .unwrap();
    let r0 = rows.iter().find(|g| g["region"] == "r0").unwrap();
    assert_eq!(r0["rows"], 12_000);
    // Rows i ≡ 0 (mod 50) have units i mod 10 = 0.
    assert_eq!(r0["units"], 0);
    assert_eq!(r0["top"], 50.25);
    let r7 = rows.iter().find(|g| g["region"] == "r7").unwrap();
    // Rows i ≡ 7 (mod 50) all have units 7.
    assert_eq!(r7["units"], 84_000);
    let profile: Value = serde_json::from_str(&sb.read("profile.json")).unwrap();
    let peak = profile["peak_memory_bytes"].as_u64().unwrap();
    assert!(
        peak < 100 << 20,
        "peak resident memory {peak} bytes for a {} byte file",
        std::fs::metadata(&csv).unwrap().len()
    );
}

#[test]
fn log_lines_say_which_run_and_step_they_belong_to() {
    let sb = crate::support::Sandbox::new();
    let p = sb.file(
        "p.yaml",
        "id: spans\nname: Spans\nsteps:\n  - id: flaky\n    tool: terminal\n    action: execute\n    parameters: { command: \"exit 3\" }\n    max_retries: 1\n",
    );
    let r: crate::support::Run = sb
        .command()
        .env("ORC_LOG", "info")
        .args(["run", p.to_str().unwrap(), "--run-id", "span-run-1"])
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 1, "{}", r.stderr);
    let retry = r
        .stderr
        .lines()
        .find(|l| l.contains("retrying"))
        .unwrap_or_else(|| panic!("no retry logged:\n{}", r.stderr));
    assert!(
        retry.contains("run{run_id=span-run-1 pipeline=spans}:step{step=flaky tool=\"terminal\"}"),
        "{retry}"
    );
}
