//! `c1m flood --protocol` against the servers people run, and `c1m lab
//! --server`: each real server (nginx, Redis, Mosquitto, a Python
//! `websockets` echo server) runs inside a private network namespace of
//! its own (`unshare -n`, loopback only), with its config in a tempdir,
//! started by a small shell script that also runs the flood and stops the
//! server by pid; the namespace goes with the script. `connect` and `line`
//! run against small servers written here, on 127.0.0.1.
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::*;

/// Run `server` (a shell command) in a fresh network namespace, wait
/// until 127.0.0.1:`port` accepts, then `c1m flood 127.0.0.1 port
/// --ports 1 --json` with `flood`; the server is stopped by its pid.
fn flood_in_netns(dir: &Path, server: &str, port: u16, flood: &[&str]) -> Output {
    let args: Vec<String> = flood.iter().map(|a| format!("'{a}'")).collect();
    let script = format!(
        r#"set -u
ip link set lo up
cd '{dir}'
{server} > server.log 2>&1 &
SP=$!
trap 'kill $SP 2>/dev/null; wait $SP 2>/dev/null' EXIT
for i in $(seq 1 200); do
  (echo > /dev/tcp/127.0.0.1/{port}) 2>/dev/null && break
  sleep 0.05
done
'{bin}' flood 127.0.0.1 {port} --ports 1 --json {args}
"#,
        dir = dir.display(),
        bin = BIN,
        args = args.join(" ")
    );
    let child = Command::new("unshare")
        .args(["-n", "bash", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare -n bash");
    wait_bounded(child, Duration::from_secs(120))
}

/// The flood's summary line and every failure line.
fn outcome(out: &Output) -> (Value, Vec<Value>) {
    let recs = records(out);
    let failures = recs
        .iter()
        .filter(|r| r["event"] == "failure")
        .cloned()
        .collect();
    (summary(&recs).clone(), failures)
}

/// All `n` connections verified, and the hold's rounds answered (at least
/// one per connection; the last round may still be out when the hold ends).
fn assert_all_verified(out: &Output, n: u64, rounds: bool) {
    let (s, failures) = outcome(out);
    assert_eq!(s["opened_total"], n, "{}", text(out));
    assert_eq!(s["failed_total"], 0, "{failures:?}");
    assert_eq!(out.status.code(), Some(0), "{}", text(out));
    if rounds {
        let d = &s["details"];
        let sent = d["messages_sent"].as_u64().unwrap();
        let answered = d["messages_answered"].as_u64().unwrap();
        assert!(
            answered >= n && answered <= sent,
            "rounds: {answered} answered of {sent}\n{}",
            text(out)
        );
        assert!(s["errors"].as_object().is_none_or(|e| e.is_empty()), "{s}");
    }
}

#[test]
#[cfg_attr(not(c1m_netns), ignore = "needs root: network namespaces")]
#[cfg_attr(not(c1m_nginx), ignore = "needs nginx (nginx-light)")]
fn http_keep_alive_gets_verify_against_nginx_and_redis_speak_fails_fast() {
    let d = tempfile::tempdir().unwrap();
    let tmp = d.path().display();
    std::fs::write(
        d.path().join("nginx.conf"),
        format!(
            "worker_processes 1;\ndaemon off;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\n\
events {{ worker_connections 8192; }}\n\
http {{ access_log off; keepalive_timeout 3600s; keepalive_requests 100000;\n\
client_body_temp_path {tmp}/b; proxy_temp_path {tmp}/p; fastcgi_temp_path {tmp}/f; uwsgi_temp_path {tmp}/u; scgi_temp_path {tmp}/s;\n\
server {{ listen 127.0.0.1:8080 backlog=8192; location / {{ return 200 \"ok\\n\"; }} }} }}\n"
        ),
    )
    .unwrap();
    let nginx = format!("nginx -p {tmp} -e {tmp}/error.log -c {tmp}/nginx.conf");
    let out = flood_in_netns(
        d.path(),
        &nginx,
        8080,
        &[
            "--protocol=http",
            "-c",
            "5000",
            "--path=/x/{n}",
            "--header=X-C1m: {n}",
            "-T",
            "2s",
            "--message-interval",
            "1s",
        ],
    );
    assert_all_verified(&out, 5000, true);

    // The wrong protocol: nginx answers PING with 400, known at its first
    // byte; the run ends at once, classified, with no timeout.
    let start = Instant::now();
    let out = flood_in_netns(
        d.path(),
        &nginx,
        8080,
        &["--protocol=redis", "-c", "2000", "-T", "0s"],
    );
    let took = start.elapsed();
    let (s, failures) = outcome(&out);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(s["opened_total"], 0);
    assert!(
        s["failures"]["protocol_mismatch"].as_u64().unwrap() > 0,
        "{s}"
    );
    assert!(s["failures"].get("connect_timeout").is_none(), "{s}");
    assert!(
        failures.iter().any(|f| f["detail"]
            .as_str()
            .unwrap()
            .contains("does not speak RESP: it answered 'HTTP/1.1 400 Bad Request'")),
        "{failures:?}"
    );
    assert!(took < Duration::from_secs(3), "took {took:?}: not fast");
}

#[test]
#[cfg_attr(not(c1m_netns), ignore = "needs root: network namespaces")]
#[cfg_attr(not(c1m_redis_server), ignore = "needs redis-server")]
fn redis_ping_pong_verifies_and_maxclients_is_the_servers_limit() {
    let d = tempfile::tempdir().unwrap();
    let tmp = d.path().display();
    let redis = format!(
        "redis-server --port 6400 --bind 127.0.0.1 --save '' --appendonly no --dir {tmp} --maxclients 5500 --tcp-backlog 4096"
    );
    let out = flood_in_netns(
        d.path(),
        &redis,
        6400,
        &[
            "--protocol=redis",
            "-c",
            "5000",
            "-T",
            "2s",
            "--message-interval",
            "1s",
        ],
    );
    assert_all_verified(&out, 5000, true);
    // Past maxclients Redis answers the error, then closes.
    let out = flood_in_netns(
        d.path(),
        &redis,
        6400,
        &["--protocol=redis", "-c", "6000", "-T", "0s"],
    );
    let (s, failures) = outcome(&out);
    // Refused clients hold a slot while Redis answers them, so a run that
    // keeps trying ends a little below maxclients.
    let verified = s["opened_total"].as_u64().unwrap();
    assert!((5000..=5500).contains(&verified), "{}", text(&out));
    assert!(
        s["failures"]["server_connection_limit"].as_u64().unwrap() > 0,
        "{s}"
    );
    assert!(
        failures.iter().any(|f| f["detail"]
            .as_str()
            .unwrap()
            .contains("-ERR max number of clients reached")),
        "{failures:?}"
    );
}

#[test]
#[cfg_attr(not(c1m_netns), ignore = "needs root: network namespaces")]
#[cfg_attr(not(c1m_mosquitto), ignore = "needs mosquitto")]
fn mqtt_connect_connack_and_pings_against_mosquitto() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("mosquitto.conf"),
        "listener 1883 127.0.0.1\nallow_anonymous true\npersistence false\nconnection_messages false\nlog_dest stdout\n",
    )
    .unwrap();
    let out = flood_in_netns(
        d.path(),
        &format!("mosquitto -c {}/mosquitto.conf", d.path().display()),
        1883,
        &[
            "--protocol=mqtt",
            "-c",
            "5000",
            "--prefix=dev-{n}",
            // Mosquitto listens with a backlog of 100: a wider window
            // overflows its accept queue, and a connection whose line is
            // dropped a few times backs off past the 20 s below
            "-w",
            "100",
            "--keepalive",
            "5s",
            "-T",
            "6s",
            "--connect-timeout",
            "20s",
        ],
    );
    // --keepalive 5s: a PINGREQ every 5 s (no --message-interval), the
    // first round within the hold. Flood's pings start with the hold, once
    // every connection is up, and Mosquitto drops a client silent for 1.5
    // keep-alives: at 1 s the 5,000 connects to it (2-3 s on a slow day)
    // outlasted the first clients' keep-alive.
    assert_all_verified(&out, 5000, true);
}

#[test]
#[cfg_attr(not(c1m_netns), ignore = "needs root: network namespaces")]
#[cfg_attr(not(c1m_py_websockets), ignore = "needs Python websockets")]
fn websocket_upgrade_then_text_echo_and_pings_against_python_websockets() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("ws.py"),
        "import asyncio\nfrom websockets.asyncio.server import serve\n\
async def echo(ws):\n    async for m in ws:\n        await ws.send(m)\n\
async def main():\n    async with serve(echo, '127.0.0.1', 9001, ping_interval=None, backlog=8192, compression=None):\n        await asyncio.Future()\n\
asyncio.run(main())\n",
    )
    .unwrap();
    let server = format!("python3 {}/ws.py", d.path().display());
    let common = [
        "--protocol=websocket",
        "-c",
        "5000",
        // A Python server answers 5,000 rounds slowly on a loaded machine:
        // a hold of 4 s leaves every connection time for one answer.
        "-T",
        "4s",
        "--message-interval",
        "1s",
        "--connect-timeout",
        "30s",
        "-w",
        "500",
    ];
    let mut text_echo: Vec<&str> = common.to_vec();
    text_echo.push("--message=hello {n}");
    assert_all_verified(
        &flood_in_netns(d.path(), &server, 9001, &text_echo),
        5000,
        true,
    );
    // Without --message: ping frames, answered by pongs.
    assert_all_verified(
        &flood_in_netns(d.path(), &server, 9001, &common),
        5000,
        true,
    );
}

/// A listener on 127.0.0.1 whose thread serves `n` connections with
/// `each`, keeping them open until joined.
fn small_server(
    n: usize,
    each: fn(&std::net::TcpStream),
) -> (u16, std::thread::JoinHandle<Vec<std::net::TcpStream>>) {
    let (port, mut listeners) = bind_run(FLOOD_BAND, 1);
    let l: TcpListener = listeners.remove(0);
    let h = std::thread::spawn(move || {
        let mut kept = Vec::new();
        for _ in 0..n {
            let Ok((s, _)) = l.accept() else { break };
            each(&s);
            kept.push(s);
        }
        kept
    });
    (port, h)
}

#[test]
fn connect_counts_an_established_connection_and_sends_nothing() {
    fn silent(s: &std::net::TcpStream) {
        s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
    }
    let (port, h) = small_server(300, silent);
    let out = run_c1m(&[
        "flood",
        "127.0.0.1",
        &port.to_string(),
        "--ports",
        "1",
        "-c",
        "300",
        "--protocol",
        "connect",
        "-T",
        "0s",
        "--json",
    ]);
    assert_all_verified(&out, 300, false);
    let (s, _) = outcome(&out);
    assert_eq!(s["bytes_out"], 0, "connect-only sends nothing");
    // The server's side read not one byte before the flood closed.
    for mut c in h.join().unwrap() {
        let mut b = [0u8; 1];
        let n = std::io::Read::read(&mut c, &mut b).unwrap_or(0);
        assert_eq!(n, 0, "connect-only sent a byte");
    }
}

#[test]
fn line_sends_its_message_and_checks_the_expected_reply() {
    /// Reads one line, answers `OK <line>`.
    fn ok(s: &std::net::TcpStream) {
        let mut line = String::new();
        if BufReader::new(s).read_line(&mut line).is_ok() {
            let _ = (&*s).write_all(format!("OK {line}").as_bytes());
        }
    }
    let (port, h) = small_server(200, ok);
    let out = run_c1m(&[
        "flood",
        "127.0.0.1",
        &port.to_string(),
        "--ports",
        "1",
        "-c",
        "200",
        "--protocol",
        "line",
        "--message",
        "HELLO {n}\\n",
        "--expect",
        "/^OK HELLO [0-9]+\\n$/",
        "-T",
        "0s",
        "--json",
    ]);
    assert_all_verified(&out, 200, false);
    drop(h.join().unwrap());
    // A server that answers something else and closes: every attempt
    // fails at once, none is verified.
    fn wrong(s: &std::net::TcpStream) {
        let mut line = String::new();
        if BufReader::new(s).read_line(&mut line).is_ok() {
            let _ = (&*s).write_all(b"NO\n");
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
    let (port, h) = small_server(50, wrong);
    let out = run_c1m(&[
        "flood",
        "127.0.0.1",
        &port.to_string(),
        "--ports",
        "1",
        "-c",
        "50",
        "--protocol",
        "line",
        "--message",
        "HELLO {n}\\n",
        "--expect",
        "OK HELLO {n}",
        "-T",
        "0s",
        "--json",
        "--connect-timeout",
        "5s",
    ]);
    let (s, _) = outcome(&out);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(s["opened_total"], 0);
    assert!(
        s["failures"]["peer_disconnect"].as_u64().unwrap() > 0,
        "{s}"
    );
    drop(h.join().unwrap());
    // Bad flags are named.
    let out = run_c1m(&["flood", "127.0.0.1", "1", "--protocol", "line"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--protocol line needs --message"),
        "{}",
        text(&out)
    );
    let out = run_c1m(&[
        "flood",
        "127.0.0.1",
        "1",
        "--protocol",
        "redis",
        "--path",
        "/x",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--path: only for --protocol http|websocket"),
        "{}",
        text(&out)
    );
}

#[test]
#[cfg_attr(not(c1m_netns), ignore = "needs root: network namespaces")]
#[cfg_attr(not(c1m_redis_server), ignore = "needs redis-server")]
fn lab_with_redis_shows_the_one_process_fd_cap() {
    let hard = c1m::sys::limits::nofile(c1m::sys::limits::Target::This)
        .unwrap()
        .hard;
    let cap = hard - 32;
    let target = cap + 10_000;
    let d = tempfile::tempdir().unwrap();
    let out = Lab::new(target)
        .hold("1s")
        .netns_on()
        .json()
        .args(&["--server", "redis"])
        .run(d.path(), Duration::from_secs(180));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // doctor's warning, before the run.
    let err = stderr(&out);
    let warn = err
        .lines()
        .position(|l| l.starts_with("lab: warning: redis is one process"))
        .unwrap_or_else(|| panic!("no warning: {err}"));
    assert!(
        err.lines()
            .nth(warn)
            .unwrap()
            .contains(&c1m::util::thousands(cap)),
        "{err}"
    );
    let report = lab_report(&out);
    assert_eq!(report["verified"], cap, "{report}");
    assert_eq!(report["reached"], false);
    // Redis's own line in the report's logs, and analyze's findings from
    // it and from the clients.
    let dir = Path::new(report["report_dir"].as_str().unwrap());
    let log = std::fs::read_to_string(dir.join("logs/redis.log")).unwrap();
    assert!(
        log.contains(&format!("maxclients has been reduced to {cap}")),
        "{log}"
    );
    let conf = std::fs::read_to_string(dir.join("server/redis.conf")).unwrap();
    assert!(conf.contains("maxclients "), "{conf}");
    let ids = finding_ids(&report);
    assert!(
        ids.contains(&"fd_limit") && ids.contains(&"server_connection_limit"),
        "{ids:?}"
    );
    let fd = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "fd_limit")
        .unwrap();
    assert!(fd["evidence"].to_string().contains("redis.log"), "{fd}");
}

#[test]
#[cfg_attr(not(c1m_netns), ignore = "needs root: network namespaces")]
#[cfg_attr(not(c1m_nginx), ignore = "needs nginx (nginx-light)")]
fn lab_with_nginx_reaches_its_target_with_the_generated_config() {
    let d = tempfile::tempdir().unwrap();
    let out = Lab::new(6000)
        .hold("1s")
        .netns_on()
        .json()
        .args(&["--server", "nginx"])
        .run(d.path(), Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = lab_report(&out);
    assert_eq!(report["verified"], 6000, "{report}");
    let dir = Path::new(report["report_dir"].as_str().unwrap());
    let conf = std::fs::read_to_string(dir.join("server/nginx.conf")).unwrap();
    for want in [
        "worker_processes ",
        "worker_connections ",
        "listen 127.0.0.1:8891 reuseport",
    ] {
        assert!(conf.contains(want), "{want} not in {conf}");
    }
    assert!(
        report["server_peak_connections"].as_u64().unwrap() >= 6000,
        "{report}"
    );
    // The report says what the clients spoke (their start lines).
    assert_eq!(report["protocol"], "http (path /)", "{report}");
    assert_eq!(report["clients"][0]["protocol"]["name"], "http", "{report}");
}
