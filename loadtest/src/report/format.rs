//! Number and text formatting for the reports: thousands separators, milliseconds, percentages,
//! CPU shares, ratios, durations and dates for the Markdown, short numbers for the plots' axes,
//! and text made safe for a table cell. Non-finite numbers render as "n/a", never a panic.

/// What a measure that was not taken shows, in the tables and the plots.
pub(super) const NOT_MEASURED: &str = "not measured";

/// A division that is None where it means nothing (a zero or non-finite divisor or result).
pub(super) fn div(a: f64, b: f64) -> Option<f64> {
    let r = a / b;
    (b != 0.0 && r.is_finite()).then_some(r)
}

/// Thousands separators: 1234567 → "1,234,567".
pub(super) fn fmt_count(n: u64) -> String {
    group_digits(&n.to_string())
}

fn group_digits(digits: &str) -> String {
    let len = digits.len();
    let mut out = String::with_capacity(len + len / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (len - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A number with `decimals` decimals and thousands separators; "n/a" if not finite.
pub(super) fn fmt_num(x: f64, decimals: usize) -> String {
    if !x.is_finite() {
        return "n/a".to_string();
    }
    let s = format!("{:.*}", decimals, x.abs());
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s.as_str(), None),
    };
    let negative = x < 0.0 && s.chars().any(|c| c.is_ascii_digit() && c != '0');
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    out.push_str(&group_digits(int));
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    out
}

/// Milliseconds: 2 decimals below 10, 1 below 100, whole above (with separators).
pub(super) fn fmt_ms(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".to_string();
    }
    let decimals = match x.abs() {
        a if a < 10.0 => 2,
        a if a < 100.0 => 1,
        _ => 0,
    };
    format!("{} ms", fmt_num(x, decimals))
}

/// A share in percent, precise enough for small losses.
pub(super) fn fmt_percent(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".to_string();
    }
    let decimals = match x.abs() {
        0.0 => 0,
        a if a < 0.1 => 3,
        a if a < 10.0 => 2,
        _ => 1,
    };
    format!("{} %", fmt_num(x, decimals))
}

/// CPU in percent of one core.
pub(super) fn fmt_cpu(x: f64) -> String {
    format!("{} %", fmt_num(x, 1))
}

pub(super) fn fmt_ratio(r: Option<f64>, what: &str) -> String {
    match r {
        Some(r) if r.is_finite() && r > 0.0 => format!("{}× ({what})", fmt_num(r, 2)),
        _ => String::new(),
    }
}

pub(super) fn fmt_duration(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "n/a".to_string();
    }
    if s < 60.0 {
        return format!("{} s", fmt_num(s, 1));
    }
    let total = s.round() as u64;
    let (h, m, sec) = (total / 3600, total / 60 % 60, total % 60);
    if h > 0 { format!("{h} h {m} min {sec} s") } else { format!("{m} min {sec} s") }
}

/// An RFC 3339 time as "YYYY-MM-DD HH:MM:SS UTC"; anything else as it is.
pub(super) fn fmt_date(s: &str) -> String {
    if s.trim().is_empty() {
        return "date unknown".to_string();
    }
    match chrono::DateTime::parse_from_rfc3339(s.trim()) {
        Ok(t) => t.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Err(_) => s.to_string(),
    }
}

/// Short numbers for plot axes: 1500 → "1.5k", 2000000 → "2M", 0.25 → "0.25".
pub(super) fn axis_num(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let a = v.abs();
    let trimmed = |s: String| {
        if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
    };
    let s = if a >= 1e6 {
        format!("{}M", trimmed(format!("{:.1}", v / 1e6)))
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 1e3 {
        fmt_num(v, 0)
    } else if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        trimmed(format!("{v:.1}"))
    } else {
        trimmed(format!("{v:.2}"))
    };
    if s == "-0" { "0".to_string() } else { s }
}

pub(super) fn or_dash(s: &str) -> &str {
    if s.trim().is_empty() { "–" } else { s }
}

pub(super) fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// Text made safe for a Markdown table cell.
pub(super) fn cell(s: &str) -> String {
    one_line(s).replace('|', "\\|")
}

/// Milliseconds for a label on a bar: like `fmt_ms` without the unit.
pub(super) fn short_ms(v: f64) -> String {
    fmt_ms(v).trim_end_matches(" ms").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_number_formats() {
        assert_eq!(fmt_ms(0.4249), "0.42 ms");
        assert_eq!(fmt_ms(9.999), "10.00 ms");
        assert_eq!(fmt_ms(45.66), "45.7 ms");
        assert_eq!(fmt_ms(1203.9), "1,204 ms");
        assert_eq!(fmt_count(0), "0");
        assert_eq!(fmt_count(999), "999");
        assert_eq!(fmt_count(1000), "1,000");
        assert_eq!(fmt_count(25_866_897), "25,866,897");
        assert_eq!(fmt_num(-1234.5, 1), "-1,234.5");
        assert_eq!(fmt_num(-0.01, 1), "0.0");
        assert_eq!(fmt_num(f64::NAN, 1), "n/a");
        assert_eq!(fmt_percent(0.0), "0 %");
        assert_eq!(fmt_percent(0.012), "0.012 %");
        assert_eq!(fmt_percent(2.5), "2.50 %");
        assert_eq!(fmt_duration(300.0), "5 min 0 s");
        assert_eq!(fmt_duration(12.34), "12.3 s");
        assert_eq!(axis_num(1500.0), "1,500");
        assert_eq!(axis_num(100_000.0), "100k");
        assert_eq!(axis_num(2_000_000.0), "2M");
        assert_eq!(axis_num(0.25), "0.25");
        assert_eq!(axis_num(-0.0), "0");
        assert_eq!(fmt_date("not a date"), "not a date");
    }
}
