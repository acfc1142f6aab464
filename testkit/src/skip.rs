//! The skip policy: a test that needs something outside Rust asks here first.
//!
//! Each need has an environment variable that makes its absence a failure instead of a skip:
//!
//! | need | variable | set by `scripts/test` |
//! |---|---|---|
//! | python modules (pyarrow, duckdb, ...) | `KREQ_REQUIRE_PYTHON` | always (it pip-installs them) |
//! | root and a writable tracefs | `KREQ_REQUIRE_TRACEFS` | when run as root |
//! | the testbed (root, nginx, redis, a model's runtime) | `KREQ_REQUIRE_TESTBED` | when `CI=true` |
//! | other programs (chromium) | `KREQ_REQUIRE_TOOLS` | when `CI=true` |
//! | the public traces of other tools (`KREQ_EXTERNAL_TRACES`, else `../shared/traces/external`) | `KREQ_REQUIRE_EXTERNAL` | when it finds them (`../shared` or `/work/shared`) |
//! | kreq built with the cargo feature `cluster` (Ballista) | `KREQ_REQUIRE_CLUSTER` | always (it builds with `--features kreq/cluster`) |

use std::path::Path;
use std::process::Command;

/// The tracefs mount point.
pub const TRACEFS: &str = "/sys/kernel/tracing";

/// True when `test` may run; otherwise prints why it skips, or panics when `require_var` is
/// set. Every skip in kreq's tests goes through here.
pub fn unless_missing(test: &str, require_var: &str, missing: Option<String>) -> bool {
    let Some(why) = missing else {
        return true;
    };
    assert!(
        std::env::var_os(require_var).is_none(),
        "{test}: {require_var} is set but {why}"
    );
    eprintln!("SKIPPED {test}: {why} (set {require_var}=1 to make this a failure)");
    false
}

/// Whether `program` is on the PATH (or in the usual system directories).
pub fn have_program(program: &str) -> bool {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"])
        .any(|d| Path::new(d).join(program).is_file());
    found
}

/// Whether the current user is root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Python 3 can import `modules` (comma-separated).
pub fn python(test: &str, modules: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success());
    let why = (!ok)
        .then(|| format!("python3 cannot import {modules} (pip install -r requirements-test.txt)"));
    unless_missing(test, "KREQ_REQUIRE_PYTHON", why)
}

/// Root and a tracefs with instances, mounting it when it is not mounted.
pub fn tracefs(test: &str) -> bool {
    let instances = Path::new(TRACEFS).join("instances");
    if !instances.is_dir() && is_root() {
        let _ = Command::new("mount")
            .args(["-t", "tracefs", "nodev", TRACEFS])
            .status();
    }
    let why = if !is_root() {
        Some(format!("tracing needs root and a writable {TRACEFS}"))
    } else if !instances.is_dir() {
        Some(format!(
            "{TRACEFS} has no instances directory (tracefs not mounted?)"
        ))
    } else {
        None
    };
    unless_missing(test, "KREQ_REQUIRE_TRACEFS", why)
}

/// Root plus every program in `programs` (the testbed's servers and a model's runtime).
pub fn testbed(test: &str, programs: &[&str]) -> bool {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| !have_program(p))
        .collect();
    let why = if !is_root() {
        Some("the testbed needs root (it records with kreq record)".to_owned())
    } else if !missing.is_empty() {
        Some(format!(
            "the testbed needs {missing:?} (apt-get install them; .ci/run does)"
        ))
    } else {
        None
    };
    unless_missing(test, "KREQ_REQUIRE_TESTBED", why)
}

/// The public trace `name` from other tools' test suites (`SOURCES.md` in that folder says
/// where each comes from), used in place: `$KREQ_EXTERNAL_TRACES/NAME`, else the
/// repository's `../shared/traces/external/NAME`. None (the test skips) when it is not there.
pub fn external(test: &str, name: &str) -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("KREQ_EXTERNAL_TRACES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| crate::repo().join("../shared/traces/external"));
    let path = dir.join(name);
    let why = (!path.is_file()).then(|| format!("{} is not there", path.display()));
    unless_missing(test, "KREQ_REQUIRE_EXTERNAL", why).then_some(path)
}

/// Every program in `programs` is installed; `install` says how to get them.
pub fn programs(test: &str, programs: &[&str], install: &str) -> bool {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| !have_program(p))
        .collect();
    let why = (!missing.is_empty()).then(|| format!("{missing:?} not installed ({install})"));
    unless_missing(test, "KREQ_REQUIRE_TOOLS", why)
}
