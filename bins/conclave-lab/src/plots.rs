//! The report's plots, each as SVG and PNG: the latency CDF per target, throughput over time
//! with the faults marked, and the unavailability after each fault.
//!
//! Drawn with plotters from [`Results`] alone (the first run's figures), so they can be redrawn
//! from a results.json. Text goes through the system's fonts (fontconfig).

use crate::results::{Results, TargetResult};
use anyhow::anyhow;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

const SIZE: (u32, u32) = (960, 540);

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

type Drawn<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// The first run's results of every target that ran.
fn first_run(results: &Results) -> Vec<&TargetResult> {
    results
        .runs
        .first()
        .map(|r| r.targets.iter().filter(|t| t.error.is_none()).collect())
        .unwrap_or_default()
}

fn latency_cdf<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, results: &Results) -> Drawn<DB> {
    root.fill(&WHITE)?;
    let targets = first_run(results);
    let points =
        |t: &TargetResult| t.latency_cdf.iter().map(|p| (p[0].max(0.01), p[1])).collect::<Vec<_>>();
    let max = targets.iter().flat_map(|t| points(t)).map(|p| p.0).fold(1.0f64, f64::max) * 1.5;
    let min =
        targets.iter().flat_map(|t| points(t)).map(|p| p.0).fold(max, f64::min).max(0.01) / 1.5;
    let mut chart = ChartBuilder::on(&root)
        .caption("Latency CDF (answered requests, run 1)", ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d((min..max).log_scale(), 0f64..1.0)?;
    chart
        .configure_mesh()
        .x_desc("latency (ms, log scale)")
        .y_desc("fraction of requests")
        .x_label_formatter(&|x| format!("{x:.2}"))
        .draw()?;
    for (i, target) in targets.iter().enumerate() {
        let c = color(i);
        chart
            .draw_series(LineSeries::new(points(target), c.stroke_width(2)))?
            .label(target.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()
}

fn throughput<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, results: &Results) -> Drawn<DB> {
    root.fill(&WHITE)?;
    let targets = first_run(results);
    let rate = |t: &TargetResult, v: u64| v as f64 * 1000.0 / t.series_bucket_ms.max(1) as f64;
    let series = |t: &TargetResult| -> Vec<(f64, f64)> {
        let bucket_s = t.series_bucket_ms as f64 / 1000.0;
        t.throughput_series
            .iter()
            .enumerate()
            .map(|(i, &v)| ((i as f64 + 0.5) * bucket_s, rate(t, v)))
            .collect()
    };
    let end = results.options.duration_s.max(1.0);
    let top = targets.iter().flat_map(|t| series(t)).map(|p| p.1).fold(10.0f64, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption("Throughput over time, faults shaded (run 1)", ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d(0f64..end, 0f64..top)?;
    chart.configure_mesh().x_desc("time (s)").y_desc("answered requests / s").draw()?;
    let plans = results.runs.first().map(|r| r.faults_planned.clone()).unwrap_or_default();
    for plan in &plans {
        let from = plan.at_ms as f64 / 1000.0;
        let to = (plan.at_ms + plan.hold_ms) as f64 / 1000.0;
        chart.draw_series(std::iter::once(Rectangle::new(
            [(from, 0.0), (to, top)],
            RGBColor(255, 200, 200).mix(0.5).filled(),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            plan.kind.to_string(),
            (from, top * 0.97),
            ("sans-serif", 15).into_font().color(&RED),
        )))?;
    }
    for (i, target) in targets.iter().enumerate() {
        let c = color(i);
        chart
            .draw_series(LineSeries::new(series(target), c.stroke_width(2)))?
            .label(target.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()
}

fn unavailability<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    results: &Results,
) -> Drawn<DB> {
    root.fill(&WHITE)?;
    let targets = first_run(results);
    let faults = targets.iter().map(|t| t.faults.len()).max().unwrap_or(0);
    let labels: Vec<String> = (0..faults)
        .map(|i| {
            let kind =
                targets.iter().find_map(|t| t.faults.get(i)).map(|f| f.event.kind.to_string());
            format!("{} {}", i + 1, kind.unwrap_or_default())
        })
        .collect();
    let top = targets
        .iter()
        .flat_map(|t| t.faults.iter().map(|f| f.unavailable_ms))
        .fold(100.0f64, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption("Writes unavailable after each fault (run 1)", ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d(0f64..faults.max(1) as f64, 0f64..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(faults.max(1) * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.01 {
                labels.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_desc("fault")
        .y_desc("longest stretch without a successful write (ms)")
        .draw()?;
    let width = 0.8 / targets.len().max(1) as f64;
    for (i, target) in targets.iter().enumerate() {
        let c = color(i);
        let bars = target.faults.iter().enumerate().map(move |(k, f)| {
            let x0 = k as f64 + 0.1 + i as f64 * width;
            Rectangle::new([(x0, 0.0), (x0 + width * 0.9, f.unavailable_ms)], c.filled())
        });
        chart
            .draw_series(bars)?
            .label(target.name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], c.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()
}

type Plot = fn(&Results, &Path, bool) -> anyhow::Result<()>;

macro_rules! both_backends {
    ($name:ident, $draw:ident) => {
        fn $name(results: &Results, path: &Path, svg: bool) -> anyhow::Result<()> {
            if svg {
                $draw(SVGBackend::new(path, SIZE).into_drawing_area(), results)
                    .map_err(|e| anyhow!("{}: {e:?}", path.display()))
            } else {
                $draw(BitMapBackend::new(path, SIZE).into_drawing_area(), results)
                    .map_err(|e| anyhow!("{}: {e:?}", path.display()))
            }
        }
    };
}

both_backends!(plot_latency, latency_cdf);
both_backends!(plot_throughput, throughput);
both_backends!(plot_unavailability, unavailability);

/// Writes latency-cdf, throughput and unavailability, each as .svg and .png, into `out`.
pub fn draw_all(results: &Results, out: &Path) -> anyhow::Result<()> {
    let plots: [(&str, Plot); 3] = [
        ("latency-cdf", plot_latency),
        ("throughput", plot_throughput),
        ("unavailability", plot_unavailability),
    ];
    for (name, plot) in plots {
        plot(results, &out.join(format!("{name}.svg")), true)?;
        plot(results, &out.join(format!("{name}.png")), false)?;
    }
    Ok(())
}
