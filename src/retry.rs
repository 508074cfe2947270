//! Retries with exponential backoff and full jitter, for transient errors only.

use std::future::Future;
use std::time::Duration;

use rand::Rng;

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            attempts: 5,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// The pause before retry number `n` (1-based): random in [0, min(cap, base·2ⁿ⁻¹)].
    pub fn delay(&self, n: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX));
        let ceiling = exp.min(self.cap);
        let ms = ceiling.as_millis() as u64;
        Duration::from_millis(rand::thread_rng().gen_range(ms / 2..=ms.max(1)))
    }
}

/// Whether an error is worth retrying.
pub trait Transient {
    fn is_transient(&self) -> bool;
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
        }
    }

    #[tokio::test]
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

    #[tokio::test]
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
        };
        for n in 1..10 {
            let d = b.delay(n);
            let ceiling = (100u64 << (n - 1)).min(1000);
            assert!(d.as_millis() as u64 <= ceiling, "retry {n}: {d:?}");
            assert!(d.as_millis() as u64 >= ceiling / 2, "retry {n}: {d:?}");
        }
    }
}
