//! `--metrics`: serve's and flood's OpenMetrics endpoints, scraped by a
//! real Prometheus with the project's own scrape config
//! (`deploy/prometheus/`), and by hostile scrapers that must not stall
//! serve or grow its memory; the shipped Prometheus files checked by
//! promtool.
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// GET `path` from `addr`; (status, body). Panics on a dead endpoint.
fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw)
        .unwrap_or_else(|e| panic!("reading {addr}{path}: {e}"));
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status from {addr}: {raw:?}"));
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_string())
}

/// The value of the first sample of `name` whose labels include `label`
/// (`role="serve"`) in a scrape.
fn sample(body: &str, name: &str, label: &str) -> Option<f64> {
    body.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?.strip_prefix('{')?;
        let (labels, value) = rest.split_once("} ")?;
        labels.contains(label).then(|| value.trim().parse().ok())?
    })
}

/// Wait until `addr` answers /metrics.
fn wait_metrics(addr: SocketAddr, limit: Duration) {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{addr} never answered");
}

fn serve(port: u16, ports: u16, max: u64, metrics: u16, extra: &[&str]) -> KillOnDrop {
    let mut args = vec![
        "serve".to_string(),
        "--bind".into(),
        "127.0.0.1".into(),
        "--port".into(),
        port.to_string(),
        "--ports".into(),
        ports.to_string(),
        "--max-connections".into(),
        max.to_string(),
        "--metrics".into(),
        format!("127.0.0.1:{metrics}"),
        "--json".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = c1m(&refs);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let child = cmd.spawn().expect("starting c1m serve");
    let k = KillOnDrop(Some(child));
    wait_metrics(
        SocketAddr::from(([127, 0, 0, 1], metrics)),
        Duration::from_secs(20),
    );
    k
}

/// Raise this test process's soft RLIMIT_NOFILE to its hard limit (for
/// thousands of scraper connections).
fn raise_nofile() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("setrlimit");
    hard
}

fn stop(k: KillOnDrop) -> std::process::Output {
    let child = k.take();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    wait_bounded(child, Duration::from_secs(30))
}

#[test]
fn hostile_scrapers_neither_stall_serve_nor_grow_its_memory() {
    let hard = raise_nofile();
    let idle_conns = 3000.min(hard.saturating_sub(2000)) as usize;
    let base = free_base(METRICS_BAND, 5);
    let (port, mport) = (base, base + 4);
    let maddr = SocketAddr::from(([127, 0, 0, 1], mport));
    let server = serve(port, 4, 10_000, mport, &["--procs", "1"]);
    let pid = server.0.as_ref().unwrap().id();
    let (status, body) = http_get(maddr, "/metrics");
    assert_eq!(status, 200, "{body}");
    let rss_before = rss(pid);

    // Thousands that connect and never send, some that send garbage,
    // some that send a request and never read, one that sends too much.
    let mut hostile: Vec<TcpStream> = Vec::new();
    for _ in 0..idle_conns {
        if let Ok(s) = TcpStream::connect_timeout(&maddr, Duration::from_secs(1)) {
            hostile.push(s);
        }
    }
    assert!(
        hostile.len() >= idle_conns / 2,
        "only {} connected",
        hostile.len()
    );
    for i in 0..50u8 {
        let mut s = TcpStream::connect(maddr).unwrap();
        let _ = s.write_all(&[i, 0xff, 0, b'\r', b'\n', 0x80, b'\n']);
        hostile.push(s);
        let mut s = TcpStream::connect(maddr).unwrap();
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n");
        hostile.push(s);
    }
    let mut big = TcpStream::connect(maddr).unwrap();
    big.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
    let junk = vec![b'A'; 64 * 1024];
    let _ = big.write_all(&junk);

    // serve keeps serving meanwhile: 3,000 connections verified.
    let started = Instant::now();
    let out = run_c1m(&[
        "flood",
        "127.0.0.1",
        &port.to_string(),
        "--ports",
        "4",
        "-c",
        "3000",
        "--hold",
        "1s",
        "--json",
    ]);
    assert!(out.status.success(), "flood failed: {}", stderr(&out));
    let recs = records(&out);
    assert_eq!(summary(&recs)["details"]["verified"], 3000);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "flood took {:?} next to the hostile scrapers",
        started.elapsed()
    );
    // A real scrape is still answered, with the live figures.
    let until = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let (status, body) = http_get(maddr, "/metrics");
        assert_eq!(status, 200);
        if sample(&body, "c1m_accepts_total", "role=\"serve\"") == Some(3000.0) {
            break body;
        }
        assert!(Instant::now() < until, "no accepts in {body}");
    };
    assert!(body.contains("c1m_connections"), "{body}");
    // Bad requests get a 4xx, not a hang.
    assert_eq!(http_get(maddr, "/nothing").0, 404);
    let grown = rss(pid).saturating_sub(rss_before);
    assert!(
        grown < 8 << 20,
        "serve's parent grew by {grown} bytes with {} hostile scrapers",
        hostile.len()
    );
    drop(hostile);
    drop(big);

    // The port is taken now: a second serve says so and stops at start.
    let base2 = free_base(METRICS_BAND, 2);
    let out = run_c1m(&[
        "serve",
        "--bind",
        "127.0.0.1",
        "--port",
        &base2.to_string(),
        "--ports",
        "1",
        "--metrics",
        &format!("127.0.0.1:{mport}"),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("--metrics 127.0.0.1:{mport}")) && err.contains("in use"),
        "{err}"
    );
    let out = stop(server);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A Prometheus started on the project's scrape config, its lab job's
/// targets replaced by the test's endpoints. (Only the scrape test uses
/// it, and only where promtool is installed.)
#[cfg_attr(not(c1m_promtool), allow(dead_code))]
struct Prometheus {
    _child: KillOnDrop,
    _dir: tempfile::TempDir,
    addr: SocketAddr,
}

fn deploy(file: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/prometheus")
        .join(file)
        .to_string_lossy()
        .into_owned()
}

#[cfg_attr(not(c1m_promtool), allow(dead_code))]
impl Prometheus {
    fn start(targets: &[u16]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = std::fs::read_to_string(deploy("prometheus.yml")).unwrap();
        let lab_line = config
            .lines()
            .find(|l| l.contains("- targets: [\"127.0.0.1:9400\""))
            .expect("the lab job's static targets in prometheus.yml")
            .to_string();
        let list: Vec<String> = targets
            .iter()
            .map(|p| format!("\"127.0.0.1:{p}\""))
            .collect();
        let indent = &lab_line[..lab_line.find('-').unwrap()];
        let config = config.replace(
            &lab_line,
            &format!("{indent}- targets: [{}]", list.join(", ")),
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        std::fs::copy(deploy("c1m.rules.yml"), dir.path().join("c1m.rules.yml")).unwrap();
        std::fs::create_dir(dir.path().join("targets")).unwrap();
        let port = free_base(METRICS_BAND, 1);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting prometheus");
        let p = Prometheus {
            _child: KillOnDrop(Some(child)),
            _dir: dir,
            addr,
        };
        wait_metrics(addr, Duration::from_secs(30));
        let until = Instant::now() + Duration::from_secs(30);
        while http_get(addr, "/-/ready").0 != 200 {
            assert!(Instant::now() < until, "prometheus never got ready");
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    /// The first value of an instant query, if it has one.
    fn query(&self, promql: &str) -> Option<f64> {
        let mut q = String::new();
        for b in promql.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                q.push(b as char);
            } else {
                q.push_str(&format!("%{b:02X}"));
            }
        }
        let (status, body) = http_get(self.addr, &format!("/api/v1/query?query={q}"));
        assert_eq!(status, 200, "{promql}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("prometheus JSON");
        v["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|s| s.parse().ok())
    }

    /// Wait until `promql` is at least `want`; the last value.
    fn wait_for(&self, promql: &str, want: f64, limit: Duration) -> f64 {
        let until = Instant::now() + limit;
        loop {
            let v = self.query(promql);
            if v.is_some_and(|v| v >= want) {
                return v.unwrap_or(0.0);
            }
            assert!(
                Instant::now() < until,
                "{promql} stayed at {v:?}, below {want}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// `promtool check metrics` on a scrape.
#[cfg(c1m_promtool)]
fn promtool_check_metrics(body: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = wait_bounded(child, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{body}",
        text(&out),
        stderr(&out)
    );
}

#[test]
#[cfg_attr(
    not(all(c1m_prometheus, c1m_promtool)),
    ignore = "needs prometheus and promtool (.ci/run installs them)"
)]
fn prometheus_scrapes_serve_and_flood_at_twenty_thousand() {
    #[cfg(c1m_promtool)]
    {
        raise_nofile();
        let n: u64 = 20_000;
        let base = free_base(METRICS_BAND, 24);
        let (port, ports) = (base, 20u16);
        let (m_serve, m_flood, m_refused) = (base + 20, base + 21, base + 22);
        let prom = Prometheus::start(&[m_serve, m_flood, m_refused]);
        // serve: 2 workers of at most 10,500 (the per-process fd limit is
        // 20,000); flood: 2 shards of 10,000.
        let server = serve(port, ports, 21_000, m_serve, &["--procs", "2"]);
        let mut flood = c1m(&[
            "flood",
            "127.0.0.1",
            &port.to_string(),
            "--ports",
            &ports.to_string(),
            "-c",
            &n.to_string(),
            "--procs",
            "2",
            "--hold",
            "6s",
            "--json",
            "--metrics",
            &format!("127.0.0.1:{m_flood}"),
        ]);
        let flood = KillOnDrop(Some(flood.spawn().expect("starting flood")));
        let serve_q = r#"max_over_time(c1m_connections{role="serve",job="c1m-lab"}[5m])"#;
        prom.wait_for(serve_q, n as f64, Duration::from_secs(90));
        // At the peak: the scrape passes promtool's checks.
        let (status, body) = http_get(SocketAddr::from(([127, 0, 0, 1], m_serve)), "/metrics");
        assert_eq!(status, 200);
        assert!(
            sample(&body, "c1m_connections", "role=\"serve\"").is_some_and(|v| v >= n as f64),
            "{body}"
        );
        promtool_check_metrics(&body);
        let out = wait_bounded(flood.take(), Duration::from_secs(120));
        assert!(out.status.success(), "flood: {}", stderr(&out));
        let recs = records(&out);
        let verified = summary(&recs)["details"]["verified"].as_u64().unwrap();
        assert_eq!(verified, n);
        let flood_q = r#"max_over_time(c1m_verified_total{role="flood",shard="1/1"}[5m])"#;
        let seen = prom.wait_for(flood_q, verified as f64, Duration::from_secs(30));
        assert_eq!(seen, verified as f64, "Prometheus vs flood's summary");
        // The connect latency histogram is the workers' (--procs 2): every
        // verified connection was timed.
        let latency_q =
            r#"max_over_time(c1m_connect_latency_seconds_count{role="flood",shard="1/1"}[5m])"#;
        prom.wait_for(latency_q, verified as f64, Duration::from_secs(30));

        // A deliberately refused run: nothing listens on its port.
        let closed = free_base(METRICS_BAND, 1);
        let out = run_c1m(&[
            "flood",
            "127.0.0.1",
            &closed.to_string(),
            "--ports",
            "1",
            "-c",
            "100",
            "--json",
            "--metrics",
            &format!("127.0.0.1:{m_refused}"),
        ]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let recs = records(&out);
        let refused = summary(&recs)["failures"]["connection_refused"]
            .as_u64()
            .expect("refused count in the summary");
        assert!(refused > 0);
        let q = format!(
            r#"max_over_time(c1m_failures_total{{failure="connection_refused",instance="127.0.0.1:{m_refused}"}}[5m])"#
        );
        let seen = prom.wait_for(&q, refused as f64, Duration::from_secs(30));
        assert_eq!(seen, refused as f64);
        let out = stop(server);
        assert!(out.status.success(), "{}", stderr(&out));
    }
}

#[test]
#[cfg_attr(not(c1m_promtool), ignore = "needs promtool (.ci/run installs it)")]
fn the_shipped_prometheus_files_pass_promtool() {
    for args in [
        vec!["check", "config", "prometheus.yml"],
        vec!["check", "rules", "c1m.rules.yml"],
        vec!["test", "rules", "c1m.rules.test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(&args)
            .current_dir(deploy(""))
            .output()
            .expect("promtool");
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The endpoints a `c1m lab --metrics` run prints (`lab: metrics of serve
/// at http://ADDR/metrics`, then each client's), in that order.
fn printed_endpoint(line: &str) -> Option<SocketAddr> {
    let url = line
        .strip_prefix("lab: metrics of ")?
        .split(" at ")
        .nth(1)?;
    url.trim()
        .strip_prefix("http://")?
        .strip_suffix("/metrics")?
        .parse()
        .ok()
}

#[test]
fn lab_metrics_endpoints_answer_while_the_lab_runs() {
    use std::io::BufRead;
    // Three endpoints (serve, client 1, client 2) then the lab's 4 server
    // ports, for when the lab runs on the host's loopback.
    let base = free_base(METRICS_BAND, 7);
    let dir = tempfile::tempdir().unwrap();
    let mut child = Lab::new(3000)
        .hold("6s")
        .args(&[
            "--metrics",
            &format!("127.0.0.1:{base}"),
            "--port",
            &(base + 3).to_string(),
        ])
        .command(dir.path())
        .spawn()
        .expect("starting c1m lab");
    // stdout read on a thread, so the lab never blocks on a full pipe.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    let mut lab = KillOnDrop(Some(child));
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut seen = String::new();
    let mut endpoints: Vec<SocketAddr> = Vec::new();
    let until = Instant::now() + Duration::from_secs(60);
    while endpoints.len() < 3 && Instant::now() < until {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            endpoints.extend(printed_endpoint(&line));
            seen.push_str(&line);
            seen.push('\n');
        }
    }
    let want: Vec<SocketAddr> = (0..3)
        .map(|k| SocketAddr::from(([127, 0, 0, 1], base + k)))
        .collect();
    assert_eq!(endpoints, want, "printed endpoints:\n{seen}");

    // Poll every endpoint until each shows live connections, while the lab
    // still runs: serve's accepted, each client's verified.
    let roles = ["role=\"serve\"", "role=\"flood\"", "role=\"flood\""];
    let mut live = [0f64; 3];
    let until = Instant::now() + Duration::from_secs(60);
    while live.iter().any(|&v| v <= 0.0) {
        assert!(
            lab.0.as_mut().unwrap().try_wait().unwrap().is_none(),
            "the lab ended before every endpoint showed connections ({live:?}):\n{seen}"
        );
        assert!(
            Instant::now() < until,
            "endpoints never showed connections: {live:?}"
        );
        for (i, addr) in endpoints.iter().enumerate() {
            let (status, body) = http_get(*addr, "/metrics");
            assert_eq!(status, 200, "{addr}: {body}");
            // Before its first stats interval a process may publish none.
            live[i] = sample(&body, "c1m_connections", roles[i]).unwrap_or(0.0);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        live[0] <= 3000.0 * 1.05 && live[1] + live[2] <= 3000.0,
        "{live:?}"
    );

    let out = wait_bounded(lab.take(), Duration::from_secs(120));
    reader.join().unwrap();
    while let Ok(line) = rx.try_recv() {
        seen.push_str(&line);
        seen.push('\n');
    }
    assert_eq!(out.status.code(), Some(0), "{seen}\n{}", stderr(&out));
    // The report lists them.
    let report_dir = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .expect("the run's report folder");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report_dir.join("report.json")).unwrap())
            .unwrap();
    let listed: Vec<String> = want.iter().map(|a| format!("http://{a}/metrics")).collect();
    assert_eq!(report["metrics_endpoints"], serde_json::json!(listed));
}
