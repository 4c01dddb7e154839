use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong in the state store. Errors that name the store carry its URL with
/// the password replaced by `***`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL does not parse or names a scheme orc has no backend for.
    #[error(
        "invalid state URL `{url}`: {reason}\nhint: use sqlite:///absolute/path/state.db, sqlite://relative/path/state.db, postgres://user[:password]@host[:port]/database or redis://[:password@]host[:port][/db]"
    )]
    InvalidUrl {
        /// The URL as given, password redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// [`StateOptions`](crate::StateOptions) hold a value the backend cannot use.
    #[error("invalid state options for {url}: {reason}")]
    InvalidOptions {
        /// The store's URL, password redacted.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The store could not be opened: the server is unreachable, refuses the login, the database
    /// does not exist, the user lacks a permission, or the file cannot be created.
    #[error("cannot open the state store {url}: {message}\nhint: {hint}")]
    Connect {
        /// The store's URL, password redacted.
        url: String,
        /// What the backend said.
        message: String,
        /// What to do about it.
        hint: String,
    },
    /// The SQLite file is not a database, is damaged, or is some other program's database.
    #[error(
        "{url} is not an orc state database: {reason}\nhint: move the file away (orc then creates a new one) or point the state URL at another file"
    )]
    NotAStateDatabase {
        /// The store's URL.
        url: String,
        /// What was found.
        reason: String,
    },
    /// The store was written by a newer orc: it holds a schema version this binary does not know.
    #[error(
        "the state store {url} has schema version {found}, newer than the newest this orc knows ({supported})\nhint: upgrade orc, or point the state URL at another database"
    )]
    SchemaTooNew {
        /// The store's URL, password redacted.
        url: String,
        /// The newest schema version found in the store.
        found: i64,
        /// The newest schema version this binary knows.
        supported: i64,
    },
    /// Bringing the schema up to date failed (nothing was half-applied: each migration is one
    /// transaction).
    #[error("migrating the state store {url} failed: {message}\nhint: {hint}")]
    Migrate {
        /// The store's URL, password redacted.
        url: String,
        /// What went wrong.
        message: String,
        /// What to do about it.
        hint: String,
    },
    /// An operation failed in the backend (connection lost, server error, lock conflict).
    /// Nothing it was writing was half-applied.
    #[error("state store {url}: {operation} failed: {message}")]
    Backend {
        /// The store's URL, password redacted.
        url: String,
        /// The operation, e.g. `append`.
        operation: &'static str,
        /// What the backend said.
        message: String,
        /// Whether the same call may succeed if repeated (a lost connection, a busy database).
        retryable: bool,
    },
    /// An operation did not finish within
    /// [`StateOptions::query_timeout`](crate::StateOptions::query_timeout). A write that timed out
    /// may or may not have been applied.
    #[error("state store {url}: {operation} did not finish within {after:?}")]
    Timeout {
        /// The store's URL, password redacted.
        url: String,
        /// The operation, e.g. `append`.
        operation: &'static str,
        /// The timeout that passed.
        after: Duration,
    },
    /// No run has this id.
    #[error("run `{run_id}` is not in the state store")]
    RunNotFound {
        /// The run id asked for.
        run_id: String,
    },
    /// A write made under a lease ([`Store::append_leased`](crate::Store::append_leased),
    /// [`Store::finish_leased`](crate::Store::finish_leased), [`Store::renew`](crate::Store::renew))
    /// was refused: another process has taken the run over (or the lease was released). Nothing
    /// was written.
    #[error("run `{run_id}`: lost the run's lease to {}", holder.as_deref().unwrap_or("another orc process (which has since let it go)"))]
    LeaseLost {
        /// The run.
        run_id: String,
        /// Who holds the lease now, if anyone.
        holder: Option<String>,
    },
    /// [`Store::create_run`](crate::Store::create_run) was given an id that is already taken.
    #[error("run `{run_id}` already exists in the state store\nhint: pick another run id")]
    RunExists {
        /// The run id given.
        run_id: String,
    },
    /// A value passed in cannot be stored (for example a time before 1970 or after 2262).
    #[error("{what} cannot be stored: {reason}")]
    InvalidValue {
        /// Which value, e.g. `started_at of run r1`.
        what: String,
        /// Why.
        reason: String,
    },
    /// A stored record cannot be decoded.
    #[error("state store {url}: stored {what} cannot be read: {reason}")]
    Corrupt {
        /// The store's URL, password redacted.
        url: String,
        /// Which record, e.g. `checkpoint 3 of run r1`.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The operation needs another backend than this store's.
    #[error("state store {url}: {operation} needs {needs}")]
    Unsupported {
        /// The store's URL, password redacted.
        url: String,
        /// The operation, e.g. `dispatch_step`.
        operation: &'static str,
        /// What it needs.
        needs: &'static str,
    },
    /// The SQLite file's directory could not be created.
    #[error("state store: cannot create {path}: {source}", path = path.display())]
    Io {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl Error {
    /// Whether repeating the failed call may succeed: a timeout, a lost connection, a busy or
    /// conflicting transaction. Everything else (bad URL, missing run, newer schema) will fail the
    /// same way again.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Timeout { .. } => true,
            Error::Backend { retryable, .. } => *retryable,
            _ => false,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
