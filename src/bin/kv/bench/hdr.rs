//! `kv bench --hdr-out FILE`: the latency histogram as HdrHistogram's
//! percentile distribution text — the layout of `outputPercentileDistribution`
//! in the reference implementation, which the HdrHistogram plotters read:
//! values in milliseconds, five ticks per half distance.

use hdrhistogram::Histogram;
use std::fmt::Write as _;

/// Percentile ticks per half distance to 100%, as the reference uses.
const TICKS_PER_HALF_DISTANCE: u32 = 5;
/// Recorded values are microseconds; the file says milliseconds.
const US_PER_MS: f64 = 1000.0;

/// The percentile distribution of `latency_us`, in milliseconds.
pub(crate) fn percentile_distribution(latency_us: &Histogram<u64>) -> String {
    let digits = usize::from(latency_us.sigfig());
    let mut out = String::new();
    let _ = write!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    if !latency_us.is_empty() {
        for step in latency_us.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
            total += step.count_since_last_iteration();
            let value = step.value_iterated_to() as f64 / US_PER_MS;
            let quantile = step.quantile_iterated_to();
            if quantile < 1.0 {
                let _ = writeln!(
                    out,
                    "{value:12.digits$} {quantile:2.12} {total:10} {:14.2}",
                    1.0 / (1.0 - quantile)
                );
            } else {
                let _ = writeln!(out, "{value:12.digits$} {quantile:2.12} {total:10}");
            }
        }
    }
    let (mean, stdev) = if latency_us.is_empty() {
        (0.0, 0.0)
    } else {
        (latency_us.mean() / US_PER_MS, latency_us.stdev() / US_PER_MS)
    };
    let max = latency_us.max() as f64 / US_PER_MS;
    let sub_buckets = (2 * 10u64.pow(u32::from(latency_us.sigfig()))).next_power_of_two();
    let _ = writeln!(
        out,
        "#[Mean    = {mean:12.digits$}, StdDeviation   = {stdev:12.digits$}]"
    );
    let _ = writeln!(
        out,
        "#[Max     = {max:12.digits$}, Total count    = {:12}]",
        latency_us.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {sub_buckets:12}]",
        latency_us.buckets()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_layout_with_values_in_milliseconds() {
        let mut latency = Histogram::<u64>::new_with_bounds(1, 100_000_000, 3).unwrap();
        for us in 1..=1000u64 {
            latency.record(us * 10).unwrap(); // 10 us to 10 ms
        }
        let text = percentile_distribution(&latency);
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("       Value     Percentile TotalCount 1/(1-Percentile)")
        );
        assert_eq!(lines.next(), Some(""));
        let rows: Vec<Vec<&str>> = lines
            .clone()
            .take_while(|line| !line.starts_with('#'))
            .map(|line| line.split_whitespace().collect())
            .collect();
        // The first row is the lowest value, the last the highest at 100%.
        assert_eq!(rows[0][..3], ["0.010", "0.000000000000", "1"]);
        let last = rows.last().unwrap();
        assert_eq!(last.len(), 3, "no 1/(1-p) at 100%: {last:?}");
        assert_eq!(last[1], "1.000000000000");
        assert_eq!(last[2], "1000");
        // The median is 5 ms, give or take the histogram's precision.
        let median = rows.iter().find(|row| row[1] == "0.500000000000").unwrap();
        let value: f64 = median[0].parse().unwrap();
        assert!((value - 5.0).abs() < 0.01, "{median:?}");
        assert_eq!(median[3], "2.00");
        // Counts never go down; values never go down.
        for pair in rows.windows(2) {
            assert!(pair[1][2].parse::<u64>().unwrap() >= pair[0][2].parse::<u64>().unwrap());
            assert!(pair[1][0].parse::<f64>().unwrap() >= pair[0][0].parse::<f64>().unwrap());
        }
        let footer: Vec<&str> = text.lines().filter(|line| line.starts_with("#[")).collect();
        assert_eq!(footer.len(), 3);
        assert!(
            footer[1].starts_with("#[Max     =       10.007, Total count    =         1000]"),
            "{}",
            footer[1]
        );
        assert!(
            footer[2].ends_with("SubBuckets     =         2048]"),
            "{}",
            footer[2]
        );
    }
}
