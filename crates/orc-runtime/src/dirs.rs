//! Where orc keeps its files, by one rule: `ORC_HOME` holds everything (the data at its top, the
//! caches under `cache/`); without it, the XDG base directories: the data in
//! `$XDG_DATA_HOME/orc` (else `~/.local/share/orc`), the caches in `$XDG_CACHE_HOME/orc` (else
//! `~/.cache/orc`). An empty variable counts as unset.

use std::ffi::OsString;
use std::path::PathBuf;

/// What a directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The state store's SQLite file, the texts of posted pipelines, `orc serve`'s notes.
    Data,
    /// The compile cache, the model response cache and the step-result cache.
    Cache,
}

/// The data directory: the SQLite state store (`state.db`), posted pipelines' texts, the runs a
/// stopped `orc serve` remembers. `.orc` in the working directory when there is no home either.
pub fn data_dir() -> PathBuf {
    resolve(Kind::Data, var).unwrap_or_else(|| PathBuf::from(".orc"))
}

/// The cache directory (compiled plans under `plans/`, cache files by namespace), or none
/// without `ORC_HOME`, `XDG_CACHE_HOME` or a home.
pub fn cache_dir() -> Option<PathBuf> {
    resolve(Kind::Cache, var)
}

/// The one rule, over an environment `env` (a name → its non-empty value).
fn resolve(kind: Kind, env: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let (under_orc_home, xdg_var, under_home) = match kind {
        Kind::Data => (None, "XDG_DATA_HOME", ".local/share"),
        Kind::Cache => (Some("cache"), "XDG_CACHE_HOME", ".cache"),
    };
    if let Some(orc_home) = env("ORC_HOME") {
        let orc_home = PathBuf::from(orc_home);
        return Some(match under_orc_home {
            Some(sub) => orc_home.join(sub),
            None => orc_home,
        });
    }
    if let Some(xdg) = env(xdg_var) {
        return Some(PathBuf::from(xdg).join("orc"));
    }
    env("HOME").map(|home| PathBuf::from(home).join(under_home).join("orc"))
}

/// The process's environment variable `name`, when set and not empty.
fn var(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve_in(kind: Kind, vars: &[(&str, &str)]) -> Option<PathBuf> {
        resolve(kind, |name| {
            vars.iter()
                .find(|(n, v)| *n == name && !v.is_empty())
                .map(|(_, v)| OsString::from(v))
        })
    }

    #[test]
    fn orc_home_holds_everything() {
        let env = [
            ("ORC_HOME", "/o"),
            ("XDG_DATA_HOME", "/x"),
            ("XDG_CACHE_HOME", "/c"),
            ("HOME", "/h"),
        ];
        assert_eq!(resolve_in(Kind::Data, &env), Some("/o".into()));
        assert_eq!(resolve_in(Kind::Cache, &env), Some("/o/cache".into()));
    }

    #[test]
    fn without_orc_home_the_xdg_directories_then_the_home() {
        let env = [
            ("ORC_HOME", ""),
            ("XDG_DATA_HOME", "/x"),
            ("XDG_CACHE_HOME", "/c"),
            ("HOME", "/h"),
        ];
        assert_eq!(resolve_in(Kind::Data, &env), Some("/x/orc".into()));
        assert_eq!(resolve_in(Kind::Cache, &env), Some("/c/orc".into()));
        let env = [("HOME", "/h")];
        assert_eq!(
            resolve_in(Kind::Data, &env),
            Some("/h/.local/share/orc".into())
        );
        assert_eq!(resolve_in(Kind::Cache, &env), Some("/h/.cache/orc".into()));
        assert_eq!(resolve_in(Kind::Data, &[]), None);
        assert_eq!(resolve_in(Kind::Cache, &[]), None);
    }
}
