//! Statutory public holidays of mainland China computed from the rules themselves, for years without an official schedule file.
//!
//! 全国年节及纪念日放假办法 (as revised by 国务院令第795号, in force from
//! 2025-01-01) gives every citizen 13 days off: 元旦 (January 1), 春节 (除夕 and
//! the first three days of the first lunar month), 清明 (the day of the solar
//! term), 劳动节 (May 1–2), 端午 (5th of the 5th lunar month), 中秋 (15th of the
//! 8th lunar month) and 国庆 (October 1–3). The State Council's yearly notice
//! adds bridging days and make-up working days (调休) on top; those cannot be
//! computed, so a year known only from these rules is still counted with a
//! warning.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use lunar_lite::{LunarDate, lunar_to_solar};
use time::{Date, Duration, Month};

/// Years the computation is kept for: the range dates of the exchange may
/// take (DESIGN §4), from the first year the current rules apply.
const FIRST_YEAR: i32 = 2025;
const LAST_YEAR: i32 = 2099;

/// The statutory holidays of `year`, or none outside 2025..=2099 (earlier
/// years had other rules; later ones lie outside the exchange's dates).
pub fn statutory(year: i32) -> Option<&'static BTreeSet<Date>> {
    static YEARS: OnceLock<BTreeMap<i32, BTreeSet<Date>>> = OnceLock::new();
    YEARS
        .get_or_init(|| {
            (FIRST_YEAR..=LAST_YEAR)
                .filter_map(|y| compute(y).map(|days| (y, days)))
                .collect()
        })
        .get(&year)
}

fn compute(year: i32) -> Option<BTreeSet<Date>> {
    let day = |month: Month, d: u8| Date::from_calendar_date(year, month, d).ok();
    let lunar = |month: u8, d: u8| {
        let s = lunar_to_solar(LunarDate {
            year,
            month,
            day: d,
            is_leap_month: false,
        })
        .ok()?;
        Date::from_calendar_date(s.year, Month::try_from(s.month).ok()?, s.day).ok()
    };
    let spring = lunar(1, 1)?;
    let mut days = BTreeSet::new();
    days.insert(day(Month::January, 1)?);
    // 除夕 is the last day of the old lunar year, whether the 29th or the 30th.
    for offset in -1..=2 {
        days.insert(spring + Duration::days(offset));
    }
    days.insert(day(Month::April, qingming_day(year))?);
    days.insert(day(Month::May, 1)?);
    days.insert(day(Month::May, 2)?);
    days.insert(lunar(5, 5)?);
    days.insert(lunar(8, 15)?);
    for d in 1..=3 {
        days.insert(day(Month::October, d)?);
    }
    Some(days)
}

/// Day of April of 清明 in 2001..=2100: the 寿星 formula
/// `⌊Y·0.2422 + 4.81⌋ − ⌊Y/4⌋` with `Y` the year within the century, which
/// has no exception for 清明 in this century (checked against the
/// astronomical month boundary in the tests).
fn qingming_day(year: i32) -> u8 {
    let y = f64::from(year.rem_euclid(100));
    ((y * 0.2422 + 4.81).floor() - (y / 4.0).floor()) as u8
}

/// `lunar_lite`'s own notion of a solar date, for the tests' cross-checks.
#[cfg(test)]
fn solar(d: Date) -> lunar_lite::SolarDate {
    lunar_lite::SolarDate {
        year: d.year(),
        month: d.month() as u8,
        day: d.day(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn the_2026_statutory_days_are_inside_the_official_schedule() {
        let official = crate::domain::calendar::Calendar::embedded();
        let days = statutory(2026).unwrap();
        assert_eq!(days.len(), 13);
        for d in days {
            assert!(!official.is_working_day(*d).0, "{d} is off in 2026");
        }
        assert!(days.contains(&date!(2026 - 02 - 16)), "除夕");
        assert!(days.contains(&date!(2026 - 04 - 05)), "清明");
        assert!(days.contains(&date!(2026 - 06 - 19)), "端午");
        assert!(days.contains(&date!(2026 - 09 - 25)), "中秋");
    }

    #[test]
    fn known_dates_of_later_years() {
        // Published lunar calendars: 春节 2027-02-06, 端午 2027-06-09, 中秋
        // 2027-09-15, 清明 2027-04-05; 春节 2028-01-26 (除夕 the 25th).
        let y2027 = statutory(2027).unwrap();
        for d in [
            date!(2027 - 01 - 01),
            date!(2027 - 02 - 05),
            date!(2027 - 02 - 06),
            date!(2027 - 02 - 08),
            date!(2027 - 04 - 05),
            date!(2027 - 05 - 02),
            date!(2027 - 06 - 09),
            date!(2027 - 09 - 15),
            date!(2027 - 10 - 03),
        ] {
            assert!(y2027.contains(&d), "{d}");
        }
        assert!(!y2027.contains(&date!(2027 - 02 - 09)));
        let y2028 = statutory(2028).unwrap();
        assert!(y2028.contains(&date!(2028 - 01 - 25)));
        assert!(y2028.contains(&date!(2028 - 04 - 04)));
        assert_eq!(statutory(2024), None);
        assert_eq!(statutory(2100), None);
    }

    #[test]
    fn every_year_has_its_days_and_qingming_starts_the_chen_month() {
        for year in FIRST_YEAR..=LAST_YEAR {
            // 13 days, one fewer when 中秋 falls inside 国庆 (as in 2028).
            let mid_autumn = lunar_to_solar(LunarDate {
                year,
                month: 8,
                day: 15,
                is_leap_month: false,
            })
            .unwrap();
            let merged = mid_autumn.month == 10 && mid_autumn.day <= 3;
            let expected = if merged { 12 } else { 13 };
            assert_eq!(statutory(year).map(BTreeSet::len), Some(expected), "{year}");
            // 清明 is the 节 that opens the 辰 month: by the first hour of the
            // next day the month is 辰, at the last hour of the day before it
            // is still 卯 (the month pillar is exact to the hour, so a 清明 late
            // in the evening, as in 2042, still falls on the formula's day).
            let q = Date::from_calendar_date(year, Month::April, qingming_day(year)).unwrap();
            let branch = |d: Date, hour_index: u8| {
                lunar_lite::four_pillars_from_solar_date(solar(d), hour_index)
                    .unwrap()
                    .monthly
                    .branch()
            };
            assert_eq!(
                branch(q + Duration::days(1), 0),
                lunar_lite::EarthlyBranch::Chen,
                "{year}: 清明 on {q}"
            );
            assert_eq!(
                branch(q - Duration::days(1), 12),
                lunar_lite::EarthlyBranch::Mao,
                "{year}: the day before 清明 {q}"
            );
        }
    }
}
