//! The five figures of the reports, each a function drawing one PNG's content with the toolkit
//! of `plot`: of a run, `latency.png` (relay-added latency per second), `timeline.png`
//! (listeners, packets/s and CPU over time) and `histogram.png` (the latency distribution and the
//! time to first audio); of a capacity search, `capacity.png`; of a comparison, `compare.png`.

use plotters::prelude::*;

use super::format::{NOT_MEASURED, fmt_count, fmt_ms, fmt_percent, or_dash};
use super::plot::{
    Area, Bars, GREEN_COLOR, Ink, JANUS_COLOR, Line, PURPLE_COLOR, Panel, RED_COLOR, RefLine, TOLK_COLOR,
    bar_panel, histogram_panel, line_panel, no_data, span, titled,
};
use crate::results::{CapacityReport, CapacityStep, CompareReport, Percentiles, RunReport};

/// The latency histogram's axes (x, y).
const LATENCY_HISTOGRAM_AXES: (&str, &str) = ("relay-added latency, ms (bin edges)", "packets");

// Plots of a run.

/// A run's figure title: what it shows, the profile and the relay.
fn run_title(what: &str, r: &RunReport) -> String {
    match (r.profile.trim(), r.relay.trim()) {
        ("", "") => what.to_string(),
        (profile, relay) => format!("{what} — {} against {}", or_dash(profile), or_dash(relay)),
    }
}

/// latency.png: relay-added latency p50 and p99 per second, and the whole run's p99.
pub(super) fn plot_latency(root: &Area<'_>, ink: Ink, r: &RunReport) -> anyhow::Result<()> {
    let area = titled(root, ink, &run_title("Relay-added latency per second", r))?;
    let measured = || r.timeline.iter().filter(|s| s.latency_p50 > 0.0 || s.latency_p99 > 0.0);
    let mut p = Panel::new("time since the start, s", "latency, ms");
    p.lines.push(Line::new(
        "p50 in the second",
        TOLK_COLOR,
        measured().map(|s| (s.t, s.latency_p50)).collect(),
    ));
    p.lines.push(Line::new(
        "p99 in the second",
        RED_COLOR,
        measured().map(|s| (s.t, s.latency_p99)).collect(),
    ));
    if r.latency_ms.count > 0 && measured().next().is_some() {
        p.refs.push(RefLine {
            label: format!("p99 of the run: {}", fmt_ms(r.latency_ms.p99)),
            color: PURPLE_COLOR,
            value: r.latency_ms.p99,
            vertical: false,
        });
    }
    line_panel(&area, ink, &p)
}

/// timeline.png: listeners, packets/s, relay and generator CPU over time, stacked.
pub(super) fn plot_timeline(root: &Area<'_>, ink: Ink, r: &RunReport) -> anyhow::Result<()> {
    let area = titled(root, ink, &run_title("Timeline", r))?;
    let tl = &r.timeline;
    let Some(x_range) = span(tl.iter().map(|s| s.t)) else {
        return no_data(&area, ink, None, "no data");
    };
    let x_range = Some((x_range.0.min(0.0), x_range.1));
    let rows = area.split_evenly((3, 1));
    let (Some(a1), Some(a2), Some(a3)) = (rows.first(), rows.get(1), rows.get(2)) else {
        return Ok(());
    };

    let mut p1 = Panel::new("", "listeners");
    p1.lines.push(Line::new(
        "listeners",
        TOLK_COLOR,
        tl.iter().map(|s| (s.t, f64::from(s.listeners))).collect(),
    ));
    p1.x_range = x_range;
    p1.x_label_area = 26;
    line_panel(a1, ink, &p1)?;

    let mut p2 = Panel::new("", "packets/s received");
    p2.lines.push(Line::new("packets/s", GREEN_COLOR, tl.iter().map(|s| (s.t, s.packets_per_s)).collect()));
    p2.x_range = x_range;
    p2.x_label_area = 26;
    line_panel(a2, ink, &p2)?;

    let mut p3 = Panel::new("time since the start, s", "CPU, % of a core");
    let relay: Vec<_> = tl.iter().filter_map(|s| s.relay_cpu_percent.map(|c| (s.t, c))).collect();
    let relay_label = if relay.is_empty() { format!("relay ({NOT_MEASURED})") } else { "relay".to_string() };
    p3.lines.push(Line::new(relay_label, RED_COLOR, relay));
    p3.lines.push(Line::new(
        "generator",
        PURPLE_COLOR,
        tl.iter().map(|s| (s.t, s.generator_cpu_percent)).collect(),
    ));
    p3.x_range = x_range;
    line_panel(a3, ink, &p3)
}

/// histogram.png: the relay-added latency histogram (left) and the time to first audio (right).
pub(super) fn plot_histogram(root: &Area<'_>, ink: Ink, r: &RunReport) -> anyhow::Result<()> {
    let area = titled(root, ink, &run_title("Latency distribution and time to first audio", r))?;
    let (left, right) = area.split_horizontally(640);
    let caption = if r.latency_ms.count > 0 {
        format!("Relay-added latency: p50 {}, p99 {}", fmt_ms(r.latency_ms.p50), fmt_ms(r.latency_ms.p99))
    } else {
        "Relay-added latency".to_string()
    };
    histogram_panel(&left, ink, &caption, LATENCY_HISTOGRAM_AXES, &r.latency_histogram)?;
    let bars = Bars {
        caption: Some("Time to first audio".to_string()),
        y_desc: "ms".to_string(),
        categories: percentile_names(),
        groups: vec![("first audio".to_string(), GREEN_COLOR, percentile_values(&r.first_audio_ms))],
        no_data: NOT_MEASURED.to_string(),
    };
    bar_panel(&right, ink, &bars)
}

/// A percentile summary as bar values: p50, p95, p99, max (none if nothing was measured).
fn percentile_values(p: &Percentiles) -> Vec<Option<f64>> {
    if p.count == 0 { vec![None; 4] } else { vec![Some(p.p50), Some(p.p95), Some(p.p99), Some(p.max)] }
}

/// The categories of [`percentile_values`].
fn percentile_names() -> Vec<String> {
    ["p50", "p95", "p99", "max"].iter().map(|s| s.to_string()).collect()
}

// Plots of a capacity search and of a comparison.

/// Steps by listeners.
fn sorted_steps(steps: &[CapacityStep]) -> Vec<&CapacityStep> {
    let mut s: Vec<_> = steps.iter().collect();
    s.sort_by_key(|s| s.listeners);
    s
}

/// (listeners, `y`) of each step.
fn step_points(steps: &[&CapacityStep], y: fn(&CapacityStep) -> f64) -> Vec<(f64, f64)> {
    steps.iter().map(|s| (f64::from(s.listeners), y(s))).collect()
}

/// An x range from 0 to a little past the most listeners any search tried.
fn listeners_range(caps: &[&CapacityReport]) -> Option<(f64, f64)> {
    let max = caps.iter().flat_map(|c| c.steps.iter().map(|s| f64::from(s.listeners))).fold(0.0, f64::max);
    (max > 0.0).then_some((0.0, max * 1.05))
}

/// capacity.png: loss, p99 and CPU against listeners, the limits and the result as lines.
pub(super) fn plot_capacity(root: &Area<'_>, ink: Ink, c: &CapacityReport) -> anyhow::Result<()> {
    let title = format!(
        "Capacity search — {}: {} listeners per core",
        or_dash(&c.relay),
        fmt_count(c.listeners_per_core.into())
    );
    let area = titled(root, ink, &title)?;
    let steps = sorted_steps(&c.steps);
    if steps.is_empty() {
        return no_data(&area, ink, None, "no data: no step ran");
    }
    let x_range = listeners_range(&[c]);
    let rows = area.split_evenly((3, 1));
    let (Some(a1), Some(a2), Some(a3)) = (rows.first(), rows.get(1), rows.get(2)) else {
        return Ok(());
    };
    line_panel(a1, ink, &capacity_loss(c, &steps, x_range))?;
    line_panel(a2, ink, &capacity_p99(c, &steps, x_range))?;
    line_panel(a3, ink, &capacity_cpu(c, &steps, x_range))
}

/// The search's result, listeners per core, as a vertical line (labelled in the top panel).
fn result_line(c: &CapacityReport, with_label: bool) -> RefLine {
    RefLine {
        label: if with_label {
            format!("{} listeners per core", fmt_count(c.listeners_per_core.into()))
        } else {
            String::new()
        },
        color: GREEN_COLOR,
        value: f64::from(c.listeners_per_core),
        vertical: true,
    }
}

/// Each step within the limits or not.
fn step_marks(steps: &[&CapacityStep]) -> Option<Vec<bool>> {
    Some(steps.iter().map(|s| s.passed).collect())
}

/// capacity.png's top panel: loss per step, its limit, the result.
fn capacity_loss(c: &CapacityReport, steps: &[&CapacityStep], x_range: Option<(f64, f64)>) -> Panel {
    let mut p = Panel::new("", "loss, %");
    let mut loss = Line::new("loss", TOLK_COLOR, step_points(steps, |s| s.loss_percent));
    loss.marks = step_marks(steps);
    p.lines.push(loss);
    p.refs.push(RefLine {
        label: format!("limit {}", fmt_percent(c.max_loss_percent)),
        color: RED_COLOR,
        value: c.max_loss_percent,
        vertical: false,
    });
    if c.listeners_per_core > 0 {
        p.refs.push(result_line(c, true));
    }
    p.x_range = x_range;
    p.x_label_area = 26;
    p
}

/// capacity.png's middle panel: p99 latency per step, its limit, the result.
fn capacity_p99(c: &CapacityReport, steps: &[&CapacityStep], x_range: Option<(f64, f64)>) -> Panel {
    let mut p = Panel::new("", "p99 latency, ms");
    let mut p99 = Line::new("p99", TOLK_COLOR, step_points(steps, |s| s.latency_p99));
    p99.marks = step_marks(steps);
    p.lines.push(p99);
    p.refs.push(RefLine {
        label: format!("limit {}", fmt_ms(c.max_p99_ms)),
        color: RED_COLOR,
        value: c.max_p99_ms,
        vertical: false,
    });
    if c.listeners_per_core > 0 {
        p.refs.push(result_line(c, false));
    }
    p.legend = false;
    p.x_range = x_range;
    p.x_label_area = 26;
    p
}

/// capacity.png's bottom panel: the relay's and the generator's CPU per step, the result.
fn capacity_cpu(c: &CapacityReport, steps: &[&CapacityStep], x_range: Option<(f64, f64)>) -> Panel {
    let mut p = Panel::new("listeners", "CPU, % of a core");
    p.lines.push(Line::new("relay", RED_COLOR, step_points(steps, |s| s.relay_cpu_percent)));
    p.lines.push(Line::new("generator", PURPLE_COLOR, step_points(steps, |s| s.generator_cpu_percent)));
    if c.listeners_per_core > 0 {
        p.refs.push(result_line(c, false));
    }
    p.x_range = x_range;
    p
}

/// A relay's capacity search in a comparison: its name, its colour, the search.
type Compared<'a> = (&'a str, RGBColor, &'a CapacityReport);

/// compare.png: latency percentiles side by side; the capacity curves of both on the right.
pub(super) fn plot_compare(root: &Area<'_>, ink: Ink, c: &CompareReport) -> anyhow::Result<()> {
    let title = format!("Tolk vs Janus — {}", or_dash(&c.tolk.profile));
    let area = titled(root, ink, &title)?;
    let caps: Vec<Compared<'_>> =
        [("Tolk", TOLK_COLOR, c.tolk_capacity.as_ref()), ("Janus", JANUS_COLOR, c.janus_capacity.as_ref())]
            .into_iter()
            .filter_map(|(n, col, cap)| cap.map(|cap| (n, col, cap)))
            .collect();
    let bars = Bars {
        caption: Some("Relay-added latency".to_string()),
        y_desc: "ms".to_string(),
        categories: percentile_names(),
        groups: vec![
            ("Tolk".to_string(), TOLK_COLOR, percentile_values(&c.tolk.latency_ms)),
            ("Janus".to_string(), JANUS_COLOR, percentile_values(&c.janus.latency_ms)),
        ],
        no_data: format!("relay-added latency {NOT_MEASURED}"),
    };
    if caps.is_empty() {
        return bar_panel(&area, ink, &bars);
    }
    let (left, right) = area.split_horizontally(470);
    bar_panel(&left, ink, &bars)?;
    capacity_curves(&right, ink, &caps)
}

/// compare.png's right side: loss, p99 and relay CPU against listeners for each search, the
/// first search's limits, each search's result.
fn capacity_curves(area: &Area<'_>, ink: Ink, caps: &[Compared<'_>]) -> anyhow::Result<()> {
    let x_range = listeners_range(&caps.iter().map(|(_, _, c)| *c).collect::<Vec<_>>());
    let rows = area.split_evenly((3, 1));
    let (Some(a1), Some(a2), Some(a3)) = (rows.first(), rows.get(1), rows.get(2)) else {
        return Ok(());
    };
    let limits = caps.first().map(|(_, _, cap)| (cap.max_loss_percent, cap.max_p99_ms));

    let mut p1 = Panel::new("", "loss, %");
    p1.caption = Some("Capacity searches".to_string());
    p1.lines = curves(caps, |s| s.loss_percent);
    if let Some((loss, _)) = limits {
        p1.refs.push(RefLine { label: "limit".to_string(), color: RED_COLOR, value: loss, vertical: false });
    }
    p1.refs.extend(per_core(caps, true));
    p1.x_range = x_range;
    p1.x_label_area = 26;
    line_panel(a1, ink, &p1)?;

    let mut p2 = Panel::new("", "p99, ms");
    p2.lines = curves(caps, |s| s.latency_p99);
    if let Some((_, p99)) = limits {
        p2.refs.push(RefLine { label: "limit".to_string(), color: RED_COLOR, value: p99, vertical: false });
    }
    p2.refs.extend(per_core(caps, false));
    p2.legend = false;
    p2.x_range = x_range;
    p2.x_label_area = 26;
    line_panel(a2, ink, &p2)?;

    let mut p3 = Panel::new("listeners", "relay CPU, %");
    p3.lines = curves(caps, |s| s.relay_cpu_percent);
    p3.refs.extend(per_core(caps, false));
    p3.legend = false;
    p3.x_range = x_range;
    line_panel(a3, ink, &p3)
}

/// One line per search: `y` against listeners, in the search's colour.
fn curves(caps: &[Compared<'_>], y: fn(&CapacityStep) -> f64) -> Vec<Line> {
    caps.iter()
        .map(|(name, color, cap)| Line::new(*name, *color, step_points(&sorted_steps(&cap.steps), y)))
        .collect()
}

/// Each relay's result as a vertical line in its colour, labelled in the top panel only.
fn per_core(caps: &[Compared<'_>], with_label: bool) -> Vec<RefLine> {
    caps.iter()
        .filter(|(_, _, cap)| cap.listeners_per_core > 0)
        .map(|(name, color, cap)| RefLine {
            label: if with_label {
                format!("{name}: {} per core", fmt_count(cap.listeners_per_core.into()))
            } else {
                String::new()
            },
            color: *color,
            value: f64::from(cap.listeners_per_core),
            vertical: true,
        })
        .collect()
}
