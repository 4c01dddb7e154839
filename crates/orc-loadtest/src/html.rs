//! The report as one self-contained HTML page: the tables, and the latency-over-time and
//! throughput-over-time charts drawn by plotters as inline SVG (no script, no font file, no
//! network needed to view it).

use std::fmt::Write as _;

use plotters::prelude::*;

use crate::report::{Point, Report, Stats};
use crate::{Error, Result};

const WIDTH: u32 = 900;
const HEIGHT: u32 = 320;

/// One line of a chart: its name, colour and value per point.
type Line<'a> = (&'a str, RGBColor, fn(&Point) -> f64);

fn chart(
    title: &str,
    unit: &str,
    points: &[Point],
    width: f64,
    lines: &[Line<'_>],
) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        let err = |e: &dyn std::fmt::Display| Error::Chart(e.to_string());
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let x_max = (points.len() as f64 * width).max(width);
        let y_max = points
            .iter()
            .flat_map(|p| lines.iter().map(move |(_, _, f)| f(p)))
            .fold(0.0_f64, f64::max)
            .max(1e-3)
            * 1.1;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("seconds from the start")
            .y_desc(unit)
            .draw()
            .map_err(|e| err(&e))?;
        for (name, colour, value) in lines {
            let colour = *colour;
            chart
                .draw_series(LineSeries::new(
                    points.iter().map(|p| (p.t + width / 2.0, value(p))),
                    colour.stroke_width(2),
                ))
                .map_err(|e| err(&e))?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn row(out: &mut String, name: &str, weight: &str, s: &Stats) {
    let l = &s.latency_ms;
    let _ = writeln!(
        out,
        "<tr><td>{}</td><td>{weight}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td></tr>",
        escape(name),
        s.requests,
        s.errors,
        s.requests_per_second,
        l.mean,
        l.p50,
        l.p95,
        l.p99,
        l.max
    );
}

impl Report {
    /// The report as a self-contained HTML page with its charts as inline SVG.
    pub fn html(&self) -> Result<String> {
        render(self)
    }
}

fn render(report: &Report) -> Result<String> {
    let points = &report.timeline.points;
    let width = report.timeline.interval_seconds;
    let latency = chart(
        "Response time over time",
        "milliseconds",
        points,
        width,
        &[
            ("p50", RGBColor(31, 119, 180), |p| p.p50_ms),
            ("p95", RGBColor(255, 127, 14), |p| p.p95_ms),
            ("p99", RGBColor(214, 39, 40), |p| p.p99_ms),
        ],
    )?;
    let throughput = chart(
        "Throughput over time",
        "requests per second",
        points,
        width,
        &[
            ("requests/s", RGBColor(44, 160, 44), |p| {
                p.requests_per_second
            }),
            ("errors/s", RGBColor(214, 39, 40), |p| {
                p.errors as f64 * p.requests_per_second / (p.requests.max(1) as f64)
            }),
        ],
    )?;
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>orc loadtest: {target}</title>\n<style>body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}td:first-child,th:first-child{{text-align:left}}tr:last-child{{font-weight:bold}}.muted{{color:#666}}</style></head><body>\n<h1>orc loadtest</h1>\n<p>{target}: {model}, {elapsed:.1} s{stopped}</p>\n",
        target = escape(&report.target),
        model = escape(&crate::table::model(report)),
        elapsed = report.elapsed_seconds,
        stopped = report
            .stopped
            .as_deref()
            .map(|w| format!(" (stopped early: {})", escape(w)))
            .unwrap_or_default(),
    );
    out.push_str("<table><tr><th>scenario</th><th>weight</th><th>requests</th><th>errors</th><th>req/s</th><th>mean ms</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>max ms</th></tr>\n");
    for s in &report.scenarios {
        row(&mut out, &s.name, &s.weight.to_string(), &s.stats);
    }
    row(&mut out, "total", "", &report.total);
    out.push_str("</table>\n");
    if report.total.errors > 0 {
        out.push_str(
            "<h2>Errors</h2><table><tr><th>scenario</th><th>kind</th><th>count</th><th>first answer</th></tr>\n",
        );
        for s in &report.scenarios {
            for (kind, n) in &s.stats.errors_by_kind {
                let first = s.stats.first_errors.get(kind).map_or("", String::as_str);
                let _ = writeln!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>{n}</td><td style=\"text-align:left\"><code>{}</code></td></tr>",
                    escape(&s.name),
                    escape(kind),
                    escape(first)
                );
            }
        }
        let _ = writeln!(
            out,
            "<tr><td>total</td><td></td><td>{}</td><td></td></tr></table>",
            report.total.errors
        );
    }
    let _ = write!(
        out,
        "<h2>Over time</h2>\n<div>{latency}</div>\n<div>{throughput}</div>\n<p class=\"muted\">Generator overhead: {:.2} s CPU, {:.1} µs per request, {:.2} cores busy ({}). Response times are of successful requests; percentiles within 1 %.</p>\n</body></html>\n",
        report.overhead.cpu_seconds,
        report.overhead.cpu_us_per_request,
        report.overhead.cores_busy,
        escape(&report.overhead.includes),
    );
    Ok(out)
}
