//! Buffers a worker thread keeps from one review to the next, so that a review reuses the room the
//! last one grew instead of allocating it again. A buffer grown past its owner's limit (by a huge
//! pod) is let go rather than held by an idle thread.

use std::cell::Cell;
use std::thread::LocalKey;

/// The buffer `kept` holds, leaving none: a second taker on the thread would start from a fresh
/// one rather than share it. A fresh one too while the thread is exiting.
pub fn take<T>(kept: &'static LocalKey<Cell<Vec<T>>>) -> Vec<T> {
    kept.try_with(Cell::take).unwrap_or_default()
}

/// Empties `buffer` and keeps it in `kept` unless it has grown past `limit` elements. A review's
/// future may move between threads: a buffer taken on one and given back on another is simply
/// kept by the second. While the thread is exiting, the buffer is freed instead.
pub fn give_back<T>(kept: &'static LocalKey<Cell<Vec<T>>>, mut buffer: Vec<T>, limit: usize) {
    buffer.clear();
    if buffer.capacity() <= limit {
        // Fails only during the thread's exit, when dropping the buffer is all there is to do.
        let _ = kept.try_with(|slot| slot.set(buffer));
    }
}
