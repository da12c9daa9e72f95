//! Per-system rate and concurrency limits: a calling system over its share gets RESOURCE_EXHAUSTED with a retry hint, the others go on.
//!
//! The key is the SAN URI of the connection's verified certificate, so one system cannot
//! spend another's share, and the number of keys is bounded by the certificates the CA
//! has issued. A refused call touches no cadre data and decides nothing about it, so it
//! gets no access-log row (a durable write per refusal would hand a flooding system the
//! very overload the limit is there to stop); it is counted in metrics and logged.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, Reason};

/// Limits of one system; a zero turns that limit off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitSpec {
    /// Calls per second, sustained.
    pub rate_per_second: u32,
    /// Calls allowed at once above the sustained rate; 0 means equal to the rate.
    pub burst: u32,
    /// Calls in progress at once, streaming responses included until they end.
    pub max_concurrent_calls: u32,
}

/// Overrides for one system (config `system_limits`, keyed by SAN URI); an unset field
/// keeps the default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitOverride {
    pub rate_per_second: Option<u32>,
    pub burst: Option<u32>,
    pub max_concurrent_calls: Option<u32>,
}

impl LimitSpec {
    fn with(self, o: &LimitOverride) -> Self {
        Self {
            rate_per_second: o.rate_per_second.unwrap_or(self.rate_per_second),
            burst: o.burst.unwrap_or(self.burst),
            max_concurrent_calls: o.max_concurrent_calls.unwrap_or(self.max_concurrent_calls),
        }
    }
}

/// Suggested wait for a system at its concurrency limit: calls of the exchange mostly
/// finish well within this, and a shorter hint would only make clients spin.
const CONCURRENCY_RETRY: Duration = Duration::from_millis(500);

/// A flooding system must not flood the log either: one warning per system per this
/// long, carrying the number of refusals since the last one.
const WARN_EVERY: Duration = Duration::from_secs(10);

struct SystemState {
    rate: Option<DefaultDirectRateLimiter>,
    slots: Option<Arc<Semaphore>>,
    warned: Mutex<(Option<Instant>, u64)>,
}

/// The limits of every calling system, created on a system's first call.
pub struct SystemLimits {
    default: LimitSpec,
    overrides: BTreeMap<String, LimitOverride>,
    systems: Mutex<HashMap<String, Arc<SystemState>>>,
}

impl std::fmt::Debug for SystemLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemLimits")
            .field("default", &self.default)
            .field("overrides", &self.overrides.len())
            .finish_non_exhaustive()
    }
}

/// Held for the whole call (the response body included); releases the system's
/// concurrency slot when dropped.
pub type Slot = Option<OwnedSemaphorePermit>;

impl SystemLimits {
    pub fn new(default: LimitSpec, overrides: BTreeMap<String, LimitOverride>) -> Self {
        Self {
            default,
            overrides,
            systems: Mutex::new(HashMap::new()),
        }
    }

    /// True when no system has any limit, so the layer can skip the lookup.
    pub fn is_off(&self) -> bool {
        let off = |s: &LimitSpec| s.rate_per_second == 0 && s.max_concurrent_calls == 0;
        off(&self.default) && self.overrides.values().all(|o| off(&self.default.with(o)))
    }

    fn state(&self, system: &str) -> Arc<SystemState> {
        let mut map = self.systems.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = map.get(system) {
            return s.clone();
        }
        let spec = match self.overrides.get(system) {
            Some(o) => self.default.with(o),
            None => self.default,
        };
        let rate = NonZeroU32::new(spec.rate_per_second).map(|r| {
            let burst = NonZeroU32::new(spec.burst).unwrap_or(r);
            RateLimiter::direct(Quota::per_second(r).allow_burst(burst))
        });
        let slots = (spec.max_concurrent_calls > 0)
            .then(|| Arc::new(Semaphore::new(spec.max_concurrent_calls as usize)));
        let s = Arc::new(SystemState {
            rate,
            slots,
            warned: Mutex::new((None, 0)),
        });
        map.insert(system.to_string(), s.clone());
        s
    }

    /// Admits one call of `system` on `method`, or refuses it with RESOURCE_EXHAUSTED
    /// (reason `TOO_MANY_CONCURRENT_CALLS` or `RATE_LIMITED`) and the time to wait.
    pub fn admit(&self, system: &str, method: &str) -> Result<Slot, Error> {
        let state = self.state(system);
        // The slot first: taking it costs nothing when refused, while a rate token
        // once taken is spent even if the call is then refused for concurrency.
        let slot = match &state.slots {
            Some(s) => match s.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    return Err(refuse(
                        &state,
                        system,
                        method,
                        Reason::TooManyConcurrentCalls,
                        CONCURRENCY_RETRY,
                    ));
                }
            },
            None => None,
        };
        if let Some(rate) = &state.rate
            && let Err(not_until) = rate.check()
        {
            let wait = not_until.wait_time_from(rate.clock().now());
            // Never advise "retry now": round up to the next millisecond.
            let wait = wait.max(Duration::from_millis(1));
            return Err(refuse(&state, system, method, Reason::RateLimited, wait));
        }
        Ok(slot)
    }
}

fn refuse(
    state: &SystemState,
    system: &str,
    method: &str,
    reason: Reason,
    retry_after: Duration,
) -> Error {
    metrics::counter!("cadrex_rpc_limited_total", "system" => system.to_string(), "reason" => reason.as_str())
        .increment(1);
    let mut warned = state.warned.lock().unwrap_or_else(|e| e.into_inner());
    warned.1 += 1;
    let now = Instant::now();
    if warned.0.is_none_or(|t| now.duration_since(t) >= WARN_EVERY) {
        tracing::warn!(
            principal = %system,
            method = %method,
            reason = reason.as_str(),
            refused = warned.1,
            "calls refused: system over its limit"
        );
        *warned = (Some(now), 0);
    }
    let message = if reason == Reason::RateLimited {
        "this system is over its call rate; retry after the given delay"
    } else {
        "this system has too many calls in progress; retry after the given delay"
    };
    Error::ResourceExhausted {
        reason,
        message: message.to_string(),
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "urn:cadrex:system:audit:360821:a";
    const B: &str = "urn:cadrex:system:audit:360821:b";

    fn reason(e: Error) -> (&'static str, Duration) {
        match e {
            Error::ResourceExhausted {
                reason,
                retry_after,
                ..
            } => (reason.as_str(), retry_after),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rate_is_per_system_and_overridable() {
        let mut o = BTreeMap::new();
        o.insert(
            B.to_string(),
            LimitOverride {
                rate_per_second: Some(1),
                burst: Some(5),
                ..Default::default()
            },
        );
        let l = SystemLimits::new(
            LimitSpec {
                rate_per_second: 1,
                burst: 2,
                max_concurrent_calls: 0,
            },
            o,
        );
        assert!(!l.is_off());
        assert!(l.admit(A, "m").is_ok());
        assert!(l.admit(A, "m").is_ok());
        let (r, wait) = reason(l.admit(A, "m").unwrap_err());
        assert_eq!(r, "RATE_LIMITED");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        for _ in 0..5 {
            assert!(l.admit(B, "m").is_ok());
        }
        assert!(l.admit(B, "m").is_err());
    }

    #[test]
    fn concurrency_slot_is_released_on_drop() {
        let l = SystemLimits::new(
            LimitSpec {
                max_concurrent_calls: 1,
                ..Default::default()
            },
            BTreeMap::new(),
        );
        let held = l.admit(A, "m").unwrap();
        let (r, _) = reason(l.admit(A, "m").unwrap_err());
        assert_eq!(r, "TOO_MANY_CONCURRENT_CALLS");
        assert!(l.admit(B, "m").is_ok());
        drop(held);
        assert!(l.admit(A, "m").is_ok());
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API fixes the error type
    fn limits_from_toml_and_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "rate_limit_per_system = 5\n\
                 [system_limits.\"urn:cadrex:system:audit:360800:audit-mis\"]\n\
                 rate_per_second = 500\n",
            )?;
            jail.set_env("CADREX_MAX_CONCURRENT_CALLS_PER_SYSTEM", "3");
            jail.set_env("CADREX_METRICS_LISTEN", "127.0.0.1:9464");
            let c = crate::config::Config::load(
                Some(std::path::Path::new("c.toml")),
                &Default::default(),
            )
            .unwrap();
            assert_eq!(c.rate_limit_per_system, 5);
            assert_eq!(c.max_concurrent_calls_per_system, 3);
            assert_eq!(c.metrics_listen, "127.0.0.1:9464");
            let o = c.system_limits["urn:cadrex:system:audit:360800:audit-mis"];
            assert_eq!(o.rate_per_second, Some(500));
            // Unset override fields inherit the defaults.
            assert_eq!(o.max_concurrent_calls, None);
            jail.create_file("bad.toml", "[system_limits.x]\nrate = 1\n")?;
            assert!(
                crate::config::Config::load(
                    Some(std::path::Path::new("bad.toml")),
                    &Default::default()
                )
                .is_err()
            );
            Ok(())
        });
    }

    #[test]
    fn zero_is_off() {
        let l = SystemLimits::new(LimitSpec::default(), BTreeMap::new());
        assert!(l.is_off());
        for _ in 0..1000 {
            assert!(l.admit(A, "m").unwrap().is_none());
        }
    }
}
