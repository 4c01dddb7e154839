use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// A directory of content-addressed entries, read and written synchronously; entries are the raw
/// bytes given to [`FileCache::put`]. The compile cache uses it; new code should use [`Cache`](crate::Cache).
#[derive(Debug, Clone)]
pub struct FileCache {
    dir: PathBuf,
}

impl FileCache {
    /// A cache in `dir`; the directory is created on the first write.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileCache { dir: dir.into() }
    }

    /// The directory entries live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file an entry for `key` lives in.
    pub fn path_of(&self, key: &[u8]) -> PathBuf {
        self.dir.join(blake3::hash(key).to_hex().as_str())
    }

    /// The entry for `key`, if there is one.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let path = self.path_of(key);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io { path, source }),
        }
    }

    /// Stores `value` under `key`, replacing any entry atomically.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        let path = self.path_of(key);
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&self.dir)
            .map_err(io_err(&self.dir))?;
        tmp.write_all(value).map_err(io_err(tmp.path()))?;
        tmp.persist(&path).map_err(|e| Error::Io {
            path,
            source: e.error,
        })?;
        Ok(())
    }

    /// Removes the entry for `key`, if any.
    pub fn remove(&self, key: &[u8]) -> Result<()> {
        let path = self.path_of(key);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::Io { path, source: e }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_replace_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let c = FileCache::new(dir.path().join("x"));
        assert_eq!(c.get(b"k").unwrap(), None);
        c.put(b"k", b"one").unwrap();
        c.put(b"k", b"two").unwrap();
        assert_eq!(c.get(b"k").unwrap().unwrap(), b"two");
        assert_eq!(
            std::fs::read_dir(c.dir()).unwrap().count(),
            1,
            "no temporary files left"
        );
        c.remove(b"k").unwrap();
        assert_eq!(c.get(b"k").unwrap(), None);
        c.remove(b"k").unwrap();
    }
}
