//! SIGINT/SIGTERM/SIGHUP/SIGQUIT handling for long-running commands (a
//! dropped SSH session sends SIGHUP: the lab must still roll back): the
//! handler only sets a flag, the event loops poll it between iterations and
//! shut down cleanly.
//! SIGPIPE is ignored process-wide, so a peer that vanishes mid-write gives
//! EPIPE on that one socket instead of killing the process.
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};

static STOP: AtomicBool = AtomicBool::new(false);
extern "C" fn on_signal(_sig: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Install the SIGINT/SIGTERM/SIGHUP/SIGQUIT flag handler and ignore
/// SIGPIPE. Safe to call more than once.
pub fn install() -> std::io::Result<()> {
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: the handler only stores to atomics, which is async-signal-safe.
    unsafe {
        signal::sigaction(Signal::SIGINT, &action).map_err(std::io::Error::from)?;
        signal::sigaction(Signal::SIGTERM, &action).map_err(std::io::Error::from)?;
        signal::sigaction(Signal::SIGHUP, &action).map_err(std::io::Error::from)?;
        signal::sigaction(Signal::SIGQUIT, &action).map_err(std::io::Error::from)?;
        signal::sigaction(Signal::SIGPIPE, &ignore).map_err(std::io::Error::from)?;
    }
    Ok(())
}

/// Has SIGINT, SIGTERM, SIGHUP or SIGQUIT arrived?
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}
