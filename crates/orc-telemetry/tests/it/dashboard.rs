use std::collections::BTreeSet;

use orc_telemetry::names::{self, Kind};
use serde_json::Value;

const DASHBOARD: &str = include_str!("../../grafana/orc-dashboard.json");

/// Every `expr` in the dashboard, with the title of its panel.
fn exprs(value: &Value, title: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            let title = map.get("title").and_then(Value::as_str).unwrap_or(title);
            for (key, child) in map {
                if key == "expr" {
                    out.push((title.to_owned(), child.as_str().unwrap().to_owned()));
                } else {
                    exprs(child, title, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| exprs(item, title, out)),
        _ => {}
    }
}

/// The identifiers starting with `orc_` in a PromQL expression.
fn orc_identifiers(expr: &str) -> Vec<&str> {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut found = Vec::new();
    let mut rest = expr;
    let mut previous: Option<char> = None;
    while let Some(at) = rest.find("orc_") {
        let before = rest[..at].chars().next_back().or(previous);
        let word = &rest[at..];
        let end = word.find(|c: char| !is_word(c)).unwrap_or(word.len());
        if !before.is_some_and(is_word) {
            found.push(&word[..end]);
        }
        previous = word[..end].chars().next_back();
        rest = &word[end..];
    }
    found
}

/// The metric a series name belongs to: a histogram's `_bucket`, `_sum` and `_count` series
/// belong to the histogram.
fn metric_of(series: &str) -> Option<&'static names::Metric> {
    names::find(series).or_else(|| {
        ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
            let metric = names::find(series.strip_suffix(suffix)?)?;
            (metric.kind == Kind::Histogram).then_some(metric)
        })
    })
}

#[test]
fn identifiers_are_found() {
    assert_eq!(
        orc_identifiers("sum(rate(orc_a_total[5m])) / xorc_b + orc_c_bucket{x=\"orc_d\"}"),
        ["orc_a_total", "orc_c_bucket", "orc_d"]
    );
}

#[test]
fn dashboard_only_uses_metrics_orc_records() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is valid JSON");
    let mut all = Vec::new();
    exprs(&dashboard, "", &mut all);
    assert!(all.len() >= 20, "only {} queries", all.len());

    let mut used = BTreeSet::new();
    for (title, expr) in &all {
        let identifiers = orc_identifiers(expr);
        assert!(
            !identifiers.is_empty(),
            "panel `{title}`: `{expr}` reads no orc metric"
        );
        for series in identifiers {
            let metric = metric_of(series).unwrap_or_else(|| {
                panic!("panel `{title}`: `{series}` is not a metric in orc_telemetry::names")
            });
            if expr.contains("histogram_quantile") && metric.kind == Kind::Histogram {
                assert!(series.ends_with("_bucket"), "panel `{title}`: `{expr}`");
            }
            used.insert(metric.name);
        }
    }
    // And the other way round: every metric orc records has a panel.
    let missing: Vec<_> = names::ALL
        .iter()
        .map(|metric| metric.name)
        .filter(|name| !used.contains(name))
        .collect();
    assert!(missing.is_empty(), "no panel shows {missing:?}");
}

#[test]
fn dashboard_is_an_importable_grafana_dashboard() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).unwrap();
    let input = &dashboard["__inputs"][0];
    assert_eq!(input["name"], "DS_PROMETHEUS");
    assert_eq!(input["pluginId"], "prometheus");
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 36);
    assert!(dashboard["uid"].is_string() && dashboard["title"].is_string());

    let panels = dashboard["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    for panel in panels {
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "duplicate panel id"
        );
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_u64().unwrap(), grid["w"].as_u64().unwrap());
        assert!(x + w <= 24, "{} is wider than the grid", panel["title"]);
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"], "${DS_PROMETHEUS}",
            "{}",
            panel["title"]
        );
        for target in panel["targets"].as_array().unwrap() {
            assert_eq!(target["datasource"]["uid"], "${DS_PROMETHEUS}");
        }
    }
}
