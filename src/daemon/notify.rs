//! The systemd notification protocol (`Type=notify-reload`), through the sd-notify crate.
//!
//! Without `$NOTIFY_SOCKET` (not started by systemd) every call is a no-op.

use std::time::Duration;

use sd_notify::NotifyState;

#[derive(Debug, Clone, Default)]
pub struct Notifier;

impl Notifier {
    fn send(&self, states: &[NotifyState<'_>]) {
        if let Err(e) = sd_notify::notify(false, states) {
            tracing::warn!(error = %e, "sd_notify failed");
        }
    }

    /// READY=1 with the current status line.
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// RELOADING=1 with MONOTONIC_USEC= (systemd ≥ 253 requires it to match the reload to the
    /// SIGHUP it sent).
    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[
                NotifyState::Reloading,
                now,
                NotifyState::Status("reloading the spec"),
            ]),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read CLOCK_MONOTONIC");
                self.send(&[NotifyState::Reloading]);
            }
        }
    }

    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    /// Half the watchdog interval systemd asked for (WATCHDOG_USEC, for this process), if any.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        let mut usec = 0u64;
        if sd_notify::watchdog_enabled(false, &mut usec) {
            ping_interval(usec)
        } else {
            None
        }
    }
}

/// How often to send WATCHDOG=1 for a watchdog of `watchdog_usec`: at half of it (None: no
/// watchdog).
fn ping_interval(watchdog_usec: u64) -> Option<Duration> {
    (watchdog_usec > 0).then(|| Duration::from_micros(watchdog_usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_is_pinged_at_half_its_interval() {
        assert_eq!(ping_interval(400_000), Some(Duration::from_millis(200)));
        assert_eq!(ping_interval(30_000_000), Some(Duration::from_secs(15)));
        assert_eq!(ping_interval(0), None);
    }
}
