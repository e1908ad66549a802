//! Rate limits: a token bucket, and a map of buckets by key (a session, a client address) that
//! forgets idle keys so that it cannot grow without bound. Pure: time is an argument.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How many actions at once, and how fast the allowance comes back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rate {
    /// Actions allowed at once after a pause.
    pub(crate) burst: f64,
    /// Actions allowed per second, sustained.
    pub(crate) per_second: f64,
}

/// One key's allowance.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refilled(self, rate: Rate, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * rate.per_second).min(rate.burst)
    }
}

/// Token buckets by key.
#[derive(Debug)]
pub(crate) struct Limiter<K> {
    rate: Rate,
    buckets: HashMap<K, Bucket>,
    /// Above this many keys, full (idle) buckets are forgotten, at most once a second (a sweep
    /// walks every key: many active keys must not make every check pay for it).
    prune_above: usize,
    pruned_at: Option<Instant>,
}

impl<K: Eq + Hash + Clone> Limiter<K> {
    pub(crate) fn new(rate: Rate, prune_above: usize) -> Self {
        Self { rate, buckets: HashMap::new(), prune_above, pruned_at: None }
    }

    /// Take one action for `key` at `now`; Err(how long until one is allowed) when over the rate.
    pub(crate) fn check(&mut self, key: &K, now: Instant) -> Result<(), Duration> {
        let due = self.pruned_at.is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1));
        if self.buckets.len() > self.prune_above && due {
            self.pruned_at = Some(now);
            let rate = self.rate;
            self.buckets.retain(|_, b| b.refilled(rate, now) < rate.burst);
        }
        let rate = self.rate;
        let bucket = self.buckets.entry(key.clone()).or_insert(Bucket { tokens: rate.burst, at: now });
        let tokens = bucket.refilled(rate, now);
        if tokens >= 1.0 {
            *bucket = Bucket { tokens: tokens - 1.0, at: now };
            Ok(())
        } else {
            *bucket = Bucket { tokens, at: now };
            Err(Duration::from_secs_f64((1.0 - tokens) / rate.per_second))
        }
    }

    /// Whether `key` could take an action at `now`, without taking it; Err(how long until it
    /// could) when not.
    pub(crate) fn peek(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let Some(bucket) = self.buckets.get(key) else { return Ok(()) };
        let tokens = bucket.refilled(self.rate, now);
        if tokens >= 1.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - tokens) / self.rate.per_second))
        }
    }

    /// Forget a key (its session ended).
    pub(crate) fn forget(&mut self, key: &K) {
        self.buckets.remove(key);
    }

    /// Keys remembered now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate { burst: 5.0, per_second: 1.0 };

    #[test]
    fn a_burst_then_the_sustained_rate_with_the_wait_told() {
        let mut limiter = Limiter::new(RATE, 100);
        let t = Instant::now();
        for _ in 0..5 {
            assert_eq!(limiter.check(&"a", t), Ok(()));
        }
        let wait = limiter.check(&"a", t).unwrap_err();
        assert!((wait.as_secs_f64() - 1.0).abs() < 1e-6, "{wait:?}");
        assert_eq!(limiter.check(&"b", t), Ok(()), "keys are apart");
        let later = t + Duration::from_millis(1_500);
        assert_eq!(limiter.check(&"a", later), Ok(()));
        assert!(limiter.check(&"a", later).is_err(), "one and a half tokens came back, one is used");
        // A steady 1 per second passes forever.
        for s in 3..100 {
            assert_eq!(limiter.check(&"a", t + Duration::from_secs(s)), Ok(()), "second {s}");
        }
    }

    #[test]
    fn idle_keys_are_forgotten_so_the_map_stays_bounded() {
        let mut limiter = Limiter::new(RATE, 10);
        let t = Instant::now();
        for i in 0..1_000 {
            let _ = limiter.check(&i, t + Duration::from_secs(i));
        }
        assert!(limiter.len() <= 16, "{} keys kept", limiter.len());
        limiter.forget(&999);
        assert!(limiter.check(&999, t + Duration::from_secs(999)).is_ok());
    }
}
