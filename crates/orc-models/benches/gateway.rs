//! What the model gateway costs, against the loopback fake provider, with the targets
//! printed next to the figures:
//!
//! 1. latency orc adds to a call on a cache miss at concurrency 16 (p50 ≤ 0.5 ms, p99 ≤ 1 ms),
//!    against a plain `reqwest` client posting the same JSON; rounds of the arms are interleaved
//!    so that drift on the machine hits every arm alike;
//! 2. a memory cache hit (p50 ≤ 20 µs), and a Redis cache hit next to one raw Redis round trip;
//! 3. the TCP connections 1,000 calls at concurrency 64 open with a pool of 16 (≤ the pool);
//! 4. calls per second at concurrency 64, orc (miss path) against direct (ratio ≥ 0.9).
//!
//! The fake provider runs in this process on a runtime of its own (one thread), so its cost
//! per request is the same whichever arm calls it; the calls are made from a two-worker
//! runtime, as `orc run` makes them on a two-core machine. Every part is bounded in calls and
//! in time. `cargo bench -p orc-models --bench gateway` runs it in full; without `--bench`
//! (e.g. `cargo test --benches`) it runs a few calls of each part, as a smoke test.
//!
//! Redis is read from `ORC_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`); when it cannot
//! be reached, part 2's Redis figures are skipped with a message.

#![allow(
    clippy::print_stdout,
    reason = "a benchmark's output is its figures, on stdout"
)]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use orc_cache::{Backend, Cache, CacheOptions};
use orc_fake_provider::{Behaviour, Endpoint, FakeProvider};
use orc_models::{
    ChatRequest, Gateway, GatewayOptions, HttpOptions, Model, ModelClient, ModelSpec, ProviderKind,
    Registry, Source, cache_key,
};
use tokio::task::JoinSet;

/// How much of everything to do: the full benchmark, or a quick smoke run.
#[derive(Debug, Clone, Copy)]
struct Scale {
    /// Part 1: interleaved rounds (at most), calls per arm per round, and the time after which
    /// no new round starts.
    latency_rounds: usize,
    latency_calls: usize,
    latency_budget: Duration,
    /// Part 1, for reference: calls per arm one at a time.
    sequential_calls: usize,
    /// Part 2: timed memory hits; timed Redis operations per kind.
    memory_hits: usize,
    redis_ops: usize,
    /// Part 3: calls per trial, and trials.
    pool_calls: usize,
    pool_trials: usize,
    /// Part 4: interleaved rounds, calls per round.
    throughput_rounds: usize,
    throughput_calls: usize,
    /// Part 4: requests whose miss path is timed step by step.
    phase_iterations: usize,
}

const FULL: Scale = Scale {
    latency_rounds: 20,
    latency_calls: 1_024,
    latency_budget: Duration::from_secs(8),
    sequential_calls: 500,
    memory_hits: 20_000,
    redis_ops: 3_000,
    pool_calls: 1_000,
    pool_trials: 5,
    throughput_rounds: 20,
    throughput_calls: 2_000,
    phase_iterations: 20_000,
};

const SMOKE: Scale = Scale {
    latency_rounds: 1,
    latency_calls: 32,
    latency_budget: Duration::from_secs(1),
    sequential_calls: 10,
    memory_hits: 100,
    redis_ops: 30,
    pool_calls: 100,
    pool_trials: 2,
    throughput_rounds: 1,
    throughput_calls: 100,
    phase_iterations: 100,
};

const LATENCY_CONCURRENCY: usize = 16;
const POOL_SIZE: usize = 16;
const WIDE_CONCURRENCY: usize = 64;

fn main() -> Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let scale = if full { FULL } else { SMOKE };

    // The fake provider's own runtime and thread: its work never waits for the client's.
    let fake_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("fake-provider")
        .enable_all()
        .build()?;
    let fake = fake_rt.block_on(FakeProvider::start(Behaviour::default()))?;
    let pool_fake = fake_rt.block_on(FakeProvider::start(Behaviour::default()))?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    println!(
        "orc-models gateway benchmark{}: fake provider on 127.0.0.1 (own runtime, 1 thread), calls from a 2-worker runtime",
        if full {
            ""
        } else {
            " (smoke run: a few calls each; use `cargo bench` for figures)"
        }
    );
    println!("load average before: {}", load_average());
    let outcome = rt.block_on(async {
        let rig = Arc::new(Rig::new(&fake, &HttpOptions::default(), memory_cache()?)?);
        let one = added_latency(&rig, scale).await?;
        let two = cache_hits(&rig, scale).await?;
        let three = pool_connections(&pool_fake, scale).await?;
        let four = throughput(&rig, scale).await?;
        anyhow::Ok([one, two, three, four])
    });
    println!("load average after: {}", load_average());
    let verdicts = outcome?;
    println!();
    println!("targets:");
    for line in verdicts.iter().flatten() {
        println!("  {line}");
    }
    fake_rt.block_on(async {
        fake.shutdown().await;
        pool_fake.shutdown().await;
    });
    Ok(())
}

/// The three ways of making the same call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arm {
    /// A plain `reqwest` client (set up by [`direct_client`]) posting the OpenAI
    /// chat JSON and reading the body.
    Direct,
    /// `ModelClient::chat`: orc's client without the gateway (no cache).
    Client,
    /// `Gateway::chat` with `use_cache = false`: cache key, in-flight sharing, no cache.
    Uncached,
    /// `Gateway::chat` with a memory cache, every prompt distinct: a miss (lookup and store).
    Gateway,
}

const ARMS: [Arm; 4] = [Arm::Direct, Arm::Client, Arm::Uncached, Arm::Gateway];

impl Arm {
    fn label(self) -> &'static str {
        match self {
            Arm::Direct => "direct reqwest",
            Arm::Client => "ModelClient (no gateway)",
            Arm::Uncached => "gateway, use_cache=false",
            Arm::Gateway => "orc gateway, cache miss",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A plain `reqwest` client with the settings `http` gives orc's own: the same pool size
/// (which reqwest applies to idle connections only), timeouts, keep-alive and no Nagle.
fn direct_client(http: &HttpOptions) -> Result<reqwest::Client> {
    // reqwest takes its TLS crypto from the process default (the workspace builds it with
    // `rustls-no-provider`); installing it again is a no-op.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .connect_timeout(http.connect_timeout)
        .pool_max_idle_per_host(http.connection_pool_size)
        .pool_idle_timeout(http.pool_idle_timeout)
        .tcp_keepalive(http.tcp_keepalive)
        .tcp_nodelay(true);
    if let Some(timeout) = http.request_timeout {
        builder = builder.timeout(timeout);
    }
    Ok(builder.build()?)
}

/// Clients of every arm against one fake provider.
struct Rig {
    url: String,
    direct: reqwest::Client,
    client: ModelClient,
    gateway: Gateway,
    model: Model,
    registry: Registry,
    next_prompt: AtomicU64,
}

impl Rig {
    fn new(fake: &FakeProvider, http: &HttpOptions, cache: Cache) -> Result<Rig> {
        let mut spec = ModelSpec::new("fake-gpt", ProviderKind::OpenAi);
        spec.base_url = fake.openai_base_url();
        let registry = Registry::new(vec![spec.clone()]).map_err(anyhow::Error::msg)?;
        let client = ModelClient::new(http)?;
        let gateway = Gateway::new(
            registry.clone(),
            client.clone(),
            GatewayOptions {
                cache: Some(cache),
                ..GatewayOptions::default()
            },
        );
        Ok(Rig {
            url: format!("{}/chat/completions", spec.base_url),
            direct: direct_client(http)?,
            client,
            gateway,
            model: Model {
                spec: Arc::new(spec),
                key: None,
            },
            registry,
            next_prompt: AtomicU64::new(0),
        })
    }

    /// Another gateway over the same client (and so the same pool), with `cache`.
    fn gateway_with(&self, cache: Cache) -> Gateway {
        Gateway::new(
            self.registry.clone(),
            self.client.clone(),
            GatewayOptions {
                cache: Some(cache),
                ..GatewayOptions::default()
            },
        )
    }

    /// A prompt no call has used: same length every time, so the fake's work is the same.
    fn fresh_prompt(&self) -> String {
        let n = self.next_prompt.fetch_add(1, Ordering::Relaxed);
        format!("benchmark question number {n:010}, answer briefly")
    }

    /// One call of `arm` with a fresh prompt.
    async fn call(&self, arm: Arm) -> Result<()> {
        let prompt = self.fresh_prompt();
        match arm {
            Arm::Direct => {
                let body = serde_json::json!({
                    "model": self.model.spec.model,
                    "messages": [{ "role": "user", "content": prompt }],
                });
                let response = self.direct.post(&self.url).json(&body).send().await?;
                let status = response.status();
                let body = response.bytes().await?;
                ensure!(status.is_success() && !body.is_empty(), "direct: {status}");
            }
            Arm::Client => {
                let answer = self
                    .client
                    .chat(&self.model.spec, None, &ChatRequest::user(prompt))
                    .await?;
                ensure!(!answer.text.is_empty(), "client: empty answer");
            }
            Arm::Uncached | Arm::Gateway => {
                let use_cache = arm == Arm::Gateway;
                let answer = self
                    .gateway
                    .chat(&self.model, &ChatRequest::user(prompt), use_cache)
                    .await?;
                ensure!(
                    answer.source == Source::Upstream,
                    "gateway: a fresh prompt came from {:?}",
                    answer.source
                );
            }
        }
        Ok(())
    }
}

fn memory_cache() -> Result<Cache> {
    Ok(Cache::open(CacheOptions {
        namespace: "bench-gateway".into(),
        ..CacheOptions::default()
    })?)
}

/// Runs `calls` calls, `concurrency` at a time (each worker calling in turn): the latency of
/// every call and the wall time of all of them.
async fn run_calls<F, Fut>(
    concurrency: usize,
    calls: usize,
    call: F,
) -> Result<(Vec<Duration>, Duration)>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let taken = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        let (taken, call) = (Arc::clone(&taken), call.clone());
        workers.spawn(async move {
            let mut times = Vec::with_capacity(calls / concurrency + 1);
            while taken.fetch_add(1, Ordering::Relaxed) < calls {
                let t0 = Instant::now();
                call().await?;
                times.push(t0.elapsed());
            }
            anyhow::Ok(times)
        });
    }
    let mut all = Vec::with_capacity(calls);
    while let Some(times) = workers.join_next().await {
        all.extend(times??);
    }
    Ok((all, started.elapsed()))
}

async fn run_arm(
    rig: &Arc<Rig>,
    arm: Arm,
    concurrency: usize,
    calls: usize,
) -> Result<(Vec<Duration>, Duration)> {
    let rig = Arc::clone(rig);
    run_calls(concurrency, calls, move || {
        let rig = Arc::clone(&rig);
        async move { rig.call(arm).await }
    })
    .await
}

/// The arms in round `round`'s order: forwards, then backwards, so no arm always goes first.
fn order(round: usize) -> [Arm; 4] {
    let mut arms = ARMS;
    if round % 2 == 1 {
        arms.reverse();
    }
    arms
}

/// The name of the fake provider's runtime thread (its CPU time is counted apart).
const FAKE_THREAD: &str = "fake-provider";

/// CPU time this process's threads have used so far, in ns: `[calling side, fake provider]`.
/// Read from `/proc/self/task/*/schedstat` (Linux); `None` where that is missing.
fn cpu_ns() -> Option<[u64; 2]> {
    let mut cpu = [0, 0];
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        // A thread that ended between the listing and the read is skipped.
        let Ok(stat) = std::fs::read_to_string(dir.join("schedstat")) else {
            continue;
        };
        let Some(ns) = stat
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        cpu[usize::from(comm.trim() == FAKE_THREAD)] += ns;
    }
    Some(cpu)
}

/// What the rounds of one arm measured.
#[derive(Debug, Default)]
struct Tally {
    /// Every call's latency (sorted by [`Tally::finish`]).
    latencies: Vec<Duration>,
    /// Each round's median latency.
    round_p50: Vec<Duration>,
    /// Each round's calls per second.
    rates: Vec<f64>,
    /// CPU ns used during the rounds: `[calling side, fake provider]`.
    cpu_ns: [u64; 2],
    cpu_known: bool,
}

impl Tally {
    /// One round: `calls` calls of `arm`, `concurrency` at a time.
    async fn round(
        &mut self,
        rig: &Arc<Rig>,
        arm: Arm,
        concurrency: usize,
        calls: usize,
    ) -> Result<()> {
        let before = cpu_ns();
        let (mut times, wall) = run_arm(rig, arm, concurrency, calls).await?;
        let after = cpu_ns();
        if let (Some(before), Some(after)) = (before, after) {
            self.cpu_known = true;
            for (total, (b, a)) in self.cpu_ns.iter_mut().zip(before.iter().zip(after)) {
                *total += a.saturating_sub(*b);
            }
        }
        times.sort_unstable();
        self.round_p50.push(percentile(&times, 50.0));
        self.rates.push(times.len() as f64 / wall.as_secs_f64());
        self.latencies.extend(times);
        Ok(())
    }

    fn finish(&mut self) {
        self.latencies.sort_unstable();
    }

    fn p(&self, p: f64) -> f64 {
        ms(percentile(&self.latencies, p))
    }

    /// CPU µs per call, calling side and fake provider, as text.
    fn cpu_per_call(&self) -> [String; 2] {
        let calls = self.latencies.len().max(1) as f64;
        self.cpu_ns.map(|ns| {
            if self.cpu_known {
                format!("{:.1}", ns as f64 / 1e3 / calls)
            } else {
                "-".to_owned()
            }
        })
    }
}

/// Part 1: latency per call on a cache miss at concurrency 16, then one at a time.
async fn added_latency(rig: &Arc<Rig>, scale: Scale) -> Result<Vec<String>> {
    println!();
    println!(
        "1. latency per call on a cache miss, concurrency {LATENCY_CONCURRENCY}: rounds of {} calls per arm, arms interleaved",
        scale.latency_calls
    );
    // Warm every pool to the concurrency used.
    for arm in ARMS {
        run_arm(rig, arm, LATENCY_CONCURRENCY, LATENCY_CONCURRENCY * 8).await?;
    }
    let mut tallies: [Tally; 4] = Default::default();
    let started = Instant::now();
    let mut rounds = 0;
    while rounds < scale.latency_rounds && (rounds < 2 || started.elapsed() < scale.latency_budget)
    {
        for arm in order(rounds) {
            tallies[arm.index()]
                .round(rig, arm, LATENCY_CONCURRENCY, scale.latency_calls)
                .await?;
        }
        rounds += 1;
    }
    for t in &mut tallies {
        t.finish();
    }
    println!(
        "   {rounds} rounds, {} calls per arm, {:.1} s; CPU per call: this side (client, gateway, cache) and the fake provider's thread",
        tallies[0].latencies.len(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "   {:<30}{:>9}{:>9}{:>9}{:>13}{:>13}",
        "arm", "p50 ms", "p90 ms", "p99 ms", "CPU µs/call", "fake µs/call"
    );
    for arm in ARMS {
        let t = &tallies[arm.index()];
        let [mine, fake] = t.cpu_per_call();
        println!(
            "   {:<30}{:>9.3}{:>9.3}{:>9.3}{mine:>13}{fake:>13}",
            arm.label(),
            t.p(50.0),
            t.p(90.0),
            t.p(99.0),
        );
    }
    let diff = |a: Arm, b: Arm, p: f64| tallies[a.index()].p(p) - tallies[b.index()].p(p);
    let (d50, d99) = (
        diff(Arm::Gateway, Arm::Direct, 50.0),
        diff(Arm::Gateway, Arm::Direct, 99.0),
    );
    println!(
        "   {:<30}{:>+9.3}{:>9}{:>+9.3}",
        "orc gateway - direct", d50, "", d99
    );
    for (label, a, b) in [
        ("  client - direct", Arm::Client, Arm::Direct),
        ("  use_cache=false - client", Arm::Uncached, Arm::Client),
        (
            "  cache miss - use_cache=false",
            Arm::Gateway,
            Arm::Uncached,
        ),
    ] {
        println!(
            "   {label:<30}{:>+9.3}{:>9}{:>+9.3}",
            diff(a, b, 50.0),
            "",
            diff(a, b, 99.0)
        );
    }
    let paired: Vec<f64> = tallies[Arm::Gateway.index()]
        .round_p50
        .iter()
        .zip(&tallies[Arm::Direct.index()].round_p50)
        .map(|(g, d)| ms(*g) - ms(*d))
        .collect();
    println!(
        "   per-round p50 difference gateway - direct (ms): median {:+.3}, range {:+.3} .. {:+.3}",
        median_f64(&paired),
        paired.iter().copied().fold(f64::INFINITY, f64::min),
        paired.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    );

    // For reference: one call at a time, where no queueing hides or inflates anything.
    let mut seq: [Tally; 4] = Default::default();
    for round in 0..4 {
        for arm in order(round) {
            seq[arm.index()]
                .round(rig, arm, 1, scale.sequential_calls.div_ceil(4))
                .await?;
        }
    }
    for t in &mut seq {
        t.finish();
    }
    println!(
        "   one call at a time, for reference ({} calls per arm), p50 ms: {}; gateway - direct {:+.3} ms",
        seq[0].latencies.len(),
        ARMS.map(|arm| format!("{} {:.3}", arm.label(), seq[arm.index()].p(50.0)))
            .join(", "),
        seq[Arm::Gateway.index()].p(50.0) - seq[Arm::Direct.index()].p(50.0)
    );
    Ok(vec![
        format!(
            "1. added latency p50 {d50:+.3} ms (≤ 0.5 ms): {}",
            ok(d50 <= 0.5)
        ),
        format!(
            "1. added latency p99 {d99:+.3} ms (≤ 1 ms): {}",
            ok(d99 <= 1.0)
        ),
    ])
}

/// Part 2: cache hits through the gateway, memory and Redis.
async fn cache_hits(rig: &Arc<Rig>, scale: Scale) -> Result<Vec<String>> {
    println!();
    println!("2. cache hits: gateway.chat on a repeated request, one at a time");
    let req = ChatRequest::user("a question asked again and again, answer briefly");
    let memory = rig.gateway_with(memory_cache()?);
    let first = memory.chat(&rig.model, &req, true).await?;
    ensure!(first.source == Source::Upstream, "{:?}", first.source);
    let memory_times = {
        let (gateway, model, req) = (memory.clone(), rig.model.clone(), req.clone());
        let n = scale.memory_hits;
        tokio::spawn(async move { time_hits(&gateway, &model, &req, n / 10, n).await }).await??
    };
    let m50 = percentile(&memory_times, 50.0);
    println!(
        "   memory: {} hits, p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs",
        memory_times.len(),
        us(m50),
        us(percentile(&memory_times, 90.0)),
        us(percentile(&memory_times, 99.0))
    );
    let mut verdicts = vec![format!(
        "2. memory cache hit p50 {:.1} µs (≤ 20 µs): {}",
        us(m50),
        ok(us(m50) <= 20.0)
    )];

    let url =
        std::env::var("ORC_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    match redis_hits(rig, &url, &req, scale).await {
        Ok(line) => verdicts.push(line),
        Err(e) => {
            println!("   redis: SKIPPED, cannot use {url}: {e:#} (start it: see SERVICES.md)");
            verdicts.push("2. redis hit vs round trip: SKIPPED (no Redis)".into());
        }
    }
    Ok(verdicts)
}

/// `warm` untimed hits, then `n` timed ones.
async fn time_hits(
    gateway: &Gateway,
    model: &Model,
    req: &ChatRequest,
    warm: usize,
    n: usize,
) -> Result<Vec<Duration>> {
    for _ in 0..warm {
        gateway.chat(model, req, true).await?;
    }
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        let answer = gateway.chat(model, req, true).await?;
        times.push(t0.elapsed());
        ensure!(answer.source == Source::Cache, "{:?}", answer.source);
    }
    times.sort_unstable();
    Ok(times)
}

/// Redis: a gateway hit next to a raw `PING` and a raw `GET` of a value of the same size, on
/// the same kind of connection orc uses (a `ConnectionManager`), interleaved in blocks.
async fn redis_hits(rig: &Arc<Rig>, url: &str, req: &ChatRequest, scale: Scale) -> Result<String> {
    let namespace = format!("bench-gateway-{}", std::process::id());
    let cache = Cache::open(CacheOptions {
        backend: Backend::Redis {
            url: url.to_owned(),
        },
        namespace: namespace.clone(),
        op_timeout: Duration::from_secs(2),
        ..CacheOptions::default()
    })?;
    let gateway = rig.gateway_with(cache.clone());
    let client = redis::Client::open(url)?;
    let mut raw = tokio::time::timeout(Duration::from_secs(2), client.get_connection_manager())
        .await
        .context("connecting took over 2 s")??;
    let raw_key = format!("orc:{namespace}:raw");
    let outcome = async {
        let first = gateway.chat(&rig.model, req, true).await?;
        let value = serde_json::to_vec(&first.value)?;
        let hit = gateway.chat(&rig.model, req, true).await?;
        if hit.source != Source::Cache {
            bail!(
                "the answer was not cached in Redis (cache stats: {:?})",
                cache.stats()
            );
        }
        redis::cmd("SET")
            .arg(&raw_key)
            .arg(&value)
            .query_async::<()>(&mut raw)
            .await?;
        let mut times: [Vec<Duration>; 3] = Default::default();
        let blocks = 10;
        let per_block = scale.redis_ops.div_ceil(blocks);
        for block in 0..=blocks {
            for i in 0..per_block {
                // Rotate which kind goes first, so none always follows another.
                for k in 0..3 {
                    let kind = (i + k) % 3;
                    let t0 = Instant::now();
                    match kind {
                        0 => {
                            redis::cmd("PING").query_async::<String>(&mut raw).await?;
                        }
                        1 => {
                            let got: Vec<u8> =
                                redis::cmd("GET").arg(&raw_key).query_async(&mut raw).await?;
                            ensure!(got.len() == value.len());
                        }
                        _ => {
                            let answer = gateway.chat(&rig.model, req, true).await?;
                            ensure!(answer.source == Source::Cache, "{:?}", answer.source);
                        }
                    }
                    let elapsed = t0.elapsed();
                    // Block 0 warms up and is not kept.
                    if block > 0 {
                        times[kind].push(elapsed);
                    }
                }
            }
        }
        for t in &mut times {
            t.sort_unstable();
        }
        let [ping, get, hit] = times.each_ref().map(|t| percentile(t, 50.0));
        let p99 = |k: usize| us(percentile(&times[k], 99.0));
        println!(
            "   redis ({} each, value {} bytes): raw PING p50 {:.1} µs (p99 {:.1}), raw GET p50 {:.1} µs (p99 {:.1}), gateway hit p50 {:.1} µs (p99 {:.1})",
            times[0].len(),
            value.len(),
            us(ping),
            p99(0),
            us(get),
            p99(1),
            us(hit),
            p99(2)
        );
        let ratio = us(hit) / us(get);
        println!(
            "   redis hit / raw GET = {ratio:.2}, hit / PING = {:.2}, hit - GET = {:+.1} µs (orc's own work on a hit: key, hash, decode)",
            us(hit) / us(ping),
            us(hit) - us(get)
        );
        anyhow::Ok(format!(
            "2. redis hit p50 {:.1} µs vs one round trip (GET) {:.1} µs: ratio {ratio:.2}",
            us(hit),
            us(get)
        ))
    }
    .await;
    // Leave nothing behind.
    let _ = redis::cmd("DEL")
        .arg(&raw_key)
        .query_async::<()>(&mut raw)
        .await;
    let _ = cache.clear().await;
    outcome
}

/// Part 3: TCP connections of 1,000 calls at concurrency 64 through a pool of 16, from a cold
/// pool (a new client) in every trial.
async fn pool_connections(fake: &FakeProvider, scale: Scale) -> Result<Vec<String>> {
    println!();
    println!(
        "3. connections: {} calls at concurrency {WIDE_CONCURRENCY}, connection_pool_size = {POOL_SIZE}; {} trials, each with a new client (cold pool) against a fake provider of its own",
        scale.pool_calls, scale.pool_trials
    );
    let http = HttpOptions {
        connection_pool_size: POOL_SIZE,
        ..HttpOptions::default()
    };
    let mut counts = Vec::with_capacity(scale.pool_trials);
    let mut walls = Vec::with_capacity(scale.pool_trials);
    for _ in 0..scale.pool_trials {
        let rig = Arc::new(Rig::new(fake, &http, memory_cache()?)?);
        fake.reset();
        let (_, wall) = run_arm(&rig, Arm::Gateway, WIDE_CONCURRENCY, scale.pool_calls).await?;
        let stats = fake.stats();
        let requests = stats.requests_to(Endpoint::ChatCompletions);
        ensure!(
            requests == scale.pool_calls as u64,
            "{requests} requests for {} calls",
            scale.pool_calls
        );
        counts.push(stats.connections_accepted);
        walls.push(ms(wall));
    }
    let most = counts.iter().copied().max().unwrap_or(0);
    println!(
        "   orc gateway: TCP connections per trial {} (pool size {POOL_SIZE}; most {most}); ms per trial {}",
        counts
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" "),
        walls
            .iter()
            .map(|w| format!("{w:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    // For context: reqwest alone bounds idle connections, not connections in use.
    let rig = Arc::new(Rig::new(fake, &http, memory_cache()?)?);
    fake.reset();
    run_arm(&rig, Arm::Direct, WIDE_CONCURRENCY, scale.pool_calls).await?;
    let direct = fake.stats().connections_accepted;
    println!(
        "   for context, direct reqwest with the same pool settings: {direct} TCP connections (it bounds idle connections only)"
    );
    Ok(vec![format!(
        "3. {} calls opened at most {most} connections in {} trials, pool size {POOL_SIZE} (≤ pool): {}",
        scale.pool_calls,
        counts.len(),
        ok(most <= POOL_SIZE as u64)
    )])
}

/// Part 4: calls per second at concurrency 64, rounds of the arms interleaved; then the
/// gateway's own work on a miss, phase by phase, timed alone.
async fn throughput(rig: &Arc<Rig>, scale: Scale) -> Result<Vec<String>> {
    println!();
    println!(
        "4. throughput at concurrency {WIDE_CONCURRENCY}, cache miss: {} rounds of {} calls per arm, interleaved",
        scale.throughput_rounds, scale.throughput_calls
    );
    for arm in ARMS {
        run_arm(rig, arm, WIDE_CONCURRENCY, WIDE_CONCURRENCY * 4).await?;
    }
    let mut tallies: [Tally; 4] = Default::default();
    for round in 0..scale.throughput_rounds {
        for arm in order(round) {
            tallies[arm.index()]
                .round(rig, arm, WIDE_CONCURRENCY, scale.throughput_calls)
                .await?;
        }
    }
    for t in &mut tallies {
        t.finish();
    }
    let medians = tallies.each_ref().map(|t| median_f64(&t.rates));
    println!(
        "   {:<30}{:>10}{:>13}{:>13}   rounds (calls/s)",
        "arm", "calls/s", "CPU µs/call", "fake µs/call"
    );
    for arm in ARMS {
        let t = &tallies[arm.index()];
        let [mine, fake] = t.cpu_per_call();
        println!(
            "   {:<30}{:>10.0}{mine:>13}{fake:>13}   {}",
            arm.label(),
            medians[arm.index()],
            t.rates
                .iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    // Each round runs every arm back to back, so a round's ratio compares arms under the same
    // conditions; the median over rounds is the figure (drift between rounds cancels out).
    let paired = |arm: Arm| {
        let ratios: Vec<f64> = tallies[arm.index()]
            .rates
            .iter()
            .zip(&tallies[Arm::Direct.index()].rates)
            .map(|(a, direct)| a / direct)
            .collect();
        median_f64(&ratios)
    };
    let ratio = paired(Arm::Gateway);
    println!(
        "   orc / direct, median of per-round ratios = {ratio:.3}   (client / direct = {:.3}, use_cache=false / direct = {:.3}; ratio of the medians above: {:.3})",
        paired(Arm::Client),
        paired(Arm::Uncached),
        medians[Arm::Gateway.index()] / medians[Arm::Direct.index()]
    );
    let verdict = format!(
        "4. throughput orc / direct at concurrency {WIDE_CONCURRENCY} = {ratio:.3} (≥ 0.9): {}",
        ok(ratio >= 0.9)
    );

    let rig = Arc::clone(rig);
    let iterations = scale.phase_iterations;
    tokio::spawn(async move { miss_phases(&rig, iterations).await }).await??;
    Ok(vec![verdict])
}

/// The gateway's own steps on a miss, each timed alone, one at a time, on a fresh memory
/// cache: what the miss path adds to the client's call.
async fn miss_phases(rig: &Rig, iterations: usize) -> Result<()> {
    let response = rig
        .client
        .chat(
            &rig.model.spec,
            None,
            &ChatRequest::user(rig.fresh_prompt()),
        )
        .await?;
    let cache = memory_cache()?;
    let requests: Vec<ChatRequest> = (0..iterations)
        .map(|_| ChatRequest::user(rig.fresh_prompt()))
        .collect();
    let mut phases: [Vec<Duration>; 5] = Default::default();
    for req in &requests {
        let t0 = Instant::now();
        let key = cache_key(&rig.model.spec, "chat", req)?;
        let t1 = Instant::now();
        let hash = blake3::hash(&key);
        let t2 = Instant::now();
        let found = cache.get(&key).await;
        let t3 = Instant::now();
        let bytes = serde_json::to_vec(&response)?;
        let t4 = Instant::now();
        cache.put(&key, &bytes).await;
        let t5 = Instant::now();
        ensure!(found.is_none() && hash.as_bytes()[0] == blake3::hash(&key).as_bytes()[0]);
        for (phase, (a, b)) in
            phases
                .iter_mut()
                .zip([(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5)])
        {
            phase.push(b - a);
        }
    }
    println!(
        "   the gateway's own work on a miss, each step timed alone ({iterations} fresh requests, one at a time):"
    );
    let mut total = 0.0;
    for (label, times) in [
        "cache key (canonical JSON)",
        "blake3 of the key",
        "memory cache get (miss)",
        "response to JSON",
        "memory cache put",
    ]
    .into_iter()
    .zip(&mut phases)
    {
        let mean = times.iter().map(|d| us(*d)).sum::<f64>() / times.len().max(1) as f64;
        total += mean;
        times.sort_unstable();
        println!(
            "     {label:<28} mean {mean:>6.2} µs, p50 {:>6.2} µs",
            us(percentile(times, 50.0))
        );
    }
    println!(
        "     {:<28} mean {total:>6.2} µs (the gateway also hashes the key once more and runs the in-flight map)",
        "together"
    );
    Ok(())
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median_f64(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn ok(good: bool) -> &'static str {
    if good { "ok" } else { "MISSED" }
}

fn load_average() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "{} on {cores} cores",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}
