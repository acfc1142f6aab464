//! The notebook example runs headless on a real correlated dataset and draws a PNG.

use std::process::Command;

#[test]
fn notebook_example_draws_a_latency_breakdown() {
    if !super::python_with("duckdb, pandas, matplotlib", "notebook_example") {
        return;
    }
    let ds = super::s1().to_owned();
    let png = ds.with_file_name("notebook-breakdown.png");
    let _ = std::fs::remove_file(&png);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/notebook/latency_breakdown.py");
    let o = Command::new("python3")
        .arg(script)
        .arg(&ds)
        .arg("--png")
        .arg(&png)
        .args(["--top", "20"])
        .env("MPLBACKEND", "Agg")
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("20 requests"), "{text}");
    let bytes = std::fs::read(&png).expect("png written");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        bytes.len() > 10_000,
        "suspiciously small PNG: {} bytes",
        bytes.len()
    );
}
