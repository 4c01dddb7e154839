//! The `filesystem` tool: read, write (atomic, parents created), copy, move, delete, list, exists, mkdir.
//! Every operation runs on the blocking pool, never on the async workers.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use orc_pipeline::ParamType::String as Text;
use orc_pipeline::ToolSpec;
use serde_json::{Map, Value, json};

use super::declare::{Param, action, tool};
use super::tool::{Call, Tool};
use super::{Envelope, str_param, text_param};
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
        _limits: &'a ToolLimits,
    ) -> Call<'a> {
        Box::pin(call(action, params))
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

pub(super) async fn call(action: &str, params: Map<String, Value>) -> Envelope {
    let action = action.to_string();
    match tokio::task::spawn_blocking(move || run(&action, &params)).await {
        Ok(Ok(result)) => Envelope::ok(result),
        Ok(Err(message)) => Envelope::fail(message, Value::Null),
        Err(e) => Envelope::fail(format!("filesystem task failed: {e}"), Value::Null),
    }
}

fn run(action: &str, params: &Map<String, Value>) -> Result<Value, String> {
    let path = PathBuf::from(str_param(params, "path")?);
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
            let dest = PathBuf::from(
                str_param(params, "destination").or_else(|_| str_param(params, "dest"))?,
            );
            if !path.exists() {
                return Err(format!("File not found: {}", path.display()));
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
        let w = run("write", &params(json!({"path": p, "content": "hello"}))).unwrap();
        assert_eq!(w["size"], 5);
        let r = run("read", &params(json!({"path": p}))).unwrap();
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
        run("write", &params(json!({"path": p, "content": "x"}))).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            expected
        );
        fs::set_permissions(&p, fs::Permissions::from_mode(0o750)).unwrap();
        run("write", &params(json!({"path": p, "content": "y"}))).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o750
        );
        assert_eq!(fs::read_to_string(&p).unwrap(), "y");
    }

    #[test]
    fn missing_file_error_names_it() {
        let err = run("read", &params(json!({"path": "/nonexistent/x.txt"}))).unwrap_err();
        assert_eq!(err, "File not found: /nonexistent/x.txt");
    }

    #[test]
    fn copy_move_list_exists_delete_mkdir() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.txt");
        fs::write(&a, "x").unwrap();
        let b = dir.path().join("sub/b.txt");
        run("copy", &params(json!({"path": a, "destination": b}))).unwrap();
        assert_eq!(fs::read_to_string(&b).unwrap(), "x");
        let c = dir.path().join("c.txt");
        run("move", &params(json!({"path": b, "destination": c}))).unwrap();
        assert!(!b.exists() && c.exists());
        let l = run("list", &params(json!({"path": dir.path()}))).unwrap();
        assert_eq!(l["count"], 3);
        assert_eq!(l["items"][0]["name"], "a.txt");
        let e = run("exists", &params(json!({"path": c}))).unwrap();
        assert_eq!(e["exists"], true);
        run("delete", &params(json!({"path": c}))).unwrap();
        let e = run("exists", &params(json!({"path": c}))).unwrap();
        assert_eq!(e["exists"], false);
        let m = run("mkdir", &params(json!({"path": dir.path().join("d/e")}))).unwrap();
        assert_eq!(m["created"], true);
    }

    #[test]
    fn non_string_content_is_written_as_python_would() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.txt");
        run(
            "write",
            &params(json!({"path": p, "content": {"a": [1, true]}})),
        )
        .unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "{'a': [1, True]}");
    }
}
