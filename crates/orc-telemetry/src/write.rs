//! Writing reports atomically.

use std::io::{self, BufWriter, Write};
use std::path::Path;

use serde::Serialize;

use crate::{Error, Result};

/// Writes `value` as pretty JSON (and a final newline) to `path` atomically: into a temporary
/// file in the same directory, flushed to disk, then renamed over `path`, so that a reader never
/// sees half a file. Blocking: call it from `spawn_blocking` in async code.
///
/// # Errors
///
/// [`Error::Write`] naming `path` when the directory does not exist or cannot be written, or
/// `value` cannot be serialized.
pub fn write_json_atomically(path: &Path, value: &impl Serialize) -> Result<()> {
    let error = |source: io::Error| Error::Write {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".orc-").suffix(".tmp");
    // A report is an ordinary file (0644 less the umask), not a private temporary one (0600).
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    let mut file = builder.tempfile_in(dir).map_err(error)?;
    {
        let mut writer = BufWriter::new(file.as_file_mut());
        serde_json::to_writer_pretty(&mut writer, value)
            .map_err(io::Error::from)
            .map_err(error)?;
        writer.write_all(b"\n").map_err(error)?;
        writer.flush().map_err(error)?;
    }
    file.as_file().sync_all().map_err(error)?;
    file.persist(path).map_err(|persist| error(persist.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::fs;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        fs::write(&path, "old").unwrap();
        write_json_atomically(&path, &serde_json::json!({"a": [1, 2]})).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\n  \"a\": [\n    1,\n    2\n  ]\n}\n");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("out.json");
        let message = write_json_atomically(&path, &1).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!("cannot write {}: ", path.display())),
            "{message}"
        );
    }
}
