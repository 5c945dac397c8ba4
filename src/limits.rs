//! Rate limits: token buckets keyed by who is asking (an agency for publishes, a
//! requester for lookups). A call takes as many tokens as it costs (a batch: one per
//! record); a call the bucket cannot pay for is refused whole with `RESOURCE_EXHAUSTED`
//! and a `RetryInfo` saying when it would be paid for, and takes nothing.
//!
//! The buckets are kept in a map under one mutex: a check is a few arithmetic operations,
//! far shorter than anything else on a call's path. The map is bounded: a bucket that is
//! full again is the same as a new one, so those are dropped when the map is at its
//! bound, and the least recently used goes if none is.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// How fast a bucket refills and how much it holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens added per second; 0: no limit.
    per_second: f64,
    /// The most tokens a bucket holds (what a caller idle for long may spend at once).
    burst: f64,
}

impl Rate {
    /// No limit: every check passes.
    pub const UNLIMITED: Rate = Rate {
        per_second: 0.0,
        burst: 0.0,
    };

    /// `per_second` tokens a second, at most `burst` at once; `per_second` 0 is no limit.
    /// A burst below one token would refuse everything: it counts as one.
    pub fn new(per_second: u32, burst: u32) -> Rate {
        Rate {
            per_second: f64::from(per_second),
            burst: f64::from(burst.max(1)),
        }
    }

    /// Whether this rate limits anything.
    pub fn is_limited(&self) -> bool {
        self.per_second > 0.0
    }

    /// Tokens per second, for messages.
    pub fn per_second(&self) -> u64 {
        self.per_second as u64
    }

    /// The burst, for messages.
    pub fn burst(&self) -> u64 {
        self.burst as u64
    }
}

/// The tokens of one key.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    /// When `tokens` was last brought up to date.
    updated: Instant,
}

impl Bucket {
    fn full(rate: &Rate, now: Instant) -> Bucket {
        Bucket {
            tokens: rate.burst,
            updated: now,
        }
    }

    /// Refills up to `now` (a clock that went back refills nothing).
    fn refill(&mut self, rate: &Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.updated = self.updated.max(now);
    }

    /// Takes `cost` tokens, or nothing and how long until they are there. A cost above
    /// the burst is charged as the burst: it passes on a full bucket and empties it
    /// (otherwise it could never pass).
    fn take(&mut self, rate: &Rate, cost: f64, now: Instant) -> Result<(), Duration> {
        self.refill(rate, now);
        let cost = cost.min(rate.burst);
        if self.tokens >= cost {
            self.tokens -= cost;
            return Ok(());
        }
        let seconds = (cost - self.tokens) / rate.per_second;
        // Whole milliseconds, rounded up: a caller waiting exactly this long finds the
        // tokens there.
        let millis = (seconds * 1000.0).ceil().min(u64::MAX as f64) as u64;
        Err(Duration::from_millis(millis.max(1)))
    }

    /// Whether it is full at `now`: indistinguishable from a new bucket.
    fn is_full(&self, rate: &Rate, now: Instant) -> bool {
        let mut b = *self;
        b.refill(rate, now);
        b.tokens >= rate.burst
    }
}

/// Token buckets by key, at most `max_keys` of them.
pub struct RateLimiter<K> {
    rate: Rate,
    max_keys: usize,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// Buckets refilling at `rate`, keeping at most `max_keys` (at least one).
    pub fn new(rate: Rate, max_keys: usize) -> RateLimiter<K> {
        RateLimiter {
            rate,
            max_keys: max_keys.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The rate it enforces.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Takes `cost` tokens from `key`'s bucket now; `Err` with the wait until they are
    /// there.
    pub fn check(&self, key: &K, cost: u64) -> Result<(), Duration> {
        self.check_at(key, cost, Instant::now())
    }

    /// [`RateLimiter::check`] at the instant `now` (tests drive the clock).
    pub fn check_at(&self, key: &K, cost: u64, now: Instant) -> Result<(), Duration> {
        if !self.rate.is_limited() {
            return Ok(());
        }
        // A panic elsewhere while holding the lock leaves the buckets consistent (every
        // update is a plain assignment): keep using them.
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(bucket) = buckets.get_mut(key) {
            return bucket.take(&self.rate, cost as f64, now);
        }
        if buckets.len() >= self.max_keys {
            self.evict(&mut buckets, now);
        }
        let mut bucket = Bucket::full(&self.rate, now);
        let taken = bucket.take(&self.rate, cost as f64, now);
        buckets.insert(key.clone(), bucket);
        taken
    }

    /// Makes room for one more key: drops every full bucket, or else the least recently
    /// used one.
    fn evict(&self, buckets: &mut HashMap<K, Bucket>, now: Instant) {
        buckets.retain(|_, b| !b.is_full(&self.rate, now));
        if buckets.len() < self.max_keys {
            return;
        }
        let oldest = buckets
            .iter()
            .min_by_key(|(_, b)| b.updated)
            .map(|(k, _)| k.clone());
        if let Some(oldest) = oldest {
            buckets.remove(&oldest);
        }
    }

    /// How many keys have a bucket now.
    pub fn keys(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}

/// `RESOURCE_EXHAUSTED` with `message` and a `RetryInfo` detail of `retry_after`.
pub fn exhausted(message: impl Into<String>, retry_after: Duration) -> Status {
    let message = format!(
        "{}; retry in {:.3} s",
        message.into(),
        retry_after.as_secs_f64()
    );
    Status::with_error_details(
        Code::ResourceExhausted,
        message,
        ErrorDetails::with_retry_info(Some(retry_after)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_full_bucket_pays_its_burst_then_refills_at_the_rate() {
        let limiter = RateLimiter::new(Rate::new(10, 5), 8);
        let t0 = Instant::now();
        for _ in 0..5 {
            limiter.check_at(&"a", 1, t0).unwrap();
        }
        // Empty: one token comes every 100 ms.
        assert_eq!(limiter.check_at(&"a", 1, t0), Err(ms(100)));
        assert_eq!(limiter.check_at(&"a", 3, t0 + ms(50)), Err(ms(250)));
        limiter.check_at(&"a", 1, t0 + ms(100)).unwrap();
        assert_eq!(limiter.check_at(&"a", 1, t0 + ms(100)), Err(ms(100)));
        // Waiting as told is enough, also for a cost of several tokens.
        limiter.check_at(&"a", 3, t0 + ms(400)).unwrap();
        // A long idle time refills to the burst, not beyond.
        for _ in 0..5 {
            limiter.check_at(&"a", 1, t0 + ms(60_000)).unwrap();
        }
        assert!(limiter.check_at(&"a", 1, t0 + ms(60_000)).is_err());
    }

    #[test]
    fn a_refused_call_takes_nothing() {
        let limiter = RateLimiter::new(Rate::new(1, 10), 8);
        let t0 = Instant::now();
        limiter.check_at(&"a", 6, t0).unwrap();
        // 4 left: a cost of 5 is refused, and the 4 are still there afterwards.
        assert_eq!(limiter.check_at(&"a", 5, t0), Err(ms(1000)));
        limiter.check_at(&"a", 4, t0).unwrap();
        assert_eq!(limiter.check_at(&"a", 1, t0), Err(ms(1000)));
    }

    #[test]
    fn keys_have_buckets_of_their_own() {
        let limiter = RateLimiter::new(Rate::new(1, 1), 8);
        let t0 = Instant::now();
        limiter.check_at(&"a", 1, t0).unwrap();
        assert!(limiter.check_at(&"a", 1, t0).is_err());
        limiter.check_at(&"b", 1, t0).unwrap();
    }

    #[test]
    fn a_cost_above_the_burst_passes_on_a_full_bucket_only() {
        let limiter = RateLimiter::new(Rate::new(100, 10), 8);
        let t0 = Instant::now();
        limiter.check_at(&"a", 50, t0).unwrap();
        assert_eq!(limiter.check_at(&"a", 50, t0), Err(ms(100)));
        limiter.check_at(&"a", 50, t0 + ms(100)).unwrap();
    }

    #[test]
    fn unlimited_passes_everything_and_keeps_no_bucket() {
        let limiter = RateLimiter::new(Rate::UNLIMITED, 8);
        let t0 = Instant::now();
        for _ in 0..1000 {
            limiter.check_at(&"a", 1_000_000, t0).unwrap();
        }
        assert_eq!(limiter.keys(), 0);
        assert!(!Rate::new(0, 100).is_limited());
    }

    #[test]
    fn a_clock_going_back_refills_nothing() {
        let limiter = RateLimiter::new(Rate::new(1, 1), 8);
        let t0 = Instant::now() + ms(10_000);
        limiter.check_at(&"a", 1, t0).unwrap();
        assert!(limiter.check_at(&"a", 1, t0 - ms(5_000)).is_err());
        assert!(limiter.check_at(&"a", 1, t0 + ms(500)).is_err());
        limiter.check_at(&"a", 1, t0 + ms(1000)).unwrap();
    }

    #[test]
    fn the_map_stays_bounded_dropping_full_buckets_first_then_the_least_recently_used() {
        let limiter = RateLimiter::new(Rate::new(1, 2), 3);
        let t0 = Instant::now();
        limiter.check_at(&1, 2, t0).unwrap(); // empty, used at t0
        limiter.check_at(&2, 1, t0 + ms(10)).unwrap(); // half full, used at t0+10
        limiter.check_at(&3, 2, t0 + ms(20)).unwrap(); // empty, used at t0+20
        // At t0+1.5 s key 2 is full again (the same as new): it goes, the others stay.
        limiter.check_at(&4, 1, t0 + ms(1_500)).unwrap();
        assert_eq!(limiter.keys(), 3);
        assert!(
            limiter.check_at(&1, 2, t0 + ms(1_500)).is_err(),
            "1 was kept"
        );
        // None is full now: the least recently used (3, at t0+20) goes for key 5.
        limiter.check_at(&5, 1, t0 + ms(1_600)).unwrap();
        let mut kept: Vec<i32> = limiter.buckets.lock().unwrap().keys().copied().collect();
        kept.sort_unstable();
        assert_eq!(kept, [1, 4, 5]);
    }

    #[test]
    fn a_refusal_is_resource_exhausted_with_the_retry_delay() {
        let status = exhausted("publish rate of housing exceeded", ms(1500));
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(
            status.message(),
            "publish rate of housing exceeded; retry in 1.500 s"
        );
        let retry = status.get_details_retry_info().expect("a RetryInfo");
        assert_eq!(retry.retry_delay, Some(ms(1500)));
    }
}
