//! The recorder as a library, against the real kernel: needs root and tracefs, and skips
//! saying why without them unless `KREQ_REQUIRE_TRACEFS` is set (`kreq_testkit::skip`). Each
//! test holds the tracefs lock, so no two trace at once, in this binary or another.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch};
use kreq_record::{record, RecordOptions, Silent};
use kreq_schemas::dataset::Manifest;
use kreq_testkit::skip::TRACEFS;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// Every file of `table`, read whole; panics naming a file that is not valid Parquet.
fn read_table(ds: &Path, table: &str) -> Vec<(String, Vec<RecordBatch>)> {
    let mut files: Vec<_> = std::fs::read_dir(ds.join(table))
        .unwrap_or_else(|e| panic!("{table}: {e}"))
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let r = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(f).expect("open"))
                .unwrap_or_else(|e| panic!("{}: not valid parquet: {e}", f.display()))
                .build()
                .expect("reader");
            let batches = r.map(|b| b.expect("batch")).collect();
            let name = format!("{table}/{}", f.file_name().expect("name").to_string_lossy());
            (name, batches)
        })
        .collect()
}

/// Every `events` row as the text of `columns`, in file order.
fn event_rows(ds: &Path, columns: &[&str]) -> Vec<Vec<String>> {
    let opts = arrow::util::display::FormatOptions::default();
    let mut out = Vec::new();
    for (_, batches) in read_table(ds, "events") {
        for b in batches {
            let cols: Vec<_> = columns
                .iter()
                .map(|c| {
                    let col = b.column_by_name(c).expect("column");
                    arrow::util::display::ArrayFormatter::try_new(col.as_ref(), &opts).expect("fmt")
                })
                .collect();
            out.extend(
                (0..b.num_rows()).map(|r| cols.iter().map(|f| f.value(r).to_string()).collect()),
            );
        }
    }
    out
}

/// The Arrow schema of a Parquet file.
fn file_schema(path: &Path) -> arrow::datatypes::SchemaRef {
    let file = std::fs::File::open(path).expect("open");
    ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap_or_else(|e| panic!("{}: not valid parquet: {e}", path.display()))
        .schema()
        .clone()
}

/// A process that makes syscalls for `secs` seconds (reads of /proc, sleeps).
fn busy(secs: u32) -> Child {
    Command::new("sh")
        .args([
            "-c",
            &format!("end=$(($(date +%s)+{secs})); while [ $(date +%s) -lt $end ]; do cat /proc/uptime >/dev/null; sleep 0.01; done"),
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("sh")
}

/// A recording scoped to one busy process, rotated into several parts: the manifest the
/// dataset writer keeps agrees with the files (events per part, time range, sortedness, part
/// list), `lost_events` exists with its schema, and the instance is gone afterwards.
#[test]
fn a_recording_writes_parts_and_a_manifest_that_agree() {
    let _lock = kreq_testkit::tracefs_lock();
    if !kreq_testkit::skip::tracefs("a_recording_writes_parts_and_a_manifest_that_agree") {
        return;
    }
    let ds = kreq_testkit::scratch(env!("CARGO_TARGET_TMPDIR"), "record-parts").join("ds");
    let mut child = busy(3);
    let mut opts = RecordOptions::new(&ds);
    opts.pids = vec![child.id() as i32];
    opts.duration = Some(Duration::from_millis(2500));
    opts.rotate_every = Duration::from_millis(500);
    let report = record(&opts, &AtomicBool::new(false), &Silent).expect("record");
    let _ = child.kill();
    let _ = child.wait();

    let m = Manifest::read(&ds).expect("manifest");
    assert_eq!(
        m, report.manifest,
        "the manifest on disk is the one reported"
    );
    let parts = read_table(&ds, "events");
    assert!(
        parts.len() >= 2,
        "rotation every 500 ms over 2.5 s: {} parts",
        parts.len()
    );
    let mut total = 0u64;
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    let mut sorted = true;
    let mut prev_hi = i64::MIN;
    for (_, batches) in &parts {
        let ts: Vec<i64> = batches
            .iter()
            .flat_map(|b| {
                let c = b.column_by_name("ts_ns").expect("ts_ns");
                let c = c.as_any().downcast_ref::<Int64Array>().expect("i64");
                c.values().to_vec()
            })
            .collect();
        total += ts.len() as u64;
        let (a, b) = (
            *ts.iter().min().expect("rows"),
            *ts.iter().max().expect("rows"),
        );
        sorted &= prev_hi <= a;
        prev_hi = prev_hi.max(b);
        lo = lo.min(a);
        hi = hi.max(b);
    }
    assert!(total > 0, "the busy process made syscalls");
    assert_eq!(m.events, total, "manifest events = rows in the parts");
    assert_eq!(
        m.time_range_ns,
        Some((lo, hi)),
        "manifest time range = the parts'"
    );
    assert_eq!(m.sorted, sorted, "manifest sortedness = the parts'");
    let listed: Vec<&String> = m.sources[0].parts.iter().collect();
    let on_disk: Vec<&String> = parts.iter().map(|(n, _)| n).collect();
    assert_eq!(listed, on_disk, "the manifest lists exactly the part files");
    let lost = read_table(&ds, "lost_events");
    assert_eq!(lost.len(), 1, "one lost_events file");
    assert_eq!(
        file_schema(&ds.join(&lost[0].0)).fields(),
        kreq_schemas::lost_events::schema().fields()
    );
    let instance = Path::new(TRACEFS).join("instances").join(&report.instance);
    assert!(!instance.exists(), "{} is removed", instance.display());
}

/// A recording that sees no event (its only process sleeps) still leaves every table
/// readable: one `events` file with the schema and no row, and a manifest of 0 events.
#[test]
fn a_recording_of_no_event_keeps_every_table_readable() {
    let _lock = kreq_testkit::tracefs_lock();
    if !kreq_testkit::skip::tracefs("a_recording_of_no_event_keeps_every_table_readable") {
        return;
    }
    let ds = kreq_testkit::scratch(env!("CARGO_TARGET_TMPDIR"), "record-empty").join("ds");
    let mut child = Command::new("sleep").arg("5").spawn().expect("sleep");
    let mut opts = RecordOptions::new(&ds);
    opts.pids = vec![child.id() as i32];
    opts.duration = Some(Duration::from_millis(500));
    let report = record(&opts, &AtomicBool::new(false), &Silent).expect("record");
    let _ = child.kill();
    let _ = child.wait();
    let m = Manifest::read(&ds).expect("manifest");
    assert_eq!(m.events, 0);
    assert_eq!(m.time_range_ns, None);
    assert!(m.sources[0].parts.is_empty());
    let events = read_table(&ds, "events");
    assert_eq!(events.len(), 1, "one schema-only events file");
    let rows: usize = events[0].1.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows, 0);
    assert_eq!(
        file_schema(&ds.join(&events[0].0)).fields(),
        kreq_schemas::events::schema().fields(),
        "the empty file carries the events schema"
    );
    assert_eq!(report.manifest.events, 0);
}

/// `Instance::add` extends a pid list instead of replacing it (the `--pid` scope's second
/// scan relies on it).
#[test]
fn adding_to_an_instance_pid_list_keeps_what_is_there() {
    let _lock = kreq_testkit::tracefs_lock();
    if !kreq_testkit::skip::tracefs("adding_to_an_instance_pid_list_keeps_what_is_there") {
        return;
    }
    let inst = kreq_record::instance::Instance::create(Path::new(TRACEFS)).expect("instance");
    inst.write("set_event_pid", "1 2").expect("write");
    inst.add("set_event_pid", "3").expect("add");
    let listed = inst.read("set_event_pid").expect("read");
    inst.remove().expect("remove");
    let mut pids: Vec<&str> = listed.split_whitespace().collect();
    pids.sort_unstable();
    assert_eq!(pids, ["1", "2", "3"]);
}

/// Writes `text` to the instance's `trace_marker` from another process (the recorder's own
/// threads' events are left out) once tracing has started.
struct Marker(&'static str);

impl kreq_record::RecordObserver for Marker {
    fn started(&self, name: &str) {
        let marker = Path::new(TRACEFS)
            .join("instances")
            .join(name)
            .join("trace_marker");
        let status = Command::new("sh")
            .args([
                "-c",
                &format!("printf %s '{}' > {}", self.0, marker.display()),
            ])
            .status()
            .expect("sh");
        assert!(status.success());
    }
}

/// With `ftrace:print` in the profile, a recording's `print` rows read as a trace.dat's do:
/// the message in `buf` and `caller`, the function the event's `ip` is in, from
/// `/proc/kallsyms` (`tracing_mark_write` for a `trace_marker` write).
#[test]
fn a_recorded_print_names_its_caller() {
    let _lock = kreq_testkit::tracefs_lock();
    if !kreq_testkit::skip::tracefs("a_recorded_print_names_its_caller") {
        return;
    }
    let ds = kreq_testkit::scratch(env!("CARGO_TARGET_TMPDIR"), "record-print").join("ds");
    let mut opts = RecordOptions::new(&ds);
    opts.events.push(kreq_record::profile::EventSpec {
        group: "ftrace".into(),
        name: "print".into(),
        filter: None,
    });
    opts.duration = Some(Duration::from_millis(800));
    record(&opts, &AtomicBool::new(false), &Marker("kreq marker 42")).expect("record");
    let found: Vec<String> = event_rows(&ds, &["event", "fields"])
        .into_iter()
        .filter(|r| r[0] == "print")
        .map(|r| r[1].clone())
        .collect();
    let ours: Vec<&String> = found
        .iter()
        .filter(|f| f.contains("kreq marker 42"))
        .collect();
    assert_eq!(ours.len(), 1, "print rows: {found:?}");
    assert!(
        ours[0].contains("caller: tracing_mark_write"),
        "{}",
        ours[0]
    );
}

/// A thread that renames itself (`prctl(PR_SET_NAME)`, as `exec` and Java or Go runtimes do)
/// and goes on making syscalls has the new name on its next rows, not only after its next
/// switch: the default profile has `task_rename`.
#[test]
fn a_renamed_thread_has_its_new_name_at_once() {
    let _lock = kreq_testkit::tracefs_lock();
    if !kreq_testkit::skip::tracefs("a_renamed_thread_has_its_new_name_at_once") {
        return;
    }
    let ds = kreq_testkit::scratch(env!("CARGO_TARGET_TMPDIR"), "record-rename").join("ds");
    let go = ds.with_file_name("go");
    // Waits for `go`, renames itself, then reads /dev/null in a tight loop (no sleep, so
    // nothing switches it out on purpose before the reads). Rows before the rename include a
    // `python3` shim's shell and its children (pyenv's is a bash script that execs Python).
    let script = format!(
        "import ctypes, os, time\n\
         while not os.path.exists({go:?}): time.sleep(0.01)\n\
         ctypes.CDLL(None).prctl(15, b'kreq-renamed', 0, 0, 0)\n\
         fd = os.open('/dev/null', os.O_RDONLY)\n\
         for _ in range(200): os.read(fd, 1)\n",
        go = go.display().to_string()
    );
    let mut child = Command::new("python3")
        .args(["-c", &script])
        .spawn()
        .expect("python3");
    let mut opts = RecordOptions::new(&ds);
    opts.pids = vec![child.id() as i32];
    opts.duration = Some(Duration::from_millis(1500));
    struct Go(std::path::PathBuf);
    impl kreq_record::RecordObserver for Go {
        fn started(&self, _name: &str) {
            std::fs::write(&self.0, "").expect("go");
        }
    }
    record(&opts, &AtomicBool::new(false), &Go(go)).expect("record");
    let _ = child.wait();
    let pid = child.id().to_string();
    // Only the renamed thread's rows (its children are in the scope too). `python3` may be a
    // shell shim that execs Python, and exec renames too: mark the rename this test makes.
    let mut rows: Vec<(i64, String, String)> =
        event_rows(&ds, &["ts_ns", "tid", "comm", "event", "fields"])
            .into_iter()
            .filter(|r| r[1] == pid)
            .map(|r| {
                let ours = r[3] == "task_rename" && r[4].contains("kreq-renamed");
                let event = if ours {
                    "our_rename".to_owned()
                } else {
                    r[3].clone()
                };
                (r[0].parse().expect("ts"), r[2].clone(), event)
            })
            .collect();
    rows.sort();
    let renamed = rows
        .iter()
        .position(|(_, _, e)| e == "our_rename")
        .expect("the thread's task_rename to kreq-renamed");
    let reads: Vec<&String> = rows[renamed + 1..]
        .iter()
        .filter(|(_, _, e)| e == "sys_enter_read")
        .map(|(_, c, _)| c)
        .collect();
    assert!(reads.len() >= 100, "{} reads after the rename", reads.len());
    assert!(
        reads.iter().all(|c| *c == "kreq-renamed"),
        "names after the rename: {:?}",
        reads.iter().collect::<std::collections::BTreeSet<_>>()
    );
}
