//! `orc bench`: the quick suite end to end, baselines saved and compared, bad flags.

use serde_json::Value;

use crate::support::Sandbox;

const WORKLOADS: [&str; 14] = [
    "compile",
    "chain",
    "fanout",
    "diamond",
    "model_direct",
    "model_gateway",
    "cache_hit",
    "checkpoint_append",
    "serve_start",
    "serve_runs",
    "serve_chat",
    "serve_latency",
    "serve_inflight",
    "serve_followers",
];

/// The figure `name` of workload `w`.
fn figure(w: &Value, name: &str) -> f64 {
    w["figures"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["name"] == name))
        .and_then(|f| f["value"].as_f64())
        .unwrap_or_else(|| panic!("no figure `{name}` in {w}"))
}

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}

#[test]
fn quick_json_has_every_workload_with_positive_figures() {
    let sb = Sandbox::new();
    let run = sb.orc(&["bench", "--quick", "--json", "--runs", "2"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let doc = json(&run.stdout);
    assert_eq!(doc["quick"], true);
    assert_eq!(doc["runs"], 2);
    assert!(doc["cores"].as_u64().unwrap() >= 1);
    let workloads = doc["workloads"].as_array().unwrap();
    let names: Vec<&str> = workloads
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, WORKLOADS);
    for w in workloads {
        let s = &w["seconds"];
        let (min, median, max) = (
            s["min"].as_f64().unwrap(),
            s["median"].as_f64().unwrap(),
            s["max"].as_f64().unwrap(),
        );
        assert!(0.0 < min && min <= median && median <= max, "{w}");
        assert!(w["per_second"].as_f64().unwrap() > 0.0, "{w}");
        assert!(w["ops"].as_u64().unwrap() > 0, "{w}");
        assert_eq!(w["samples"].as_array().unwrap().len(), 2, "{w}");
    }
    let by_name = |n: &str| workloads.iter().find(|w| w["name"] == n).unwrap();
    // A whole `orc run`'s peak memory, from one more run's profile.
    for name in ["chain", "fanout", "diamond"] {
        let w = by_name(name);
        assert!(figure(w, "peak RSS") > 1.0, "{w}");
    }
    // The service's figures beside the times: each measured, in its unit.
    let start = by_name("serve_start");
    assert!(
        figure(start, "start") > 0.0 && figure(start, "idle RSS") > 1.0,
        "{start}"
    );
    let runs = by_name("serve_runs");
    assert!(
        figure(runs, "runs") > 0.0 && figure(runs, "p99") >= figure(runs, "p50"),
        "{runs}"
    );
    let chat = by_name("serve_chat");
    let (direct, orc) = (figure(chat, "direct"), figure(chat, "through orc"));
    assert!(direct > 0.0 && orc > 0.0, "{chat}");
    let ratio = figure(chat, "through orc / direct");
    assert!(ratio > 0.0, "{chat}");
    let latency = by_name("serve_latency");
    assert!(figure(latency, "direct p50") > 0.0, "{latency}");
    figure(latency, "added p99");
    let inflight = by_name("serve_inflight");
    assert_eq!(figure(inflight, "errors"), 0.0, "{inflight}");
    // Every follower of the run's event stream saw its result.
    let followers = by_name("serve_followers");
    assert_eq!(figure(followers, "saw the result"), 20.0, "{followers}");
    assert_eq!(followers["figures"][0]["target"]["at_least"], 20.0);
    // Nothing but the temp dir was used: no baseline, no state store in ORC_HOME.
    assert!(!sb.path("home").exists());
}

#[test]
fn a_baseline_much_faster_than_now_fails_the_comparison() {
    let sb = Sandbox::new();
    let args = [
        "bench",
        "--quick",
        "--runs",
        "1",
        "--filter",
        "compile,cache_hit",
    ];
    let saved = sb.orc(&[&args[..], &["--save", "base"]].concat());
    assert_eq!(saved.code, 0, "{}", saved.stderr);
    assert!(saved.stdout.contains("compile") && saved.stdout.contains("cache_hit"));
    let file = sb.path("home/bench/base.json");
    let base = json(&std::fs::read_to_string(&file).unwrap());
    assert_eq!(base["orc_version"], env!("CARGO_PKG_VERSION"));
    assert!(base["date"].as_str().unwrap().starts_with("20"));

    // The same baseline, with a threshold wider than a smoke run's noise: exit 0.
    let same = sb.orc(&[&args[..], &["--compare", "base", "--threshold", "400"]].concat());
    assert_eq!(same.code, 0, "{}\n{}", same.stdout, same.stderr);
    assert!(
        same.stdout.contains("compared with baseline `base`"),
        "{}",
        same.stdout
    );
    assert!(!same.stdout.contains("REGRESSED"), "{}", same.stdout);

    // Doctored to be a thousand times faster: every workload regressed, exit 1.
    let mut fast = base.clone();
    for w in fast["workloads"].as_array_mut().unwrap() {
        let median = w["seconds"]["median"].as_f64().unwrap();
        w["seconds"]["median"] = (median / 1000.0).into();
    }
    std::fs::write(&file, serde_json::to_string(&fast).unwrap()).unwrap();
    let slower = sb.orc(&[&args[..], &["--compare", "base", "--json"]].concat());
    assert_eq!(slower.code, 1, "{}\n{}", slower.stdout, slower.stderr);
    let doc = json(&slower.stdout);
    let compared = doc["comparison"]["workloads"].as_array().unwrap();
    assert_eq!(compared.len(), 2);
    for w in compared {
        assert_eq!(w["verdict"], "regressed", "{w}");
        assert!(w["ratio"].as_f64().unwrap() > 1.1, "{w}");
    }
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    let sb = Sandbox::new();
    for (args, names) in [
        (
            &["bench", "--compare", "x", "--threshold", "-5"][..],
            "--threshold",
        ),
        (
            &["bench", "--compare", "x", "--threshold", "ten"][..],
            "--threshold",
        ),
        (&["bench", "--threshold", "5"][..], "--compare"),
        (&["bench", "--filter", "nothing"][..], "--filter"),
        (&["bench", "--runs", "0"][..], "--runs"),
        (&["bench", "--save", "../out"][..], "baseline name"),
        (
            &["bench", "--quick", "--compare", "missing"][..],
            "no baseline `missing`",
        ),
    ] {
        let run = sb.orc(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(names), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
}
