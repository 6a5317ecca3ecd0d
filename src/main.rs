//! The `popup-ldap` command; everything it does lives in the library's `cli` module.

use std::process::ExitCode;

/// mimalloc rather than glibc's allocator: a sync decodes every entry through short-lived
/// buffers (ldap3 clones each message's tag tree) among the long-lived allocations the index
/// keeps, and glibc serves that mix slowly (its `_int_malloc` took a quarter of the sync
/// thread's time at 1,000,000 people with an entry in one allocation); mimalloc's pages, one
/// set a thread, do not mind it. Measured in `benches/RESULTS.md`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    return_memory_promptly();
    popup_ldap::cli::main()
}

/// mimalloc's defaults suit a process that allocates all the time; this one builds an index,
/// then mostly reads it, and an idle service should give back what its sync no longer uses:
/// freed pages go back to the system at once, not after a second of further allocations
/// (`MIMALLOC_PURGE_DELAY=0`; with `.cargo/config.toml`'s arena commit as pages are touched,
/// 39 MiB after a sync of 100,000 people instead of 75). An administrator's own
/// `MIMALLOC_PURGE_DELAY` still wins.
fn return_memory_promptly() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: `mi_option_set` stores a number in mimalloc's option table; it is not
        // thread-safe, and no other thread runs yet.
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) };
    }
}

/// mimalloc.h's number for `mi_option_purge_delay` (its enum keeps retired options' slots,
/// so numbers stay).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

#[cfg(test)]
mod tests {
    use super::*;

    /// mimalloc.h's number for `mi_option_arena_eager_commit`.
    const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

    /// Fails if the build lost `.cargo/config.toml`'s define or mimalloc renumbered its
    /// options: its defaults are 2 (eager on Linux) and 1,000 ms.
    #[test]
    fn the_allocator_returns_memory_promptly() {
        // SAFETY: reads and one store in mimalloc's option table; no other test touches it.
        unsafe {
            assert_eq!(libmimalloc_sys::mi_option_get(ARENA_EAGER_COMMIT), 0);
            assert_eq!(libmimalloc_sys::mi_option_get(PURGE_DELAY), 1000);
            return_memory_promptly();
            assert_eq!(libmimalloc_sys::mi_option_get(PURGE_DELAY), 0);
        }
    }
}
