//! The figures of a load run: latency percentiles, counts by key, and the times the API shows
//! (RFC 3339 with milliseconds) read back to milliseconds. Plain functions over plain data.

use std::collections::BTreeMap;

use serde::Serialize;

/// Percentiles of a set of latencies, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub(crate) struct Percentiles {
    /// How many samples.
    pub(crate) count: usize,
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
}

impl Percentiles {
    /// The nearest-rank percentiles of `samples` (any order); all zero when there are none.
    pub(crate) fn of(samples: &[f64]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            // Nearest rank: the smallest value with at least p% of the samples at or below it.
            let n = sorted.len();
            let r = ((p / 100.0) * n as f64).ceil() as usize;
            sorted[r.clamp(1, n) - 1]
        };
        Self {
            count: sorted.len(),
            p50: rank(50.0),
            p90: rank(90.0),
            p99: rank(99.0),
            max: sorted[sorted.len() - 1],
        }
    }

    /// `p50 1.2 p90 3.4 p99 5.6 max 7.8 ms (n)`.
    pub(crate) fn line(&self) -> String {
        if self.count == 0 {
            return "no samples".to_string();
        }
        format!(
            "p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1} ms  ({} samples)",
            self.p50, self.p90, self.p99, self.max, self.count
        )
    }
}

/// Counts by a text key, in key order (error codes, statuses, reasons).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub(crate) struct Tally(pub(crate) BTreeMap<String, u64>);

impl Tally {
    /// Counts one more `key`.
    pub(crate) fn add(&mut self, key: impl Into<String>) {
        *self.0.entry(key.into()).or_default() += 1;
    }

    /// The sum of every count.
    pub(crate) fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// `a 3, b 1`, or `none`.
    pub(crate) fn line(&self) -> String {
        if self.0.is_empty() {
            return "none".to_string();
        }
        self.0
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` (what the API writes) as milliseconds since the Unix epoch;
/// None for anything else.
pub(crate) fn parse_rfc3339_ms(text: &str) -> Option<u64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<u64>().ok());
    let (year, month, day) = (d.next()??, d.next()??, d.next()??);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || year < 1970 {
        return None;
    }
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<u64>().ok());
    let (h, m, s) = (t.next()??, t.next()??, t.next()??);
    if h > 23 || m > 59 || s > 60 || frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Milliseconds: the first three digits, padded.
    let ms_text: String = frac.chars().chain("000".chars()).take(3).collect();
    let ms: u64 = ms_text.parse().ok()?;
    let days = days_from_civil(year, month, day);
    Some(((days * 86_400 + h * 3600 + m * 60 + s) * 1000) + ms)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let p = Percentiles::of(&samples);
        assert_eq!(
            (p.count, p.p50, p.p90, p.p99, p.max),
            (100, 50.0, 90.0, 99.0, 100.0)
        );
        let one = Percentiles::of(&[7.0]);
        assert_eq!((one.p50, one.p99, one.max), (7.0, 7.0, 7.0));
        let two = Percentiles::of(&[1.0, 1000.0]);
        assert_eq!((two.p50, two.p90), (1.0, 1000.0));
        assert_eq!(Percentiles::of(&[]), Percentiles::default());
        assert_eq!(Percentiles::of(&[]).line(), "no samples");
    }

    #[test]
    fn a_tally_counts_by_key_in_order() {
        let mut t = Tally::default();
        for k in ["unavailable", "conflict", "unavailable"] {
            t.add(k);
        }
        assert_eq!(t.total(), 3);
        assert_eq!(t.line(), "conflict 1, unavailable 2");
        assert_eq!(Tally::default().line(), "none");
    }

    #[test]
    fn api_times_read_back_to_milliseconds() {
        // The same instants the edge's own formatter is tested with.
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ms("2000-02-29T00:00:00.000Z"),
            Some(951_782_400_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-11-27T02:42:42.123Z"),
            Some(1_795_747_362_123)
        );
        assert_eq!(
            parse_rfc3339_ms("2100-02-28T23:59:59.999Z"),
            Some(4_107_542_399_999)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-11-27T02:42:42Z"),
            Some(1_795_747_362_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-11-27T02:42:42.5Z"),
            Some(1_795_747_362_500)
        );
        for bad in [
            "",
            "2026-11-27",
            "2026-13-01T00:00:00Z",
            "2026-11-27T02:42:42.x1Z",
            "nope",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
    }
}
