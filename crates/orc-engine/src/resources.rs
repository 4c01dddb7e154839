//! Resource limits (`performance.resource_limits`): memory admission for new steps, and the
//! bounded pool that CPU-heavy tool work (the data tools) runs on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

/// Limits on the machine's memory and CPU.
#[derive(Debug, Clone)]
pub struct Resources {
    /// CPU-heavy tool calls (data processing, validation) running at once: `max_cpu_cores`.
    pub cpu_slots: usize,
    /// The resident-memory limit; `None` for none.
    pub memory: Option<MemoryLimit>,
}

/// The cores this process may use, read once: `available_parallelism` reads the cgroup's CPU
/// quota from /proc and /sys on every call, and every run starts from [`Resources::default`].
pub(crate) fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(4, usize::from))
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cpu_slots: cores(),
            memory: None,
        }
    }
}

/// No new step starts while the process's resident memory is above `threshold × max_bytes`
/// (`memory_cleanup_threshold × max_memory`), except one when nothing runs, so a run always
/// makes progress; on entering that state `on_pressure` is called (to shrink caches).
#[derive(Clone)]
pub struct MemoryLimit {
    /// `max_memory`, in bytes; the data tools size their chunks from it too.
    pub max_bytes: u64,
    /// `memory_cleanup_threshold`: the fraction of `max_bytes` above which no step starts.
    pub threshold: f64,
    /// Called when memory goes above the threshold (not again until it has come back under).
    pub on_pressure: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl std::fmt::Debug for MemoryLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryLimit")
            .field("max_bytes", &self.max_bytes)
            .field("threshold", &self.threshold)
            .field("on_pressure", &self.on_pressure.is_some())
            .finish()
    }
}

impl MemoryLimit {
    /// The resident size above which no step starts.
    fn high_water(&self) -> u64 {
        // A fraction of a u64: the product fits.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let bytes = (self.max_bytes as f64 * self.threshold) as u64;
        bytes
    }
}

/// How long a reading of resident memory is trusted: reading it costs a few syscalls, and the
/// scheduler asks before every step.
const READING_TTL: Duration = Duration::from_millis(5);

/// The scheduler's view of memory pressure.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    read_at: Option<Instant>,
    over: bool,
}

impl Admission {
    /// Whether a new step may start now, with `running` steps running.
    pub(crate) fn admit(&mut self, limit: Option<&MemoryLimit>, running: usize) -> bool {
        let Some(limit) = limit else {
            return true;
        };
        let now = Instant::now();
        if self
            .read_at
            .is_none_or(|at| now.duration_since(at) >= READING_TTL)
        {
            self.read_at = Some(now);
            let over = orc_telemetry::process::resident_memory_bytes()
                .is_some_and(|rss| rss > limit.high_water());
            if over && !self.over {
                tracing::warn!(
                    "resident memory is above {} bytes ({} × max_memory): no new step starts until it falls",
                    limit.high_water(),
                    limit.threshold
                );
                if let Some(shrink) = &limit.on_pressure {
                    shrink();
                }
            }
            self.over = over;
        }
        !self.over || running == 0
    }
}

/// What tool calls share: the CPU pool's slots, the data tools' chunk size, and the pooled HTTP
/// client of the run's model calls.
#[derive(Debug)]
pub(crate) struct ToolLimits {
    pub(crate) cpu: Semaphore,
    pub(crate) data: orc_data::Limits,
    /// The gateway's client, so that `http-client` shares the model calls' pool; `None` when
    /// the run has no gateway (the tool then uses the process's own).
    pub(crate) http: Option<orc_models::HttpClient>,
    /// The run's confinement, when its pipeline is untrusted.
    pub(crate) sandbox: Option<Arc<crate::Sandbox>>,
}

impl ToolLimits {
    pub(crate) fn new(resources: &Resources) -> Arc<Self> {
        ToolLimits::of_run(resources, None, None)
    }

    /// The limits of a run whose HTTP requests go through `http`, confined by `sandbox`.
    pub(crate) fn of_run(
        resources: &Resources,
        http: Option<orc_models::HttpClient>,
        sandbox: Option<Arc<crate::Sandbox>>,
    ) -> Arc<Self> {
        let slots = resources.cpu_slots.max(1);
        let mut data = orc_data::Limits::default();
        if let Some(memory) = &resources.memory {
            // Each CPU slot may hold a chunk and the rows parsed from it (several times its
            // size as JSON values): a sixteenth of the limit per slot leaves room for the rest.
            let per_slot = memory.max_bytes / 16 / slots as u64;
            data.chunk_bytes = usize::try_from(per_slot)
                .unwrap_or(usize::MAX)
                .clamp(64 * 1024, data.chunk_bytes);
        }
        Arc::new(ToolLimits {
            cpu: Semaphore::new(slots),
            data,
            http,
            sandbox,
        })
    }
}
