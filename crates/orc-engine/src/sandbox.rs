//! What a run of an untrusted pipeline (one posted to `orc serve`) may reach: the files under
//! one workspace directory, commands only when allowed, and public network addresses only
//! unless allowed. The engine's tools read it from the run's [`crate::Options::sandbox`].

use std::io;
use std::path::{Component, Path, PathBuf};

/// The confinement of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    /// The directory every path a step names must resolve into (symbolic links followed),
    /// canonical. Relative paths are relative to it.
    workspace: PathBuf,
    /// Whether `terminal` and `python-executor` may run.
    pub allow_commands: bool,
    /// Whether `http-client` may connect to loopback, private, link-local and unspecified
    /// addresses.
    pub allow_private_network: bool,
}

/// The most symbolic links one path may go through (Linux's own limit).
const MAX_LINKS: usize = 40;

impl Sandbox {
    /// A sandbox rooted at `workspace`, which is created when missing and made canonical.
    pub fn new(
        workspace: &Path,
        allow_commands: bool,
        allow_private_network: bool,
    ) -> io::Result<Self> {
        std::fs::create_dir_all(workspace)?;
        Ok(Sandbox {
            workspace: workspace.canonicalize()?,
            allow_commands,
            allow_private_network,
        })
    }

    /// The workspace, canonical.
    pub fn workspace(&self) -> &Path {
        &self.workspace
    }

    /// Where `path` really is, every symbolic link on the way followed (a link to a link
    /// included), with `.` and `..` resolved as they come: a path relative to the workspace,
    /// or absolute. Refused, with a message naming the path, when it leaves the workspace. What
    /// does not exist yet (a file about to be written) is appended as written.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, String> {
        let given = Path::new(path);
        let mut at = if given.is_absolute() {
            PathBuf::from("/")
        } else {
            self.workspace.clone()
        };
        // The components still to walk, last first, so that a link's target goes in front of
        // what followed the link.
        let mut rest: Vec<Part> = parts(given);
        let mut links = 0;
        while let Some(part) = rest.pop() {
            match part {
                Part::Root => at = PathBuf::from("/"),
                Part::Up => {
                    at.pop();
                }
                Part::Name(name) => {
                    // Every step is looked at, also past one that does not exist: a `..`
                    // can come back to where links are.
                    let next = at.join(name);
                    match std::fs::symlink_metadata(&next) {
                        Ok(meta) if meta.file_type().is_symlink() => {
                            links += 1;
                            if links > MAX_LINKS {
                                return Err(format!("`{path}`: too many levels of symbolic links"));
                            }
                            let target =
                                std::fs::read_link(&next).map_err(|e| format!("`{path}`: {e}"))?;
                            rest.extend(parts(&target));
                        }
                        Ok(_) => at = next,
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                            ) =>
                        {
                            at = next;
                        }
                        Err(e) => return Err(format!("`{path}`: {e}")),
                    }
                }
            }
        }
        if at.starts_with(&self.workspace) {
            Ok(at)
        } else {
            Err(format!(
                "`{path}` is outside the workspace {} (a pipeline posted to orc serve reaches only the files under it)",
                self.workspace.display()
            ))
        }
    }
}

/// One step of a path's walk.
enum Part {
    Root,
    Up,
    Name(std::ffi::OsString),
}

/// A path's steps, last first (`.` dropped).
fn parts(path: &Path) -> Vec<Part> {
    path.components()
        .rev()
        .filter_map(|c| match c {
            Component::RootDir | Component::Prefix(_) => Some(Part::Root),
            Component::CurDir => None,
            Component::ParentDir => Some(Part::Up),
            Component::Normal(name) => Some(Part::Name(name.to_os_string())),
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    /// A workspace inside a temporary directory, with a secret beside it.
    fn setup() -> (tempfile::TempDir, Sandbox) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret.txt"), "s3cret").unwrap();
        let sandbox = Sandbox::new(&dir.path().join("ws"), false, false).unwrap();
        (dir, sandbox)
    }

    #[test]
    fn paths_inside_resolve_relative_to_the_workspace() {
        let (_dir, sb) = setup();
        let ws = sb.workspace().to_path_buf();
        std::fs::create_dir_all(ws.join("a/b")).unwrap();
        assert_eq!(sb.resolve("x.txt").unwrap(), ws.join("x.txt"));
        assert_eq!(
            sb.resolve("a/b/../c/new.txt").unwrap(),
            ws.join("a/c/new.txt")
        );
        assert_eq!(sb.resolve("./a/./b").unwrap(), ws.join("a/b"));
        let absolute = ws.join("a/b/f.txt");
        assert_eq!(sb.resolve(absolute.to_str().unwrap()).unwrap(), absolute);
        assert_eq!(sb.resolve("").unwrap(), ws);
    }

    #[test]
    fn dot_dot_and_absolute_paths_outside_are_refused_naming_the_path() {
        let (dir, sb) = setup();
        for path in [
            "../secret.txt".to_owned(),
            "a/../../secret.txt".to_owned(),
            "missing/../../secret.txt".to_owned(),
            "/etc/passwd".to_owned(),
            dir.path().join("secret.txt").display().to_string(),
        ] {
            let e = sb.resolve(&path).unwrap_err();
            assert!(
                e.starts_with(&format!("`{path}` is outside the workspace")),
                "{e}"
            );
        }
    }

    #[test]
    fn symbolic_links_are_followed_and_refused_when_they_lead_out() {
        let (dir, sb) = setup();
        let ws = sb.workspace().to_path_buf();
        std::fs::create_dir(ws.join("real")).unwrap();
        symlink(dir.path().join("secret.txt"), ws.join("leak")).unwrap();
        symlink(dir.path(), ws.join("up")).unwrap();
        symlink("../secret.txt", ws.join("relative")).unwrap();
        symlink("leak", ws.join("chain")).unwrap();
        symlink("real", ws.join("inside")).unwrap();
        for path in [
            "leak",
            "up/secret.txt",
            "up/new.txt",
            "relative",
            "chain",
            "missing/../leak",
        ] {
            assert!(sb.resolve(path).is_err(), "{path} escaped");
        }
        assert_eq!(sb.resolve("inside/f.txt").unwrap(), ws.join("real/f.txt"));
        // A link in a loop ends with an error, not a hang.
        symlink("loop", ws.join("loop")).unwrap();
        assert!(sb.resolve("loop").unwrap_err().contains("too many levels"));
    }
}
