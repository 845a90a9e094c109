//! `kv bench --plot FILE.svg`: what a load measured, drawn — latency by
//! percentile (the HdrHistogram way: the tail spread out on a log scale of
//! 1/(1-percentile)), and throughput with p50/p99 latency over time.
//!
//! `plotters` with its SVG backend only: text is written as SVG `<text>`,
//! laid out by the viewer, so no font library is needed to draw.

use super::report::BenchReport;
use hdrhistogram::Histogram;
use plotters::prelude::*;
use std::path::Path;
use std::time::Duration;

const WIDTH: u32 = 900;
const HEIGHT: u32 = 760;
/// The deepest percentile shown: 99.9999%.
const MAX_NINES: f64 = 6.0;
/// Points per interval plotted over time at most; longer runs are merged.
const MAX_POINTS: usize = 120;

/// Draws `report` and its `intervals` (each `interval` long) into `path`.
pub(crate) fn draw(
    path: &Path,
    title: &str,
    report: &BenchReport,
    intervals: &[Histogram<u64>],
    interval: Duration,
) -> Result<(), String> {
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    let failed = |e: &dyn std::fmt::Display| format!("cannot draw {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| failed(&e))?;
    let root = root.titled(title, ("sans-serif", 18)).map_err(|e| failed(&e))?;
    let (upper, lower) = root.split_vertically(HEIGHT / 2 - 10);
    percentiles(&upper, &report.latency_us).map_err(|e| failed(&e))?;
    over_time(&lower, intervals, interval, report.elapsed).map_err(|e| failed(&e))?;
    root.present().map_err(|e| failed(&e))
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

/// Latency (ms) by percentile, x = log10(1/(1-p)).
fn percentiles(area: &Area<'_>, latency_us: &Histogram<u64>) -> DrawResult {
    let points: Vec<(f64, f64)> = if latency_us.is_empty() {
        Vec::new()
    } else {
        latency_us
            .iter_quantiles(5)
            .map(|step| (step.quantile_iterated_to(), step.value_iterated_to()))
            .filter(|(q, _)| *q < 1.0)
            .map(|(q, us)| ((1.0 / (1.0 - q)).log10().min(MAX_NINES), us as f64 / 1000.0))
            .collect()
    };
    let nines = points.iter().map(|p| p.0).fold(1.0, f64::max).ceil();
    let top = latency_us.max() as f64 / 1000.0 * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption("latency by percentile", ("sans-serif", 15))
        .margin(12)
        .margin_right(40)
        .x_label_area_size(32)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..nines, 0.0..top.max(0.001))?;
    chart
        .configure_mesh()
        .x_labels(nines as usize + 1)
        .x_label_formatter(&|x| percent_label(*x))
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .draw()?;
    chart.draw_series(LineSeries::new(points, BLUE.stroke_width(2)))?;
    Ok(())
}

/// "0%", "90%", "99%", "99.9%", ... for 0, 1, 2, 3 nines.
fn percent_label(nines: f64) -> String {
    let nines = nines.round() as i32;
    if nines <= 0 {
        return "0%".into();
    }
    let percent = 100.0 * (1.0 - 10f64.powi(-nines));
    format!("{percent:.*}%", (nines - 2).max(0) as usize)
}

/// Throughput (ops/s) and p50/p99 latency (ms) per interval; the run
/// lasted `elapsed` (its last interval may be partial).
fn over_time(
    area: &Area<'_>,
    intervals: &[Histogram<u64>],
    interval: Duration,
    elapsed: Duration,
) -> DrawResult {
    // Merge neighbours so that at most MAX_POINTS are drawn.
    let per_point = intervals.len().div_ceil(MAX_POINTS).max(1);
    let step = interval.as_secs_f64() * per_point as f64;
    let merged: Vec<Histogram<u64>> = intervals
        .chunks(per_point)
        .map(|chunk| {
            let mut merged = chunk[0].clone();
            for next in &chunk[1..] {
                let _ = merged.add(next);
            }
            merged
        })
        .collect();
    let at = |i: usize| (i as f64 + 0.5) * step;
    // The time a point covers: a whole step, but for the last, what was left.
    let covered = |i: usize| (elapsed.as_secs_f64() - i as f64 * step).clamp(step / 100.0, step);
    let throughput: Vec<(f64, f64)> = merged
        .iter()
        .enumerate()
        .map(|(i, h)| (at(i), h.len() as f64 / covered(i)))
        .collect();
    let quantile = |q: f64| -> Vec<(f64, f64)> {
        merged
            .iter()
            .enumerate()
            .filter(|(_, h)| !h.is_empty())
            .map(|(i, h)| (at(i), h.value_at_quantile(q) as f64 / 1000.0))
            .collect()
    };
    let (p50, p99) = (quantile(0.5), quantile(0.99));
    let end = (merged.len() as f64 * step).max(step);
    let top_ops = throughput.iter().map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let top_ms = p99.iter().map(|p| p.1).fold(0.001, f64::max) * 1.15;

    let mut chart = ChartBuilder::on(area)
        .caption("over time", ("sans-serif", 15))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(72)
        .right_y_label_area_size(56)
        .build_cartesian_2d(0.0..end, 0.0..top_ops)?
        .set_secondary_coord(0.0..end, 0.0..top_ms);
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("operations / s")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    chart.configure_secondary_axes().y_desc("latency (ms)").draw()?;
    chart
        .draw_series(LineSeries::new(throughput, BLACK.stroke_width(2)))?
        .label("ops/s")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.stroke_width(2)));
    chart
        .draw_secondary_series(LineSeries::new(p50, BLUE.stroke_width(2)))?
        .label("p50 latency")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLUE.stroke_width(2)));
    chart
        .draw_secondary_series(LineSeries::new(p99, RED.stroke_width(2)))?
        .label("p99 latency")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RED.stroke_width(2)));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_labels_count_nines() {
        let labels: Vec<String> = (0..=5).map(|n| percent_label(f64::from(n))).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]);
    }
}
