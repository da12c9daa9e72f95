//! Working-day calendar of mainland China: public holidays and make-up working days (调休), one data file per year.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, bail};
use figment::providers::Format;
use serde::Deserialize;
use time::{Date, Weekday};

use crate::domain::parse_date;

/// The shipped 2026 schedule, so a deployment without a calendar directory still knows the
/// official holidays of the current year.
const EMBEDDED_2026: &str = include_str!("../../data/calendar/calendar-cn-2026.toml");

const FILE_PREFIX: &str = "calendar-cn-";
const FILE_SUFFIX: &str = ".toml";

/// Holidays and make-up working days per year. A year without an official file falls back to
/// its statutory holidays ([`holidays::statutory`]: 全国年节及纪念日放假办法, lunar dates
/// included) and weekends, and every answer about such a year carries a warning, because the
/// bridging days and make-up working days (调休) of its schedule are unknown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Calendar {
    years: BTreeMap<i32, YearDays>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct YearDays {
    /// Days off, weekend days inside a holiday block included.
    holidays: BTreeSet<Date>,
    /// Weekend days that are working days (调休上班).
    workdays: BTreeSet<Date>,
}

/// The file format of `calendar-cn-YYYY.toml`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YearFile {
    year: i32,
    #[serde(default)]
    holidays: Vec<String>,
    #[serde(default)]
    workdays: Vec<String>,
}

impl Calendar {
    /// The calendar shipped with the binary: the official 2026 schedule.
    pub fn embedded() -> Calendar {
        // The embedded text is fixed at build time and parsed by a unit test, so this cannot fail at run time.
        let (year, days) = parse_year(EMBEDDED_2026).expect("embedded 2026 calendar is valid");
        Calendar {
            years: BTreeMap::from([(year, days)]),
        }
    }

    /// Loads every `calendar-cn-YYYY.toml` in `dir` (other files are ignored). Only the years
    /// found there are known; the embedded data is not merged in, so the directory is the whole
    /// truth an operator configured.
    ///
    /// Fails when the directory cannot be read, holds no calendar file, a file does not parse,
    /// its `year` differs from its name, a date lies outside its year, a make-up working day is
    /// not a Saturday or Sunday, or a day is both a holiday and a working day.
    pub fn load_dir(dir: &Path) -> anyhow::Result<Calendar> {
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("reading calendar directory {}", dir.display()))?;
        let mut files = Vec::new();
        for entry in entries {
            let entry =
                entry.with_context(|| format!("reading calendar directory {}", dir.display()))?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str() else {
                continue;
            };
            let Some(middle) = name
                .strip_prefix(FILE_PREFIX)
                .and_then(|rest| rest.strip_suffix(FILE_SUFFIX))
            else {
                continue;
            };
            // A file that looks like a calendar but is misnamed would otherwise be skipped
            // silently and its year would fall back to weekends only.
            let year: i32 = match middle.parse() {
                Ok(y) if middle.len() == 4 => y,
                _ => bail!(
                    "calendar file {} is not named {FILE_PREFIX}YYYY{FILE_SUFFIX}",
                    entry.path().display()
                ),
            };
            files.push((year, entry.path()));
        }
        files.sort();
        if files.is_empty() {
            bail!(
                "no {FILE_PREFIX}YYYY{FILE_SUFFIX} file in calendar directory {}",
                dir.display()
            );
        }
        let mut years = BTreeMap::new();
        for (named_year, path) in files {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading calendar file {}", path.display()))?;
            let (year, days) =
                parse_year(&text).with_context(|| format!("calendar file {}", path.display()))?;
            if year != named_year {
                bail!(
                    "calendar file {} says year = {year}, its name says {named_year}",
                    path.display()
                );
            }
            years.insert(year, days);
        }
        Ok(Calendar { years })
    }

    /// The years with holiday data, ascending (for the start-up log).
    pub fn years(&self) -> Vec<i32> {
        self.years.keys().copied().collect()
    }

    /// Whether `d` is a working day, and a warning when `d`'s year has no data and the answer
    /// rests on weekends alone. The caller puts the warning in its response and its log.
    pub fn is_working_day(&self, d: Date) -> (bool, Option<String>) {
        match self.years.get(&d.year()) {
            Some(days) => {
                let working = if days.workdays.contains(&d) {
                    true
                } else if days.holidays.contains(&d) {
                    false
                } else {
                    !is_weekend(d)
                };
                (working, None)
            }
            None => {
                let statutory =
                    super::holidays::statutory(d.year()).is_some_and(|days| days.contains(&d));
                (
                    !statutory && !is_weekend(d),
                    Some(missing_year_warning(d.year())),
                )
            }
        }
    }

    /// The first day no official schedule covers: January 1 after the last year with data
    /// (years with data are expected to be consecutive up to it). Operators are warned ahead
    /// of it, as for certificates.
    pub fn data_end(&self) -> Option<Date> {
        let last = *self.years.keys().next_back()?;
        Date::from_calendar_date(last + 1, time::Month::January, 1).ok()
    }

    /// The date `n` working days after `start`, not counting `start` itself (a request made on
    /// any day, working or not, starts counting on the next working day); plus one warning per
    /// year without data that the count passed through. `n = 0` returns `start`.
    pub fn add_working_days(&self, start: Date, n: u32) -> (Date, Vec<String>) {
        let mut d = start;
        let mut counted = 0;
        let mut warnings: Vec<String> = Vec::new();
        while counted < n {
            let Some(next) = d.next_day() else {
                // Only reachable at the end of the representable range; the last date is the
                // best answer there is.
                break;
            };
            d = next;
            let (working, warning) = self.is_working_day(d);
            if let Some(w) = warning
                && !warnings.contains(&w)
            {
                warnings.push(w);
            }
            if working {
                counted += 1;
            }
        }
        (d, warnings)
    }
}

fn is_weekend(d: Date) -> bool {
    matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday)
}

fn missing_year_warning(year: i32) -> String {
    if super::holidays::statutory(year).is_some() {
        format!(
            "{year}年无国务院节假日安排数据，已按《全国年节及纪念日放假办法》扣除法定节假日和周末，\
             调休安排未知 (no official holiday schedule for {year}: statutory holidays and weekends \
             are skipped, make-up working days are unknown)"
        )
    } else {
        format!(
            "{year}年无节假日安排数据，仅按周六、周日休息计算工作日 \
             (no holiday calendar for {year}: counting weekends only)"
        )
    }
}

fn parse_year(text: &str) -> anyhow::Result<(i32, YearDays)> {
    let file: YearFile =
        figment::Figment::from(figment::providers::Toml::string(text)).extract()?;
    let year = file.year;
    let parse_in_year = |s: &str, list: &str| -> anyhow::Result<Date> {
        let d = parse_date(s).with_context(|| format!("{list}: {s:?} is not a YYYY-MM-DD date"))?;
        if d.year() != year {
            bail!("{list}: {s} is not in {year}");
        }
        Ok(d)
    };
    let mut days = YearDays::default();
    for s in &file.holidays {
        days.holidays.insert(parse_in_year(s, "holidays")?);
    }
    for s in &file.workdays {
        let d = parse_in_year(s, "workdays")?;
        // A make-up working day on a weekday changes nothing, so it is almost certainly a typo.
        if !is_weekend(d) {
            bail!("workdays: {s} is a {}, not a weekend day", d.weekday());
        }
        if days.holidays.contains(&d) {
            bail!("{s} is listed both as a holiday and as a working day");
        }
        days.workdays.insert(d);
    }
    Ok((year, days))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn calendar_embedded_2026_parses_with_official_days() {
        let cal = Calendar::embedded();
        assert_eq!(cal.years(), vec![2026]);
        // 国庆 block, a make-up Saturday, a plain Saturday, a plain weekday.
        assert_eq!(cal.is_working_day(date!(2026 - 10 - 01)), (false, None));
        assert_eq!(cal.is_working_day(date!(2026 - 10 - 07)), (false, None));
        assert_eq!(cal.is_working_day(date!(2026 - 10 - 10)), (true, None));
        assert_eq!(cal.is_working_day(date!(2026 - 10 - 17)), (false, None));
        assert_eq!(cal.is_working_day(date!(2026 - 10 - 08)), (true, None));
        // 春节 weekday inside the block, and the Saturday make-up day before it.
        assert_eq!(cal.is_working_day(date!(2026 - 02 - 16)), (false, None));
        assert_eq!(cal.is_working_day(date!(2026 - 02 - 14)), (true, None));
    }

    #[test]
    fn calendar_ten_days_across_national_day() {
        // By hand from the 2026 file, request on Mon 09-28 (not counted):
        // 09-29 (1), 09-30 (2), 10-01..10-07 off, 10-08 (3), 10-09 (4), Sat 10-10 make-up (5),
        // Sun 10-11 off, 10-12 (6), 10-13 (7), 10-14 (8), 10-15 (9), Fri 10-16 (10).
        let cal = Calendar::embedded();
        assert_eq!(
            cal.add_working_days(date!(2026 - 09 - 28), 10),
            (date!(2026 - 10 - 16), vec![])
        );
    }

    #[test]
    fn calendar_request_on_a_friday() {
        let cal = Calendar::embedded();
        // An ordinary Friday: the weekend is skipped.
        assert_eq!(
            cal.add_working_days(date!(2026 - 03 - 13), 1),
            (date!(2026 - 03 - 16), vec![])
        );
        assert_eq!(
            cal.add_working_days(date!(2026 - 03 - 13), 10),
            (date!(2026 - 03 - 27), vec![])
        );
        // Friday 09-18: Sunday 09-20 is a make-up working day, then 中秋 and 国庆 intervene:
        // 09-20 (1), 09-21..09-24 (2-5), 09-25..09-27 off, 09-28..09-30 (6-8),
        // 10-01..10-07 off, 10-08 (9), 10-09 (10).
        assert_eq!(
            cal.add_working_days(date!(2026 - 09 - 18), 1),
            (date!(2026 - 09 - 20), vec![])
        );
        assert_eq!(
            cal.add_working_days(date!(2026 - 09 - 18), 10),
            (date!(2026 - 10 - 09), vec![])
        );
    }

    #[test]
    fn calendar_request_day_is_not_counted() {
        let cal = Calendar::embedded();
        // A working day: one working day later is the next one, not the day itself.
        assert_eq!(
            cal.add_working_days(date!(2026 - 06 - 02), 1).0,
            date!(2026 - 06 - 03)
        );
        // A request on a holiday counts from the first working day after it.
        assert_eq!(
            cal.add_working_days(date!(2026 - 10 - 01), 1).0,
            date!(2026 - 10 - 08)
        );
        assert_eq!(
            cal.add_working_days(date!(2026 - 06 - 02), 0).0,
            date!(2026 - 06 - 02)
        );
    }

    #[test]
    fn calendar_year_without_data_falls_back_with_warning() {
        let cal = Calendar::embedded();
        // No 2027 file is loaded: Friday 2027-01-01 is still 元旦, a statutory holiday.
        let (working, warning) = cal.is_working_day(date!(2027 - 01 - 01));
        assert!(!working, "元旦 is off without a schedule file");
        let warning = warning.unwrap();
        assert!(
            warning.contains("2027") && warning.contains("调休"),
            "{warning}"
        );
        let (saturday, warning) = cal.is_working_day(date!(2027 - 01 - 02));
        assert!(!saturday);
        assert!(warning.is_some());
        // Monday 2027-02-08 is 初三, Tuesday the 9th an ordinary weekday.
        assert!(!cal.is_working_day(date!(2027 - 02 - 08)).0);
        assert!(cal.is_working_day(date!(2027 - 02 - 09)).0);
        // 12-31 (1), 01-01 元旦, weekend, 01-04 (2), 01-05 (3); one warning for 2027.
        let (due, warnings) = cal.add_working_days(date!(2026 - 12 - 30), 3);
        assert_eq!(due, date!(2027 - 01 - 05));
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("2027"));
        // Staying inside 2026 raises no warning.
        assert!(cal.add_working_days(date!(2026 - 12 - 28), 3).1.is_empty());
        // Beyond the statutory rules' range only weekends are known.
        let (working, warning) = cal.is_working_day(date!(2100 - 01 - 01));
        assert!(working);
        assert!(warning.unwrap().contains("weekends only"));
        assert_eq!(cal.data_end(), Some(date!(2027 - 01 - 01)));
    }

    #[test]
    fn calendar_load_dir_reads_every_year_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("calendar-cn-2026.toml"), EMBEDDED_2026).unwrap();
        std::fs::write(
            dir.path().join("calendar-cn-2027.toml"),
            "year = 2027\nholidays = [\"2027-01-01\"]\nworkdays = [\"2027-01-02\"]\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("README.md"), "ignored").unwrap();
        let cal = Calendar::load_dir(dir.path()).unwrap();
        assert_eq!(cal.years(), vec![2026, 2027]);
        assert_eq!(cal.is_working_day(date!(2027 - 01 - 01)), (false, None));
        assert_eq!(cal.is_working_day(date!(2027 - 01 - 02)), (true, None));
        assert_eq!(
            cal.add_working_days(date!(2026 - 09 - 28), 10),
            (date!(2026 - 10 - 16), vec![])
        );
    }

    #[test]
    fn calendar_load_dir_rejects_bad_files() {
        let cases = [
            ("calendar-cn-2027.toml", "year = 2028\n"),
            (
                "calendar-cn-2027.toml",
                "year = 2027\nholidays = [\"2028-01-01\"]\n",
            ),
            (
                "calendar-cn-2027.toml",
                "year = 2027\nholidays = [\"2027-13-01\"]\n",
            ),
            // 2027-01-04 is a Monday.
            (
                "calendar-cn-2027.toml",
                "year = 2027\nworkdays = [\"2027-01-04\"]\n",
            ),
            (
                "calendar-cn-2027.toml",
                "year = 2027\nholidays = [\"2027-01-02\"]\nworkdays = [\"2027-01-02\"]\n",
            ),
            ("calendar-cn-2027.toml", "year = 2027\nholiday = []\n"),
            ("calendar-cn-27.toml", "year = 2027\n"),
        ];
        for (file, text) in cases {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(file), text).unwrap();
            assert!(
                Calendar::load_dir(dir.path()).is_err(),
                "{file} with {text:?} should be rejected"
            );
        }
        let empty = tempfile::tempdir().unwrap();
        assert!(Calendar::load_dir(empty.path()).is_err());
    }
}
