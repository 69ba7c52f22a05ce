//! The bench's plot: median throughput by client count, one line per target, one panel per
//! workload; written as `bench-throughput.svg` and `.png` like the A/B report's plots.

use crate::bench_report::{BenchResults, Cell};
use anyhow::anyhow;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

const SIZE: (u32, u32) = (1200, 900);

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(127, 127, 127),
];

type Drawn<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    workload: &str,
    results: &BenchResults,
) -> Drawn<DB> {
    let clients = &results.options.clients;
    let cells: Vec<&Cell> = results.cells.iter().filter(|c| c.workload == workload).collect();
    let top = cells
        .iter()
        .filter_map(|c| c.median.as_ref())
        .map(|m| m.throughput_ops_per_s)
        .fold(10.0f64, f64::max)
        * 1.15;
    let n = clients.len().max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{workload}: throughput by clients"), ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.3f64..(n as f64 - 0.7), 0f64..top)?;
    chart
        .configure_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 0.01 && i >= 0.0 {
                clients.get(i as usize).map(|c| c.to_string()).unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_desc("concurrent clients")
        .y_desc("op/s (median)")
        .draw()?;
    for (i, target) in results.options.targets.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        let points: Vec<(f64, f64)> = clients
            .iter()
            .enumerate()
            .filter_map(|(x, n)| {
                let cell =
                    cells.iter().find(|cell| &cell.target == target && cell.clients == *n)?;
                Some((x as f64, cell.median.as_ref()?.throughput_ops_per_s))
            })
            .collect();
        if points.is_empty() {
            continue;
        }
        chart.draw_series(points.iter().map(|p| Circle::new(*p, 4, c.filled())))?;
        chart
            .draw_series(LineSeries::new(points, c.stroke_width(2)))?
            .label(target.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, results: &BenchResults) -> Drawn<DB> {
    root.fill(&WHITE)?;
    let workloads = &results.options.workloads;
    let cols = if workloads.len() > 1 { 2 } else { 1 };
    let rows = workloads.len().div_ceil(cols).max(1);
    let areas = root.split_evenly((rows, cols));
    for (area, workload) in areas.iter().zip(workloads) {
        panel(area, workload, results)?;
    }
    root.present()
}

/// Writes bench-throughput.svg and bench-throughput.png into `out`.
pub fn draw_throughput(results: &BenchResults, out: &Path) -> anyhow::Result<()> {
    let svg = out.join("bench-throughput.svg");
    draw(SVGBackend::new(&svg, SIZE).into_drawing_area(), results)
        .map_err(|e| anyhow!("{}: {e:?}", svg.display()))?;
    let png = out.join("bench-throughput.png");
    draw(BitMapBackend::new(&png, SIZE).into_drawing_area(), results)
        .map_err(|e| anyhow!("{}: {e:?}", png.display()))
}
