//! Bugs of the seed client its own output shows: send/recv on fd 0 once it
//! stops creating sockets (progress lines with `sockfd:0`), and receive
//! buffers printed without a terminating NUL (` RecvBuffer:` running into
//! garbage bytes).
use super::super::finding::{Certainty, Finding};
use super::{Ctx, plural};
use crate::catalogue::{FailureId, Side};
use crate::util::thousands;

pub fn findings(cx: &Ctx, out: &mut Vec<Finding>) {
    wrong_fd(cx, out);
    unterminated_buffer(cx, out);
}

/// I/O on fd 0, unless an error line already showed it.
fn wrong_fd(cx: &Ctx, out: &mut Vec<Finding>) {
    let s = cx.s;
    if s.seed.zero_fd_lines == 0 || s.obs.contains_key(&FailureId::WrongFd) {
        return;
    }
    let Some(ev) = s.seed.zero_fd_evidence.clone() else {
        return;
    };
    let mut f = Finding::new(
        FailureId::WrongFd,
        Side::ClientBug,
        Certainty::Likely,
        &cx.name,
    );
    f.count = s.seed.zero_fd_lines;
    f.evidence.push(ev);
    out.push(f.detail(format!(
        "{} progress line{} show sockfd:0: once it stops creating, the loop keeps calling send/recv on the last `sockfd`, fd 0 (stdin), which fails with ENOTSOCK",
        thousands(s.seed.zero_fd_lines),
        plural(s.seed.zero_fd_lines)
    )));
}

fn unterminated_buffer(cx: &Ctx, out: &mut Vec<Finding>) {
    let s = cx.s;
    if s.seed.recv_garbage == 0 {
        return;
    }
    let mut f = Finding::new(
        FailureId::UnterminatedBuffer,
        Side::ClientBug,
        Certainty::Certain,
        &cx.name,
    );
    f.count = s.seed.recv_garbage;
    f.evidence = s.seed.recv_evidence.clone();
    out.push(f.detail(format!(
        "{} of {} ` RecvBuffer:` prints ran into non-printable bytes",
        thousands(s.seed.recv_garbage),
        thousands(s.seed.recv_buffers)
    )));
}

#[cfg(test)]
mod tests {
    use super::super::testing::{findings, of};
    use super::*;

    #[test]
    fn progress_on_fd_zero_is_io_on_stdin() {
        let log = "connections: 999, sockfd:1002, time_used:400\nconnections: 1999, sockfd:0, time_used:400\nconnections: 2999, sockfd:0, time_used:400\n";
        let f = findings(&[("client.txt", log)]);
        let w = of(&f, FailureId::WrongFd);
        assert_eq!(w.len(), 1, "{f:#?}");
        assert_eq!((w[0].side, w[0].count), (Side::ClientBug, 2));
    }

    #[test]
    fn a_receive_buffer_running_into_garbage_is_unterminated() {
        let log = "connections: 999, sockfd:1002, time_used:400\n RecvBuffer:Hello Server: client --> 998\n data from 4\n d\u{1}\u{2}\u{3}\n";
        let f = findings(&[("client.txt", log)]);
        let u = of(&f, FailureId::UnterminatedBuffer);
        assert_eq!(u.len(), 1, "{f:#?}");
        assert_eq!((u[0].certainty, u[0].count), (Certainty::Certain, 1));
        assert!(u[0].explanation.contains("1 of 1"), "{}", u[0].explanation);
    }

    #[test]
    fn clean_receive_buffers_and_real_fds_are_fine() {
        let log = "connections: 999, sockfd:1002, time_used:400\n RecvBuffer:Hello Server: client --> 998\n data from 4\n";
        let f = findings(&[("client.txt", log)]);
        assert!(of(&f, FailureId::UnterminatedBuffer).is_empty(), "{f:#?}");
        assert!(of(&f, FailureId::WrongFd).is_empty(), "{f:#?}");
    }
}
