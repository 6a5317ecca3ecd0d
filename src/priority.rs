//! The CPU priority of the threads that serve no call (the sync, the log's writer): nice 10,
//! so that on a busy host a call's thread is not held up by them, and they take longer instead.

/// Lowers the calling thread's CPU priority to nice 10 (Linux keeps it per thread, and the
/// threads it starts inherit it); `thread` names it in the debug line when it cannot.
#[cfg_attr(not(target_os = "linux"), allow(unused_variables))]
pub fn lower(thread: &str) {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 10) {
        tracing::debug!(error = %e, thread, "a background thread keeps its CPU priority");
    }
}
