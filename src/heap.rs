//! Gives freed heap memory back to the operating system after a burst of allocations.
//!
//! A full service-account list is decoded page by page into short-lived objects (JSON text, typed
//! metadata with every annotation and managedFields) of which the cache keeps a small part. glibc's
//! allocator keeps the freed pages, spread over its per-thread arenas, so without this the process
//! stays at the list's peak (measured: +14 MiB RSS for 10,000 service accounts whose entries hold
//! under 5 MiB). `malloc_trim` releases the free pages of every arena. Called after a (re)list, which
//! happens at startup and after a watch falls too far behind, never on the admission path.

/// Returns free heap pages to the OS where the allocator supports it; a no-op elsewhere.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists, under its arena locks; it has
    // no preconditions and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
