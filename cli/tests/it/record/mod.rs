//! `kreq record` against the real kernel: needs root and tracefs. Each test skips, saying
//! why, when tracefs cannot be written; `KREQ_REQUIRE_TRACEFS=1` (set by `scripts/test` as
//! root) makes that a failure instead (`kreq_testkit::skip`).

use std::io::{BufRead, BufReader};

use crate::read_events;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TRACEFS: &str = "/sys/kernel/tracing";

mod agreement;

fn kreq() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kreq"))
}

use crate::tmp;

/// True when tests may use tracefs; otherwise says why they skip (`kreq_testkit::skip`).
fn tracefs_usable(test: &str) -> bool {
    kreq_testkit::skip::tracefs(test)
}

/// Start the loopback workload (it waits `wait`: seconds, or until that path exists);
/// returns it and its pid.
fn workload(wait: &str, n: u32) -> (Child, i32) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/workloads/echo_loop.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(wait)
        .arg(n.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("pid line");
    let pid = line
        .trim()
        .strip_prefix("pid ")
        .and_then(|p| p.parse().ok())
        .expect("pid");
    (child, pid)
}

/// `kreq record --json`'s summary, from its stdout.
fn summary(stdout: &[u8]) -> serde_json::Value {
    serde_json::from_slice(stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(stdout)))
}

fn kreq_instances() -> Vec<String> {
    std::fs::read_dir(Path::new(TRACEFS).join("instances"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("kreq-"))
                .collect()
        })
        .unwrap_or_default()
}

/// After `kill -9`, every part file already closed is valid Parquet, and `--cleanup` removes
/// the instance the killed recorder left behind.
#[test]
fn kill_9_leaves_valid_parts_and_cleanup_removes_the_instance() {
    let _serial = crate::tracefs_lock();
    if !tracefs_usable("kill_9_leaves_valid_parts_and_cleanup_removes_the_instance") {
        return;
    }
    let dir = tmp("rec-kill");
    let (mut child, _pid) = workload("0.2", 3000);
    let mut rec = kreq()
        .args([
            "record",
            "-o",
            dir.join("ds").to_str().unwrap_or(""),
            "--rotate-secs",
            "0.3",
            "-d",
            "60",
            "--quiet",
        ])
        .spawn()
        .expect("kreq record");
    let started = Instant::now();
    let parts = |d: &Path| {
        std::fs::read_dir(d.join("ds/events"))
            .map(|r| {
                r.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "parquet"))
                    .count()
            })
            .unwrap_or(0)
    };
    // The encoder runs at nice 19, so parts can lag while the workload keeps the CPUs busy.
    while parts(&dir) < 3 && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let recorder_pid = rec.id();
    rec.kill().expect("kill -9");
    let _ = rec.wait();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        parts(&dir) >= 3,
        "parts written before the kill: {}",
        parts(&dir)
    );
    let b = read_events(&dir.join("ds"));
    assert!(b.num_rows() > 0);
    let left: Vec<String> = kreq_instances()
        .into_iter()
        .filter(|n| n.starts_with(&format!("kreq-{recorder_pid}-")))
        .collect();
    assert_eq!(
        left.len(),
        1,
        "the killed recorder's instance is still there: {left:?}"
    );
    let out = kreq()
        .args(["record", "--cleanup"])
        .output()
        .expect("cleanup");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&left[0]));
    assert!(!kreq_instances().contains(&left[0]));
}

/// SIGTERM stops a recording cleanly: exit 0, a manifest, and no instance left.
#[test]
fn sigterm_drains_closes_and_removes_the_instance() {
    let _serial = crate::tracefs_lock();
    if !tracefs_usable("sigterm_drains_closes_and_removes_the_instance") {
        return;
    }
    let dir = tmp("rec-term");
    let mut rec = kreq()
        .args([
            "record",
            "-o",
            dir.join("ds").to_str().unwrap_or(""),
            "--quiet",
        ])
        .spawn()
        .expect("kreq record");
    std::thread::sleep(Duration::from_millis(1500));
    let pid = rec.id();
    let st = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let status = rec.wait().expect("wait");
    assert!(status.success(), "{status:?}");
    assert!(dir.join("ds/kreq.json").exists());
    assert!(!kreq_instances()
        .iter()
        .any(|n| n.starts_with(&format!("kreq-{pid}-"))));
    read_events(&dir.join("ds"));
}

/// Readers sleep until `buffer_percent` or `--max-wait-ms`, never per event: a busy
/// recording reads many pages in a handful of wakeups, and a smaller mark wakes them more.
#[test]
fn readers_wake_in_batches_set_by_buffer_percent() {
    let _serial = crate::tracefs_lock();
    if !tracefs_usable("readers_wake_in_batches_set_by_buffer_percent") {
        return;
    }
    let dir = tmp("rec-wake");
    // (wakeups, pages, events, spliced pages) for one 2 s recording of the same workload.
    let run = |name: &str, percent: &str, buffer_kb: &str| -> (u64, u64, u64, u64) {
        // The workload starts once the recorder says it records: a fixed delay let a slow
        // start (a cold 500 MB debug binary) miss the whole workload (18 events).
        let go = dir.join(format!("{name}.go"));
        let _ = std::fs::remove_file(&go);
        let (mut child, pid) = workload(go.to_str().unwrap_or(""), 20_000);
        let mut rec = kreq()
            .args([
                "record",
                "-o",
                dir.join(name).to_str().unwrap_or(""),
                "-d",
                "2",
            ])
            .args(["--pid", &pid.to_string(), "--max-wait-ms", "10000"])
            .args([
                "--wake-percent",
                percent,
                "--buffer-kb",
                buffer_kb,
                "--json",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kreq record");
        let mut first = String::new();
        let mut stderr = BufReader::new(rec.stderr.take().expect("stderr"));
        stderr.read_line(&mut first).expect("started line");
        assert!(first.starts_with("recording"), "{first}");
        std::fs::write(&go, "").expect("go");
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
        let mut out = rec.wait_with_output().expect("kreq record");
        out.stderr = (first + &rest).into_bytes();
        let _ = child.kill();
        let _ = child.wait();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        let s = summary(&out.stdout);
        (
            s["readers"]["wakeups"].as_u64().expect("wakeups"),
            s["readers"]["pages"].as_u64().expect("pages"),
            s["events"].as_u64().expect("events"),
            s["readers"]["spliced"].as_u64().expect("spliced"),
        )
    };
    let (w50, p50, e50, s50) = run("p50", "50", "8192");
    // 2 s, woken at half of 8 MiB (1024 4-KiB pages per CPU) or after 10 s: about one wakeup
    // per 1024 pages, plus the final drain (and a spurious one per CPU at most).
    assert!(
        e50 > 20_000,
        "workload too small to say anything: {e50} events"
    );
    assert!(p50 > 20, "{p50} pages");
    // Woken at half full, nearly every page read is a finished one, moved by splice.
    assert!(2 * s50 >= p50, "{s50} of {p50} pages spliced");
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get() as u64);
    assert!(
        w50 <= 2 * cpus + p50 / 1024 + 1,
        "{w50} wakeups for {p50} pages at 50%"
    );
    // A 64 KiB buffer woken at every page: many more wakeups for the same workload.
    let (w0, p0, _, _) = run("p0", "0", "64");
    assert!(
        w0 > 4 * (w50 + 1),
        "{w0} wakeups ({p0} pages) at 0% vs {w50} at 50%"
    );
}

/// The kernel records the readers' own `read` calls into the buffers they read (they are left
/// out when decoding), so a reader that drained until a read came back empty never stopped:
/// 850k near-empty pages and 1.7M events of its own in a 2 s idle recording. A drain now ends
/// at the page the kernel is still writing.
#[test]
fn readers_are_not_kept_busy_by_their_own_reads() {
    let _serial = crate::tracefs_lock();
    if !tracefs_usable("readers_are_not_kept_busy_by_their_own_reads") {
        return;
    }
    let dir = tmp("rec-own");
    let out = kreq()
        .args([
            "record",
            "-o",
            dir.join("ds").to_str().unwrap_or(""),
            "-d",
            "2",
            "--json",
        ])
        .output()
        .expect("kreq record");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    let s = summary(&out.stdout);
    let (pages, own) = (
        s["readers"]["pages"].as_u64().expect("pages"),
        s["own_events_left_out"].as_u64().expect("own events"),
    );
    // Fixed: about 13 pages and 180 own events here; the machine's other work adds some.
    assert!(pages < 2_000, "{pages} pages read in 2 s: {err}");
    assert!(own < 10_000, "{own} events of kreq's own: {err}");
    assert!(
        own > 0,
        "the readers' own reads are recorded and left out: {err}"
    );
}

/// `kreq record --warehouse` commits the recording as one batch under this machine's host
/// name (or `--host`) and the UTC date it was recorded on; a second recording adds a batch.
#[test]
fn a_recording_commits_to_a_warehouse_under_its_host_and_date() {
    let _serial = crate::tracefs_lock();
    let test = "a_recording_commits_to_a_warehouse_under_its_host_and_date";
    if !tracefs_usable(test) {
        return;
    }
    let w = tmp("rec-warehouse").join("w");
    let today = kreq_schemas::warehouse::utc_date(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64,
    );
    for _ in 0..2 {
        let o = kreq()
            .args([
                "record",
                "--duration",
                "0.5",
                "--quiet",
                "--host",
                "rec-host",
            ])
            .arg("--warehouse")
            .arg(&w)
            .output()
            .expect("kreq record");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let o = crate::kreq(&[
        "sql",
        w.to_str().expect("utf8"),
        "select host, date, count(*) > 0 from events group by host, date",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        out.lines().nth(1),
        Some(format!("rec-host,{today},true").as_str())
    );
    let batches = std::fs::read_dir(w.join("current/batches"))
        .expect("batches")
        .count();
    assert_eq!(batches, 2);
}
