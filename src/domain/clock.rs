//! The exchange's clock and time conversions: now in microseconds, today in Asia/Shanghai, microseconds ⇄ protobuf `Timestamp` and RFC 3339.
//!
//! Every stored time is microseconds since the Unix epoch (both databases
//! store that exactly, and the access-log chain hashes it), and every date is
//! an Asia/Shanghai date (DESIGN: "Dates and times are Asia/Shanghai").

use time::{Date, OffsetDateTime, UtcOffset};

/// Asia/Shanghai: UTC+8 all year (China has no daylight saving time).
pub const SHANGHAI: UtcOffset = match UtcOffset::from_hms(8, 0, 0) {
    Ok(o) => o,
    Err(_) => UtcOffset::UTC,
};

/// Microseconds since the Unix epoch, now (0 if the system clock is before it).
pub fn now_us() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    d.as_micros() as i64
}

/// Today's date in Asia/Shanghai, where every date of the exchange lives.
pub fn today() -> Date {
    OffsetDateTime::now_utc().to_offset(SHANGHAI).date()
}

/// The Asia/Shanghai date of a moment in microseconds (today's when out of range).
pub fn date_of(us: i64) -> Date {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .map(|t| t.to_offset(SHANGHAI).date())
        .unwrap_or_else(|_| today())
}

/// Microseconds to a protobuf timestamp (negative times included).
pub fn timestamp(us: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: us.div_euclid(1_000_000),
        nanos: (us.rem_euclid(1_000_000) * 1000) as i32,
    }
}

/// A protobuf timestamp to microseconds, truncating nanoseconds and
/// saturating rather than overflowing on absurd seconds.
pub fn micros(ts: &prost_types::Timestamp) -> i64 {
    ts.seconds
        .saturating_mul(1_000_000)
        .saturating_add(i64::from(ts.nanos) / 1000)
}

/// Microseconds as RFC 3339 in UTC; empty when out of range.
pub fn rfc3339(us: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_microseconds() {
        for us in [0, 1, 999_999, 1_700_000_000_123_456, -1, -1_000_001] {
            let ts = timestamp(us);
            assert!((0..1_000_000_000).contains(&ts.nanos), "{us}: {ts:?}");
            assert_eq!(micros(&ts), us);
        }
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn shanghai_is_eight_hours_ahead() {
        assert_eq!(SHANGHAI.whole_hours(), 8);
        let utc = OffsetDateTime::now_utc();
        let d = today();
        assert!(d == utc.date() || d == utc.date().next_day().unwrap());
    }
}
