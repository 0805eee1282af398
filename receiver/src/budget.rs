//! The budget of request-body bytes held in memory at once, shared by every
//! request on every HTTP worker.
//!
//! Bodies are buffered whole before their signature can be checked, so
//! without a global bound a few slow, large, unauthenticated uploads add up
//! to more than the pod's memory. Each request reserves bytes as its buffer
//! grows and gives them back when it is done; a request that would overdraw
//! the budget is refused at once (503 with `Retry-After`) rather than made to
//! wait, so an attacker cannot queue work either.
//!
//! Reserving as the body arrives, rather than the declared `Content-Length`
//! up front, makes the budget cost what it protects: holding it full takes
//! sending that many bytes every request deadline, not just declaring them.

use prometheus::{IntCounter, IntGauge};
use tokio::sync::{Semaphore, SemaphorePermit};

/// Request-body bytes that may be held at once.
#[derive(Debug)]
pub(crate) struct BodyBudget {
    /// One permit per byte.
    bytes: Semaphore,
    in_flight: IntGauge,
    refusals: IntCounter,
}

/// The budget had no room for a reservation.
#[derive(Debug)]
pub(crate) struct Exhausted;

impl BodyBudget {
    /// A budget of `limit` bytes (capped at what a semaphore can count,
    /// 2^61 bytes), reporting to the given metrics.
    pub(crate) fn new(
        limit: usize,
        in_flight: IntGauge,
        limit_gauge: &IntGauge,
        refusals: IntCounter,
    ) -> Self {
        let limit = limit.min(Semaphore::MAX_PERMITS);
        limit_gauge.set(gauge_value(limit));
        Self {
            bytes: Semaphore::new(limit),
            in_flight,
            refusals,
        }
    }

    /// An empty reservation, to grow as a body arrives.
    pub(crate) fn reservation(&self) -> Reservation<'_> {
        Reservation {
            budget: self,
            permit: None,
            bytes: 0,
        }
    }
}

/// Bytes reserved for one request; given back when dropped.
#[derive(Debug)]
pub(crate) struct Reservation<'a> {
    budget: &'a BodyBudget,
    permit: Option<SemaphorePermit<'a>>,
    bytes: usize,
}

impl Reservation<'_> {
    /// The bytes reserved so far.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Reserve `more` bytes without waiting: all of them, or none and
    /// [`Exhausted`] (counted as a refusal).
    pub(crate) fn grow(&mut self, more: usize) -> Result<(), Exhausted> {
        let mut taken: Option<SemaphorePermit<'_>> = None;
        let mut left = more;
        // `try_acquire_many` counts in u32: take larger amounts in pieces.
        while left > 0 {
            let step = u32::try_from(left).unwrap_or(u32::MAX);
            let Ok(permit) = self.budget.bytes.try_acquire_many(step) else {
                // Dropping `taken` gives back the pieces already acquired.
                self.budget.refusals.inc();
                return Err(Exhausted);
            };
            // Both permits come from the same semaphore, so `merge` cannot panic.
            match &mut taken {
                Some(held) => held.merge(permit),
                None => taken = Some(permit),
            }
            left -= step as usize;
        }
        if let Some(permit) = taken {
            match &mut self.permit {
                Some(held) => held.merge(permit),
                None => self.permit = Some(permit),
            }
        }
        self.bytes += more;
        self.budget.in_flight.add(gauge_value(more));
        Ok(())
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        // The permit, dropped right after, returns the bytes to the budget.
        self.budget.in_flight.sub(gauge_value(self.bytes));
    }
}

/// Byte counts as gauge values. Reservations never exceed
/// `Semaphore::MAX_PERMITS` (2^61), so this never saturates.
fn gauge_value(bytes: usize) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(limit: usize) -> (BodyBudget, IntGauge, IntCounter) {
        let in_flight = IntGauge::new("in_flight", "test").unwrap();
        let limit_gauge = IntGauge::new("limit", "test").unwrap();
        let refusals = IntCounter::new("refusals", "test").unwrap();
        let budget = BodyBudget::new(limit, in_flight.clone(), &limit_gauge, refusals.clone());
        assert_eq!(limit_gauge.get(), limit as i64);
        (budget, in_flight, refusals)
    }

    #[test]
    fn reservations_share_the_budget_and_give_it_back() {
        let (budget, in_flight, refusals) = budget(100);
        let mut first = budget.reservation();
        first.grow(60).unwrap();
        let mut second = budget.reservation();
        assert!(second.grow(50).is_err(), "overdraws the budget");
        assert_eq!(refusals.get(), 1);
        // A refused reservation keeps nothing.
        second.grow(40).unwrap();
        assert_eq!(in_flight.get(), 100);
        assert_eq!((first.bytes(), second.bytes()), (60, 40));
        drop(first);
        assert_eq!(in_flight.get(), 40);
        second.grow(60).unwrap();
        drop(second);
        assert_eq!(in_flight.get(), 0);
        assert_eq!(budget.bytes.available_permits(), 100);
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn amounts_beyond_u32_are_taken_in_pieces() {
        let big = u32::MAX as usize * 2 + 10;
        let (budget, in_flight, _) = budget(big + 5);
        let mut reservation = budget.reservation();
        reservation.grow(big).unwrap();
        assert_eq!(budget.bytes.available_permits(), 5);
        assert!(reservation.grow(6).is_err());
        assert_eq!(
            budget.bytes.available_permits(),
            5,
            "a failed grow keeps nothing"
        );
        drop(reservation);
        assert_eq!(budget.bytes.available_permits(), big + 5);
        assert_eq!(in_flight.get(), 0);
    }
}
