//! The SQLite writer: one thread owns the write connection and commits, in one transaction, every
//! write that was waiting when it got to them (group commit).
//!
//! A write is a closure over the connection, sent over a bounded channel with a one-shot reply.
//! The thread takes the first write waiting, then every other one already queued (up to
//! [`MAX_BATCH`]), runs them in one `BEGIN IMMEDIATE` … `COMMIT`, and answers each caller only
//! after the commit: a caller that hears `Ok` knows its write is in the file. Under load many
//! runs' checkpoints, leases and records share one commit; a lone write costs one transaction,
//! as before.
//!
//! Each write is run as it would run alone: a statement that fails is undone by SQLite (the
//! statement journal) and the others in the batch go on; a write made of several statements
//! opens a savepoint and rolls it back when it gives up. A failure that ends the whole
//! transaction (a full disk, an I/O error) fails every write of the batch, since none of them
//! was committed.
//!
//! Why a thread and not the runtime: rusqlite calls block. Running them in place (with
//! `block_in_place`) made concurrent writers queue on a lock and each pay its own transaction;
//! one thread that batches pays one transaction for all of them, and never holds a runtime
//! worker.

use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{Mutex, mpsc, oneshot};

/// Most writes in one transaction: a bound on how long one commit keeps the others waiting.
const MAX_BATCH: usize = 256;

/// Writes waiting for the thread, at most; a caller beyond them waits to send.
const QUEUE: usize = 1024;

/// A write waiting for the thread.
trait Job: Send {
    /// Runs the work; returns how to answer its caller once the batch's commit is known.
    fn run(self: Box<Self>, c: &mut rusqlite::Connection) -> Reply;
    /// Answers the caller with `e` without running the work.
    fn refuse(self: Box<Self>, e: &rusqlite::Error);
}

/// Answers one caller with the commit's outcome (`None`: committed).
type Reply = Box<dyn FnOnce(Option<&rusqlite::Error>) + Send>;

/// A caller's work and where its answer goes.
struct Pending<T, F> {
    work: F,
    answer: oneshot::Sender<Result<T, Failed>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send + 'static,
    F: FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
{
    fn run(self: Box<Self>, c: &mut rusqlite::Connection) -> Reply {
        let Pending { work, answer } = *self;
        let done = work(c);
        Box::new(move |commit| {
            let outcome = match (done, commit) {
                (Ok(value), None) => Ok(value),
                // The work's own error says most; a failed commit fails even work that went
                // through.
                (Err(e), _) => Err(Failed::Sql(e)),
                (Ok(_), Some(e)) => Err(Failed::Sql(copy(e))),
            };
            // A caller that stopped waiting does not want the answer.
            let _ = answer.send(outcome);
        })
    }

    fn refuse(self: Box<Self>, e: &rusqlite::Error) {
        let _ = self.answer.send(Err(Failed::Sql(copy(e))));
    }
}

/// Why a write did not happen.
#[derive(Debug)]
pub(crate) enum Failed {
    /// SQLite refused it (or the commit).
    Sql(rusqlite::Error),
    /// The writer thread is gone (it panicked, or the store is closing).
    Gone,
}

/// The handle to the writer thread. Dropping the last one closes the queue; the thread commits
/// what it holds and ends, and is joined.
pub(crate) struct Writer {
    queue: Option<mpsc::Sender<Box<dyn Job>>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the thread over `connection`. `turn`: a lock every batch holds while it runs (the
    /// in-memory database's reader, which must never meet a write).
    pub(crate) fn start(
        connection: rusqlite::Connection,
        turn: Option<Arc<Mutex<sqlx::SqliteConnection>>>,
    ) -> std::io::Result<Writer> {
        let (queue, waiting) = mpsc::channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("orc-sqlite-writer".to_owned())
            .spawn(move || serve(connection, waiting, turn))?;
        Ok(Writer {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Runs `work` in the next batch and returns what it returned, once the batch is committed.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T, Failed>
    where
        T: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let queue = self.queue.as_ref().ok_or(Failed::Gone)?;
        let (answer, answered) = oneshot::channel();
        queue
            .send(Box::new(Pending { work, answer }))
            .await
            .map_err(|_| Failed::Gone)?;
        answered.await.map_err(|_| Failed::Gone)?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            // The thread ends as soon as it has committed what it holds (one short batch).
            let _ = thread.join();
        }
    }
}

/// The thread: batch, commit, answer, until the queue closes.
fn serve(
    mut connection: rusqlite::Connection,
    mut waiting: mpsc::Receiver<Box<dyn Job>>,
    turn: Option<Arc<Mutex<sqlx::SqliteConnection>>>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = waiting.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match waiting.try_recv() {
                Ok(work) => batch.push(work),
                Err(_) => break,
            }
        }
        let _turn = turn.as_ref().map(|t| t.blocking_lock());
        commit(&mut connection, &mut batch);
    }
}

/// Runs `batch` in one transaction and answers each write.
fn commit(c: &mut rusqlite::Connection, batch: &mut Vec<Box<dyn Job>>) {
    if let Err(e) = c.execute_batch("BEGIN IMMEDIATE") {
        for work in batch.drain(..) {
            work.refuse(&e);
        }
        return;
    }
    let mut replies = Vec::with_capacity(batch.len());
    let mut ended: Option<rusqlite::Error> = None;
    for work in batch.drain(..) {
        if let Some(e) = &ended {
            work.refuse(e);
            continue;
        }
        replies.push(work.run(c));
        // A failure SQLite answers by rolling the whole transaction back leaves the connection
        // in autocommit: the writes after it must not run outside the batch.
        if c.is_autocommit() {
            ended = Some(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                Some("the transaction was rolled back by an earlier failure".to_owned()),
            ));
        }
    }
    let outcome = match ended {
        Some(e) => Err(e),
        None => c.execute_batch("COMMIT"),
    };
    if outcome.is_err() && !c.is_autocommit() {
        let _ = c.execute_batch("ROLLBACK");
    }
    for reply in replies {
        reply(outcome.as_ref().err());
    }
}

/// A copy of `e` for each caller of a failed commit (rusqlite's error is not `Clone`).
fn copy(e: &rusqlite::Error) -> rusqlite::Error {
    match e {
        rusqlite::Error::SqliteFailure(code, message) => {
            rusqlite::Error::SqliteFailure(*code, message.clone())
        }
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn writer() -> Writer {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            .unwrap();
        Writer::start(c, None).unwrap()
    }

    fn insert(id: i64) -> impl FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<usize> {
        move |c| c.execute("INSERT INTO t (id) VALUES (?1)", [id])
    }

    /// Holds the thread in a write until the returned sender is dropped, so that the writes sent
    /// meanwhile queue up and form the next batch. Returns once the thread is held.
    async fn hold(w: &Writer) -> std::sync::mpsc::Sender<()> {
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started, running) = oneshot::channel::<()>();
        let (answer, _) = oneshot::channel();
        let work = move |_: &mut rusqlite::Connection| -> rusqlite::Result<()> {
            let _ = started.send(());
            let _ = held.recv();
            Ok(())
        };
        let job: Box<dyn Job> = Box::new(Pending { work, answer });
        w.queue.as_ref().unwrap().send(job).await.unwrap();
        running.await.unwrap();
        release
    }

    /// Waits until `n` writes wait in the queue.
    async fn queued(w: &Writer, n: usize) {
        let queue = w.queue.as_ref().unwrap();
        while QUEUE - queue.capacity() < n {
            tokio::task::yield_now().await;
        }
    }

    async fn ids(w: &Writer) -> Vec<i64> {
        w.write(|c| {
            let mut s = c.prepare("SELECT id FROM t ORDER BY id")?;
            s.query_map([], |r| r.get(0))?.collect()
        })
        .await
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_statement_in_a_batch_leaves_the_others_committed() {
        let w = Arc::new(writer());
        let release = hold(&w).await;
        let mut writes = Vec::new();
        for id in [1, 1, 2] {
            let w2 = Arc::clone(&w);
            writes.push(tokio::spawn(async move { w2.write(insert(id)).await }));
            queued(&w, writes.len()).await;
        }
        drop(release);
        let answers: Vec<bool> = futures_ok(writes).await;
        assert_eq!(answers, [true, false, true]);
        assert_eq!(ids(&w).await, [1, 2]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_that_gives_up_its_savepoint_leaves_nothing() {
        let w = Arc::new(writer());
        let release = hold(&w).await;
        let gives_up = {
            let w = Arc::clone(&w);
            tokio::spawn(async move {
                w.write(|c| {
                    let sp = c.savepoint()?;
                    sp.execute("INSERT INTO t (id) VALUES (10)", [])?;
                    sp.execute("INSERT INTO t (id) VALUES (11)", [])?;
                    // Dropped without commit: rolled back to the savepoint.
                    Ok(())
                })
                .await
            })
        };
        queued(&w, 1).await;
        let after = {
            let w = Arc::clone(&w);
            tokio::spawn(async move { w.write(insert(3)).await })
        };
        queued(&w, 2).await;
        drop(release);
        assert!(gives_up.await.unwrap().is_ok());
        assert!(after.await.unwrap().is_ok());
        assert_eq!(ids(&w).await, [3]);
    }

    /// The writes of a batch share one transaction: when one of them ends it, none is committed
    /// and every caller hears so.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_is_one_transaction() {
        let w = Arc::new(writer());
        let release = hold(&w).await;
        let mut writes = Vec::new();
        {
            let w2 = Arc::clone(&w);
            writes.push(tokio::spawn(async move { w2.write(insert(1)).await }));
            queued(&w, 1).await;
            let w2 = Arc::clone(&w);
            writes.push(tokio::spawn(async move {
                w2.write(|c| c.execute_batch("ROLLBACK").map(|()| 0)).await
            }));
            queued(&w, 2).await;
            let w2 = Arc::clone(&w);
            writes.push(tokio::spawn(async move { w2.write(insert(2)).await }));
            queued(&w, 3).await;
        }
        drop(release);
        assert_eq!(futures_ok(writes).await, [false, false, false]);
        assert_eq!(ids(&w).await, Vec::<i64>::new());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn writes_from_a_current_thread_runtime_are_answered() {
        let w = writer();
        for id in 0..100 {
            assert_eq!(w.write(insert(id)).await.unwrap(), 1);
        }
        assert_eq!(ids(&w).await.len(), 100);
    }

    async fn futures_ok<T>(writes: Vec<tokio::task::JoinHandle<Result<T, Failed>>>) -> Vec<bool> {
        let mut out = Vec::new();
        for w in writes {
            out.push(w.await.unwrap().is_ok());
        }
        out
    }
}
