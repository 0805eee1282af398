//! How a sync job retries transient failures: the Application's
//! `syncPolicy.retry`, over the worker's default.

use std::time::Duration;

use pushsync_api::Application;
use pushsync_service::parse_duration;

/// Exponential backoff for transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub limit: u32,
    /// Delay after the first failure.
    pub first: Duration,
    /// Multiplier per further failure.
    pub factor: u32,
    /// Longest delay.
    pub max: Duration,
}

impl Default for RetryPolicy {
    /// Argo CD's numbers: 5 attempts, 5 s doubling up to 3 minutes.
    fn default() -> Self {
        Self {
            limit: 5,
            first: Duration::from_secs(5),
            factor: 2,
            max: Duration::from_secs(180),
        }
    }
}

impl RetryPolicy {
    /// The policy `app` names, over `default` for what it leaves out.
    pub fn of(app: &Application, default: Self) -> Self {
        let Some(retry) = app.spec.sync_policy.as_ref().and_then(|p| p.retry.as_ref()) else {
            return default;
        };
        let backoff = retry.backoff.clone().unwrap_or_default();
        Self {
            limit: retry
                .limit
                .and_then(|l| u32::try_from(l).ok())
                .map_or(default.limit, |l| l.max(1)),
            first: backoff
                .duration
                .as_deref()
                .and_then(|d| parse_duration(d).ok())
                .unwrap_or(default.first),
            factor: backoff
                .factor
                .and_then(|f| u32::try_from(f).ok())
                .unwrap_or(default.factor)
                .max(1),
            max: backoff
                .max_duration
                .as_deref()
                .and_then(|d| parse_duration(d).ok())
                .unwrap_or(default.max),
        }
    }

    /// The delay before the next attempt after `failures` failed ones, or
    /// `None` when the attempts are spent.
    pub fn delay(&self, failures: u32) -> Option<Duration> {
        if failures >= self.limit {
            return None;
        }
        let exponent = failures.saturating_sub(1).min(30);
        let delay = self
            .first
            .saturating_mul(self.factor.saturating_pow(exponent));
        Some(delay.min(self.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_stops_at_the_limit() {
        let policy = RetryPolicy {
            limit: 5,
            first: Duration::from_secs(5),
            factor: 2,
            max: Duration::from_secs(12),
        };
        let delays: Vec<Option<Duration>> = (1..=5).map(|n| policy.delay(n)).collect();
        assert_eq!(
            delays,
            [
                Some(Duration::from_secs(5)),
                Some(Duration::from_secs(10)),
                Some(Duration::from_secs(12)),
                Some(Duration::from_secs(12)),
                None
            ]
        );
    }
}
