//! SIGINT/SIGTERM/SIGHUP handling for long-running commands: the handler only sets
//! a flag, the event loops poll it between iterations and shut down cleanly.
//! SIGPIPE is ignored process-wide, so a peer that vanishes mid-write gives
//! EPIPE on that one socket instead of killing the process.
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};

static STOP: AtomicBool = AtomicBool::new(false);
extern "C" fn on_signal(_sig: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Install the SIGINT/SIGTERM/SIGHUP flag handler and ignore SIGPIPE. Safe to call
/// more than once.
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
        // A closed terminal ends a run as cleanly as Ctrl-C (the lab then
        // still removes its namespaces and rolls back what it applied).
        signal::sigaction(Signal::SIGHUP, &action).map_err(std::io::Error::from)?;
        signal::sigaction(Signal::SIGPIPE, &ignore).map_err(std::io::Error::from)?;
    }
    Ok(())
}

/// Has SIGINT, SIGTERM or SIGHUP arrived?
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}
