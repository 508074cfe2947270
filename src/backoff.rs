//! The one backoff of paasd: exponential delays (`base · 2ⁿ⁻¹`, capped), with or without jitter.
//! It paces retries of transient errors within a request ([`retry`]), the wait for a target to
//! become ready, the daemon's retries of a run that failed and of the D-Bus API at start.

use std::future::Future;
use std::time::Duration;

use rand::Rng;

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Tries in all (the first one included); `u32::MAX` for "forever".
    pub attempts: u32,
    pub base: Duration,
    pub cap: Duration,
    /// Spread the delays at random (retries of many clients do not line up).
    pub jitter: bool,
}

impl Default for Backoff {
    /// For requests: 5 tries, 200 ms doubling up to 5 s, with jitter.
    fn default() -> Self {
        Backoff {
            attempts: 5,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(5),
            jitter: true,
        }
    }
}

impl Backoff {
    /// A fixed schedule without jitter, tried forever: `base`, `2·base`, … up to `cap`.
    pub const fn schedule(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            attempts: u32::MAX,
            base,
            cap,
            jitter: false,
        }
    }

    /// One try, no retry.
    pub const fn once() -> Backoff {
        Backoff {
            attempts: 1,
            base: Duration::ZERO,
            cap: Duration::ZERO,
            jitter: false,
        }
    }

    /// The longest pause before retry number `n` (1-based): min(cap, base·2ⁿ⁻¹).
    pub fn ceiling(&self, n: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX));
        exp.min(self.cap)
    }

    /// The pause before retry number `n` (1-based): the ceiling, or with jitter a random
    /// duration in [ceiling/2, ceiling].
    pub fn delay(&self, n: u32) -> Duration {
        let ceiling = self.ceiling(n);
        if !self.jitter {
            return ceiling;
        }
        let ms = ceiling.as_millis() as u64;
        Duration::from_millis(rand::thread_rng().gen_range(ms / 2..=ms.max(1)))
    }

    /// The most time every pause together can take.
    pub fn total_ceiling(&self) -> Duration {
        (1..self.attempts.min(64)).map(|n| self.ceiling(n)).sum()
    }
}

/// Whether an error is worth retrying.
pub trait Transient {
    fn is_transient(&self) -> bool;

    /// The server asked not to be asked again before this Unix time (a rate limit): the error
    /// is not retried now (it is not transient), the target *waits* — the engine reports it
    /// waiting and the daemon's next run comes at that time.
    fn retry_at(&self) -> Option<u64> {
        None
    }
}

/// Runs `op` until it succeeds, fails permanently, or runs out of attempts. Returns the result
/// and the number of attempts made.
pub async fn retry<T, E, F, Fut>(backoff: Backoff, mut op: F) -> (Result<T, E>, u32)
where
    E: Transient,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        match op(attempt).await {
            Err(e) if e.is_transient() && attempt < backoff.attempts => {
                tokio::time::sleep(backoff.delay(attempt)).await;
                attempt += 1;
            }
            other => return (other, attempt),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct E(bool);
    impl Transient for E {
        fn is_transient(&self) -> bool {
            self.0
        }
    }

    fn quick() -> Backoff {
        Backoff {
            attempts: 4,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(2),
            jitter: true,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_until_success() {
        let (r, n) = retry(quick(), |a| async move {
            if a < 3 {
                Err(E(true))
            } else {
                Ok(a)
            }
        })
        .await;
        assert_eq!(r.ok(), Some(3));
        assert_eq!(n, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried_and_attempts_are_bounded() {
        let (r, n) = retry(quick(), |_| async { Err::<(), _>(E(false)) }).await;
        assert!(r.is_err());
        assert_eq!(n, 1);
        let (r, n) = retry(quick(), |_| async { Err::<(), _>(E(true)) }).await;
        assert!(r.is_err());
        assert_eq!(n, 4);
    }

    #[test]
    fn delays_grow_and_are_capped() {
        let b = Backoff {
            attempts: 10,
            base: Duration::from_millis(100),
            cap: Duration::from_millis(1000),
            jitter: true,
        };
        for n in 1..10 {
            let d = b.delay(n);
            let ceiling = (100u64 << (n - 1)).min(1000);
            assert!(d.as_millis() as u64 <= ceiling, "retry {n}: {d:?}");
            assert!(d.as_millis() as u64 >= ceiling / 2, "retry {n}: {d:?}");
        }
        assert_eq!(
            b.total_ceiling(),
            Duration::from_millis(100 + 200 + 400 + 800 + 5000)
        );
    }

    #[test]
    fn a_schedule_doubles_without_jitter_and_never_overflows() {
        let s = Backoff::schedule(Duration::from_secs(1), Duration::from_secs(60));
        let delays: Vec<u64> = (1..=8).map(|n| s.delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(s.delay(u32::MAX), Duration::from_secs(60));
    }
}
