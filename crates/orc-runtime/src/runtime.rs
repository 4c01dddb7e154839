//! The runtime: what every front end (`orc run`, `orc serve`) starts, resumes and follows runs
//! through. Built once from the effective configuration; cheap to clone; several runs at once
//! share its state store, gateway, caches and compile cache, each with its own budget.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::Stream;
use orc_engine::Observer;
use orc_models::Gateway;
use orc_state::{RunState, Store};
use serde_json::{Map, Value};
use tokio_util::task::{AbortOnDropHandle, TaskTracker};
use tracing::Instrument as _;

use crate::config::Config;
use crate::error::Error;
use crate::live::{Live, Outcome, RunEvent};
use crate::plans::{LoadError, Loaded};
use crate::requests::{
    COMPILE_CACHE, Counter, Lookups, Recorder, SAMPLE, STATUS_CACHE, STEP_CACHE,
};
use crate::subpipes::{self, Nesting};
use crate::{confine, models, observe, state};

mod subruns;
mod worker;

pub use worker::WorkerReport;

/// What a runtime is built from.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// The effective configuration.
    pub config: Config,
    /// The state store's URL (`sqlite://…`, `postgres://…`, `redis://…`).
    pub state_url: String,
    /// Where posted pipelines' texts are kept (`<data_dir>/pipelines/<hash>.yaml`).
    pub data_dir: PathBuf,
    /// The queue runs hand their steps to (`--queue`, `queue.url`); `None` runs every step
    /// in this process.
    pub queue: Option<orc_queue::QueueOptions>,
    /// The confinement of every run (`orc serve`'s untrusted pipelines: `server.sandbox`);
    /// `None` runs pipelines with the process's own rights.
    pub sandbox: Option<Arc<orc_engine::Sandbox>>,
}

impl RuntimeOptions {
    /// The options of `config`, with the store `flag` names (`--state`), else the config's.
    pub fn new(config: Config, flag: Option<&str>) -> Self {
        let state_url = state::url(flag, &config);
        RuntimeOptions {
            config,
            state_url,
            data_dir: crate::dirs::data_dir(),
            queue: None,
            sandbox: None,
        }
    }

    /// Confines every run as `server.sandbox` says (when it is `enabled`): files in its
    /// workspace (default `<data dir>/workspace`, created), commands and private addresses
    /// only when allowed. Fails when the workspace cannot be made.
    pub fn confined(mut self) -> Result<Self, Error> {
        let settings = &self.config.server.sandbox;
        if !settings.enabled {
            return Ok(self);
        }
        let workspace = settings
            .workspace
            .clone()
            .unwrap_or_else(|| self.data_dir.join("workspace"));
        let sandbox = orc_engine::Sandbox::new(
            &workspace,
            settings.allow_commands,
            settings.allow_private_network,
        )
        .map_err(|e| {
            Error::Config(crate::config::ConfigError(format!(
                "server.sandbox.workspace: cannot use {}: {e}",
                workspace.display()
            )))
        })?;
        self.sandbox = Some(Arc::new(sandbox));
        Ok(self)
    }

    /// [`RuntimeOptions::confined`] for the command line's runs: only when
    /// `server.sandbox.confine_cli` asks for it.
    pub fn confined_if_cli(self) -> Result<Self, Error> {
        if self.config.server.sandbox.confine_cli {
            self.confined()
        } else {
            Ok(self)
        }
    }

    /// Hands runs' steps to the queue at `url` (else the config's `queue.url`), pool `pool`
    /// (else the config's `queue.pool`); without either URL, runs execute every step here.
    pub fn with_queue(mut self, url: Option<&str>, pool: Option<&str>) -> Self {
        let q = &self.config.queue;
        self.queue = url.or(q.url.as_deref()).map(|url| orc_queue::QueueOptions {
            ack_wait: Duration::try_from_secs_f64(q.ack_wait).unwrap_or(Duration::from_secs(30)),
            max_deliver: i64::from(q.max_deliver),
            claim_timeout: Duration::try_from_secs_f64(q.claim_timeout)
                .unwrap_or(Duration::from_secs(300)),
            ..orc_queue::QueueOptions::new(url, pool.unwrap_or(&q.pool))
        });
        self
    }

    /// Opens (and migrates) the state store and builds the gateway and caches. Call it after
    /// the metrics recorder is installed, if any, so that what it builds records too.
    pub async fn build(self) -> Result<Runtime, Error> {
        let RuntimeOptions {
            config,
            state_url,
            data_dir,
            queue,
            sandbox,
        } = self;
        if queue.is_some() && !is_postgres(&state_url) {
            return Err(Error::Refused(format!(
                "a queue needs the state store every machine shares: PostgreSQL (`--state postgres://…` or `state.url`), not {}",
                orc_state::redact_url(&state_url)
            )));
        }
        let queue = match queue {
            Some(options) => Some(
                options
                    .build()
                    .await
                    .map_err(|e| Error::Queue(e.to_string()))?,
            ),
            None => None,
        };
        let store = state::open(&state_url, &config).await?;
        let step_cache = models::step_cache(&config)?;
        let compiles = Arc::new(Lookups::default());
        let mut counted = vec![
            (COMPILE_CACHE, Counter::Lookups(Arc::clone(&compiles))),
            (STATUS_CACHE, Counter::Queries(store.clone())),
        ];
        if let Some(cache) = &step_cache {
            counted.push((STEP_CACHE, Counter::Cache(cache.clone())));
        }
        let (recorder, recording) = Recorder::start(store.clone(), counted, SAMPLE);
        let history = if config.models.is_empty() {
            Vec::new()
        } else {
            state::model_history(&store, &config).await?
        };
        let gateway = models::gateway(
            &config,
            &models::Setup {
                history,
                budget: None,
                requests: Some(Arc::clone(&recorder) as Arc<dyn orc_models::RequestSink>),
            },
        )?;
        let lease = state::lease_length(&config);
        let depth = queue.clone().map(crate::queue::sample_depth);
        Ok(Runtime {
            inner: Arc::new(Inner {
                config,
                store,
                gateway,
                step_cache,
                lease,
                data_dir,
                queue,
                sandbox,
                compiled: moka::sync::Cache::new(COMPILED_KEPT),
                compiles,
                kept: moka::sync::Cache::new(COMPILED_KEPT),
                runs: Mutex::default(),
                tasks: TaskTracker::new(),
                recorder,
                _recording: recording,
                _depth: depth,
            }),
        })
    }
}

/// The run lifecycle. Cheap to clone; clones share everything.
#[derive(Debug, Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    store: Store,
    /// Shared by every run (pool, response cache, router, in-flight calls); no budget of its
    /// own: each run's calls go through [`Gateway::with_budget`].
    gateway: Option<Gateway>,
    step_cache: Option<orc_cache::Cache>,
    lease: Duration,
    data_dir: PathBuf,
    /// Where runs hand their steps, when they do not run them all here.
    queue: Option<orc_queue::Queue>,
    /// The confinement of every run, when pipelines are untrusted (`orc serve`).
    sandbox: Option<Arc<orc_engine::Sandbox>>,
    /// Pipelines compiled by this process, by the hash of their text.
    compiled: moka::sync::Cache<[u8; 32], Arc<Loaded>>,
    /// Lookups of the compile cache: a hit when a pipeline compiled before (here, or in the
    /// compile cache's files) is not compiled again.
    compiles: Arc<Lookups>,
    /// Where posted texts were kept, by the hash of their text.
    kept: moka::sync::Cache<[u8; 32], PathBuf>,
    runs: Mutex<Runs>,
    /// Every run's task: [`Runtime::shutdown`] waits for them.
    tasks: TaskTracker,
    /// Writes every model request the gateway ends to the store.
    recorder: Arc<Recorder>,
    /// The recorder's writer task, aborted with the runtime.
    _recording: AbortOnDropHandle<()>,
    /// Samples the queue's depth, when there is a queue.
    _depth: Option<AbortOnDropHandle<()>>,
}

/// The runs this process is running, and the last [`KEPT_ENDED`] that ended, by id.
#[derive(Debug, Default)]
struct Runs {
    by_id: HashMap<String, Arc<Live>>,
    ended: VecDeque<String>,
}

/// How many compiled pipelines a runtime keeps in memory.
const COMPILED_KEPT: u64 = 256;

/// How many ended runs stay followable from memory (older ones replay from the store).
const KEPT_ENDED: usize = 1024;

/// A pipeline to run: a file, or a text with a name for messages.
#[derive(Debug, Clone)]
pub enum Source {
    /// A pipeline file.
    File(PathBuf),
    /// A pipeline's text (posted to the service); kept in the data directory by its hash so
    /// that the run can be resumed.
    Text {
        /// What diagnostics call it.
        name: String,
        /// The YAML.
        text: String,
    },
    /// A pipeline registered in the state store under this id ([`Runtime::register`]).
    Registered(String),
}

impl Source {
    /// The pipeline's file, for a file.
    fn file(&self) -> Option<&Path> {
        match self {
            Source::File(path) => Some(path),
            Source::Text { .. } | Source::Registered(_) => None,
        }
    }

    /// What diagnostics call it.
    pub fn name(&self) -> String {
        match self {
            Source::File(path) => path.display().to_string(),
            Source::Text { name, .. } | Source::Registered(name) => name.clone(),
        }
    }
}

/// How to start a run.
#[derive(Debug, Default, Clone)]
pub struct StartOptions {
    /// The run's id; generated (`<pipeline>_<unix time>_<8 hex>`) when `None`.
    pub run_id: Option<String>,
    /// Most USD the run may spend on models (the lower of it and the pipeline's `budget:`).
    pub budget: Option<f64>,
    /// Told of every step event besides the run's own event log.
    pub observers: Vec<Arc<dyn Observer>>,
}

/// How to resume a run.
#[derive(Debug, Default, Clone)]
pub struct ResumeOptions {
    /// Resume even if the pipeline file changed since the run started.
    pub force: bool,
    /// Told of every step event besides the run's own event log.
    pub observers: Vec<Arc<dyn Observer>>,
}

/// What resuming a run did.
#[derive(Debug)]
pub enum Resumed {
    /// The run had completed: nothing to do; its result document, if the store has it.
    Completed(Option<Vec<u8>>),
    /// The run goes on.
    Started(RunHandle),
}

/// A run in progress (or just ended) in this process.
#[derive(Debug, Clone)]
pub struct RunHandle {
    live: Arc<Live>,
    /// The steps an earlier attempt completed (0 for a new run).
    pub resumed_steps: usize,
    /// The pipeline's name as diagnostics show it.
    pub file: String,
}

impl RunHandle {
    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.live.run_id
    }

    /// Stops the run: no step starts any more, running steps are stopped, the run ends
    /// interrupted and can be resumed.
    pub fn cancel(&self) {
        self.live.cancel.cancel();
    }

    /// The run's events after event `after` (0 for all), as they come, ending with `result`.
    pub fn events(&self, after: u64) -> impl Stream<Item = Arc<RunEvent>> + Send + use<> {
        Arc::clone(&self.live).follow(after)
    }

    /// Waits for the run's end: its result document, or why it could not run.
    pub async fn wait(&self) -> Outcome {
        self.live.ended().await
    }

    /// How the run ended, if it has.
    pub fn outcome(&self) -> Option<Outcome> {
        self.live.outcome().cloned()
    }
}

impl Runtime {
    /// The effective configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The confinement of its runs, if they are confined.
    pub fn sandbox(&self) -> Option<&orc_engine::Sandbox> {
        self.inner.sandbox.as_deref()
    }

    /// The state store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The caches runs use: the model response cache and the step-result cache, when configured.
    pub fn caches(&self) -> Vec<orc_cache::Cache> {
        caches(self.inner.gateway.as_ref(), self.inner.step_cache.as_ref())
    }

    /// The gateway every model call goes through; `None` when the config lists no model.
    pub fn gateway(&self) -> Option<&Gateway> {
        self.inner.gateway.as_ref()
    }

    /// A run this process is running, or ran lately.
    pub fn running(&self, run_id: &str) -> Option<RunHandle> {
        let runs = self
            .inner
            .runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        runs.by_id.get(run_id).map(|live| RunHandle {
            live: Arc::clone(live),
            resumed_steps: 0,
            file: String::new(),
        })
    }

    /// Compiles a pipeline with the configured models, answering `<AUTO>` tags through the
    /// gateway (`offline`: from its response cache only).
    pub async fn compile(&self, source: &Source, offline: bool) -> Result<Loaded, Error> {
        let text = self.text(source).await?;
        let answering = if offline {
            models::Answering::CacheOnly
        } else {
            models::Answering::Ask
        };
        let at = source.file().map(Path::to_path_buf);
        let loaded = compile(
            &source.name(),
            text,
            self.inner.gateway.clone(),
            answering,
            at,
            self.inner.sandbox.clone(),
        )
        .await?;
        self.inner.compiles.count(loaded.cache_hit);
        Ok(loaded)
    }

    /// A source's text.
    async fn text(&self, source: &Source) -> Result<Vec<u8>, Error> {
        match source {
            Source::File(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || crate::plans::read(&path))
                    .await
                    .map_err(|e| Error::Read(e.to_string()))?
                    .map_err(load_error)
            }
            Source::Text { text, .. } => Ok(text.as_bytes().to_vec()),
            Source::Registered(id) => match self.inner.store.pipeline(id).await {
                Ok(Some(p)) => Ok(p.text.into_bytes()),
                Ok(None) => Err(Error::NotFound(format!("no pipeline `{id}` is registered"))),
                Err(e) => Err(Error::from(e)),
            },
        }
    }

    /// A source compiled for a run, and the file its run's record points at: a file as it is,
    /// a text kept by its hash in the data directory. Texts compiled before (by this process)
    /// are not compiled again.
    async fn load(
        &self,
        source: &Source,
        gateway: Option<Gateway>,
    ) -> Result<(Arc<Loaded>, PathBuf), Error> {
        let text = self.text(source).await?;
        let key = *blake3::hash(&text).as_bytes();
        let loaded = match self.inner.compiled.get(&key) {
            Some(loaded) => {
                self.inner.compiles.count(true);
                loaded
            }
            None => {
                let at = source.file().map(Path::to_path_buf);
                let loaded = Arc::new(
                    compile(
                        &source.name(),
                        text,
                        gateway,
                        models::Answering::Ask,
                        at,
                        self.inner.sandbox.clone(),
                    )
                    .await?,
                );
                self.inner.compiles.count(loaded.cache_hit);
                self.inner.compiled.insert(key, Arc::clone(&loaded));
                loaded
            }
        };
        let path = match source {
            Source::File(path) => path.clone(),
            Source::Text { .. } | Source::Registered(_) => match self.inner.kept.get(&key) {
                Some(path) => path,
                None => {
                    let path = keep_text(&self.inner.data_dir, &loaded.text).await?;
                    self.inner.kept.insert(key, path.clone());
                    path
                }
            },
        };
        Ok((loaded, path))
    }

    /// Compiles `text` and registers it in the state store as pipeline `id` (replacing the
    /// one registered under that id); an invalid pipeline is refused with its findings.
    pub async fn register(
        &self,
        id: &str,
        text: String,
    ) -> Result<(orc_state::PipelineRow, Arc<Loaded>), Error> {
        let loaded = Arc::new(
            compile(
                id,
                text.clone().into_bytes(),
                self.inner.gateway.clone(),
                models::Answering::Ask,
                None,
                self.inner.sandbox.clone(),
            )
            .await?,
        );
        self.inner.compiles.count(loaded.cache_hit);
        let plan = &loaded.compiled.plan;
        let row = self
            .inner
            .store
            .put_pipeline(&orc_state::NewPipeline {
                id: id.to_owned(),
                hash: state::hash(&text),
                text,
                pipeline_id: plan.id.clone(),
                name: Some(plan.name.clone()).filter(|n| !n.is_empty()),
                description: None,
                steps: u32::try_from(plan.step_count()).unwrap_or(u32::MAX),
            })
            .await
            .map_err(Error::from)?;
        let key = *blake3::hash(loaded.text.as_bytes()).as_bytes();
        self.inner.compiled.insert(key, Arc::clone(&loaded));
        Ok((row, loaded))
    }

    /// The shared gateway under a budget of its own: `per_run` USD (none for `None`) and
    /// `cost.budget_per_hour`, with the last hour's recorded spend counted. A run's calls go
    /// through one; so do the service's OpenAI-compatible requests (with `per_run` `None`).
    pub async fn budgeted_gateway(&self, per_run: Option<f64>) -> Result<Option<Gateway>, Error> {
        let Some(gateway) = &self.inner.gateway else {
            return Ok(None);
        };
        let budget = state::budget(&self.inner.store, &self.inner.config, per_run).await?;
        Ok(Some(gateway.with_budget(budget)))
    }

    /// Whether every configured model has a price (or is local), as a budget needs: checked on
    /// the gateway's registry (no model configured: nothing to price).
    fn require_prices(&self, budget_key: &str) -> Result<(), orc_models::Error> {
        match &self.inner.gateway {
            Some(gateway) => orc_models::require_prices(gateway.registry(), budget_key),
            None => Ok(()),
        }
    }

    /// The gateway a run uses once its pipeline is compiled: the pipeline's own `budget:` caps
    /// the run too (the lower of it and `flag` applies), less what an earlier attempt of the
    /// run already `spent`.
    async fn with_pipeline_budget(
        &self,
        gateway: Option<Gateway>,
        pipeline: Option<f64>,
        flag: Option<f64>,
        spent: f64,
        file: &str,
    ) -> Result<Option<Gateway>, Error> {
        let Some(usd) = pipeline.filter(|_| gateway.is_some()) else {
            return Ok(gateway);
        };
        let per_run = (flag.map_or(usd, |flag| flag.min(usd)) - spent).max(0.0);
        self.require_prices("budget")
            .map_err(|e| Error::Refused(format!("{file}: budget: {e}")))?;
        self.budgeted_gateway(Some(per_run)).await
    }

    /// Compiles and starts a run: everything that would refuse it before its first step (an
    /// invalid pipeline, an undeclared, missing or mistyped input, a model that cannot be used,
    /// a run id in use) is checked before the run is recorded.
    pub async fn start(
        &self,
        source: Source,
        inputs: Map<String, Value>,
        options: StartOptions,
    ) -> Result<RunHandle, Error> {
        let file = source.name();
        if let Some(usd) = options.budget {
            orc_models::check_budget("--budget", usd)
                .and_then(|()| self.require_prices("--budget"))
                .map_err(|e| Error::Refused(e.to_string()))?;
        }
        let gateway = self.budgeted_gateway(options.budget).await?;
        let (loaded, path) = self.load(&source, gateway.clone()).await?;
        let gateway = self
            .with_pipeline_budget(
                gateway,
                loaded.compiled.plan.budget,
                options.budget,
                0.0,
                &file,
            )
            .await?;
        tracing::debug!(
            cache_hit = loaded.cache_hit,
            steps = loaded.compiled.plan.step_count(),
            "compiled"
        );
        let run_id = match options.run_id {
            Some(id) => id,
            None => orc_engine::new_run_id(&loaded.compiled.plan.id),
        };
        let nesting = Nesting::top(source.file());
        self.launch(Launch {
            loaded,
            path,
            file,
            inputs,
            run_id,
            gateway,
            observers: options.observers,
            nesting,
        })
        .await
    }

    /// Records and starts a run of a loaded pipeline: what [`Runtime::start`] and a
    /// sub-pipeline's first run share.
    async fn launch(&self, x: Launch) -> Result<RunHandle, Error> {
        let (plan, file, run_id) = (&x.loaded.compiled.plan, &x.file, &x.run_id);
        orc_engine::preflight(plan, &x.inputs, x.gateway.as_ref())
            .map_err(|e| Error::Refused(format!("{file}: {e}")))?;
        state::create(
            &self.inner.store,
            run_id,
            plan,
            &x.path,
            &x.loaded.text,
            &x.inputs,
        )
        .await
        .map_err(|e| Error::Refused(format!("{file}: {e}")))?;
        let held = self
            .claim(run_id, |holder| {
                format!("run `{run_id}` is held by another orc process ({holder})")
            })
            .await?;
        Ok(self.execute(Execution {
            compiled: x.loaded.compiled.clone(),
            gateway: x.gateway,
            inputs: x.inputs,
            run_id: x.run_id,
            resume: HashMap::new(),
            held,
            observers: x.observers,
            file: x.file,
            nesting: x.nesting,
        }))
    }

    /// Resumes a run that was killed, crashed, interrupted or failed: its completed steps are
    /// not run again.
    pub async fn resume(&self, run_id: &str, options: ResumeOptions) -> Result<Resumed, Error> {
        self.resume_nested(run_id, options, None).await
    }

    /// [`Runtime::resume`], of a sub-run when `nested` gives the gateway its parent run uses
    /// (and so its budget) and where it sits.
    async fn resume_nested(
        &self,
        run_id: &str,
        options: ResumeOptions,
        nested: Option<(Option<Gateway>, Nesting)>,
    ) -> Result<Resumed, Error> {
        let store = &self.inner.store;
        let id = run_id;
        let row = store
            .run(id)
            .await
            .map_err(Error::from)?
            .ok_or_else(|| Error::NotFound(format!("no run `{id}` in {}", store.describe())))?;
        if row.status == RunState::Completed {
            let doc = store.result_document(id).await.map_err(Error::from)?;
            return Ok(Resumed::Completed(doc));
        }
        let path = PathBuf::from(&row.pipeline_path);
        let text = tokio::fs::read_to_string(&path).await.map_err(|e| {
            Error::Read(format!(
                "run `{id}`: cannot read its pipeline {}: {e}",
                path.display()
            ))
        })?;
        if state::hash(&text) != row.pipeline_hash && !options.force {
            return Err(Error::Changed(format!(
                "run `{id}`: {} has changed since the run started; resume with --force to run the new text",
                path.display()
            )));
        }
        let file = path.display().to_string();
        let (gateway, nesting) = match nested {
            Some((gateway, nesting)) => (gateway, Some(nesting)),
            None => (self.budgeted_gateway(None).await?, None),
        };
        let nesting = nesting.unwrap_or_else(|| Nesting::top(Some(&path)));
        let (loaded, _) = self.load(&Source::File(path), gateway.clone()).await?;
        let lease = self.inner.lease;
        let held = self
            .claim(id, |holder| {
                format!(
                    "run `{id}` is held by another orc process ({holder}); if that process is gone (killed on another machine, or stopped), the run can be resumed once its lease expires (within {:.1} s)",
                    lease.as_secs_f64()
                )
            })
            .await?;
        // Running again: `orc runs list` says so until it ends.
        held.reopen().await.map_err(Error::Store)?;
        let checkpoints = store.checkpoints(id).await.map_err(Error::from)?;
        let resume = state::completed_steps(checkpoints);
        // The pipeline's `budget:` covers the whole run: what the first attempt spent counts. A
        // sub-run spends from its parent's budget.
        let spent: f64 = resume.values().filter_map(|r| r.cost).sum();
        let gateway = if nesting.depth > 0 {
            gateway
        } else {
            self.with_pipeline_budget(gateway, loaded.compiled.plan.budget, None, spent, &file)
                .await?
        };
        let inputs = match row.inputs {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        Ok(Resumed::Started(self.execute(Execution {
            compiled: loaded.compiled.clone(),
            gateway,
            inputs,
            run_id: id.to_owned(),
            resume,
            held,
            observers: options.observers,
            file,
            nesting,
        })))
    }

    async fn claim(
        &self,
        run_id: &str,
        refused: impl FnOnce(String) -> String,
    ) -> Result<state::Held, Error> {
        state::Held::claim(&self.inner.store, run_id, self.inner.lease)
            .await
            .map_err(Error::Store)?
            .map_err(|holder| Error::Held(refused(holder)))
    }

    /// Runs a compiled pipeline on its own task, with checkpoints.
    fn execute(&self, x: Execution) -> RunHandle {
        let par = &self.inner.config.performance.parallel_execution;
        // Cancelled by `RunHandle::cancel`, and when another process takes the run's lease.
        let live = Live::new(x.run_id.clone(), x.held.stop_token());
        let mut observers = x.observers;
        observers.push(Arc::clone(&live) as Arc<dyn Observer>);
        let recording = orc_telemetry::recording();
        if recording {
            observers.push(Arc::new(observe::StepMetrics::default()));
        }
        let resumed_steps = x.resume.len();
        let sub_runner = subruns::Runner::new(
            self.clone(),
            &x.run_id,
            &x.file,
            x.gateway.clone(),
            x.nesting,
        );
        let options = orc_engine::Options {
            inputs: x.inputs,
            execution_id: Some(x.run_id.clone()),
            max_concurrent: par.max_concurrent_tasks,
            task_timeout: Duration::from_secs_f64(par.task_timeout),
            cancel: live.cancel.clone(),
            observer: observe::tee(observers),
            resources: resources(
                &self.inner.config,
                x.gateway.as_ref(),
                self.inner.step_cache.as_ref(),
            ),
            models: x.gateway.map(|g| {
                g.with_origin(orc_models::Origin {
                    run_id: x.run_id.clone(),
                    pipeline_id: x.compiled.plan.id.clone(),
                })
            }),
            journal: Some(x.held.journal()),
            step_cache: self.inner.step_cache.clone(),
            resume: Arc::new(x.resume),
            sub_runner: Some(Arc::new(sub_runner)),
            sandbox: self.inner.sandbox.clone(),
            ..orc_engine::Options::default()
        };
        {
            let mut runs = self
                .inner
                .runs
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            runs.by_id.insert(x.run_id.clone(), Arc::clone(&live));
        }
        let span = tracing::info_span!("run", run_id = %x.run_id, pipeline = %x.compiled.plan.id);
        let held = x.held;
        let compiled = x.compiled;
        let (runtime, task_live) = (self.clone(), Arc::clone(&live));
        let mut options = options;
        let run_id = x.run_id.clone();
        self.inner.tasks.spawn(
            async move {
                let mut ready = Ok(());
                // A worker does not know this runtime's sandbox: confined runs keep their
                // steps here.
                if let Some(queue) = runtime
                    .inner
                    .queue
                    .clone()
                    .filter(|_| runtime.inner.sandbox.is_none())
                {
                    let dispatch = crate::queue::RunDispatch::start(
                        queue,
                        runtime.inner.store.clone(),
                        &run_id,
                        &compiled,
                    )
                    .await;
                    match dispatch {
                        Ok(d) => options.dispatch = Some(Arc::new(d)),
                        Err(e) => ready = Err(orc_engine::Error::Dispatch(e)),
                    }
                }
                let mut result = match ready {
                    Ok(()) => orc_engine::run(compiled, options).await,
                    Err(e) => Err(e),
                };
                let recorded = match &mut result {
                    Ok(r) => held.finish(r).await,
                    Err(e) => held.fail(&e.to_string()).await,
                };
                if let Err(e) = recorded {
                    tracing::error!("state store: the run's end was not recorded: {e}");
                }
                // The run's model requests are in the store before its end is announced.
                runtime.inner.recorder.flush().await;
                let outcome = match result {
                    Ok(r) => {
                        if recording {
                            observe::record_run(&r);
                        }
                        Ok(Arc::new(r))
                    }
                    Err(e) => Err(e.to_string()),
                };
                task_live.end(outcome);
                runtime.ended(&task_live.run_id);
            }
            .instrument(span),
        );
        RunHandle {
            live,
            resumed_steps,
            file: x.file,
        }
    }

    /// Keeps an ended run followable from memory, forgetting the oldest beyond [`KEPT_ENDED`].
    fn ended(&self, run_id: &str) {
        let mut runs = self
            .inner
            .runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        runs.ended.push_back(run_id.to_owned());
        while runs.ended.len() > KEPT_ENDED {
            if let Some(old) = runs.ended.pop_front()
                && runs.by_id.get(&old).is_some_and(|l| l.outcome().is_some())
            {
                runs.by_id.remove(&old);
            }
        }
    }

    /// The ids of the runs this runtime is running now, sorted.
    pub fn in_progress(&self) -> Vec<String> {
        let runs = self
            .inner
            .runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut ids: Vec<String> = runs
            .by_id
            .values()
            .filter(|r| r.outcome().is_none())
            .map(|r| r.run_id.clone())
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Stops every run this process is running (each ends interrupted, checkpointed and
    /// resumable), waits up to `grace` for them to record their end, and returns their ids.
    pub async fn shutdown(&self, grace: Duration) -> Vec<String> {
        let live: Vec<Arc<Live>> = {
            let runs = self
                .inner
                .runs
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            runs.by_id.values().cloned().collect()
        };
        let stopped: Vec<String> = live
            .iter()
            .filter(|r| r.outcome().is_none())
            .map(|r| {
                r.cancel.cancel();
                r.run_id.clone()
            })
            .collect();
        self.inner.tasks.close();
        if tokio::time::timeout(grace, self.inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "runs still recording their end after {:.1} s; their leases expire and they can be resumed",
                grace.as_secs_f64()
            );
        }
        self.flush_requests().await;
        stopped
    }

    /// Waits until every model request that ended so far is written to the store (they are
    /// written in batches as they end; a run's are flushed when it ends).
    pub async fn flush_requests(&self) {
        self.inner.recorder.flush().await;
    }

    /// Where posted pipelines and the service's own records are kept.
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }
}

/// Everything a run (new or resumed) needs.
struct Execution {
    compiled: orc_pipeline::Compiled,
    gateway: Option<Gateway>,
    inputs: Map<String, Value>,
    run_id: String,
    resume: HashMap<String, orc_engine::StepRecord>,
    held: state::Held,
    observers: Vec<Arc<dyn Observer>>,
    file: String,
    /// How deep in sub-pipelines the run is, and where its sub-pipelines' paths start.
    nesting: Nesting,
}

/// A loaded pipeline to record and start as a new run.
struct Launch {
    loaded: Arc<Loaded>,
    /// The file the run's record points at.
    path: PathBuf,
    /// The pipeline's name as diagnostics show it.
    file: String,
    inputs: Map<String, Value>,
    run_id: String,
    gateway: Option<Gateway>,
    observers: Vec<Arc<dyn Observer>>,
    nesting: Nesting,
}

/// Compiles on the blocking pool (answering an `<AUTO>` tag waits for a model call), then
/// checks the sub-pipelines it names statically; `at` is the pipeline's file, if it is one.
async fn compile(
    file: &str,
    bytes: Vec<u8>,
    gateway: Option<Gateway>,
    answering: models::Answering,
    at: Option<PathBuf>,
    sandbox: Option<Arc<orc_engine::Sandbox>>,
) -> Result<Loaded, Error> {
    let file = file.to_owned();
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        // A confined runtime refuses the tools its sandbox has off, in sub-pipelines too.
        let compile = |bytes: &[u8]| {
            let loaded = models::compile(bytes, gateway.as_ref(), &handle, answering)?;
            let refused = sandbox
                .as_deref()
                .map(|s| confine::check(&loaded.compiled.plan, s))
                .unwrap_or_default();
            if refused.has_errors() {
                return Err(LoadError::Invalid {
                    diags: refused,
                    text: loaded.text,
                });
            }
            Ok(loaded)
        };
        let loaded = compile(&bytes)?;
        let problems = subpipes::check(
            at.as_deref(),
            &loaded.compiled.plan,
            &compile,
            sandbox.as_deref(),
        );
        if problems.has_errors() {
            return Err(LoadError::Invalid {
                diags: problems,
                text: loaded.text,
            });
        }
        Ok(loaded)
    })
    .await
    .map_err(|e| Error::Read(format!("{file}: the compiler stopped: {e}")))?
    .map_err(|e| match e {
        LoadError::Invalid { diags, text } => Error::Invalid { file, text, diags },
        other => load_error(other),
    })
}

fn load_error(e: LoadError) -> Error {
    match e {
        LoadError::Read(msg) => Error::Read(msg),
        LoadError::Invalid { diags, text } => Error::Invalid {
            file: String::new(),
            text,
            diags,
        },
    }
}

/// Compiles a pipeline with `config`'s models without a state store (`orc validate`). Its
/// `<AUTO>` tags are checked and listed, and asked of a model only with `resolve` (the
/// answers then cached as a run's compile caches them); tags in model fields are answered
/// by the router either way.
pub async fn validate(config: &Config, path: &Path, resolve: bool) -> Result<Loaded, Error> {
    let gateway = models::gateway(config, &models::Setup::default())?;
    let bytes = crate::plans::read(path).map_err(load_error)?;
    let answering = if resolve {
        models::Answering::Ask
    } else {
        models::Answering::Defer
    };
    let at = Some(path.to_path_buf());
    compile(
        &path.display().to_string(),
        bytes,
        gateway,
        answering,
        at,
        None,
    )
    .await
}

/// Keeps a posted pipeline's text in the data directory, named by its hash, and returns its
/// path: the run's record points at it, so `resume` reads the same text.
async fn keep_text(data_dir: &Path, text: &str) -> Result<PathBuf, Error> {
    let dir = data_dir.join("pipelines");
    let path = dir.join(format!("{}.yaml", state::hash(text)));
    if tokio::fs::try_exists(&path).await.unwrap_or(false) {
        return Ok(path);
    }
    let text = text.to_owned();
    let target = path.clone();
    tokio::task::spawn_blocking(move || write_atomically(&dir, &target, text.as_bytes()))
        .await
        .map_err(|e| Error::Store(e.to_string()))?
        .map_err(|e| {
            Error::Store(format!(
                "cannot keep the pipeline in {}: {e}",
                path.display()
            ))
        })?;
    Ok(path)
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The response cache and the step-result cache, those that are configured.
fn caches(
    gateway: Option<&Gateway>,
    step_cache: Option<&orc_cache::Cache>,
) -> Vec<orc_cache::Cache> {
    gateway
        .and_then(Gateway::cache)
        .into_iter()
        .chain(step_cache)
        .cloned()
        .collect()
}

/// The engine's resource limits from `performance.resource_limits`: memory admission (which
/// empties the in-memory caches when memory runs high) and the CPU pool's size.
fn resources(
    config: &Config,
    gateway: Option<&Gateway>,
    step_cache: Option<&orc_cache::Cache>,
) -> orc_engine::Resources {
    let limits = &config.performance.resource_limits;
    let caches = caches(gateway, step_cache);
    orc_engine::Resources {
        cpu_slots: limits.max_cpu_cores,
        memory: Some(orc_engine::MemoryLimit {
            max_bytes: limits.max_memory_bytes(),
            threshold: limits.memory_cleanup_threshold,
            on_pressure: Some(Arc::new(move || {
                for cache in &caches {
                    cache.shrink();
                }
            })),
        }),
    }
}

/// Whether a state store URL names PostgreSQL.
fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The tokio runtime runs execute on, as `performance.parallel_execution` describes.
pub fn tokio_runtime(config: &Config) -> std::io::Result<tokio::runtime::Runtime> {
    let par = &config.performance.parallel_execution;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(
            par.max_workers.clamp(1, 512).min(
                std::thread::available_parallelism()
                    .map_or(4, |n| n.get())
                    .max(1),
            ),
        )
        // Filesystem and data tools run on the blocking pool; a few threads keep the cores busy
        // without paying for a thread (and a context switch) per concurrent step.
        .max_blocking_threads(blocking_threads())
        .enable_all()
        .build()
}

/// Threads for blocking tool work: twice the cores, at least 4.
fn blocking_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(4, |n| n.get() * 2)
        .max(4)
}
