//! The suite: the selected workloads, each set up once and then timed `runs` times, with the
//! fake provider and `orc serve` started only when a selected workload needs them, and every
//! file in one temp dir removed at the end.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use orc_fake_provider::{Behaviour, FakeProvider};
use tracing::Instrument as _;

use crate::error::{Error, Result, failed};
use crate::models::Models;
use crate::pipelines::{Compile, Run};
use crate::report::{Bound, Figure, Measured, Report};
use crate::serve::{self, Served};
use crate::stats::Summary;
use crate::workload::{self, Kind, Workload};
use crate::{checkpoint, generate};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `orc` binary the whole-process workloads start (`orc run`, `orc serve`).
    pub orc: PathBuf,
    /// Timed runs per workload (after an untimed warm-up).
    pub runs: usize,
    /// Small sizes, for a smoke test.
    pub quick: bool,
    /// Run only the workloads whose name contains one of these.
    pub filter: Vec<String>,
    /// Most time one workload may take, set-up and every run included.
    pub time_limit: Duration,
}

/// The most timed runs a workload may be asked for.
const MAX_RUNS: usize = 1_000;

/// The workloads to run, checked.
#[derive(Debug, Clone)]
pub struct Suite {
    options: Options,
    workloads: Vec<Workload>,
}

impl Suite {
    /// Checks the options: `runs` between 1 and 1,000, a filter that selects something.
    pub fn new(options: Options) -> Result<Suite> {
        if !(1..=MAX_RUNS).contains(&options.runs) {
            return Err(Error::Invalid(format!(
                "--runs: {} is not between 1 and {MAX_RUNS}",
                options.runs
            )));
        }
        let scale = if options.quick {
            workload::QUICK
        } else {
            workload::FULL
        };
        let workloads = workload::select(workload::all(&scale), &options.filter);
        if workloads.is_empty() {
            let names: Vec<&str> = workload::all(&scale).iter().map(|w| w.name).collect();
            return Err(Error::Invalid(format!(
                "--filter: `{}` matches no workload; there are {}",
                options.filter.join(","),
                names.join(", ")
            )));
        }
        Ok(Suite { options, workloads })
    }

    /// The selected workloads.
    pub fn workloads(&self) -> &[Workload] {
        &self.workloads
    }

    /// Runs every selected workload; `done` is told of each as it finishes.
    pub fn run(&self, mut done: impl FnMut(&Measured)) -> Result<Report> {
        let scale = if self.options.quick {
            workload::QUICK
        } else {
            workload::FULL
        };
        let tmp = tempfile::Builder::new()
            .prefix("orc-bench.")
            .tempdir()
            .map_err(|e| Error::setup("temp dir", e))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::setup("tokio runtime", e))?;
        // The fake provider answers on a runtime and thread of its own, so its cost per request
        // is the same whichever client calls it.
        let provider_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("fake-provider")
            .enable_all()
            .build()
            .map_err(|e| Error::setup("tokio runtime", e))?;
        let needs_provider = self
            .workloads
            .iter()
            .any(|w| w.kind.needs_provider() || w.kind.needs_server());
        let provider = match needs_provider {
            true => Some(
                provider_rt
                    .block_on(FakeProvider::start(Behaviour::default()))
                    .map_err(|e| Error::setup("fake provider", e))?,
            ),
            false => None,
        };
        let mut stage = Stage {
            orc: self.options.orc.clone(),
            dir: tmp.path().to_owned(),
            scale,
            provider: provider.as_ref().map(FakeProvider::openai_base_url),
            models: None,
            served: None,
        };
        let mut measured = Vec::with_capacity(self.workloads.len());
        let mut outcome = Ok(());
        for w in &self.workloads {
            let span = tracing::info_span!("workload", name = w.name);
            let limit = self.options.time_limit;
            let samples = rt.block_on(
                async {
                    match tokio::time::timeout(limit, stage.measure(w, self.options.runs)).await {
                        Ok(samples) => samples,
                        Err(_) => Err(failed(
                            w.name,
                            format!("did not finish within its limit of {} s", limit.as_secs()),
                        )),
                    }
                }
                .instrument(span),
            );
            let outcome_of_w = samples.map(|(samples, figures)| {
                Measured::new(w, samples).map(|m| Measured { figures, ..m })
            });
            match outcome_of_w {
                Ok(Some(m)) => {
                    done(&m);
                    measured.push(m);
                }
                Ok(None) => {
                    outcome = Err(failed(w.name, "no timed run"));
                    break;
                }
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        // Dropped, it is killed all the same; stopped, it is also waited for.
        if let Some(Ok(served)) = stage.served.take().map(Arc::try_unwrap) {
            rt.block_on(served.stop());
        }
        if let Some(provider) = provider {
            provider_rt.block_on(provider.shutdown());
        }
        outcome?;
        Ok(Report {
            orc_version: env!("CARGO_PKG_VERSION").to_owned(),
            git_commit: option_env!("ORC_BENCH_GIT_COMMIT").map(str::to_owned),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            date: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            quick: self.options.quick,
            runs: self.options.runs,
            workloads: measured,
        })
    }
}

/// What the workloads share: the temp dir, the fake provider's clients, a running `orc serve`.
struct Stage {
    orc: PathBuf,
    dir: PathBuf,
    scale: workload::Scale,
    provider: Option<String>,
    models: Option<Arc<Models>>,
    served: Option<Arc<Served>>,
}

impl Stage {
    fn provider(&self, name: &str) -> Result<&str> {
        self.provider
            .as_deref()
            .ok_or_else(|| failed(name, "the fake provider is not running"))
    }

    fn models(&mut self, name: &str) -> Result<Arc<Models>> {
        if let Some(m) = &self.models {
            return Ok(Arc::clone(m));
        }
        let models = Arc::new(Models::new(self.provider(name)?).map_err(|e| failed(name, e))?);
        self.models = Some(Arc::clone(&models));
        Ok(models)
    }

    async fn served(&mut self, name: &str) -> Result<Arc<Served>> {
        if let Some(s) = &self.served {
            return Ok(Arc::clone(s));
        }
        let provider = self.provider(name)?.to_owned();
        let served = Arc::new(
            Served::start(&self.orc, &self.dir, "serve", &provider)
                .await
                .map_err(|e| failed(name, e))?,
        );
        self.served = Some(Arc::clone(&served));
        Ok(served)
    }

    /// Sets workload `w` up, runs it once untimed, then `runs` times timed: the seconds of
    /// each, and the figures it measures beside them.
    async fn measure(&mut self, w: &Workload, runs: usize) -> Result<(Vec<f64>, Vec<Figure>)> {
        let s = self.scale;
        let name = w.name;
        let fail = |e: String| failed(name, e);
        let mut samples = Vec::with_capacity(runs);
        let mut figures = Vec::new();
        match w.kind {
            Kind::Compile => {
                let compile = Compile::new(generate::chain(s.compile_steps));
                compile.once().await.map_err(fail)?;
                for _ in 0..runs {
                    samples.push(compile.once().await.map_err(fail)?);
                }
            }
            Kind::Chain | Kind::Fanout | Kind::Diamond => {
                let text = match w.kind {
                    Kind::Chain => generate::chain(s.chain),
                    Kind::Fanout => generate::fanout(s.fanout),
                    _ => generate::diamond(s.diamond.0, s.diamond.1),
                };
                let run = Run::new(&self.orc, &self.dir, name, &text)
                    .await
                    .map_err(fail)?;
                for _ in 0..runs {
                    samples.push(run.once().await.map_err(fail)?);
                }
                let peak = run.peak_mib().await.map_err(fail)?;
                figures.push(Figure::new("peak RSS", peak, "MiB"));
            }
            Kind::ModelDirect | Kind::ModelGateway => {
                let models = self.models(name)?;
                let (calls, conc) = (s.model_calls, s.model_concurrency);
                let through_gateway = w.kind == Kind::ModelGateway;
                for i in 0..=runs {
                    let seconds = models
                        .calls(through_gateway, calls, conc)
                        .await
                        .map_err(fail)?;
                    if i > 0 {
                        samples.push(seconds);
                    }
                }
            }
            Kind::CacheHit => {
                let models = self.models(name)?;
                for i in 0..=runs {
                    let seconds = models.cache_hits(s.cache_hits).await.map_err(fail)?;
                    if i > 0 {
                        samples.push(seconds);
                    }
                }
            }
            Kind::CheckpointAppend => {
                let appends = checkpoint::Appends::new(&self.dir).await.map_err(fail)?;
                for i in 0..=runs {
                    let seconds = appends.once(s.appends).await.map_err(fail)?;
                    if i > 0 {
                        samples.push(seconds);
                    }
                }
            }
            Kind::ServeStart => {
                let provider = self.provider(name)?.to_owned();
                let (mut starts, mut rss) = (Vec::new(), Vec::new());
                for i in 0..=runs {
                    let dir = format!("start-{i}");
                    let served = Served::start(&self.orc, &self.dir, &dir, &provider)
                        .await
                        .map_err(fail)?;
                    // Idle: what it holds once started, before any request.
                    tokio::time::sleep(IDLE_SETTLE).await;
                    let mib = served.rss_mib().map_err(fail);
                    let started = served.started_in.as_secs_f64();
                    served.stop().await;
                    if i > 0 {
                        samples.push(started);
                        starts.push(started * 1e3);
                        rss.push(mib?);
                    }
                }
                figures
                    .push(Figure::new("start", median(&starts), "ms").target(Bound::AtMost(50.0)));
                figures
                    .push(Figure::new("idle RSS", median(&rss), "MiB").target(Bound::AtMost(30.0)));
            }
            Kind::ServeRuns => {
                let served = self.served(name).await?;
                let users = u32::try_from(s.serve_concurrency).unwrap_or(u32::MAX);
                let (mut rates, mut p50, mut p99) = (Vec::new(), Vec::new(), Vec::new());
                for i in 0..=runs {
                    let report = serve::runs(&served, users, s.serve_runs as u64)
                        .await
                        .map_err(fail)?;
                    if i > 0 {
                        samples.push(report.elapsed_seconds);
                        rates.push(report.total.requests_per_second);
                        p50.push(report.total.latency_ms.p50);
                        p99.push(report.total.latency_ms.p99);
                    }
                }
                figures.push(
                    Figure::new("runs", median(&rates), "runs/s").target(Bound::AtLeast(2_000.0)),
                );
                figures.push(Figure::new("p50", median(&p50), "ms"));
                figures.push(Figure::new("p99", median(&p99), "ms").target(Bound::AtMost(50.0)));
            }
            Kind::ServeInflight => {
                let served = self.served(name).await?;
                let (users, delay) = s.inflight;
                let (mut errors, mut p99) = (Vec::new(), Vec::new());
                for i in 0..=runs {
                    let report = serve::held(
                        &served,
                        i,
                        u32::try_from(users).unwrap_or(u32::MAX),
                        3 * users as u64,
                        delay,
                    )
                    .await
                    .map_err(fail)?;
                    if i > 0 {
                        samples.push(report.elapsed_seconds);
                        errors.push(report.total.errors as f64);
                        p99.push(report.total.latency_ms.p99);
                    }
                }
                figures.push(Figure::new("errors", median(&errors), "").target(Bound::AtMost(0.0)));
                figures.push(Figure::new("p99", median(&p99), "ms"));
            }
            Kind::ServeFollowers => {
                let served = self.served(name).await?;
                let mut saw = Vec::new();
                for i in 0..=runs {
                    let (n, seconds) =
                        serve::followers(&served, &format!("followers-{i}"), s.followers)
                            .await
                            .map_err(fail)?;
                    if i > 0 {
                        samples.push(seconds);
                        saw.push(n as f64);
                    }
                }
                figures.push(
                    Figure::new("saw the result", median(&saw), "followers")
                        .target(Bound::AtLeast(s.followers as f64)),
                );
            }
            Kind::ServeChat | Kind::ServeLatency => {
                let served = self.served(name).await?;
                let provider = self.provider(name)?;
                let direct_base = provider.strip_suffix("/v1").unwrap_or(provider).to_owned();
                let (requests, users) = match w.kind {
                    Kind::ServeChat => (s.serve_chats, s.serve_concurrency),
                    _ => (s.latency_chats, s.latency_concurrency),
                };
                let users = u32::try_from(users).unwrap_or(u32::MAX);
                let mut pairs = Vec::with_capacity(runs);
                for i in 0..=runs {
                    let (direct, orc) =
                        serve::chat_pair(&served, &direct_base, i, users, requests as u64)
                            .await
                            .map_err(fail)?;
                    if i > 0 {
                        samples.push(orc.elapsed_seconds);
                        pairs.push((direct.total, orc.total));
                    }
                }
                let of = |f: &dyn Fn(&orc_loadtest::Stats, &orc_loadtest::Stats) -> f64| {
                    median(&pairs.iter().map(|(d, o)| f(d, o)).collect::<Vec<_>>())
                };
                if w.kind == Kind::ServeChat {
                    figures.push(Figure::new(
                        "direct",
                        of(&|d, _| d.requests_per_second),
                        "requests/s",
                    ));
                    figures.push(Figure::new(
                        "through orc",
                        of(&|_, o| o.requests_per_second),
                        "requests/s",
                    ));
                    figures.push(
                        Figure::new(
                            "through orc / direct",
                            of(&|d, o| 100.0 * o.requests_per_second / d.requests_per_second),
                            "%",
                        )
                        .target(Bound::AtLeast(60.0)),
                    );
                } else {
                    figures.push(Figure::new(
                        "direct p50",
                        of(&|d, _| d.latency_ms.p50),
                        "ms",
                    ));
                    figures.push(Figure::new(
                        "direct p99",
                        of(&|d, _| d.latency_ms.p99),
                        "ms",
                    ));
                    figures.push(
                        Figure::new(
                            "added p50",
                            of(&|d, o| o.latency_ms.p50 - d.latency_ms.p50),
                            "ms",
                        )
                        .target(Bound::AtMost(0.5)),
                    );
                    figures.push(
                        Figure::new(
                            "added p99",
                            of(&|d, o| o.latency_ms.p99 - d.latency_ms.p99),
                            "ms",
                        )
                        .target(Bound::AtMost(2.0)),
                    );
                }
            }
        }
        Ok((samples, figures))
    }
}

/// How long a freshly started `orc serve` idles before its memory is read.
const IDLE_SETTLE: Duration = Duration::from_millis(500);

/// The median of `values` (0 when there is none).
fn median(values: &[f64]) -> f64 {
    Summary::of(values).map_or(0.0, |s| s.median)
}
