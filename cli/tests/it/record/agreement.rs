//! The agreement test: one workload recorded by `kreq record` (binary) and, in a second
//! tracefs instance, as kernel text.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{kreq, kreq_instances, tmp, tracefs_usable, workload, TRACEFS};
use crate::read_events;

/// Rows in per-CPU time order: `(cpu, ts_ns, canonical text of the typed columns)`.
/// Each instance stamps its own copy of an event, so times differ by a few µs between two
/// instances, but the order of events on one CPU is the same.
fn rows(b: &arrow::array::RecordBatch) -> Vec<(u16, i64, String)> {
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    use kreq_schemas::events as e;
    let cols = [
        e::TID,
        e::EVENT,
        e::FD,
        e::COUNT,
        e::RET,
        e::PREV_TID,
        e::NEXT_TID,
        e::WAKE_TID,
        e::LENGTH,
        e::SPORT,
        e::DPORT,
    ];
    let opts = FormatOptions::default().with_null("-");
    let ts = b
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .expect("ts")
        .clone();
    let cpu = b
        .column(1)
        .as_any()
        .downcast_ref::<arrow::array::UInt16Array>()
        .expect("cpu")
        .clone();
    let fmts: Vec<_> = cols
        .iter()
        .map(|c| {
            ArrayFormatter::try_new(b.column_by_name(c).expect("col").as_ref(), &opts).expect("fmt")
        })
        .collect();
    let mut out: Vec<(u16, i64, String)> = (0..b.num_rows())
        .map(|r| {
            let text: Vec<String> = fmts.iter().map(|f| f.value(r).to_string()).collect();
            (cpu.value(r), ts.value(r), text.join(" "))
        })
        .collect();
    out.sort_by_key(|(c, t, _)| (*c, *t));
    out
}

/// The same workload recorded by `kreq record` (binary) and, in a second instance with the
/// same events and pid scope, as kernel text: event counts per type and typed values agree.
#[test]
fn binary_recording_agrees_with_text_of_the_same_events() {
    let _serial = crate::tracefs_lock();
    if !tracefs_usable("binary_recording_agrees_with_text_of_the_same_events") {
        return;
    }
    let dir = tmp("rec-agree");
    let go = dir.join("go");
    let (mut child, pid) = workload(go.to_str().unwrap_or(""), 200);
    // Text side: a second kreq- instance (so --cleanup removes it after a crash).
    let text_inst = Path::new(TRACEFS).join(format!("instances/kreq-{}-text", std::process::id()));
    let _ = std::fs::remove_dir(&text_inst);
    std::fs::create_dir(&text_inst).expect("text instance");
    let w = |rel: &str, v: &str| {
        std::fs::write(text_inst.join(rel), v).unwrap_or_else(|e| panic!("{rel}: {e}"))
    };
    w("tracing_on", "0");
    w("trace_clock", "mono");
    w("buffer_size_kb", "8192");
    // The same scope as `kreq record --pid`: every thread the workload has now (its echo
    // server thread, once started), and its forks.
    let threads = || std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count());
    let until = Instant::now() + Duration::from_secs(10);
    while threads() < 2 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    let none: [&Path; 0] = [];
    let tids = kreq_record::scope::scope_tids(&[pid], &none).expect("scope");
    assert!(tids.len() > 1, "the workload runs threads: {tids:?}");
    let tids: Vec<String> = tids.iter().map(|t| t.to_string()).collect();
    w("options/event-fork", "1");
    w("set_event_pid", &tids.join(" "));
    let events = [
        "sched/sched_switch",
        "sched/sched_wakeup",
        "syscalls/sys_enter_recvfrom",
        "syscalls/sys_exit_recvfrom",
        "syscalls/sys_enter_sendto",
        "syscalls/sys_exit_sendto",
        "sock/sock_send_length",
        "sock/sock_recv_length",
        "tcp/tcp_probe",
        "tcp/tcp_rcv_space_adjust",
        "sock/inet_sock_set_state",
    ];
    for e in events {
        w(&format!("events/{e}/enable"), "1");
    }
    w("tracing_on", "1");
    let mut args = vec![
        "record".to_owned(),
        "-o".into(),
        dir.join("bin").display().to_string(),
        "--pid".into(),
        pid.to_string(),
        "--no-default-events".into(),
    ];
    for e in events {
        args.push("-e".into());
        args.push(e.replace('/', ":"));
    }
    // Start the workload only once kreq is tracing (its first stderr line says so), stop kreq
    // once the workload is done.
    let mut recorder = kreq()
        .args(&args)
        .stderr(Stdio::piped())
        .spawn()
        .expect("kreq record");
    let mut first = String::new();
    BufReader::new(recorder.stderr.as_mut().expect("stderr"))
        .read_line(&mut first)
        .expect("kreq record's start line");
    assert!(
        first.starts_with("recording"),
        "kreq record did not start: {first}"
    );
    // kreq leaves out scheduler events that name its own threads; the text side has them.
    let kreq_tids: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", recorder.id()))
        .expect("kreq threads")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    std::fs::write(&go, "").expect("go");
    let mut rest = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().expect("stdout"), &mut rest)
        .expect("workload output");
    let _ = child.wait();
    // Compare what happened after the workload saw its go file: before that only the text
    // instance, started first, traced its wait loop.
    let go_ns: i64 = rest
        .lines()
        .find_map(|l| l.strip_prefix("go ")?.trim().parse().ok())
        .expect("go time");
    let st = Command::new("kill")
        .args(["-INT", &recorder.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let rec = recorder.wait_with_output().expect("kreq record");
    w("tracing_on", "0");
    let text = std::fs::read(text_inst.join("trace")).expect("trace text");
    w("events/enable", "0");
    kreq_record::instance::remove_dir(&text_inst).expect("remove text instance");
    assert!(
        rec.status.success(),
        "{}",
        String::from_utf8_lossy(&rec.stderr)
    );
    std::fs::write(dir.join("text.txt"), &text).expect("write text");
    let ing = kreq()
        .args([
            "ingest",
            dir.join("text.txt").to_str().unwrap_or(""),
            "-o",
            dir.join("txt").to_str().unwrap_or(""),
            "--quiet",
        ])
        .output()
        .expect("ingest");
    assert!(
        ing.status.success(),
        "{}",
        String::from_utf8_lossy(&ing.stderr)
    );
    let (b, t) = (
        rows(&read_events(&dir.join("bin"))),
        rows(&read_events(&dir.join("txt"))),
    );
    let b: Vec<_> = b.into_iter().filter(|r| r.1 >= go_ns).collect();
    let names_kreq = |r: &(u16, i64, String)| {
        let f: Vec<&str> = r.2.split(' ').collect();
        [0, 5, 6, 7]
            .iter()
            .any(|&i| f.get(i).is_some_and(|v| kreq_tids.iter().any(|k| k == v)))
    };
    let t: Vec<_> = t
        .into_iter()
        .filter(|r| r.1 >= go_ns && !names_kreq(r))
        .collect();
    let sends = b
        .iter()
        .filter(|r| r.2.contains(" sys_enter_sendto "))
        .count();
    assert!(
        sends >= 200,
        "the workload's 200 sends were recorded ({sends})"
    );
    if b.len() != t.len() {
        let only = |x: &[(u16, i64, String)], y: &[(u16, i64, String)]| {
            let mut y: Vec<&str> = y.iter().map(|r| r.2.as_str()).collect();
            let mut out = Vec::new();
            for r in x {
                match y.iter().position(|s| *s == r.2) {
                    Some(i) => {
                        y.swap_remove(i);
                    }
                    None => out.push(r.clone()),
                }
            }
            out
        };
        panic!(
            "binary {} rows, text {} rows; only in binary: {:?}; only in text: {:?}",
            b.len(),
            t.len(),
            only(&b, &t),
            only(&t, &b)
        );
    }
    // Same rows, CPU for CPU, as multisets.
    let sorted = |x: &[(u16, i64, String)]| {
        let mut v: Vec<(u16, String)> = x.iter().map(|r| (r.0, r.2.clone())).collect();
        v.sort();
        v
    };
    let (bs, ts) = (sorted(&b), sorted(&t));
    let differ: Vec<_> = bs.iter().zip(&ts).filter(|(x, y)| x != y).take(5).collect();
    assert!(
        differ.is_empty(),
        "rows only on one side (binary, text): {differ:#?}"
    );
    // Same order, except where an interrupt nested between the two instances' writes of one
    // event: then the instances store it on either side of the interrupt's events (seen under
    // CI load: a softirq's sched_wakeup before the tcp_rcv_space_adjust it interrupted).
    let moved = b
        .iter()
        .zip(&t)
        .filter(|(x, y)| x.0 != y.0 || x.2 != y.2)
        .count();
    assert!(
        moved * 100 <= b.len(),
        "{moved} of {} rows in a different order",
        b.len()
    );
    // Text has µs resolution; the two instances stamp each event separately.
    let worst = b
        .iter()
        .zip(&t)
        .filter(|(x, y)| x.0 == y.0 && x.2 == y.2)
        .map(|(x, y)| (x.1 - y.1).abs())
        .max()
        .unwrap_or(0);
    assert!(worst < 1_000_000, "timestamps differ by up to {worst} ns");
    assert!(kreq_instances()
        .iter()
        .all(|n| !n.contains(&format!("-{}-", std::process::id()))));
}
