//! A run as a Chrome trace (the Trace Event Format's JSON object form), which Perfetto and
//! `chrome://tracing` open: one complete event per step that ran, on lanes chosen so that steps
//! that overlap in time never share one.

use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::Result;
use crate::profile::{StepTiming, round_us};
use crate::write::write_json_atomically;

/// The one process of the trace.
const PID: u32 = 1;

/// A Chrome trace of one run, built by [`Trace::build`]; serializes to
/// `{"traceEvents": [...], "displayTimeUnit": "ms"}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Trace {
    #[serde(rename = "traceEvents")]
    trace_events: Vec<Event>,
    #[serde(rename = "displayTimeUnit")]
    display_time_unit: &'static str,
}

/// One entry of `traceEvents`.
#[derive(Clone, Debug, PartialEq, Serialize)]
struct Event {
    name: String,
    /// The phase: `X` (complete) or `M` (metadata).
    ph: &'static str,
    pid: u32,
    tid: u32,
    /// Start in microseconds since the run started (complete events only).
    #[serde(skip_serializing_if = "Option::is_none")]
    ts: Option<f64>,
    /// Duration in microseconds (complete events only).
    #[serde(skip_serializing_if = "Option::is_none")]
    dur: Option<f64>,
    /// The category: the step's tool (complete events only).
    #[serde(skip_serializing_if = "Option::is_none")]
    cat: Option<String>,
    args: Map<String, Value>,
}

impl Event {
    fn metadata(name: &str, tid: u32, args: Value) -> Event {
        Event {
            name: name.to_owned(),
            ph: "M",
            pid: PID,
            tid,
            ts: None,
            dur: None,
            cat: None,
            args: match args {
                Value::Object(map) => map,
                _ => Map::new(),
            },
        }
    }
}

impl Trace {
    /// The trace of a run of `pipeline`. Each step that ran to the end becomes a complete event
    /// (`name` = step id, `cat` = tool, `args` = action, status, cache, queue wait and model
    /// time); steps that never ran are left out. Lanes (`tid` 1, 2, …) are filled greedily in
    /// order of start time, each step on the lowest lane free at its start, which uses as few
    /// lanes as the most steps ever running at once. Metadata events name the process
    /// `orc <pipeline>` and the lanes `lane N`. Pure and deterministic.
    pub fn build(pipeline: &str, steps: &[StepTiming]) -> Trace {
        let mut ran: Vec<(&StepTiming, f64, f64)> = steps
            .iter()
            .filter_map(|step| step.span().map(|(start, finish)| (step, start, finish)))
            .collect();
        // A stable sort: steps with the same start and finish keep the input order.
        ran.sort_by(|(_, s1, f1), (_, s2, f2)| s1.total_cmp(s2).then(f1.total_cmp(f2)));

        // The finish time of the last step on each lane.
        let mut lane_ends: Vec<f64> = Vec::new();
        let mut events = Vec::with_capacity(ran.len());
        for (step, start, finish) in ran {
            let lane = match lane_ends.iter().position(|&end| end <= start) {
                Some(lane) => lane,
                None => {
                    lane_ends.push(finish);
                    lane_ends.len() - 1
                }
            };
            lane_ends[lane] = finish;
            events.push(step_event(step, start, finish, lane_number(lane)));
        }

        let mut trace_events = Vec::with_capacity(events.len() + 2 * lane_ends.len() + 1);
        trace_events.push(Event::metadata(
            "process_name",
            0,
            json!({ "name": format!("orc {pipeline}") }),
        ));
        for lane in (0..lane_ends.len()).map(lane_number) {
            trace_events.push(Event::metadata(
                "thread_name",
                lane,
                json!({ "name": format!("lane {lane}") }),
            ));
            trace_events.push(Event::metadata(
                "thread_sort_index",
                lane,
                json!({ "sort_index": lane }),
            ));
        }
        trace_events.extend(events);
        Trace {
            trace_events,
            display_time_unit: "ms",
        }
    }
}

/// Lane index 0, 1, … as `tid` 1, 2, ….
fn lane_number(lane: usize) -> u32 {
    u32::try_from(lane).map_or(u32::MAX, |lane| lane.saturating_add(1))
}

fn step_event(step: &StepTiming, start: f64, finish: f64, tid: u32) -> Event {
    let mut args = Map::new();
    args.insert("action".to_owned(), json!(step.action));
    args.insert("status".to_owned(), json!(step.status));
    if let Some(cache) = step.cache {
        args.insert("cache".to_owned(), json!(cache));
    }
    if let Some(wait) = step.queue_wait_ms() {
        args.insert("queue_wait_ms".to_owned(), json!(round_us(wait)));
    }
    if let Some(model) = step.model_ms {
        args.insert("model_ms".to_owned(), json!(round_us(model)));
    }
    Event {
        name: step.id.clone(),
        ph: "X",
        pid: PID,
        tid,
        // Milliseconds to microseconds, kept to the nanosecond.
        ts: Some(round_us(start * 1000.0)),
        dur: Some(round_us((finish - start) * 1000.0)),
        cat: Some(step.tool.clone()),
        args,
    }
}

/// Writes the Chrome trace of a run of `pipeline` ([`Trace::build`]) to `path`, atomically.
/// Blocking: call it from `spawn_blocking` in async code.
///
/// # Errors
///
/// [`Error::Write`](crate::Error::Write), naming `path`.
pub fn write_trace(path: &Path, pipeline: &str, steps: &[StepTiming]) -> Result<()> {
    write_json_atomically(path, &Trace::build(pipeline, steps))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::profile::CacheUse;
    use crate::profile::tests::{diamond, step};

    fn complete_events(json: &Value) -> Vec<&Value> {
        json["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|event| event["ph"] == "X")
            .collect()
    }

    #[test]
    fn diamond_trace_has_one_event_per_step_and_two_lanes() {
        let mut steps = diamond();
        steps[1].cache = Some(CacheUse::Miss);
        let json = serde_json::to_value(Trace::build("demo", &steps)).unwrap();
        assert_eq!(json["displayTimeUnit"], "ms");
        let events = complete_events(&json);
        let summary: Vec<_> = events
            .iter()
            .map(|e| (e["name"].as_str().unwrap(), e["tid"].as_u64().unwrap()))
            .collect();
        // a on lane 1; b and c overlap, so c gets lane 2; d reuses lane 1.
        assert_eq!(summary, [("a", 1), ("b", 1), ("c", 2), ("d", 1)]);
        let c = events[2];
        assert_eq!(c["ts"], 15000.0);
        assert_eq!(c["dur"], 40000.0);
        assert_eq!(c["cat"], "llm");
        assert_eq!(c["pid"], 1);
        assert_eq!(c["args"]["action"], "generate");
        assert_eq!(c["args"]["status"], "completed");
        assert_eq!(c["args"]["queue_wait_ms"], 5.0);
        assert_eq!(events[1]["args"]["cache"], "miss");

        let metadata: Vec<_> = json["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["ph"] == "M")
            .map(|e| (e["name"].as_str().unwrap(), e["tid"].as_u64().unwrap()))
            .collect();
        assert_eq!(
            metadata,
            [
                ("process_name", 0),
                ("thread_name", 1),
                ("thread_sort_index", 1),
                ("thread_name", 2),
                ("thread_sort_index", 2),
            ]
        );
        assert_eq!(json["traceEvents"][0]["args"]["name"], "orc demo");
        assert_eq!(json["traceEvents"][3]["args"]["name"], "lane 2");
    }

    #[test]
    fn overlapping_steps_never_share_a_lane_and_lanes_are_few() {
        // Starts and lengths from a small linear congruential sequence: deterministic but
        // irregular, with many overlaps.
        let mut seed: u64 = 7;
        let mut next = |modulo: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) % modulo
        };
        #[allow(clippy::cast_precision_loss)]
        let steps: Vec<_> = (0..200)
            .map(|i| {
                let start = next(1000) as f64;
                let length = (next(100) + 1) as f64;
                step(&format!("s{i}"), &[], start, start, start + length)
            })
            .collect();
        let json = serde_json::to_value(Trace::build("p", &steps)).unwrap();
        let events = complete_events(&json);
        assert_eq!(events.len(), 200);
        let span = |e: &Value| {
            let ts = e["ts"].as_f64().unwrap();
            (ts, ts + e["dur"].as_f64().unwrap())
        };
        let mut lanes = 0;
        for (i, a) in events.iter().enumerate() {
            lanes = lanes.max(a["tid"].as_u64().unwrap());
            for b in &events[i + 1..] {
                if a["tid"] == b["tid"] {
                    let ((s1, f1), (s2, f2)) = (span(a), span(b));
                    assert!(f1 <= s2 || f2 <= s1, "{a} and {b} overlap on one lane");
                }
            }
        }
        // As many lanes as steps ever running at once, no more.
        let most_at_once = events
            .iter()
            .map(|a| {
                let (start, _) = span(a);
                events
                    .iter()
                    .filter(|b| {
                        let (s, f) = span(b);
                        s <= start && start < f
                    })
                    .count()
            })
            .max()
            .unwrap();
        assert_eq!(lanes, most_at_once as u64);
    }

    #[test]
    fn steps_that_never_ran_are_left_out() {
        let mut steps = diamond();
        steps[3].started_at_ms = None;
        steps[3].finished_at_ms = None;
        let json = serde_json::to_value(Trace::build("demo", &steps)).unwrap();
        assert_eq!(complete_events(&json).len(), 3);
    }

    #[test]
    fn write_trace_writes_the_json_object_form() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.json");
        write_trace(&path, "demo", &diamond()).unwrap();
        let json: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(complete_events(&json).len(), 4);
        assert_eq!(json["traceEvents"][0]["ph"], "M");
    }
}
