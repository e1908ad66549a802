//! A soak's churn and its verdict: listeners leave at the profile's `leaves_per_minute` (a DELETE
//! of their session) and each is replaced by a new one on a random channel, so the count stays
//! steady while peers come and go; after the run, the relay's RSS after warm-up is checked for
//! flatness and the loss against the soak's limits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::results::{Loss, Sample};

/// RSS after warm-up may spread this much (max over min), in percent.
pub const RSS_FLAT_PERCENT: f64 = 5.0;
/// Packets a soak may lose, in percent.
pub const LOSS_PERCENT: f64 = 0.5;

/// One leave owed: which listener goes (its id, session URL, worker).
pub struct Leave {
    pub id: u64,
    pub session: String,
    pub worker: usize,
}

/// Every 100 ms, make the leaves owed by then (`pick` chooses one and forgets it; `replace`
/// hangs it up and joins a new listener), until `stop`. Returns the leaves made.
pub async fn run<P, R, F>(
    stop: Arc<AtomicBool>,
    per_second: f64,
    mut listeners: impl FnMut() -> usize,
    mut pick: P,
    replace: R,
) -> u32
where
    P: FnMut() -> Option<Leave>,
    R: Fn(Leave) -> F,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let mut owed = 0.0;
    let mut done = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        owed += per_second * listeners() as f64 * 0.1;
        while owed >= 1.0 {
            owed -= 1.0;
            let Some(leave) = pick() else { break };
            tokio::spawn(replace(leave));
            done += 1;
        }
    }
    done
}

/// The soak's sentences: RSS after warm-up (from `from_s` on) and loss against the limits.
pub fn verdict(timeline: &[Sample], from_s: f64, loss: &Loss) -> Vec<String> {
    let rss: Vec<f64> = timeline.iter().filter(|s| s.t >= from_s).filter_map(|s| s.relay_rss_mib).collect();
    let mut notes = Vec::new();
    match (rss.iter().copied().reduce(f64::min), rss.iter().copied().reduce(f64::max)) {
        (Some(min), Some(max)) if min > 0.0 => {
            let spread = (max - min) / min * 100.0;
            let ok = if spread <= RSS_FLAT_PERCENT { "flat" } else { "NOT flat" };
            notes.push(format!(
                "Soak: relay RSS after warm-up ({from_s:.0} s on, {} samples) {min:.1}–{max:.1} MiB, spread {spread:.2} % ({ok}; limit {RSS_FLAT_PERCENT} %).",
                rss.len()
            ));
        }
        _ => notes.push(format!("Soak: no relay RSS samples after warm-up ({from_s:.0} s on).")),
    }
    let ok = if loss.percent <= LOSS_PERCENT { "within" } else { "OVER" };
    notes.push(format!("Soak: loss {:.3} % ({ok} the {LOSS_PERCENT} % limit).", loss.percent));
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_spread_after_warm_up_is_judged_against_five_percent() {
        let sample = |t: f64, rss: f64| Sample { t, relay_rss_mib: Some(rss), ..Sample::default() };
        let timeline = [sample(0.0, 10.0), sample(60.0, 100.0), sample(120.0, 103.0)];
        let loss = Loss { expected: 1000, received: 999, lost: 1, percent: 0.1, ..Loss::default() };
        let notes = verdict(&timeline, 50.0, &loss);
        assert!(notes[0].contains("spread 3.00 % (flat"), "{notes:?}");
        assert!(notes[1].contains("within"), "{notes:?}");
        let notes = verdict(&[sample(60.0, 100.0), sample(70.0, 110.0)], 50.0, &loss);
        assert!(notes[0].contains("NOT flat"), "{notes:?}");
    }
}
