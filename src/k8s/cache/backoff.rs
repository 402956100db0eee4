//! Exponential backoff with jitter for the service-account watch (and the certificate watches).
//!
//! kube's `default_backoff` is reset by every event the watcher yields, and the watcher yields
//! `Init` at the start of each relist attempt, before the list has even been sent: a list that
//! keeps failing was retried about once a second, forever. This one is reset only by what proves
//! the API server answered (a listed object, the end of a list, a watch event).

use std::time::Duration;

/// First delay after a failure.
pub const INITIAL: Duration = Duration::from_millis(800);
/// The delay stops doubling here (before jitter).
pub const MAX: Duration = Duration::from_secs(30);
/// Each delay is stretched by a random 0 to 20 %, so replicas that failed together spread out.
const JITTER: f64 = 0.2;

#[derive(Debug)]
pub struct Backoff {
    next: Duration,
    rng: fastrand::Rng,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            next: INITIAL,
            rng: fastrand::Rng::new(),
        }
    }
}

impl Backoff {
    /// The delay before the next attempt, and doubles the one after it (up to [`MAX`]).
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(MAX);
        base.mul_f64(1.0 + JITTER * self.rng.f64())
    }

    /// The API server answered: the next failure starts from [`INITIAL`] again.
    pub fn reset(&mut self) {
        self.next = INITIAL;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within(delay: Duration, base: Duration) -> bool {
        delay >= base && delay <= base.mul_f64(1.0 + JITTER)
    }

    #[test]
    fn doubles_from_the_initial_delay_up_to_the_maximum_with_bounded_jitter() {
        let mut backoff = Backoff::default();
        let bases = [0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0, 30.0];
        for base in bases {
            let delay = backoff.next_delay();
            assert!(
                within(delay, Duration::from_secs_f64(base)),
                "{delay:?} for {base}"
            );
        }
    }

    #[test]
    fn reset_starts_over() {
        let mut backoff = Backoff::default();
        for _ in 0..6 {
            backoff.next_delay();
        }
        backoff.reset();
        assert!(within(backoff.next_delay(), INITIAL));
    }

    #[test]
    fn a_minute_of_failures_allows_few_attempts() {
        // What the outage test against the fake API server bounds from outside.
        let mut backoff = Backoff::default();
        let (mut elapsed, mut attempts) = (Duration::ZERO, 1);
        loop {
            elapsed += backoff.next_delay();
            if elapsed > Duration::from_secs(60) {
                break;
            }
            attempts += 1;
        }
        assert!((6..=8).contains(&attempts), "{attempts} attempts in 60 s");
    }
}
