//! The pipeline workloads: compiling a generated chain in process, and running generated
//! chains, fan-outs and diamonds as whole `orc run` processes (start-up, the plan loaded from
//! the compile cache, every step's file write and its SQLite checkpoint) in a temp `ORC_HOME`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::process;

/// A pipeline text compiled in process, with the catalog of orc's tools.
#[derive(Debug, Clone)]
pub(crate) struct Compile {
    text: Arc<str>,
    catalog: Arc<orc_pipeline::Catalog>,
}

impl Compile {
    pub(crate) fn new(text: String) -> Compile {
        Compile {
            text: text.into(),
            catalog: Arc::new(orc_engine::catalog()),
        }
    }

    /// One compile on the blocking pool: its seconds.
    pub(crate) async fn once(&self) -> Result<f64, String> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let t0 = Instant::now();
            let compiled = orc_pipeline::compile(&this.text, &this.catalog);
            let seconds = t0.elapsed().as_secs_f64();
            match compiled {
                Ok(c) if !c.plan.steps.is_empty() => Ok(seconds),
                Ok(_) => Err("the compiled plan has no step".to_owned()),
                Err(d) => Err(format!("the generated pipeline does not compile: {d:?}")),
            }
        })
        .await
        .map_err(|e| format!("compile task: {e}"))?
    }
}

/// A generated pipeline file run by a child `orc run`.
#[derive(Debug)]
pub(crate) struct Run {
    orc: PathBuf,
    dir: PathBuf,
    file: PathBuf,
    config: PathBuf,
    out: PathBuf,
}

impl Run {
    /// Writes `text` as `<dir>/<name>.yaml` (with an empty config beside it) and runs it once,
    /// untimed, so that the timed runs load its plan from the compile cache.
    pub(crate) async fn new(orc: &Path, dir: &Path, name: &str, text: &str) -> Result<Run, String> {
        let dir = dir.join(name);
        let io = |e: std::io::Error| format!("{}: {e}", dir.display());
        tokio::fs::create_dir_all(dir.join("home"))
            .await
            .map_err(io)?;
        let file = dir.join(format!("{name}.yaml"));
        tokio::fs::write(&file, text).await.map_err(io)?;
        let config = dir.join("orc.yaml");
        tokio::fs::write(&config, "models: []\n")
            .await
            .map_err(io)?;
        let run = Run {
            orc: orc.to_owned(),
            out: dir.join("out"),
            dir,
            file,
            config,
        };
        run.once().await?;
        Ok(run)
    }

    /// One whole `orc run` of the pipeline, its steps writing into a fresh output folder: its
    /// wall seconds.
    pub(crate) async fn once(&self) -> Result<f64, String> {
        self.run(None).await
    }

    /// One more run, untimed, with `--profile`: the process's peak resident memory in MiB, as
    /// the run's profile reports it (`VmHWM`).
    pub(crate) async fn peak_mib(&self) -> Result<f64, String> {
        let profile = self.dir.join("profile.json");
        self.run(Some(&profile)).await?;
        let text = tokio::fs::read(&profile)
            .await
            .map_err(|e| format!("{}: {e}", profile.display()))?;
        let doc: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", profile.display()))?;
        doc["peak_memory_bytes"]
            .as_f64()
            .map(|bytes| bytes / (1024.0 * 1024.0))
            .ok_or_else(|| format!("{}: no peak_memory_bytes", profile.display()))
    }

    async fn run(&self, profile: Option<&Path>) -> Result<f64, String> {
        match tokio::fs::remove_dir_all(&self.out).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", self.out.display())),
        }
        let mut cmd = process::orc(&self.orc, &self.dir.join("home"), &self.dir);
        cmd.arg("--config")
            .arg(&self.config)
            .arg("run")
            .arg(&self.file)
            .arg("-q")
            .arg("-i")
            .arg(format!("out_dir={}", self.out.display()));
        if let Some(profile) = profile {
            cmd.arg("--profile").arg(profile);
        }
        let t0 = Instant::now();
        let output = cmd
            .output()
            .await
            .map_err(|e| format!("cannot start {}: {e}", self.orc.display()))?;
        let seconds = t0.elapsed().as_secs_f64();
        if !output.status.success() {
            return Err(format!(
                "orc run {} exited with {}:\n{}",
                self.file.display(),
                output.status,
                process::tail(&output.stderr)
            ));
        }
        Ok(seconds)
    }
}
