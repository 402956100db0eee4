//! The handler's buffers a worker thread keeps from one review to the next
//! ([`crate::thread_buffers`]). A typical pod's patch operations (3 KiB) and their JSON (3.5 KiB)
//! are too large for the allocator's per-thread cache, so a fresh buffer per review cost two trips
//! through its shared bins; kept here, they cost none.

use std::cell::Cell;

use crate::mutate::patch::PatchOp;
use crate::thread_buffers::{give_back, take};

/// The largest patch JSON buffer a thread keeps.
const PATCH_JSON_KEPT: usize = 64 * 1024;

/// The most patch operations a thread keeps room for (128 bytes each).
const OPS_KEPT: usize = 256;

thread_local! {
    static PATCH_JSON: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    static OPS: Cell<Vec<PatchOp>> = const { Cell::new(Vec::new()) };
}

/// Runs `write` with this thread's patch JSON buffer, emptied.
pub fn with_patch_json<R>(write: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    let mut json = take(&PATCH_JSON);
    let result = write(&mut json);
    give_back(&PATCH_JSON, json, PATCH_JSON_KEPT);
    result
}

/// This thread's operations list, empty, for the next plan: the one given back last, if any.
pub fn take_ops() -> Vec<PatchOp> {
    take(&OPS)
}

/// Keeps a plan's operations list for the next review on this thread.
pub fn give_back_ops(ops: Vec<PatchOp>) {
    give_back(&OPS, ops, OPS_KEPT);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutate::patch::{OpKind, PatchValue, Pointer};

    fn op() -> PatchOp {
        PatchOp {
            op: OpKind::Remove,
            path: Pointer::Fixed("/spec/volumes/0"),
            value: PatchValue::None,
        }
    }

    #[test]
    fn an_ops_list_given_back_comes_back_empty_with_its_room() {
        let mut ops = take_ops();
        ops.extend((0..24).map(|_| op()));
        let room = ops.capacity();
        give_back_ops(ops);
        let again = take_ops();
        assert!(again.is_empty());
        assert_eq!(again.capacity(), room);
        // Taken: the next taker on this thread starts from nothing.
        assert_eq!(take_ops().capacity(), 0);
    }

    #[test]
    fn an_oversized_ops_list_is_let_go() {
        let mut ops = Vec::with_capacity(OPS_KEPT + 1);
        ops.push(op());
        give_back_ops(ops);
        assert_eq!(take_ops().capacity(), 0);
    }

    #[test]
    fn the_patch_json_buffer_is_handed_over_empty_and_an_oversized_one_is_let_go() {
        with_patch_json(|json| json.extend_from_slice(b"[{\"op\":\"add\"}]"));
        let kept = with_patch_json(|json| {
            assert!(json.is_empty());
            json.capacity()
        });
        assert!(kept > 0);
        with_patch_json(|json| json.resize(PATCH_JSON_KEPT + 1, b' '));
        assert_eq!(with_patch_json(|json| json.capacity()), 0);
    }
}
