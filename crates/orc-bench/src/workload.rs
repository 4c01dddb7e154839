//! The standard workloads: their names, what one timed run of each does, and their sizes in
//! the full and the quick (`--quick`) mode.

/// What a workload exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Compiles a generated chain in process (no compile cache).
    Compile,
    /// `orc run` of a generated chain, as a whole process.
    Chain,
    /// `orc run` of a generated fan-out and its join.
    Fanout,
    /// `orc run` of a generated layered diamond.
    Diamond,
    /// Chat calls posted straight to the fake provider with a plain HTTP client.
    ModelDirect,
    /// The same calls through orc's gateway (cache lookup and store: every prompt distinct).
    ModelGateway,
    /// One request answered from the gateway's memory response cache, again and again.
    CacheHit,
    /// Checkpoints appended one at a time to a SQLite state store.
    CheckpointAppend,
    /// A child `orc serve` started: the time until it listens, and its memory then.
    ServeStart,
    /// `POST /v1/runs?wait=true` of a one-step pipeline to a child `orc serve`.
    ServeRuns,
    /// `POST /v1/chat/completions` through a child `orc serve` to the fake provider, against
    /// the same requests posted to the fake provider directly: throughput.
    ServeChat,
    /// The same comparison at lower concurrency: the latency orc adds.
    ServeLatency,
    /// Chat completions held by the fake provider, as many in flight at once as `orc serve`
    /// takes by default.
    ServeInflight,
    /// Clients following one run's event stream.
    ServeFollowers,
}

impl Kind {
    /// Whether the workload needs the fake provider.
    pub(crate) fn needs_provider(self) -> bool {
        matches!(
            self,
            Kind::ModelDirect
                | Kind::ModelGateway
                | Kind::CacheHit
                | Kind::ServeChat
                | Kind::ServeLatency
                | Kind::ServeInflight
        )
    }

    /// Whether the workload needs a running `orc serve`.
    pub(crate) fn needs_server(self) -> bool {
        matches!(
            self,
            Kind::ServeStart
                | Kind::ServeRuns
                | Kind::ServeChat
                | Kind::ServeLatency
                | Kind::ServeInflight
                | Kind::ServeFollowers
        )
    }
}

/// How much each workload does per timed run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scale {
    pub(crate) compile_steps: usize,
    pub(crate) chain: usize,
    pub(crate) fanout: usize,
    pub(crate) diamond: (usize, usize),
    pub(crate) model_calls: usize,
    pub(crate) model_concurrency: usize,
    pub(crate) cache_hits: usize,
    pub(crate) appends: usize,
    pub(crate) serve_runs: usize,
    pub(crate) serve_chats: usize,
    pub(crate) serve_concurrency: usize,
    pub(crate) latency_chats: usize,
    pub(crate) latency_concurrency: usize,
    /// Requests in flight at once and the time the provider holds each (ms).
    pub(crate) inflight: (usize, u64),
    pub(crate) followers: usize,
}

/// The sizes the README's figures come from.
pub(crate) const FULL: Scale = Scale {
    compile_steps: 10_000,
    chain: 1_000,
    fanout: 10_000,
    diamond: (25, 40),
    model_calls: 2_000,
    model_concurrency: 16,
    cache_hits: 20_000,
    appends: 2_000,
    serve_runs: 5_000,
    serve_chats: 20_000,
    serve_concurrency: 64,
    latency_chats: 5_000,
    latency_concurrency: 16,
    inflight: (1_000, 200),
    followers: 1_000,
};

/// A smoke run: every workload, a few seconds in all even in a debug build.
pub(crate) const QUICK: Scale = Scale {
    compile_steps: 300,
    chain: 30,
    fanout: 100,
    diamond: (3, 4),
    model_calls: 60,
    model_concurrency: 8,
    cache_hits: 300,
    appends: 50,
    serve_runs: 60,
    serve_chats: 200,
    serve_concurrency: 8,
    latency_chats: 100,
    latency_concurrency: 4,
    inflight: (50, 20),
    followers: 20,
};

/// One workload of the suite.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Its stable name (what `--filter` matches and baselines are keyed by).
    pub name: &'static str,
    /// What one timed run does, in words.
    pub what: String,
    /// Operations per timed run (steps, calls, hits, appends, requests).
    pub ops: u64,
    /// What an operation is.
    pub unit: &'static str,
    pub(crate) kind: Kind,
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Every workload, in the order they run.
pub(crate) fn all(s: &Scale) -> Vec<Workload> {
    let (layers, width) = s.diamond;
    let w = |name, what: String, ops: usize, unit, kind| Workload {
        name,
        what,
        ops: ops as u64,
        unit,
        kind,
    };
    vec![
        w(
            "compile",
            format!(
                "compile a {}-step chain, in process",
                thousands(s.compile_steps)
            ),
            s.compile_steps,
            "step",
            Kind::Compile,
        ),
        w(
            "chain",
            format!("`orc run`: chain of {} file writes", thousands(s.chain)),
            s.chain,
            "step",
            Kind::Chain,
        ),
        w(
            "fanout",
            format!(
                "`orc run`: fan-out of {} file writes + join",
                thousands(s.fanout)
            ),
            s.fanout + 1,
            "step",
            Kind::Fanout,
        ),
        w(
            "diamond",
            format!(
                "`orc run`: diamond, {layers} layers of {width}, each step on the whole layer before"
            ),
            layers * width,
            "step",
            Kind::Diamond,
        ),
        w(
            "model_direct",
            format!(
                "{} chat calls straight to the fake provider, {} at a time",
                thousands(s.model_calls),
                s.model_concurrency
            ),
            s.model_calls,
            "call",
            Kind::ModelDirect,
        ),
        w(
            "model_gateway",
            format!(
                "the same through orc's gateway (distinct prompts: cache misses), {} at a time",
                s.model_concurrency
            ),
            s.model_calls,
            "call",
            Kind::ModelGateway,
        ),
        w(
            "cache_hit",
            format!(
                "{} gateway calls answered from the memory response cache",
                thousands(s.cache_hits)
            ),
            s.cache_hits,
            "hit",
            Kind::CacheHit,
        ),
        w(
            "checkpoint_append",
            format!(
                "{} checkpoints appended one at a time to SQLite",
                thousands(s.appends)
            ),
            s.appends,
            "append",
            Kind::CheckpointAppend,
        ),
        w(
            "serve_start",
            "`orc serve` started: until it listens (and its memory then)".to_owned(),
            1,
            "start",
            Kind::ServeStart,
        ),
        w(
            "serve_runs",
            format!(
                "`orc serve`: {} POST /v1/runs?wait=true of one echo step, {} at a time",
                thousands(s.serve_runs),
                s.serve_concurrency
            ),
            s.serve_runs,
            "run",
            Kind::ServeRuns,
        ),
        w(
            "serve_chat",
            format!(
                "`orc serve`: {} POST /v1/chat/completions to the fake provider, {} at a time, \
                 each round beside one straight to the fake provider",
                thousands(s.serve_chats),
                s.serve_concurrency
            ),
            s.serve_chats,
            "request",
            Kind::ServeChat,
        ),
        w(
            "serve_latency",
            format!(
                "`orc serve`: {} chat completions, {} at a time, beside the same straight to the \
                 fake provider: the latency orc adds",
                thousands(s.latency_chats),
                s.latency_concurrency
            ),
            s.latency_chats,
            "request",
            Kind::ServeLatency,
        ),
        w(
            "serve_inflight",
            format!(
                "`orc serve`: {} chat completions at once, each held {} ms by the fake provider, \
                 three rounds of them",
                thousands(s.inflight.0),
                s.inflight.1
            ),
            3 * s.inflight.0,
            "request",
            Kind::ServeInflight,
        ),
        w(
            "serve_followers",
            format!(
                "`orc serve`: {} clients follow one 2-second run's event stream to its result",
                thousands(s.followers)
            ),
            s.followers,
            "follower",
            Kind::ServeFollowers,
        ),
    ]
}

/// The workloads whose names contain one of `patterns` (all of them when there is none).
pub(crate) fn select(all: Vec<Workload>, patterns: &[String]) -> Vec<Workload> {
    if patterns.is_empty() {
        return all;
    }
    all.into_iter()
        .filter(|w| patterns.iter().any(|p| w.name.contains(p.as_str())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_by_part_of_a_name() {
        let names = |p: &[&str]| {
            let p: Vec<String> = p.iter().map(|s| (*s).to_owned()).collect();
            select(all(&QUICK), &p)
                .iter()
                .map(|w| w.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&["serve"]),
            [
                "serve_start",
                "serve_runs",
                "serve_chat",
                "serve_latency",
                "serve_inflight",
                "serve_followers"
            ]
        );
        assert_eq!(names(&["chain", "cache"]), ["chain", "cache_hit"]);
        assert_eq!(names(&[]).len(), 14);
        assert!(names(&["nothing"]).is_empty());
        assert_eq!(thousands(10_000), "10,000");
        assert_eq!(thousands(999), "999");
    }
}
