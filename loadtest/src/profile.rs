//! Event profiles (TOML): the languages, the booths and their handovers, the listeners (how many,
//! how they spread over the channels, when they join, how often they switch), the run's length and
//! the impairment of the listeners' network.

use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Seconds of the run after the first listener joins.
    pub duration_s: f64,
    #[serde(default = "english")]
    pub floor_language: String,
    /// Interpretation languages (one booth each).
    pub languages: Vec<String>,
    #[serde(default)]
    pub interpreters: Interpreters,
    pub listeners: Listeners,
    #[serde(default)]
    pub impairment: ImpairmentConfig,
    /// Record every channel: the event is created with `"recording": {"channels": "all"}`, and
    /// the report lists the files the relay wrote.
    #[serde(default)]
    pub recording: bool,
}

fn english() -> String {
    "en".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interpreters {
    /// Interpreters per booth (1: no handovers; 2: an A/B booth).
    #[serde(default = "two")]
    pub per_booth: u32,
    /// Seconds between handovers in a booth (0: none).
    #[serde(default = "handover_period")]
    pub handover_every_s: f64,
}

fn two() -> u32 {
    2
}
fn handover_period() -> f64 {
    10.0
}

impl Default for Interpreters {
    fn default() -> Self {
        Self { per_booth: 2, handover_every_s: 10.0 }
    }
}

/// How listeners spread over the channels (the floor first, then the languages in order).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Spread {
    /// Channel k (1-based) gets a share ∝ 1/k^s.
    Zipf {
        s: f64,
    },
    Uniform,
    /// Explicit shares, one per channel (floor first); normalised.
    Shares {
        shares: Vec<f64>,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Burst {
    /// Seconds after the start of the join ramp.
    pub at_s: f64,
    pub count: u32,
    /// The burst's joins are spread over this long.
    #[serde(default = "one")]
    pub within_s: f64,
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listeners {
    /// Listeners joining on the ramp (bursts come on top).
    pub count: u32,
    /// The ramp's joins are spread evenly over this long.
    pub ramp_s: f64,
    #[serde(default = "zipf")]
    pub spread: Spread,
    #[serde(default)]
    pub bursts: Vec<Burst>,
    /// Channel switches per listener and minute.
    #[serde(default)]
    pub switches_per_minute: f64,
    /// Listeners leaving per listener and minute; each one that leaves (DELETE) is replaced by a
    /// new one joining a random channel, so the count stays steady (a soak's churn).
    #[serde(default)]
    pub leaves_per_minute: f64,
    /// Seconds after the ramp before the soak figures start (RSS flatness): warm-up.
    #[serde(default)]
    pub warmup_s: f64,
    /// Every n-th listener decodes and checks its audio.
    #[serde(default = "fifty")]
    pub decode_every: u32,
    /// Every n-th listener runs on webrtc-rs instead of str0m (0: none).
    #[serde(default)]
    pub webrtc_rs_every: u32,
}

fn zipf() -> Spread {
    Spread::Zipf { s: 1.0 }
}
fn fifty() -> u32 {
    50
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImpairmentConfig {
    #[serde(default)]
    pub loss_percent: f64,
    #[serde(default)]
    pub jitter_ms: f64,
}

/// One planned join.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Join {
    /// Seconds after the ramp starts.
    pub at_s: f64,
    /// Channel index: 0 the floor, k the k-th language.
    pub channel: usize,
}

impl Profile {
    /// This profile with the command line's overrides: a listener count (the profile's bursts
    /// dropped) and a duration in seconds.
    pub fn overridden(&self, listeners: Option<u32>, duration_s: Option<f64>) -> Self {
        let mut profile = self.clone();
        if let Some(n) = listeners {
            profile.listeners.count = n;
            profile.listeners.bursts.clear();
        }
        if let Some(d) = duration_s {
            profile.duration_s = d;
        }
        profile
    }

    /// A soak: listeners come and go (churn) or its figures wait for a warm-up.
    pub fn is_soak(&self) -> bool {
        self.listeners.leaves_per_minute > 0.0 || self.listeners.warmup_s > 0.0
    }

    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let profile: Profile =
            toml::from_str(&text).with_context(|| format!("{} is not a valid profile", path.display()))?;
        profile.check()?;
        Ok(profile)
    }

    pub fn check(&self) -> anyhow::Result<()> {
        if !(self.duration_s > 0.0 && self.duration_s <= 86_400.0) {
            bail!("duration_s must be between 0 and a day");
        }
        if self.languages.len() > 64 {
            bail!("at most 64 languages");
        }
        if self.listeners.ramp_s < 0.0 || self.listeners.switches_per_minute < 0.0 {
            bail!("ramp_s and switches_per_minute cannot be negative");
        }
        if let Spread::Shares { shares } = &self.listeners.spread
            && (shares.len() != self.channels()
                || shares.iter().any(|s| *s < 0.0)
                || shares.iter().sum::<f64>() <= 0.0)
        {
            bail!("spread.shares needs {} non-negative shares (floor first), not all zero", self.channels());
        }
        if !(0.0..=100.0).contains(&self.impairment.loss_percent) || self.impairment.jitter_ms < 0.0 {
            bail!("impairment: loss_percent 0–100, jitter_ms ≥ 0");
        }
        Ok(())
    }

    /// Channels: the floor and each language.
    pub fn channels(&self) -> usize {
        1 + self.languages.len()
    }

    pub fn channel_language(&self, channel: usize) -> &str {
        if channel == 0 { &self.floor_language } else { self.languages.get(channel - 1).map_or("", |l| l) }
    }

    /// Every listener's share per channel, normalised.
    pub fn shares(&self) -> Vec<f64> {
        let n = self.channels();
        let raw: Vec<f64> = match &self.listeners.spread {
            Spread::Zipf { s } => (1..=n).map(|k| 1.0 / (k as f64).powf(*s)).collect(),
            Spread::Uniform => vec![1.0; n],
            Spread::Shares { shares } => shares.clone(),
        };
        let sum: f64 = raw.iter().sum();
        raw.iter().map(|r| r / sum).collect()
    }

    /// Every join in time order, channels assigned so that the shares hold at every point.
    pub fn joins(&self) -> Vec<Join> {
        let l = &self.listeners;
        let mut times: Vec<f64> = (0..l.count)
            .map(|i| if l.count <= 1 { 0.0 } else { l.ramp_s * f64::from(i) / f64::from(l.count) })
            .collect();
        for b in &l.bursts {
            times
                .extend((0..b.count).map(|i| b.at_s + b.within_s * f64::from(i) / f64::from(b.count.max(1))));
        }
        times.sort_by(f64::total_cmp);
        let shares = self.shares();
        let mut given = vec![0f64; shares.len()];
        times
            .into_iter()
            .enumerate()
            .map(|(i, at_s)| {
                // The channel furthest below its share so far.
                let total = i as f64 + 1.0;
                let channel = (0..shares.len())
                    .max_by(|a, b| {
                        (shares[*a] * total - given[*a]).total_cmp(&(shares[*b] * total - given[*b]))
                    })
                    .unwrap_or(0);
                given[channel] += 1.0;
                Join { at_s, channel }
            })
            .collect()
    }

    /// Listeners in all (ramp and bursts).
    pub fn total_listeners(&self) -> u32 {
        self.listeners.count + self.listeners.bursts.iter().map(|b| b.count).sum::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(text: &str) -> Profile {
        let p: Profile = toml::from_str(text).unwrap();
        p.check().unwrap();
        p
    }

    #[test]
    fn shipped_profiles_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
        for name in ["smoke", "plenary-2k", "burst-1k", "congress-10k"] {
            let p = Profile::load(&dir.join(format!("{name}.toml"))).unwrap();
            assert_eq!(p.name, name);
            assert!(p.total_listeners() > 0);
        }
    }

    #[test]
    fn zipf_spread_and_bursts() {
        let p = profile(
            r#"name = "t"
            duration_s = 10
            languages = ["fr", "de", "es"]
            [listeners]
            count = 1000
            ramp_s = 10
            spread = { kind = "zipf", s = 1.0 }
            bursts = [{ at_s = 2, count = 100, within_s = 1 }]"#,
        );
        let joins = p.joins();
        assert_eq!(joins.len(), 1100);
        assert!(joins.windows(2).all(|w| w[0].at_s <= w[1].at_s));
        let floor = joins.iter().filter(|j| j.channel == 0).count() as f64;
        let fourth = joins.iter().filter(|j| j.channel == 3).count() as f64;
        // 1 : 1/4 under Zipf s=1.
        assert!((floor / fourth - 4.0).abs() < 0.1, "{floor} vs {fourth}");
        assert!(joins.iter().filter(|j| (2.0..3.0).contains(&j.at_s)).count() >= 100);
    }

    #[test]
    fn bad_profiles_are_refused() {
        for text in [
            "name = \"x\"\nduration_s = 0\nlanguages = []\n[listeners]\ncount = 1\nramp_s = 1",
            "name = \"x\"\nduration_s = 5\nlanguages = [\"fr\"]\n[listeners]\ncount = 1\nramp_s = 1\nspread = { kind = \"shares\", shares = [1.0] }",
            "name = \"x\"\nduration_s = 5\nlanguages = []\nlisteners = 5",
        ] {
            let parsed: Result<Profile, _> = toml::from_str(text);
            assert!(parsed.map_err(anyhow::Error::from).and_then(|p| p.check()).is_err(), "{text}");
        }
    }
}
