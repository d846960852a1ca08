//! Running `wrk` and reading its report.

use tokio::process::Command;

/// The load: threads, connections, seconds.
pub(crate) const THREADS: u32 = 1;
pub(crate) const CONNECTIONS: u32 = 32;

/// What one `wrk` run measured.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub(crate) requests_per_second: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) requests: u64,
    /// wrk's `Socket errors:` line, if it printed one (timeouts on a busy machine).
    pub(crate) socket_errors: Option<String>,
}

/// Whether `wrk` can be run; if not, says how to get it.
pub(crate) fn check_installed() -> Result<(), String> {
    match std::process::Command::new("wrk")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
    {
        Ok(_) => Ok(()),
        Err(e) => Err(format!(
            "this benchmark needs wrk ({e}): install it with `sudo apt-get install -y wrk` \
             (Debian/Ubuntu) or from https://github.com/wg/wrk, then run it again"
        )),
    }
}

/// `wrk` against `url` with `token` as bearer for `seconds`; panics if any response was not
/// a success (a benchmark of errors would measure the wrong thing).
pub(crate) async fn run(url: &str, token: &str, seconds: u32) -> Report {
    let output = Command::new("wrk")
        .arg(format!("-t{THREADS}"))
        .arg(format!("-c{CONNECTIONS}"))
        .arg(format!("-d{seconds}s"))
        .arg("--latency")
        .arg("-H")
        .arg(format!("Authorization: Bearer {token}"))
        .arg(url)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    parse(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"))
}

/// A latency as wrk prints it (`312.00us`, `1.20ms`, `2.00s`), in microseconds.
fn micros(value: &str) -> Option<f64> {
    let (number, scale) = if let Some(n) = value.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = value.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * scale)
}

fn parse(text: &str) -> Result<Report, String> {
    let mut report = Report {
        requests_per_second: f64::NAN,
        p50_us: f64::NAN,
        p99_us: f64::NAN,
        requests: 0,
        socket_errors: None,
    };
    for line in text.lines().map(str::trim) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["Requests/sec:", n] => report.requests_per_second = n.parse().unwrap_or(f64::NAN),
            ["50%", v] => report.p50_us = micros(v).unwrap_or(f64::NAN),
            ["99%", v] => report.p99_us = micros(v).unwrap_or(f64::NAN),
            [n, "requests", "in", ..] => report.requests = n.parse().unwrap_or(0),
            ["Non-2xx", "or", "3xx", "responses:", n] => {
                return Err(format!("{n} responses were not a success"));
            }
            ["Socket", "errors:", ..] => report.socket_errors = Some(line.to_string()),
            _ => {}
        }
    }
    if report.requests_per_second.is_nan() || report.p99_us.is_nan() || report.p50_us.is_nan() {
        return Err("cannot read wrk's report".into());
    }
    Ok(report)
}
