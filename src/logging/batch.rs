//! Log lines leave the request path through a buffer: a request appends its line under a short lock
//! and a background thread writes what has gathered in one `write` every few milliseconds.
//!
//! Two reasons. A `write(2)` per line on the request path was a syscall per admission review. And a
//! blocked stderr (a full pipe to a stalled log collector) would stall every review behind it: the
//! webhook must never be why pods cannot start, so when more than [`MAX_PENDING_BYTES`] are waiting
//! the newest lines are dropped, counted, and reported once stderr moves again.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the writer thread lets lines gather into one write. A line reaches stderr at most
/// about this much later than it was logged.
pub const LINGER: Duration = Duration::from_millis(10);

/// Lines waiting beyond this are dropped rather than queued (about 10,000 admission lines).
pub const MAX_PENDING_BYTES: usize = 4 * 1024 * 1024;

struct State {
    pending: Vec<u8>,
    dropped_lines: u64,
    /// The writer thread waits on the condvar (only then does a new batch need to wake it).
    writer_idle: bool,
    /// How many lines had to wake the idle writer.
    #[cfg(test)]
    wakeups: u64,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// Where lines go: written by the writer thread, and directly once it has stopped.
    out: Mutex<Box<dyn Write + Send>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a thread panicked while appending bytes: keep logging.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write_out(&self, bytes: &[u8]) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = out.write_all(bytes);
        let _ = out.flush();
    }
}

/// The writing side, one per process: `MakeWriter` for the JSON layer. Cloning shares the buffer.
#[derive(Clone)]
pub struct BatchedWriter {
    shared: Arc<Shared>,
    max_pending: usize,
}

/// Stops the writer thread and writes what is left when dropped: before the process exits, and
/// before a startup error is printed, so that error stays the last line on stderr.
pub struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl BatchedWriter {
    /// Starts the writer thread that writes batches to `out`.
    pub fn spawn<O>(out: O, linger: Duration, max_pending: usize) -> io::Result<(Self, FlushGuard)>
    where
        O: Write + Send + 'static,
    {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                pending: Vec::with_capacity(16 * 1024),
                dropped_lines: 0,
                writer_idle: false,
                #[cfg(test)]
                wakeups: 0,
                closed: false,
            }),
            wake: Condvar::new(),
            out: Mutex::new(Box::new(out)),
        });
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn({
                let shared = shared.clone();
                move || write_batches(&shared, linger)
            })?;
        let writer = BatchedWriter {
            shared: shared.clone(),
            max_pending,
        };
        Ok((
            writer,
            FlushGuard {
                shared,
                thread: Some(thread),
            },
        ))
    }

    /// Queues one whole line; drops it (counted) when too much is already waiting. After the guard
    /// is dropped, lines are written directly, as there is no thread left to do it.
    fn push(&self, line: &[u8]) {
        let mut state = self.shared.lock();
        if state.closed {
            drop(state);
            self.shared.write_out(line);
            return;
        }
        if state.pending.len() + line.len() > self.max_pending {
            state.dropped_lines += 1;
            return;
        }
        state.pending.extend_from_slice(line);
        if state.writer_idle {
            state.writer_idle = false;
            #[cfg(test)]
            {
                state.wakeups += 1;
            }
            drop(state);
            self.shared.wake.notify_one();
        }
    }
}

/// The writer thread. Idle, it waits for a line to wake it; then it writes one batch per `linger`
/// period, woken by its timer alone, until a period brings no line and it goes idle again. Under
/// steady traffic that is one wake-up per period, however many reviews: a wake-up (a context switch,
/// and on a VM an interrupt to the other CPU) costs more than formatting and writing a line.
fn write_batches(shared: &Shared, linger: Duration) {
    let mut batch = Vec::with_capacity(16 * 1024);
    let mut state = shared.lock();
    loop {
        while state.pending.is_empty() && !state.closed {
            state.writer_idle = true;
            state = shared.wake.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        loop {
            state = linger_for(shared, state, linger);
            if state.pending.is_empty() && !state.closed {
                break;
            }
            let closed = state.closed;
            std::mem::swap(&mut batch, &mut state.pending);
            let dropped = std::mem::take(&mut state.dropped_lines);
            drop(state);
            if dropped > 0 {
                batch.extend_from_slice(&dropped_report(dropped, std::time::SystemTime::now()));
            }
            shared.write_out(&batch);
            batch.clear();
            // Give back what a burst grew, keeping a typical batch's worth.
            batch.shrink_to(64 * 1024);
            if closed {
                return;
            }
            state = shared.lock();
        }
    }
}

/// Waits out one period, but not past a close: the guard must not wait for a batch that will not
/// grow. Lines arriving meanwhile do not wake the thread (it is not idle).
fn linger_for<'s>(
    shared: &'s Shared,
    mut state: MutexGuard<'s, State>,
    linger: Duration,
) -> MutexGuard<'s, State> {
    let deadline = Instant::now() + linger;
    while !state.closed {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        state = shared
            .wake
            .wait_timeout(state, left)
            .map_or_else(|e| e.into_inner().0, |(state, _)| state);
    }
    state
}

/// The line that says how many lines were dropped, in the layout of every other line.
fn dropped_report(dropped: u64, now: std::time::SystemTime) -> Vec<u8> {
    let mut line = Vec::with_capacity(192);
    line.extend_from_slice(b"{\"timestamp\":\"");
    super::json_line::write_timestamp(&mut line, now);
    line.extend_from_slice(
        b"\",\"level\":\"WARN\",\"message\":\"log lines dropped: stderr did not keep up\",\"dropped_lines\":",
    );
    line.extend_from_slice(itoa::Buffer::new().format(dropped).as_bytes());
    line.extend_from_slice(b",\"target\":\"azwi_webhook::logging\"}\n");
    line
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the JSON layer writes one line to.
pub struct LineHandle<'a>(&'a BatchedWriter);

impl Write for LineHandle<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.push(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchedWriter {
    type Writer = LineHandle<'a>;

    fn make_writer(&'a self) -> LineHandle<'a> {
        LineHandle(self)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    /// Sends each `write` call's bytes to the test, so it sees the batches as the thread wrote them.
    struct Batches(mpsc::Sender<Vec<u8>>);

    impl Write for Batches {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let _ = self.0.send(bytes.to_vec());
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A sink that blocks every write until the test lets it go, as a full pipe would.
    struct Stalled {
        release: mpsc::Receiver<()>,
        written: mpsc::Sender<Vec<u8>>,
    }

    impl Write for Stalled {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let _ = self.release.recv();
            let _ = self.written.send(bytes.to_vec());
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn line(writer: &BatchedWriter, text: &str) {
        use tracing_subscriber::fmt::MakeWriter;
        writer
            .make_writer()
            .write_all(text.as_bytes())
            .expect("queued");
    }

    #[test]
    fn lines_written_close_together_leave_in_one_write() {
        let (tx, rx) = mpsc::channel();
        let (writer, guard) =
            BatchedWriter::spawn(Batches(tx), Duration::from_millis(200), 1 << 20).expect("thread");
        line(&writer, "a\n");
        line(&writer, "b\n");
        line(&writer, "c\n");
        let first = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a batch is written");
        assert_eq!(first, b"a\nb\nc\n");
        drop(guard);
        assert!(rx.try_recv().is_err(), "nothing else was written");
    }

    #[test]
    fn steady_lines_are_written_every_period_without_waking_the_writer() {
        let (tx, rx) = mpsc::channel();
        let (writer, guard) =
            BatchedWriter::spawn(Batches(tx), Duration::from_millis(100), 1 << 20).expect("thread");
        // A line every millisecond for two seconds: twenty periods of lines, never a quiet one.
        let lines = 2000;
        for _ in 0..lines {
            line(&writer, "x\n");
            std::thread::sleep(Duration::from_millis(1));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut written = 0;
        let mut writes = 0;
        while written < lines && Instant::now() < deadline {
            if let Ok(batch) = rx.recv_timeout(Duration::from_millis(50)) {
                written += batch.len() / 2;
                writes += 1;
            }
        }
        assert_eq!(written, lines, "every line written");
        assert!(
            writes >= 2,
            "written in periods, not at the end: {writes} writes"
        );
        // The first line wakes the idle writer; after that its timer alone does, so only a stall
        // of the test thread for a whole period adds one. A wake-up per batch would be about 20.
        let wakeups = writer.shared.lock().wakeups;
        assert!(wakeups <= 6, "{wakeups} lines woke the writer");
        drop(guard);
    }

    #[test]
    fn dropping_the_guard_writes_what_is_pending() {
        let (tx, rx) = mpsc::channel();
        let (writer, guard) =
            BatchedWriter::spawn(Batches(tx), Duration::from_secs(3600), 1 << 20).expect("thread");
        line(&writer, "x\n");
        let started = Instant::now();
        drop(guard);
        let written: Vec<u8> = rx.try_iter().flatten().collect();
        assert_eq!(written, b"x\n");
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the guard does not wait out the linger"
        );
    }

    #[test]
    fn a_stalled_sink_drops_lines_beyond_the_limit_and_reports_them() {
        let (release, released) = mpsc::channel();
        let (written_tx, written) = mpsc::channel();
        let sink = Stalled {
            release: released,
            written: written_tx,
        };
        let (writer, guard) = BatchedWriter::spawn(sink, Duration::ZERO, 8).expect("thread");
        // The first batch is taken by the thread, which then blocks in `write`.
        line(&writer, "first\n");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !writer.shared.lock().pending.is_empty() {
            assert!(
                Instant::now() < deadline,
                "the thread never took the first line"
            );
            std::thread::yield_now();
        }
        // 8 bytes may wait: "1234567\n" fits, the next two do not.
        line(&writer, "1234567\n");
        line(&writer, "dropped\n");
        line(&writer, "dropped\n");
        for _ in 0..8 {
            let _ = release.send(());
        }
        drop(guard);
        let out: Vec<u8> = written.try_iter().flatten().collect();
        let out = String::from_utf8(out).expect("utf-8");
        assert!(out.starts_with("first\n1234567\n"), "{out}");
        assert!(!out.contains("dropped\n"), "{out}");
        let report = out.lines().last().expect("a report line");
        let report: serde_json::Value = serde_json::from_str(report).expect("JSON");
        assert_eq!(report["dropped_lines"], 2, "{report}");
        assert_eq!(report["level"], "WARN", "{report}");
        assert!(
            report["timestamp"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z')),
            "{report}"
        );
    }

    #[test]
    fn after_the_guard_is_gone_lines_go_straight_to_the_sink() {
        let (tx, rx) = mpsc::channel();
        let (writer, guard) =
            BatchedWriter::spawn(Batches(tx), Duration::ZERO, 1 << 20).expect("thread");
        drop(guard);
        line(&writer, "late\n");
        assert!(writer.shared.lock().pending.is_empty());
        assert_eq!(rx.try_recv().expect("written at once"), b"late\n");
    }
}
