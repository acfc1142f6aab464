//! The testbed end to end: nginx -> app -> redis on loopback, recorded by `kreq record`, with
//! ground truth from the services' own logs. Needs root, tracefs, nginx and redis-server;
//! skips saying why without them unless `KREQ_REQUIRE_TESTBED` is set (`scripts/test` sets it
//! when `CI=true`).

use std::path::{Path, PathBuf};
use std::process::Command;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int32Type, Int64Type};

/// Whether the testbed can run here: root, nginx, redis-server and the model's own programs
/// (`extra`). Says why it skips, and fails instead when `KREQ_REQUIRE_TESTBED` is set
/// (`kreq_testkit::skip`).
fn testbed_ready(test: &str, extra: &[&str]) -> bool {
    let mut programs = vec!["nginx", "redis-server"];
    programs.extend_from_slice(extra);
    kreq_testkit::skip::testbed(test, &programs)
}

/// Runs `examples/testbed/testbed.py ARGS`, recording into `DIR/ds` with its truth in
/// `DIR/TRUTH` (`DIR` a fresh directory named `name`); returns `DIR` and the testbed's output.
fn run_testbed(name: &str, args: &[&str], truth: &str) -> (PathBuf, String) {
    run_script("testbed.py", name, args, truth)
}

/// [`run_testbed`] with another driver of `examples/testbed/` (`models.py`), which takes the
/// same `--record`, `--truth`, `--workdir` and `--kreq` arguments.
fn run_script(script: &str, name: &str, args: &[&str], truth: &str) -> (PathBuf, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let out = Command::new("python3")
        .arg(root.join("examples/testbed").join(script))
        .args(args)
        .arg("--record")
        .arg(dir.join("ds"))
        .arg("--truth")
        .arg(dir.join(truth))
        .arg("--workdir")
        .arg(dir.join("work"))
        .arg("--kreq")
        .arg(env!("CARGO_BIN_EXE_kreq"))
        .output()
        .expect("testbed");
    let log =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    (dir, log)
}

/// `kreq correlate DIR/ds`, then `kreq eval` against `DIR/truth.jsonl` with a gate of
/// `min_accuracy`. Returns the correlate log and the score; on a failed gate the recording is
/// kept under `kept_as-PID` for a post-mortem (the next run overwrites `DIR`) and the test fails.
fn correlate_and_score(
    dir: &Path,
    kept_as: &str,
    testbed_log: &str,
    min_accuracy: &str,
) -> (String, String) {
    let kreq = env!("CARGO_BIN_EXE_kreq");
    let corr = Command::new(kreq)
        .arg("correlate")
        .arg(dir.join("ds"))
        .arg("--json")
        .output()
        .expect("kreq correlate");
    // The correlation summary (`--json`): the caller checks its fields.
    let corr_log = String::from_utf8_lossy(&corr.stdout).to_string();
    assert!(
        corr.status.success(),
        "{corr_log}{}",
        String::from_utf8_lossy(&corr.stderr)
    );
    let eval = Command::new(kreq)
        .arg("eval")
        .arg(dir.join("ds"))
        .arg("--truth")
        .arg(dir.join("truth.jsonl"))
        .args(["--min-accuracy", min_accuracy, "--json"])
        .output()
        .expect("kreq eval");
    let score = String::from_utf8_lossy(&eval.stdout).to_string();
    eprintln!("{} score: {score}", dir.display());
    if !eval.status.success() {
        let kept = dir.with_file_name(format!("{kept_as}-{}", std::process::id()));
        let _ = std::fs::rename(dir, &kept);
        panic!(
            "{score}{}\nrecording kept in {}\ncorrelate: {corr_log}\ntestbed: {testbed_log}",
            String::from_utf8_lossy(&eval.stderr),
            kept.display()
        );
    }
    (corr_log, score)
}

#[test]
fn small_testbed_recording_captures_every_request_on_every_tier() {
    let _serial = crate::tracefs_lock();
    if !testbed_ready("small_testbed_recording", &[]) {
        return;
    }
    let (dir, log) = run_testbed(
        "testbed",
        &["--requests", "50", "--connections", "2", "--port", "28080"],
        "truth.jsonl",
    );
    let truth: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("truth.jsonl"))
        .expect("truth")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(truth.len(), 50);

    let b = crate::read_events(&dir.join("ds"));
    let ts = b.column(0).as_primitive::<Int64Type>();
    let tid = b
        .column_by_name("tid")
        .expect("tid")
        .as_primitive::<Int32Type>();
    let names = b
        .column_by_name("event")
        .expect("event")
        .as_dictionary::<Int32Type>();
    let dict = names.values().as_string::<i32>();
    let syscall = |row: usize| {
        dict.value(names.keys().value(row) as usize)
            .starts_with("sys_")
    };
    // Every request left syscalls of its app thread inside the app's own [t0, t1] (both
    // CLOCK_MONOTONIC), and of its nginx worker inside the client's window.
    for t in &truth {
        let (app_tid, t0, t1) = (
            t["app_tid"].as_i64(),
            t["app_t0"].as_i64(),
            t["app_t1"].as_i64(),
        );
        let (Some(app_tid), Some(t0), Some(t1)) = (app_tid, t0, t1) else {
            panic!("incomplete truth row {t}");
        };
        let nginx = t["nginx_pid"].as_i64().expect("nginx pid");
        let (c0, c1) = (
            t["client_t0"].as_i64().unwrap_or(0),
            t["client_t1"].as_i64().unwrap_or(0),
        );
        let hit = |who: i64, lo: i64, hi: i64| {
            (0..b.num_rows()).any(|r| {
                tid.is_valid(r)
                    && i64::from(tid.value(r)) == who
                    && (lo..=hi).contains(&ts.value(r))
                    && syscall(r)
            })
        };
        assert!(hit(app_tid, t0, t1), "no app syscalls recorded for {t}");
        assert!(hit(nginx, c0, c1), "no nginx syscalls recorded for {t}");
    }
    // Record -> correlate -> eval: CI fails when fewer than 99% of the requests are exact.
    let (corr_log, score) = correlate_and_score(&dir, "testbed-failed", &log, "0.99");
    assert!(
        serde_json::from_str::<serde_json::Value>(&corr_log).is_ok_and(|v| {
            v["ingress"] == serde_json::json!(["127.0.0.1:28080"]) && v["ingress_auto"] == true
        }),
        "{corr_log}"
    );
    let score: serde_json::Value = serde_json::from_str(score.trim()).expect("score json");
    assert_eq!(score["sent"], 50);
    assert_eq!(score["found"], 50);
}

/// A recording started while the chain is under load: connections are open, threads are
/// mid-request and messages in flight. Every request wholly inside the recording must still be
/// reconstructed exactly.
#[test]
fn a_recording_started_under_load_reconstructs_the_requests_inside_it() {
    let _serial = crate::tracefs_lock();
    if !testbed_ready("late-start testbed", &[]) {
        return;
    }
    let (dir, log) = run_testbed(
        "testbed-late",
        // The load runs until the recorder has started, then sends 1000 more (testbed.py
        // --requests-after): with a fixed count, 4000 requests at 3900 requests/s were all
        // sent before a recorder started at 0.3 s was tracing.
        &[
            "--requests",
            "20000",
            "--connections",
            "8",
            "--apps",
            "2",
            "--port",
            "28090",
            "--record-after",
            "0.3",
        ],
        "all.jsonl",
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("ds/kreq.json")).expect("manifest"))
            .expect("json");
    let (lo, hi) = (
        manifest["time_range_ns"][0].as_i64().expect("start"),
        manifest["time_range_ns"][1].as_i64().expect("end"),
    );
    let all = std::fs::read_to_string(dir.join("all.jsonl")).expect("truth");
    let inside: Vec<&str> = all
        .lines()
        .filter(|l| {
            let t: serde_json::Value = serde_json::from_str(l).expect("truth line");
            let (t0, t1) = (t["client_t0"].as_i64(), t["client_t1"].as_i64());
            t0.is_some_and(|t0| t0 > lo + 1_000_000) && t1.is_some_and(|t1| t1 < hi)
        })
        .collect();
    assert!(
        inside.len() >= 100 && inside.len() < all.lines().count(),
        "the recording must start under load and hold requests: {} of {} inside\n{log}",
        inside.len(),
        all.lines().count()
    );
    std::fs::write(dir.join("truth.jsonl"), inside.join("\n") + "\n").expect("write truth");
    correlate_and_score(&dir, "testbed-late-failed", &log, "0.99");
}

/// The hand-off model (`examples/testbed/models.py --model handoff`): an acceptor thread
/// reads every request and submits it to a `ThreadPoolExecutor(4)`; workers share 3 redis
/// connections and answer on the client's connection. Scored by segment truth (every
/// interval a thread worked on a request, logged by the app itself). The gate is a floor
/// under the measured accuracy (0.97 to 1.0 in 66 CI-sized recordings, docs/performance.md),
/// not the 99% target: where a `submit` woke no worker and no GIL hand-over came between
/// the two requests' syscalls, the acceptor's turns are split from the next request's with
/// no kernel event to mark the boundary.
#[test]
fn handoff_model_joins_pool_workers_to_the_requests_they_answer() {
    let _serial = crate::tracefs_lock();
    if !testbed_ready("handoff model testbed", &[]) {
        return;
    }
    let (_, dir) = score_model("handoff", "29080", "0.95");
    // Requests answered by pool workers join through the hand-off rule.
    let n = edges_by(&dir, "handoff");
    assert!(n >= 150, "handoff edges: {n}");
}

/// Records `model` from `examples/testbed/models.py` (200 requests over 4 connections on
/// `port`), scores it against the app's segments with the gate `min_accuracy`, and returns
/// the score and the dataset's directory.
fn score_model(model: &str, port: &str, min_accuracy: &str) -> (serde_json::Value, PathBuf) {
    let (score, _, dir) = score_model_summary(model, port, min_accuracy);
    (score, dir)
}

/// [`score_model`], with `kreq correlate --json`'s summary too: (score, summary, directory).
fn score_model_summary(
    model: &str,
    port: &str,
    min_accuracy: &str,
) -> (serde_json::Value, serde_json::Value, PathBuf) {
    let name = format!("model-{model}");
    let (dir, log) = run_script(
        "models.py",
        &name,
        &[
            "--model",
            model,
            "--requests",
            "200",
            "--connections",
            "4",
            "--port",
            port,
        ],
        "truth.jsonl",
    );
    let (summary, score) = correlate_and_score(&dir, &format!("{name}-failed"), &log, min_accuracy);
    let score: serde_json::Value = serde_json::from_str(score.trim()).expect("score json");
    let summary: serde_json::Value =
        serde_json::from_str(summary.trim()).expect("correlate summary json");
    assert_eq!(score["sent"], 200);
    assert_eq!(score["found"], 200);
    (score, summary, dir)
}

/// Records and scores `model` (as [`score_model`], with no accuracy gate) where kreq cannot
/// tell which request a loop's step served: its one loop must be unsettled and no confidence
/// of its calibration table overstated.
fn score_unsure_model(model: &str, port: &str) {
    let (score, summary, dir) = score_model_summary(model, port, "0");
    assert_eq!(unsettled_app_loops(&dir), 1, "{summary}");
    assert_confidence_is_not_overstated(&score);
}

/// The model app's threads (those the truth in `dir` logs segments for, by process) with
/// links capped as an unsettled loop's: a CI recording is system-wide, and loops of other
/// processes (other tests' tokio runtimes) may be unsettled too.
fn unsettled_app_loops(dir: &Path) -> i64 {
    let truth = std::fs::read_to_string(dir.join("truth.jsonl")).expect("truth");
    let mut pids: Vec<i64> = Vec::new();
    for line in truth.lines() {
        let t: serde_json::Value = serde_json::from_str(line).expect("truth line");
        for s in t["segments"].as_array().into_iter().flatten() {
            if let Some(p) = s["pid"].as_i64().filter(|p| !pids.contains(p)) {
                pids.push(p);
            }
        }
    }
    assert!(!pids.is_empty(), "no segments in the truth");
    let pids: Vec<String> = pids.iter().map(i64::to_string).collect();
    sql_number(
        dir,
        &format!(
            "SELECT count(DISTINCT s.tid) AS n FROM edges e JOIN spans s ON e.to_span = s.span_id \
             WHERE e.confidence < 0.21 \
               AND e.rule IN ('event_loop', 'continuation', 'turn', 'silent_step') \
               AND s.pid IN ({})",
            pids.join(", ")
        ),
    )
}

/// Each confidence of `score`'s calibration table with at least 100 links checked was right
/// at least that often, less 0.15 (one CI-sized recording's share moves by a few hundredths
/// between recordings; a confidence the rules' premise does not back is off by more).
fn assert_confidence_is_not_overstated(score: &serde_json::Value) {
    for row in score["calibration"].as_array().expect("calibration") {
        let (links, right) = (
            row["links"].as_u64().unwrap_or(0),
            row["right"].as_u64().unwrap_or(0),
        );
        let conf = row["confidence"].as_f64().expect("confidence");
        if links >= 100 {
            let share = right as f64 / links as f64;
            assert!(
                share >= conf - 0.15,
                "links of confidence {conf:.2} ({}) right {right} of {links} ({share:.3})",
                row["rules"]
            );
        }
    }
}

/// The one number `query` (a `SELECT` of one value) answers on the dataset in `dir/ds`.
fn sql_number(dir: &Path, query: &str) -> i64 {
    let out = Command::new(env!("CARGO_BIN_EXE_kreq"))
        .arg("sql")
        .arg(dir.join("ds"))
        .arg(query)
        .output()
        .expect("kreq sql");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0)
}

/// `SELECT count(*) FROM edges WHERE rule = RULE` on the dataset in `dir/ds`.
fn edges_by(dir: &Path, rule: &str) -> i64 {
    sql_number(
        dir,
        &format!("SELECT count(*) AS n FROM edges WHERE rule = '{rule}'"),
    )
}

#[test]
fn asyncio_model_follows_coroutine_steps_across_zero_timeout_waits() {
    let _serial = crate::tracefs_lock();
    if !testbed_ready("asyncio model testbed", &[]) {
        return;
    }
    // On a 2-core AMD EPYC, 66 CI-sized recordings of this model scored 0.965 to 1.0; on an
    // Intel Xeon of the same machine kind, 16 scored 0.935 to 1.0 (0.88 to 1.0 with a turn
    // after a preemption at a syscall's return started 6 µs after the loop ran again;
    // docs/performance.md, "A step resumed after a preemption at its return"). Without the
    // continuation rule, 0.
    let (_, summary, dir) = score_model_summary("asyncio", "29180", "0.9");
    // Every request makes two calls: the loop is settled and its links keep their rules'
    // confidence.
    assert_eq!(unsettled_app_loops(&dir), 0, "{summary}");
    // Every request's redis commands are written after a zero-timeout wait, with no request
    // read in that turn: they join by woken order.
    assert!(edges_by(&dir, "continuation") >= 300);
}

/// 66 CI-sized recordings of this model score 0.965 to 1.0 (docs/performance.md); the
/// misses: turn boundaries where a callback's tail after its `write` ran longer than the
/// 6 µs kreq leaves to it. The gate is a floor under that.
#[test]
fn eventloop_model_splits_one_pipelined_connection_among_interleaved_requests() {
    let _serial = crate::tracefs_lock();
    if !testbed_ready("eventloop model testbed", &["node"]) {
        return;
    }
    let (_, summary, dir) = score_model_summary("eventloop", "29280", "0.9");
    assert_eq!(unsettled_app_loops(&dir), 0, "{summary}");
    assert!(edges_by(&dir, "turn") > 0);
}

#[test]
fn java_model_on_a_dual_stack_socket_is_exact() {
    let _serial = crate::tracefs_lock();
    if !testbed_ready("java model testbed", &["java", "javac"]) {
        return;
    }
    let (_, dir) = score_model("java", "29380", "0.99");
    // The server socket is IPv6: the kernel names its IPv4 peers ::ffff:127.0.0.1 in
    // tcp_probe, and the request's client must still be found through them.
    let mapped = sql_number(
        &dir,
        "SELECT count(*) AS n FROM events WHERE saddr LIKE '::ffff:%'",
    );
    assert!(mapped > 0, "no IPv4-mapped addresses in the recording");
}

#[test]
fn three_tiers_ending_in_postgresql_are_exact() {
    let _serial = crate::tracefs_lock();
    if !testbed_ready("pgchain model testbed", &["pg_ctlcluster", "runuser"]) {
        return;
    }
    let initdb = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .any(|v| v.path().join("bin/initdb").exists());
    assert!(
        initdb,
        "the pgchain model needs PostgreSQL (Debian's postgresql; .ci/run installs it)"
    );
    let (_, dir) = score_model("pgchain", "29480", "0.99");
    // PostgreSQL serves each connection with its own backend process: they are the backend
    // hop of every request.
    let with_pg = sql_number(&dir, "SELECT count(DISTINCT request_id) AS n FROM spans WHERE comm = 'postgres' AND kind = 'server'");
    assert_eq!(with_pg, 200, "every request reaches a PostgreSQL backend");
}

#[test]
fn nginx_to_an_app_and_redis_over_unix_sockets_is_exact() {
    let _serial = crate::tracefs_lock();
    if !testbed_ready("unix model testbed", &[]) {
        return;
    }
    // A read that completes inside the send that woke it takes that send's request (the
    // recording of a CI run that scored 196 of 200 without that rule scores 200).
    let (_, dir) = score_model("unix", "29580", "0.99");
    // Every request crossed both unix sockets: the app served it and redis answered it.
    let n = sql_number(
        &dir,
        "SELECT count(DISTINCT request_id) AS n FROM spans \
             WHERE comm = 'redis-server' AND kind = 'server' AND local_addr LIKE 'unix:%'",
    );
    assert!(
        n >= 198,
        "requests reaching redis over its unix socket: {n} of 200"
    );
}

/// The gRPC model: front-end threads share one HTTP/2 channel to a server whose pool workers
/// answer on it in any order. 67 CI-sized recordings score 0.85 to 0.99
/// (docs/performance.md); seven of them scored 0.005 to 0.06 without the multiplexed-connection
/// rules. The misses are mostly two callers' answers swapped.
#[test]
fn grpc_model_gives_workers_answers_to_the_callers_they_wake() {
    let _serial = crate::tracefs_lock();
    if !testbed_ready("grpc model testbed", &[])
        || !kreq_testkit::skip::python("grpc model testbed", "grpc")
    {
        return;
    }
    let (_, dir) = score_model("grpc", "29780", "0.8");
    assert!(edges_by(&dir, "reply_order") >= 100);
}

/// The same HTTP tier calling a Node.js gRPC server (`@grpc/grpc-js` from npm): one event loop
/// reads several callers' streams at once and writes several streams' answers in one
/// `writev`. 59 CI-sized recordings score 0.79 to 0.98; nine of them scored 0.03 to 0.075
/// without the event-loop answers on a multiplexed socket (docs/performance.md).
#[test]
fn grpcnode_model_answers_every_finished_stream_of_one_write() {
    let _serial = crate::tracefs_lock();
    if !testbed_ready("grpcnode model testbed", &["node", "npm"])
        || !kreq_testkit::skip::python("grpcnode model testbed", "grpc")
    {
        return;
    }
    score_model("grpcnode", "29880", "0.7");
}

/// A hand-off server kreq's rules were not written for: waitress (PyPI) parses each request on
/// its main thread and hands it to a task thread through a condition variable; the task
/// thread runs a Flask app calling redis through redis-py's `BlockingConnectionPool` (each
/// command takes a connection and gives it back), and the main thread writes the response
/// the task thread queued. Three CI-sized recordings scored 200 of 200 on first contact
/// (docs/performance.md, "Apps built on common libraries").
#[test]
fn waitress_model_follows_requests_through_task_threads_and_a_shared_pool() {
    let _serial = crate::tracefs_lock();
    if !testbed_ready("waitress model testbed", &[])
        || !kreq_testkit::skip::python("waitress model testbed", "waitress, flask, redis")
    {
        return;
    }
    let (_, dir) = score_model("waitress", "29990", "0.99");
    // Each request reaches its task thread through the main thread's wakeup.
    let n = edges_by(&dir, "handoff");
    assert!(n >= 190, "handoff edges: {n}");
}

/// An asyncio server kreq's rules were not written for: aiohttp (PyPI) with redis-py's asyncio
/// client on a `BlockingConnectionPool` of 2. A request's task waits for a connection over
/// several loop iterations and runs many steps with no syscall (three in five of its logged
/// segments), so which request a step or a pooled connection's command served is not in the
/// kernel's events: three CI-sized recordings scored 0 to 3 of 200 exact, with 25% to 31% of
/// the redis commands given to the right request (docs/performance.md, "Apps built on common
/// libraries"). What kreq owes there is to say so: its requests' call counts do not settle,
/// so the loop's links carry confidence 0.2, which was about their share right.
#[test]
fn aiohttp_model_is_marked_unsure_where_its_steps_leave_no_kernel_event() {
    let _serial = crate::tracefs_lock();
    if !testbed_ready("aiohttp model testbed", &[])
        || !kreq_testkit::skip::python("aiohttp model testbed", "aiohttp, redis")
    {
        return;
    }
    score_unsure_model("aiohttp", "29940");
}

/// An express (npm) app calling redis through ioredis on one connection: every syscall goes
/// to its request, but a handler's stretch before its first syscall and after its last run
/// tens of µs (medians 20 and 7 µs, one in ten over 137 and 76 µs) with no kernel event
/// between one request's and the next's, so most turn boundaries miss by more than the
/// scoring's 2 µs: three CI-sized recordings scored 45 to 46 of 200 exact (docs/performance.md,
/// "Apps built on common libraries"). The gate is a floor under that; the loop's requests all
/// make two calls, so its links keep their rules' confidence, which must hold.
#[test]
fn express_model_gives_every_call_to_its_request() {
    let _serial = crate::tracefs_lock();
    if !testbed_ready("express model testbed", &["node", "npm"]) {
        return;
    }
    let (score, summary, dir) = score_model_summary("express", "29950", "0.1");
    assert_eq!(unsettled_app_loops(&dir), 0, "{summary}");
    assert_confidence_is_not_overstated(&score);
}

/// FastAPI on uvicorn's asyncio loop with the same redis-py asyncio pool as the `aiohttp`
/// model: 0 of 200 exact in two CI-sized recordings. Here the requests' call counts mostly
/// agree (182 of 200 made two), but the due-order writes with one request due came in the
/// iteration after it was made due 47 of 110 times (every time on the testbed's `asyncio`
/// app): the loop is unsettled by that, and its links carry 0.2 (right 0.31 and 0.36;
/// docs/performance.md, "Apps built on common libraries").
#[test]
fn fastapi_model_is_marked_unsure_where_its_due_steps_run_late() {
    let _serial = crate::tracefs_lock();
    if !testbed_ready("fastapi model testbed", &[])
        || !kreq_testkit::skip::python("fastapi model testbed", "fastapi, uvicorn, redis")
    {
        return;
    }
    score_unsure_model("fastapi", "29920");
}

/// Flask under gunicorn's `gthread` worker: a main thread polls the connections and a pool of
/// 4 threads reads, serves and answers each request, sharing redis-py's pool of 2. 200 of 200
/// exact in two CI-sized recordings on first contact.
#[test]
fn gthread_model_is_exact() {
    let _serial = crate::tracefs_lock();
    if !testbed_ready("gthread model testbed", &[])
        || !kreq_testkit::skip::python("gthread model testbed", "gunicorn, flask, redis")
    {
        return;
    }
    let (score, summary, dir) = score_model_summary("gthread", "29910", "0.99");
    assert_eq!(unsettled_app_loops(&dir), 0, "{summary}");
    assert_confidence_is_not_overstated(&score);
}

/// fastify with node-redis, which writes the commands issued in one tick together (400
/// commands in 205 writes): 5, 25 and 33 of 200 exact in three CI-sized recordings, some
/// requests with no backend span. kreq's requests made 0, 1 or 2 calls in like numbers: the
/// loop is unsettled and its links carry 0.2 (right 0.22 and 0.24 in two of them).
#[test]
fn fastify_model_is_marked_unsure_where_one_write_carries_several_requests() {
    let _serial = crate::tracefs_lock();
    if !testbed_ready("fastify model testbed", &["node", "npm"]) {
        return;
    }
    score_unsure_model("fastify", "29930");
}

/// The same FastAPI app on uvloop (libuv under asyncio's interface): 0 and 1 of 200 exact in
/// two CI-sized recordings; unsettled, its links at 0.2 right 0.18 and 0.29.
#[test]
fn uvloop_model_is_marked_unsure() {
    let _serial = crate::tracefs_lock();
    if !testbed_ready("uvloop model testbed", &[])
        || !kreq_testkit::skip::python("uvloop model testbed", "fastapi, uvicorn, uvloop, redis")
    {
        return;
    }
    score_unsure_model("uvloop", "29900");
}

/// Go `net/http` with redigo's pool (Debian's golang-github-gomodule-redigo-dev), a client
/// kreq's rules were not written for: 200, 198, 198 and 200 of 200 exact in four CI-sized
/// recordings on first contact (docs/performance.md, "Apps built on common libraries").
#[test]
fn goredigo_model_follows_goroutines_through_a_client_librarys_pool() {
    let _serial = crate::tracefs_lock();
    if !testbed_ready("goredigo model testbed", &["go"]) {
        return;
    }
    let (_, summary, dir) = score_model_summary("goredigo", "29890", "0.95");
    assert_eq!(unsettled_app_loops(&dir), 0, "{summary}");
    // Not checked here: the 0.99 links on Go's threads are right 0.79 to 0.88 of the time
    // (as on the `go` model, docs/performance.md).
}

#[test]
fn go_model_follows_goroutines_across_threads() {
    let _serial = crate::tracefs_lock();
    if !testbed_ready("go model testbed", &["go"]) {
        return;
    }
    // CI-sized recordings scored 0.945 to 1.0 with `spans.end_tid` (docs/performance.md); the
    // misses are turn boundaries on the runtime's threads.
    let (_, dir) = score_model("go", "29680", "0.90");
    assert!(edges_by(&dir, "continuation") > 0);
}

/// Rows of `query` on `at` (a dataset or warehouse), split at commas.
fn sql_rows(at: &Path, query: &str) -> Vec<Vec<String>> {
    crate::sql(at, query)
        .iter()
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

/// Two hosts: nginx and the load in one network namespace, the app and redis in another,
/// joined by a veth pair; each host recorded by its own `kreq record --pid ... --warehouse`
/// and correlated on its own (`examples/testbed/twohosts.py`), the back host's times moved
/// 7.654321 ms ahead (`kreq record --test-shift-ns`). Every call from the front host is matched
/// to the request it started on the back host; the clock offset the calls bound contains the
/// shift, with a half-width under 1 ms, and `kreq correlate` records it as it reports it; and,
/// against the apps' own logs, `kreq eval` on the warehouse finds at least 99% of requests
/// exact across the hosts (the back host's spans under the front host's requests, on its
/// clock).
#[test]
fn two_hosts_in_network_namespaces_are_stitched_and_their_clocks_bounded() {
    let _serial = crate::tracefs_lock();
    if !testbed_ready("two-host testbed", &["ip"]) {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("twohosts");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    // `ds` and `truth.jsonl`, as `correlate_and_score` takes them.
    let (w, truth) = (dir.join("ds"), dir.join("truth.jsonl"));
    let out = Command::new("python3")
        .arg(root.join("examples/testbed/twohosts.py"))
        .args(["--requests", "200", "--shift-back-ns", "7654321"])
        .arg("--warehouse")
        .arg(&w)
        .arg("--truth")
        .arg(&truth)
        .arg("--workdir")
        .arg(dir.join("work"))
        .arg("--kreq")
        .arg(env!("CARGO_BIN_EXE_kreq"))
        .output()
        .expect("twohosts.py");
    let log =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    // Exactness against the apps' logs: `kreq eval` on the warehouse scores each request
    // across the hosts, found by the load generator's port since the client was not traced.
    let (corr_log, score) = correlate_and_score(&dir, "twohosts-failed", &log, "0.99");
    // `kreq correlate` reports the offset it finds, as the view gives it.
    let summary: serde_json::Value = serde_json::from_str(&corr_log).expect("json");
    let reported = &summary["clock_offsets"][0];
    assert_eq!(reported["server_host"], "back", "{summary}");
    let recorded: serde_json::Value = serde_json::from_slice(
        &std::fs::read(w.join("current").join("clock_offsets.json")).expect("recorded offsets"),
    )
    .expect("json");
    assert_eq!(
        recorded, summary["clock_offsets"],
        "recorded in the warehouse as reported"
    );
    let calls = sql_rows(
        &w,
        "select client_host, server_host, count(*), count(distinct client_request_id), \
         count(distinct server_request_id) from cross_host_calls group by 1, 2",
    );
    assert_eq!(calls, [["front", "back", "200", "200", "200"]], "{log}");
    let off = &sql_rows(
        &w,
        "select offset_min_ns, offset_max_ns, uncertainty_ns from clock_offsets",
    )[0];
    let off: Vec<i64> = off.iter().map(|v| v.parse().expect("ns")).collect();
    let shift = 7_654_321;
    assert!(
        off[0] <= shift && shift <= off[1] && off[2] < 1_000_000,
        "{off:?}"
    );
    assert_eq!(reported["uncertainty_ns"], off[2], "{summary}");
    let score: serde_json::Value = serde_json::from_str(score.trim()).expect("json");
    let (n, exact) = (score["sent"].as_u64(), score["exact"].as_u64());
    eprintln!("two hosts: {exact:?} of {n:?} exact; clock offset bounds {off:?}");
    assert_eq!(n, Some(200), "truth lines: {score}");
    assert!(
        exact.is_some_and(|e| e * 100 >= 99 * 200),
        "across the two hosts: {score}"
    );
}

/// The runnable time the scheduler shows for the threads of nginx, php-fpm and MariaDB over the
/// whole recording: from a wake (`sched_waking`) or a preemption (switched out runnable) to the
/// thread's next switch in. Computed from the raw events, apart from correlation's clocks.
const STACK_RUNNABLE_SQL: &str = "WITH marks AS (
    SELECT ts_ns, wake_tid AS t, 1 AS ready FROM events WHERE event = 'sched_waking'
    UNION ALL SELECT ts_ns, tid, 1 FROM events WHERE event = 'sched_switch' AND prev_state = 'R'
    UNION ALL SELECT ts_ns, next_tid, 0 FROM events WHERE event = 'sched_switch'),
  runs AS (
    SELECT t, ts_ns, ready,
           lag(ready) OVER (PARTITION BY t ORDER BY ts_ns, ready) AS was_ready,
           lag(ts_ns) OVER (PARTITION BY t ORDER BY ts_ns, ready) AS since
    FROM marks),
  stack AS (SELECT DISTINCT tid FROM events
            WHERE comm IN ('nginx', 'mariadbd') OR comm LIKE 'php-fpm%')
  SELECT sum(ts_ns - since) AS n FROM runs
  WHERE ready = 0 AND was_ready = 1 AND t IN (SELECT tid FROM stack)";

#[test]
fn wordpress_stack_is_exact_and_its_wire_time_is_split_by_what_the_scheduler_shows() {
    let _serial = crate::tracefs_lock();
    if !testbed_ready(
        "wordpress testbed",
        &["mariadbd", "mariadb-install-db", "php"],
    ) {
        return;
    }
    let fpm = std::fs::read_dir("/usr/sbin")
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("php-fpm"));
    let site = Path::new("/usr/share/wordpress/wp-content/themes/twentytwentythree").exists();
    assert!(
        fpm && site,
        "the wordpress testbed needs Debian's php-fpm, php-mysql, php-apcu, wordpress and \
         wordpress-theme-twentytwentythree (.ci/run installs them)"
    );
    let (dir, log) = run_script(
        "wordpress.py",
        "wordpress",
        &["--requests", "200", "--connections", "4", "--port", "29980"],
        "truth.jsonl",
    );
    // PHP's segments on the php-fpm workers, MariaDB as the backend.
    let (_, score) = correlate_and_score(&dir, "wordpress-failed", &log, "0.99");
    let score: serde_json::Value = serde_json::from_str(score.trim()).expect("score json");
    assert_eq!(score["found"], 200, "{score}");
    // nginx makes one call per request, whatever number of queries WordPress makes under it:
    // none of the stack's loops is unsettled (counting every call under nginx's spans, nginx
    // and MariaDB were). Other processes the recording caught (a CI run's tokio runtimes of
    // other tests) may be.
    let capped = sql_number(
        &dir,
        "SELECT count(*) AS n FROM edges e JOIN spans s ON e.to_span = s.span_id \
         WHERE e.confidence < 0.21 AND e.rule <> 'wakeup' \
           AND (s.comm LIKE 'nginx%' OR s.comm LIKE 'php-fpm%' OR s.comm LIKE 'mariadb%')",
    );
    assert_eq!(capped, 0, "links of the stack's loops capped as unsettled");
    let uneven = sql_number(
        &dir,
        "SELECT count(*) AS n FROM spans WHERE cpu_ns < 0 OR runnable_ns < 0 OR blocked_ns < 0
           OR unknown_ns < 0 OR cpu_ns + runnable_ns + blocked_ns + unknown_ns <> duration_ns",
    );
    assert_eq!(uneven, 0, "spans whose time split does not add up");
    // The wire time (php-fpm's queries and MariaDB's answers, FastCGI's answers to nginx) is
    // split like a span's, by what the threads at its two ends did meanwhile.
    let wire = sql_number(
        &dir,
        "SELECT sum(self_ns) AS n FROM hops WHERE service = '(network)'",
    );
    let wire_split = sql_number(
        &dir,
        "SELECT sum(cpu_ns + runnable_ns + blocked_network_ns + blocked_disk_ns
                   + blocked_lock_ns + blocked_other_ns) AS n FROM hops WHERE service = '(network)'",
    );
    assert!(
        wire > 0 && wire_split <= wire && wire_split * 100 >= wire * 95,
        "wire time {wire} ns, split {wire_split} ns"
    );
    // The runnable time charged to requests is the scheduler's. A thread's spans do not
    // overlap, so the servers' own spans get no more than the stack's threads spent runnable
    // in the whole recording; with the wire time, most of it (the rest is the servers' own
    // work between requests). A call's wire time is split on the clock of the thread that
    // read it, which may also be serving other requests meanwhile (php-fpm's listen queue when
    // connections outnumber workers), so the sum with the wire has no upper bound.
    let own = sql_number(
        &dir,
        "SELECT sum(runnable_ns) AS n FROM hops WHERE service <> '(network)'",
    );
    let charged = sql_number(&dir, "SELECT sum(runnable_ns) AS n FROM hops");
    let sched = sql_number(&dir, STACK_RUNNABLE_SQL);
    assert!(
        own <= sched && charged * 10 >= sched * 8,
        "runnable charged to spans {own} ns, with the wire {charged} ns, in the scheduler's \
         events {sched} ns"
    );
}
