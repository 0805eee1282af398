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

/// The bounds an Application's own `syncPolicy.retry` is held to: it is
/// written by whoever may edit Applications, and each attempt costs the
/// worker a fetch, a render and API calls.
pub mod bounds {
    use std::time::Duration;

    /// Most attempts in all.
    pub const LIMIT: u32 = 20;
    /// Shortest first delay.
    pub const FIRST: Duration = Duration::from_secs(1);
    /// Largest multiplier.
    pub const FACTOR: u32 = 10;
    /// Longest delay.
    pub const MAX: Duration = Duration::from_secs(3600);
}

impl RetryPolicy {
    /// The policy `app` names, over `default` for what it leaves out, held
    /// to [`bounds`] (Argo CD's `limit: -1`, "forever", is [`bounds::LIMIT`]).
    pub fn of(app: &Application, default: Self) -> Self {
        let named = Self::named(app, default);
        if named == default {
            return default;
        }
        let first = named.first.clamp(bounds::FIRST, bounds::MAX);
        Self {
            limit: named.limit.clamp(1, bounds::LIMIT),
            first,
            factor: named.factor.clamp(1, bounds::FACTOR),
            max: named.max.clamp(first, bounds::MAX),
        }
    }

    fn named(app: &Application, default: Self) -> Self {
        let Some(retry) = app.spec.sync_policy.as_ref().and_then(|p| p.retry.as_ref()) else {
            return default;
        };
        let backoff = retry.backoff.clone().unwrap_or_default();
        Self {
            limit: match retry.limit {
                None => default.limit,
                Some(limit) if limit < 0 => bounds::LIMIT,
                Some(limit) => u32::try_from(limit).unwrap_or(bounds::LIMIT).max(1),
            },
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

    fn app(retry: serde_json::Value) -> Application {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "pushsync.dev/v1alpha1",
            "kind": "Application",
            "metadata": {"name": "a", "namespace": "pushsync"},
            "spec": {
                "source": {"repoURL": "https://example.com/r.git"},
                "destination": {"namespace": "a"},
                "syncPolicy": {"retry": retry},
            },
        }))
        .unwrap()
    }

    #[test]
    fn a_hostile_retry_policy_is_held_to_the_bounds() {
        let default = RetryPolicy::default();
        let policy = RetryPolicy::of(
            &app(serde_json::json!({
                "limit": 1_000_000,
                "backoff": {"duration": "0s", "factor": 1000, "maxDuration": "1000h"},
            })),
            default,
        );
        assert_eq!(
            policy,
            RetryPolicy {
                limit: bounds::LIMIT,
                first: bounds::FIRST,
                factor: bounds::FACTOR,
                max: bounds::MAX,
            }
        );
        // Argo CD's "forever" is the bound, not the default.
        assert_eq!(
            RetryPolicy::of(&app(serde_json::json!({"limit": -1})), default).limit,
            bounds::LIMIT
        );
        // Zero backoff is the shortest allowed, never a busy loop.
        let zero = RetryPolicy::of(
            &app(serde_json::json!({"backoff": {"duration": "0s", "maxDuration": "0s"}})),
            default,
        );
        assert_eq!(zero.delay(1), Some(bounds::FIRST));
        assert_eq!(zero.delay(4), Some(bounds::FIRST));
        // What names nothing is the worker's default, unclamped.
        assert_eq!(
            RetryPolicy::of(&app(serde_json::json!({})), default),
            default
        );
    }

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
