//! Ephemeral port exhaustion for real, in a throwaway network namespace
//! (its own loopback and its own net.ipv4.ip_local_port_range, so the host
//! is never changed): one destination port and a 200-port range make
//! `c1m flood` stop with `ephemeral_ports_exhausted` and the count reached;
//! two source addresses get it past that point. Its own test binary,
//! because unshare() moves the calling thread into the new namespace.
mod common;

use std::process::Command;

use common::*;

#[test]
#[cfg_attr(not(c1m_netns), ignore = "needs root: network namespaces")]
fn ports_exhaust_without_sources_and_sources_pass_that_point() {
    // SAFETY: unshare only changes this thread's network namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        panic!(
            "unshare(CLONE_NEWNET) failed ({}) although `unshare -n` worked at build time",
            std::io::Error::last_os_error()
        );
    }
    let up = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status();
    assert!(
        up.as_ref().is_ok_and(|s| s.success()),
        "`ip link set lo up` in the new namespace: {up:?}"
    );
    // Only this namespace's range changes; the host keeps its own.
    std::fs::write("/proc/sys/net/ipv4/ip_local_port_range", "40000 40199")
        .expect("writing ip_local_port_range inside the namespace");
    let server = EchoServer::start(1);

    let out = run_flood(&server, 300, &["--hold", "0s", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let recs = records(&out);
    let s = summary(&recs);
    let verified = s["details"]["verified"].as_u64().unwrap();
    assert!(
        (150..=200).contains(&verified),
        "verified {verified} with 200 ephemeral ports"
    );
    assert!(
        s["failures"]["ephemeral_ports_exhausted"].as_u64().unwrap() >= 8,
        "{s}"
    );
    assert_eq!(s["details"]["retired"][0]["key"], "EADDRNOTAVAIL");
    let reason = s["details"]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("reached {verified} of 300"))
            && reason.contains("ephemeral_ports_exhausted")
            && reason.contains("--sources")
            && reason.contains("40000 40199"),
        "{reason}"
    );
    assert!(recs.iter().any(|r| r["event"] == "failure"
        && r["failure"] == "ephemeral_ports_exhausted"
        && r["errno"] == 99));
    drop(server);

    // Same range, two source addresses: 2 x 200 four-tuples, 300 pass.
    let server = EchoServer::start(1);
    let out = run_flood(
        &server,
        300,
        &["--hold", "0s", "--sources", "127.0.0.2-127.0.0.3", "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let recs = records(&out);
    let s = summary(&recs);
    assert_eq!(s["details"]["verified"], 300);
    assert!(s["details"]["verified"].as_u64().unwrap() > verified);
    assert_eq!(server.total_accepted(), 300);
}
