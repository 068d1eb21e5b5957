//! SIGINT/SIGTERM/SIGHUP/SIGQUIT handling for long-running commands (a
//! dropped SSH session sends SIGHUP: the lab must still roll back): the
//! handler only sets a flag, the event loops poll it between iterations and
//! shut down cleanly.
//! SIGPIPE is ignored process-wide, so a peer that vanishes mid-write gives
//! EPIPE on that one socket instead of killing the process.
//! SIGUSR1, for the commands that ramp (flood), means "stop opening
//! connections, hold the ones you have": the lab sends it when its ramp
//! reaches the host's ceiling ([`install_ramp_stop`]).
//! SIGUSR2, for flood's worker processes, means "every worker has
//! connected: begin the hold now" ([`install_hold_go`]).
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

static RAMP_STOP: AtomicBool = AtomicBool::new(false);
extern "C" fn on_ramp_stop(_sig: libc::c_int) {
    RAMP_STOP.store(true, Ordering::SeqCst);
}

/// Install the SIGUSR1 flag handler: stop ramping, keep what is open.
/// Only a command that checks [`ramp_stop_requested`] installs it (for the
/// others SIGUSR1 keeps its default action). Safe to call more than once.
pub fn install_ramp_stop() -> std::io::Result<()> {
    install_flag(Signal::SIGUSR1, on_ramp_stop)
}

/// Install `handler`, which only stores to an atomic flag, for `sig`.
fn install_flag(sig: Signal, handler: extern "C" fn(libc::c_int)) -> std::io::Result<()> {
    let action = SigAction::new(
        SigHandler::Handler(handler),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: the handlers passed here only store to an atomic, which is
    // async-signal-safe.
    unsafe { signal::sigaction(sig, &action) }.map_err(std::io::Error::from)?;
    Ok(())
}

/// Has SIGUSR1 (stop ramping) arrived since [`install_ramp_stop`]?
pub fn ramp_stop_requested() -> bool {
    RAMP_STOP.load(Ordering::Relaxed)
}

static HOLD_GO: AtomicBool = AtomicBool::new(false);
extern "C" fn on_hold_go(_sig: libc::c_int) {
    HOLD_GO.store(true, Ordering::SeqCst);
}

/// Install the SIGUSR2 flag handler: a flood worker started with
/// `--hold-together` begins its hold when its parent says every worker
/// has finished connecting. Safe to call more than once.
pub fn install_hold_go() -> std::io::Result<()> {
    install_flag(Signal::SIGUSR2, on_hold_go)
}

/// Has SIGUSR2 (begin the hold) arrived since [`install_hold_go`]?
pub fn hold_go_requested() -> bool {
    HOLD_GO.load(Ordering::Relaxed)
}
