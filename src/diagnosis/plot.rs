//! `--plot FILE.svg`: connections over time for every source that printed
//! counts, one coloured line each, with a cross where an error line was
//! logged, so a reader sees at a glance who got how far, how fast, and
//! where it broke. The x axis is the source's own elapsed time (summed
//! `time_used` for the seed format, timestamps for JSON lines).
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use plotters::prelude::*;

use std::collections::BTreeMap;

use super::report::Series;
use crate::catalogue::FailureId;
use crate::util::thousands;

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
];

/// Draw the series into an SVG file.
pub fn write_svg(path: &Path, series: &[Series]) -> Result<()> {
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(path, (1100, 620)).into_drawing_area();
        root.fill(&WHITE)?;
        let xmax = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .fold(1.0f64, f64::max);
        let ymax = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(10.0f64, f64::max);
        let caption = if series.is_empty() {
            "no source printed connection counts".to_string()
        } else {
            "connections over time (crosses: client-bug error lines; dots: limits and failures)"
                .to_string()
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(90)
            .build_cartesian_2d(0f64..xmax * 1.02, 0f64..ymax * 1.08)?;
        let yfmt = |y: &f64| thousands(y.max(0.0).round() as u64);
        chart
            .configure_mesh()
            .x_desc("seconds since the first line of each source")
            .y_desc("connections")
            .y_label_formatter(&yfmt)
            .label_style(("sans-serif", 14))
            .draw()?;
        for (i, s) in series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let peak = s.points.iter().map(|p| p.1).fold(0.0f64, f64::max);
            let mut per_id: BTreeMap<FailureId, usize> = BTreeMap::new();
            for m in &s.marks {
                *per_id.entry(m.2).or_default() += 1;
            }
            let marks: Vec<String> = per_id.iter().map(|(id, n)| format!("{n} {id}")).collect();
            let label = format!(
                "{} ({}, peak {}{}{})",
                legend_name(&s.name),
                s.kind.as_str(),
                thousands(peak as u64),
                if marks.is_empty() { "" } else { "; marks: " },
                marks.join(", ")
            );
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
                });
            // Client bugs as small crosses; limits and symptoms as big dots
            // with their id written next to the first one.
            chart.draw_series(
                s.marks
                    .iter()
                    .filter(|m| minor(m.2))
                    .map(move |&(x, y, _)| Cross::new((x, y), 5, color.stroke_width(2))),
            )?;
            let mut labelled = Vec::new();
            for &(x, y, id) in s.marks.iter().filter(|m| !minor(m.2)) {
                chart.draw_series(std::iter::once(Circle::new((x, y), 7, color.filled())))?;
                chart.draw_series(std::iter::once(Circle::new(
                    (x, y),
                    7,
                    BLACK.stroke_width(1),
                )))?;
                if !labelled.contains(&id) {
                    labelled.push(id);
                    chart.draw_series(std::iter::once(
                        EmptyElement::at((x, y))
                            + Text::new(
                                id.as_str().to_string(),
                                (-150, -22),
                                ("sans-serif", 15).into_font().color(&BLACK),
                            ),
                    ))?;
                }
            }
        }
        if !series.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 14))
                .draw()?;
        }
        root.present()?;
        Ok(())
    };
    draw()
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("cannot write the plot {}", path.display()))
}

/// Marks drawn small: client bugs and consequences, frequent and minor.
fn minor(id: FailureId) -> bool {
    matches!(
        id,
        FailureId::EagainMisuse
            | FailureId::WrongFd
            | FailureId::UnterminatedBuffer
            | FailureId::PeerDisconnect
            | FailureId::LogCorrupted
    )
}

/// A short legend name: the section (with the seed's Chinese headers also
/// in English, since SVG viewers may lack CJK fonts), else the file name.
fn legend_name(name: &str) -> String {
    if let (Some(open), true) = (name.rfind(" ["), name.ends_with(']')) {
        let section = &name[open + 2..name.len() - 1];
        let english = section
            .replace("客户端", "client ")
            .replace("服务器", "server");
        if english != section {
            return format!("{section} ({})", english.trim());
        }
        return section.to_string();
    }
    std::path::Path::new(name)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.to_string())
}
