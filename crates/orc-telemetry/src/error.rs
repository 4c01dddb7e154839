use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Errors of orc-telemetry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Prometheus recorder could not become the process's `metrics` recorder, most likely
    /// because another recorder was installed first.
    #[error(
        "cannot install the Prometheus metrics recorder: {message}\n\
         hint: call `Exporter::global()` before anything else installs a `metrics` recorder"
    )]
    Install {
        /// What the exporter reported.
        message: String,
    },
    /// The `/metrics` endpoint could not listen on its address.
    #[error("cannot listen on {addr} for metrics: {}", bind_reason(source))]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The underlying error.
        source: io::Error,
    },
    /// A report (profile, trace) could not be written.
    #[error("cannot write {path}: {source}", path = path.display())]
    Write {
        /// The file being written.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a bind failed, in words, with a hint for the common cases.
fn bind_reason(source: &io::Error) -> String {
    match source.kind() {
        io::ErrorKind::AddrInUse => "address already in use\n\
            hint: another process listens there; stop it or choose another port \
            (port 0 picks a free one)"
            .to_owned(),
        io::ErrorKind::AddrNotAvailable => "address not available on this machine\n\
            hint: use 127.0.0.1, 0.0.0.0 or the address of one of this machine's interfaces"
            .to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied\n\
            hint: ports below 1024 need privileges; choose a port above 1024"
            .to_owned(),
        _ => source.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_error_reads_clearly() {
        let error = Error::Bind {
            addr: SocketAddr::from(([127, 0, 0, 1], 9090)),
            source: io::Error::from(io::ErrorKind::AddrInUse),
        };
        let message = error.to_string();
        assert!(
            message.starts_with(
                "cannot listen on 127.0.0.1:9090 for metrics: address already in use\nhint: "
            ),
            "{message}"
        );
    }

    #[test]
    fn write_error_names_the_path() {
        let error = Error::Write {
            path: PathBuf::from("/tmp/x/profile.json"),
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        assert!(
            error
                .to_string()
                .starts_with("cannot write /tmp/x/profile.json: ")
        );
    }
}
