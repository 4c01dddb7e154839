//! What can go wrong talking to the queue.

/// A queue operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The options cannot work (a bad URL or pool name, a zero limit).
    #[error("queue: {field}: {message}")]
    Invalid {
        /// The option, as the config file names it (`queue.url`, `queue.pool`).
        field: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
    /// The NATS server could not be reached.
    #[error(
        "queue {url}: cannot connect: {message}\nhint: start NATS with JetStream (`nats-server -js`) or point `--queue` at one"
    )]
    Connect {
        /// The server's URL.
        url: String,
        /// What the client said.
        message: String,
    },
    /// A JetStream operation failed.
    #[error("queue: {operation} failed: {message}")]
    JetStream {
        /// What was being done, e.g. `publish step`.
        operation: &'static str,
        /// What the server or client said.
        message: String,
    },
}

impl Error {
    pub(crate) fn js(operation: &'static str) -> impl FnOnce(String) -> Error {
        move |message| Error::JetStream { operation, message }
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
