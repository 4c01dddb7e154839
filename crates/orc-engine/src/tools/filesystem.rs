//! The `filesystem` tool: read, write (atomic, parents created), copy, move, delete, list, exists, mkdir.
//! Every operation runs on the blocking pool, never on the async workers. In a confined run
//! (a pipeline posted to `orc serve`) every path is resolved into the sandbox's workspace
//! first, and one that leads out of it (`..`, an absolute path, a symbolic link) fails the step.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use orc_pipeline::ParamType::String as Text;
use orc_pipeline::ToolSpec;
use serde_json::{Map, Value, json};

use super::declare::{Param, action, tool};
use super::tool::{Call, Tool};
use super::{Envelope, str_param, text_param};
use crate::Sandbox;
use crate::resources::ToolLimits;

/// The actions this tool implements.
pub(super) const ACTIONS: &[&str] = &[
    "read", "write", "copy", "move", "delete", "list", "exists", "mkdir",
];

/// The `filesystem` tool.
pub(super) struct Filesystem;

const PATH: Param = (
    "path",
    Text,
    true,
    None,
    "the file or directory (relative to the working directory)",
);

impl Tool for Filesystem {
    fn spec(&self) -> ToolSpec {
        let destination: Param = (
            "destination",
            Text,
            false,
            None,
            "where it goes (required; `dest` is the same)",
        );
        let dest: Param = ("dest", Text, false, None, "the same as `destination`");
        tool(
            "filesystem",
            "Read, write, copy, move, delete and list files",
            vec![
                action("read", "The file's text: {content, size}", &[PATH]),
                action(
                    "write",
                    "Writes text atomically, creating parent directories: {path, size}",
                    &[
                        PATH,
                        (
                            "content",
                            Text,
                            true,
                            None,
                            "the text to write (other values are written as JSON)",
                        ),
                    ],
                ),
                action(
                    "copy",
                    "Copies a file or directory",
                    &[PATH, destination, dest],
                ),
                action(
                    "move",
                    "Moves a file or directory",
                    &[PATH, destination, dest],
                ),
                action("delete", "Deletes a file or a directory tree", &[PATH]),
                action("list", "A directory's entries: {items, count}", &[PATH]),
                action("exists", "Whether the path exists: {exists, type}", &[PATH]),
                action(
                    "mkdir",
                    "Creates the directory and its parents: {created}",
                    &[PATH],
                ),
            ],
        )
    }

    fn call<'a>(
        &'a self,
        action: &'a str,
        params: Map<String, Value>,
        limits: &'a ToolLimits,
    ) -> Call<'a> {
        Box::pin(call(action, params, limits.sandbox.clone()))
    }

    fn unknown_action(&self, action: &str) -> Option<String> {
        Some(no_action(action))
    }
}

/// What an action the tool does not have fails with.
fn no_action(action: &str) -> String {
    format!(
        "filesystem has no action `{action}` (expected one of: {})",
        ACTIONS.join(", ")
    )
}

pub(super) async fn call(
    action: &str,
    params: Map<String, Value>,
    sandbox: Option<std::sync::Arc<Sandbox>>,
) -> Envelope {
    let action = action.to_string();
    match tokio::task::spawn_blocking(move || run(&action, &params, sandbox.as_deref())).await {
        Ok(Ok(result)) => Envelope::ok(result),
        Ok(Err(message)) => Envelope::fail(message, Value::Null),
        Err(e) => Envelope::fail(format!("filesystem task failed: {e}"), Value::Null),
    }
}

/// The path a step names, resolved into the workspace in a confined run.
fn path_of(given: &str, sandbox: Option<&Sandbox>) -> Result<PathBuf, String> {
    match sandbox {
        None => Ok(PathBuf::from(given)),
        Some(sandbox) => sandbox.resolve(given),
    }
}

fn run(
    action: &str,
    params: &Map<String, Value>,
    sandbox: Option<&Sandbox>,
) -> Result<Value, String> {
    let path = path_of(str_param(params, "path")?, sandbox)?;
    match action {
        "read" => {
            let content = fs::read_to_string(&path).map_err(|e| describe(&e, &path))?;
            Ok(json!({ "action": "read", "path": path, "content": content, "size": content.len() }))
        }
        "write" => {
            let content = text_param(params, "content")?;
            write_atomic(&path, content.as_bytes()).map_err(|e| describe(&e, &path))?;
            Ok(json!({ "action": "write", "path": path, "size": content.len() }))
        }
        "copy" | "move" => {
            let dest = path_of(
                str_param(params, "destination").or_else(|_| str_param(params, "dest"))?,
                sandbox,
            )?;
            if !path.exists() {
                return Err(format!("File not found: {}", path.display()));
            }
            if sandbox.is_some() {
                // A link inside the tree could point anywhere: a copy would read through it.
                no_links_within(&path)?;
            }
            if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent).map_err(|e| describe(&e, parent))?;
            }
            if action == "copy" {
                copy_recursive(&path, &dest).map_err(|e| describe(&e, &path))?;
            } else {
                fs::rename(&path, &dest)
                    .or_else(|_| copy_recursive(&path, &dest).and_then(|()| remove(&path)))
                    .map_err(|e| describe(&e, &path))?;
            }
            Ok(json!({ "action": action, "source": path, "destination": dest }))
        }
        "delete" => {
            remove(&path).map_err(|e| describe(&e, &path))?;
            Ok(json!({ "action": "delete", "path": path }))
        }
        "list" => {
            let mut items = Vec::new();
            for entry in fs::read_dir(&path).map_err(|e| describe(&e, &path))? {
                let entry = entry.map_err(|e| describe(&e, &path))?;
                let meta = entry.metadata().map_err(|e| describe(&e, &entry.path()))?;
                items.push(json!({
                    "name": entry.file_name().to_string_lossy(),
                    "path": entry.path(),
                    "type": if meta.is_dir() { "directory" } else { "file" },
                    "size": meta.len(),
                }));
            }
            items.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
            let count = items.len();
            Ok(json!({ "action": "list", "path": path, "items": items, "count": count }))
        }
        "exists" => {
            let meta = fs::metadata(&path).ok();
            let kind = meta
                .as_ref()
                .map(|m| if m.is_dir() { "directory" } else { "file" });
            Ok(json!({ "action": "exists", "path": path, "exists": meta.is_some(), "type": kind }))
        }
        "mkdir" => {
            let existed = path.is_dir();
            fs::create_dir_all(&path).map_err(|e| describe(&e, &path))?;
            Ok(json!({ "action": "mkdir", "path": path, "created": !existed }))
        }
        other => Err(no_action(other)),
    }
}

/// Writes through a temporary file in the same directory and renames it into place,
/// so a reader never sees half a file. A new file gets the mode any program's new file gets
/// (0666 minus the umask: `-rw-r--r--` under umask 022), a replaced one keeps its mode.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => {
            fs::create_dir_all(parent)?;
            parent
        }
        None => Path::new("."),
    };
    if path.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "is a directory",
        ));
    }
    let existing = fs::metadata(path).ok().map(|m| m.permissions());
    // tempfile's default, 0600, is right for scratch files, not for the file a user asked for;
    // the kernel applies the umask to this.
    let mut tmp = tempfile::Builder::new()
        .prefix(".orc-")
        .permissions(fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)?;
    if let Some(mode) = existing {
        tmp.as_file().set_permissions(mode)?;
    }
    tmp.write_all(bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Refuses a tree that holds a symbolic link (a confined run's copy or move).
fn no_links_within(path: &Path) -> Result<(), String> {
    let meta = fs::symlink_metadata(path).map_err(|e| describe(&e, path))?;
    if meta.file_type().is_symlink() {
        return Err(format!(
            "`{}` holds a symbolic link, which a confined run does not copy or move",
            path.display()
        ));
    }
    if meta.is_dir() {
        for entry in fs::read_dir(path).map_err(|e| describe(&e, path))? {
            let entry = entry.map_err(|e| describe(&e, path))?;
            no_links_within(&entry.path())?;
        }
    }
    Ok(())
}

fn copy_recursive(from: &Path, to: &Path) -> io::Result<()> {
    if from.is_dir() {
        fs::create_dir_all(to)?;
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            copy_recursive(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        fs::copy(from, to).map(|_| ())
    }
}

fn remove(path: &Path) -> io::Result<()> {
    if fs::symlink_metadata(path)?.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
}

fn describe(e: &io::Error, path: &Path) -> String {
    let p = path.display();
    match e.kind() {
        io::ErrorKind::NotFound => format!("File not found: {p}"),
        io::ErrorKind::PermissionDenied => format!("Permission denied: {p}"),
        io::ErrorKind::IsADirectory => format!("Is a directory: {p}"),
        io::ErrorKind::NotADirectory => format!("Not a directory: {p}"),
        io::ErrorKind::InvalidData => format!("File is not valid UTF-8 text: {p}"),
        _ => format!("{p}: {e}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn write_creates_parents_and_read_returns_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/c.txt");
        let w = run(
            "write",
            &params(json!({"path": p, "content": "hello"})),
            None,
        )
        .unwrap();
        assert_eq!(w["size"], 5);
        let r = run("read", &params(json!({"path": p})), None).unwrap();
        assert_eq!(r["content"], "hello");
        // no temporary files left behind
        assert_eq!(fs::read_dir(dir.path().join("a/b")).unwrap().count(), 1);
    }

    #[test]
    fn a_new_file_gets_the_umask_s_mode_and_a_replaced_one_keeps_its_own() {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        let dir = tempfile::tempdir().unwrap();
        // The test process's umask, read without changing it for other threads: a file
        // created with 0666 shows it.
        let probe = dir.path().join("probe");
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o666)
            .open(&probe)
            .unwrap();
        let expected = fs::metadata(&probe).unwrap().permissions().mode() & 0o777;
        let p = dir.path().join("new.txt");
        run("write", &params(json!({"path": p, "content": "x"})), None).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            expected
        );
        fs::set_permissions(&p, fs::Permissions::from_mode(0o750)).unwrap();
        run("write", &params(json!({"path": p, "content": "y"})), None).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o750
        );
        assert_eq!(fs::read_to_string(&p).unwrap(), "y");
    }

    #[test]
    fn missing_file_error_names_it() {
        let err = run("read", &params(json!({"path": "/nonexistent/x.txt"})), None).unwrap_err();
        assert_eq!(err, "File not found: /nonexistent/x.txt");
    }

    #[test]
    fn copy_move_list_exists_delete_mkdir() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.txt");
        fs::write(&a, "x").unwrap();
        let b = dir.path().join("sub/b.txt");
        run("copy", &params(json!({"path": a, "destination": b})), None).unwrap();
        assert_eq!(fs::read_to_string(&b).unwrap(), "x");
        let c = dir.path().join("c.txt");
        run("move", &params(json!({"path": b, "destination": c})), None).unwrap();
        assert!(!b.exists() && c.exists());
        let l = run("list", &params(json!({"path": dir.path()})), None).unwrap();
        assert_eq!(l["count"], 3);
        assert_eq!(l["items"][0]["name"], "a.txt");
        let e = run("exists", &params(json!({"path": c})), None).unwrap();
        assert_eq!(e["exists"], true);
        run("delete", &params(json!({"path": c})), None).unwrap();
        let e = run("exists", &params(json!({"path": c})), None).unwrap();
        assert_eq!(e["exists"], false);
        let m = run(
            "mkdir",
            &params(json!({"path": dir.path().join("d/e")})),
            None,
        )
        .unwrap();
        assert_eq!(m["created"], true);
    }

    #[test]
    fn non_string_content_is_written_as_python_would() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.txt");
        run(
            "write",
            &params(json!({"path": p, "content": {"a": [1, true]}})),
            None,
        )
        .unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "{'a': [1, True]}");
    }

    #[test]
    fn a_confined_run_reaches_only_the_workspace() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret.txt"), "s3cret").unwrap();
        let sandbox = Sandbox::new(&dir.path().join("ws"), false, false).unwrap();
        let sb = Some(&sandbox);
        let ws = sandbox.workspace().to_path_buf();
        // Relative paths are the workspace's.
        run(
            "write",
            &params(json!({"path": "out/a.txt", "content": "x"})),
            sb,
        )
        .unwrap();
        assert_eq!(fs::read_to_string(ws.join("out/a.txt")).unwrap(), "x");
        let r = run("read", &params(json!({"path": "out/a.txt"})), sb).unwrap();
        assert_eq!(r["content"], "x");
        // An escape, however spelt, fails naming the path, and touches nothing.
        let secret = dir.path().join("secret.txt").display().to_string();
        for (action, path) in [
            ("read", "../secret.txt"),
            ("read", secret.as_str()),
            ("write", "../secret.txt"),
            ("delete", "../secret.txt"),
            ("list", ".."),
            ("exists", "../secret.txt"),
            ("mkdir", "../made"),
        ] {
            let e = run(
                action,
                &params(json!({"path": path, "content": "pwned"})),
                sb,
            )
            .unwrap_err();
            assert!(
                e.contains(&format!("`{path}` is outside the workspace")),
                "{action}: {e}"
            );
        }
        assert_eq!(
            fs::read_to_string(dir.path().join("secret.txt")).unwrap(),
            "s3cret"
        );
        assert!(!dir.path().join("made").exists());
        // A link an earlier step (or anyone) left in the workspace is followed, and refused.
        symlink(dir.path(), ws.join("up")).unwrap();
        let e = run("read", &params(json!({"path": "up/secret.txt"})), sb).unwrap_err();
        assert!(
            e.contains("`up/secret.txt` is outside the workspace"),
            "{e}"
        );
        let e = run(
            "write",
            &params(json!({"path": "up/new.txt", "content": "x"})),
            sb,
        )
        .unwrap_err();
        assert!(e.contains("is outside the workspace"), "{e}");
        assert!(!dir.path().join("new.txt").exists());
        // Copying a tree that holds a link would read through it: refused.
        fs::create_dir(ws.join("tree")).unwrap();
        symlink(dir.path().join("secret.txt"), ws.join("tree/leak")).unwrap();
        let e = run(
            "copy",
            &params(json!({"path": "tree", "destination": "copied"})),
            sb,
        )
        .unwrap_err();
        assert!(e.contains("symbolic link"), "{e}");
        assert!(!ws.join("copied").exists());
        let e = run(
            "copy",
            &params(json!({"path": "out/a.txt", "destination": "../stolen"})),
            sb,
        )
        .unwrap_err();
        assert!(e.contains("`../stolen` is outside the workspace"), "{e}");
    }
}
