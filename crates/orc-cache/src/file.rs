//! The file backend: one file per entry, named by the key's hash, written atomically (temporary
//! file, then rename) under a [`FileHeader`] that carries the expiry. All file-system work runs on
//! the blocking pool.

use std::fs::{self, File};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;

use crate::codec::{FileHeader, decode, encode, ttl_ms, unix_ms_now};
use crate::{Error, Key, Result, Usage};

/// Prefix of temporary files; they never count as entries.
const TMP_PREFIX: &str = ".tmp-";

/// Entries as files in one directory.
pub(crate) struct FileStore {
    dir: PathBuf,
    ttl: Option<Duration>,
    compression: bool,
}

impl FileStore {
    /// A store in `dir` (created on the first write).
    pub(crate) fn new(dir: PathBuf, ttl: Option<Duration>, compression: bool) -> Self {
        FileStore {
            dir,
            ttl,
            compression,
        }
    }

    /// The directory entries live in.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory is a directory, or does not exist yet.
    pub(crate) async fn check(&self) -> Result<()> {
        match tokio::fs::metadata(&self.dir).await {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(_) => Err(Error::Io {
                path: self.dir.clone(),
                source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::Io {
                path: self.dir.clone(),
                source,
            }),
        }
    }

    fn path_of(&self, key: &Key) -> PathBuf {
        self.dir.join(key.hex())
    }

    pub(crate) async fn get(&self, key: &Key) -> Result<Option<Bytes>> {
        let path = self.path_of(key);
        blocking(&self.dir, move || read_entry(&path)).await
    }

    pub(crate) async fn put(&self, key: &Key, value: &[u8]) -> Result<()> {
        let (dir, path, value) = (self.dir.clone(), self.path_of(key), value.to_vec());
        let (ttl, compression) = (self.ttl, self.compression);
        blocking(&self.dir, move || {
            let expires_ms = ttl.map_or(0, |ttl| unix_ms_now().saturating_add(ttl_ms(ttl)));
            write_entry(&dir, &path, &encode(&value, compression), expires_ms)
        })
        .await
    }

    pub(crate) async fn remove(&self, key: &Key) -> Result<()> {
        let path = self.path_of(key);
        blocking(&self.dir, move || match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::Io { path, source: e }),
            _ => Ok(()),
        })
        .await
    }

    /// Entries that have not expired, and their file sizes.
    pub(crate) async fn usage(&self) -> Result<Usage> {
        let dir = self.dir.clone();
        blocking(&self.dir, move || {
            let now = unix_ms_now();
            let mut usage = Usage::default();
            for path in entry_files(&dir)? {
                let Ok((expires_ms, len)) = read_expiry(&path) else {
                    continue; // removed meanwhile, or not readable: not an entry to count
                };
                if expires_ms == 0 || expires_ms > now {
                    usage.entries += 1;
                    usage.bytes += len;
                }
            }
            Ok(usage)
        })
        .await
    }

    /// Removes every entry file (expired ones too) and returns how many there were.
    pub(crate) async fn clear(&self) -> Result<u64> {
        let dir = self.dir.clone();
        blocking(&self.dir, move || {
            let mut removed = 0;
            for path in entry_files(&dir)? {
                match fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(source) => return Err(Error::Io { path, source }),
                }
            }
            Ok(removed)
        })
        .await
    }
}

/// Runs `work` on the blocking pool.
async fn blocking<T: Send + 'static>(
    dir: &Path,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(Error::Io {
            path: dir.to_path_buf(),
            source: io::Error::other(format!("cache file task did not finish: {e}")),
        })
    })
}

fn read_entry(path: &Path) -> Result<Option<Bytes>> {
    let file = match fs::read(path) {
        Ok(bytes) => Bytes::from(bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let corrupt = |reason| Error::Corrupt {
        entry: path.display().to_string(),
        reason,
    };
    let (expires_ms, stored) = FileHeader::split(file).map_err(corrupt)?;
    if expires_ms != 0 && expires_ms <= unix_ms_now() {
        // Lazy expiry; losing a race with another remover is fine.
        let _ = fs::remove_file(path);
        return Ok(None);
    }
    decode(stored).map(Some).map_err(corrupt)
}

fn write_entry(dir: &Path, path: &Path, stored: &[u8], expires_ms: u64) -> Result<()> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .tempfile_in(dir)
        .map_err(io_err(dir))?;
    let header = FileHeader::for_value(stored, expires_ms).to_bytes();
    tmp.write_all(&header)
        .and_then(|()| tmp.write_all(stored))
        .map_err(io_err(tmp.path()))?;
    tmp.persist(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

/// The expiry and size of the entry file at `path`.
fn read_expiry(path: &Path) -> io::Result<(u64, u64)> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut head = [0; FileHeader::EXPIRY_LEN];
    file.read_exact(&mut head)?;
    let expires_ms = FileHeader::expiry(&head).map_err(io::Error::other)?;
    Ok((expires_ms, len))
}

/// The entry files in `dir` (none when it does not exist): names of 64 hex digits, so temporary
/// files and anything else a person put there are left alone.
fn entry_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let read = match fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut files = Vec::new();
    for entry in read {
        let entry = entry.map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let name = entry.file_name();
        let is_entry = name
            .to_str()
            .is_some_and(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()));
        if is_entry {
            files.push(entry.path());
        }
    }
    Ok(files)
}
