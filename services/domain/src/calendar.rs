//! Working days (ngày làm việc) for statutory deadlines.
//!
//! Deadlines in inspection and sanction procedures run in working days, not calendar days.
//! Which days are working days is not a rule we can compute: besides the fixed public holidays,
//! Tết moves with the lunar calendar, and each year the government decides how long the Tết
//! break is, which days off are swapped for a working Saturday, and which compensatory days
//! follow a holiday that falls on a weekend. So the calendar is data (`data/holidays.csv`, see
//! `data/HOLIDAYS.md`), kept current by the ministry, and this module only reads it.
//!
//! A day is a working day if it is Monday to Friday and not listed as a holiday, or if it is a
//! weekend day listed as a working day (a Saturday worked to make up for a day off moved).

use std::collections::BTreeSet;
use std::sync::OnceLock;

use chrono::{DateTime, Datelike, Days, FixedOffset, NaiveDate, Utc, Weekday};

/// Civil dates are dates in Asia/Ho_Chi_Minh (UTC+7, no daylight saving since 1975).
pub fn vietnam() -> FixedOffset {
    FixedOffset::east_opt(7 * 3600).expect("+07:00 is a valid offset")
}

/// The civil day of an instant in Vietnam.
pub fn day_in_vietnam(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&vietnam()).date_naive()
}

/// The working-day calendar of the civil service: weekends, public holidays and the days moved
/// by the government's annual decisions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkingCalendar {
    /// Days off: public holidays and compensatory or swapped days off.
    holidays: BTreeSet<NaiveDate>,
    /// Weekend days made working days to make up for a day off moved.
    working_weekend_days: BTreeSet<NaiveDate>,
}

/// The two kinds of row in a calendar file.
const HOLIDAY: &str = "holiday";
const WORKING_DAY: &str = "working_day";

impl WorkingCalendar {
    /// Reads a calendar from CSV with the header `date,kind,name`: `date` as `YYYY-MM-DD`,
    /// `kind` either `holiday` (a day off, including compensatory days off) or `working_day`
    /// (a weekend day made a working day), `name` free text. Errors name the line.
    pub fn from_csv(data: &str) -> Result<WorkingCalendar, CalendarError> {
        let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(data.as_bytes());
        let header_ok = reader.headers().map(|h| h.iter().eq(["date", "kind", "name"])).map_err(|e| csv_error(&e))?;
        if !header_ok {
            return Err(CalendarError::Header);
        }
        let mut calendar = WorkingCalendar::default();
        for record in reader.records() {
            let record = record.map_err(|e| csv_error(&e))?;
            let line = record.position().map_or(0, csv::Position::line);
            let (date, kind) = (record.get(0).unwrap_or(""), record.get(1).unwrap_or(""));
            let date = NaiveDate::parse_from_str(date, "%Y-%m-%d")
                .map_err(|_| CalendarError::BadDate { line, value: date.to_owned() })?;
            match kind {
                HOLIDAY => {
                    if calendar.working_weekend_days.contains(&date) {
                        return Err(CalendarError::Conflict { line, date });
                    }
                    calendar.holidays.insert(date);
                }
                WORKING_DAY => {
                    if !is_weekend(date) {
                        return Err(CalendarError::WorkingDayNotOnWeekend { line, date });
                    }
                    if calendar.holidays.contains(&date) {
                        return Err(CalendarError::Conflict { line, date });
                    }
                    calendar.working_weekend_days.insert(date);
                }
                other => {
                    return Err(CalendarError::UnknownKind { line, value: other.to_owned() });
                }
            }
        }
        Ok(calendar)
    }

    /// The calendar shipped with the crate (`data/holidays.csv`), read once.
    pub fn bundled() -> &'static WorkingCalendar {
        static BUNDLED: OnceLock<WorkingCalendar> = OnceLock::new();
        BUNDLED.get_or_init(|| {
            // The file ships inside the crate; a bad row is a build defect caught by the tests below.
            WorkingCalendar::from_csv(include_str!("../data/holidays.csv"))
                .expect("the bundled holiday calendar is valid")
        })
    }

    /// Whether `d` is a working day: Monday to Friday and not a holiday, or a listed working day.
    pub fn is_working_day(&self, d: NaiveDate) -> bool {
        if is_weekend(d) { self.working_weekend_days.contains(&d) } else { !self.holidays.contains(&d) }
    }

    /// The date `n` working days after `start` (start itself not counted); n=0 returns start.
    ///
    /// Saturates at [`NaiveDate::MAX`] if the answer lies beyond the dates chrono represents.
    pub fn add_working_days(&self, start: NaiveDate, n: u32) -> NaiveDate {
        self.checked_add_working_days(start, n).unwrap_or(NaiveDate::MAX)
    }

    /// Like [`add_working_days`](Self::add_working_days), or `None` beyond [`NaiveDate::MAX`].
    pub fn checked_add_working_days(&self, start: NaiveDate, n: u32) -> Option<NaiveDate> {
        let mut day = start;
        let mut left = n;
        while left > 0 {
            // Any seven consecutive days hold exactly five weekdays, so where no listed date
            // falls inside, whole weeks can be skipped at five working days each. We keep at
            // least one working day to walk, so the answer is found by the walk below.
            let whole_weeks = u64::from((left - 1) / 5);
            let weeks = match self.next_listed_after(day) {
                None => whole_weeks,
                Some(next) => {
                    let gap = u64::try_from((next - day).num_days()).unwrap_or(0);
                    whole_weeks.min(gap.saturating_sub(1) / 7)
                }
            };
            if weeks > 0 {
                day = day.checked_add_days(Days::new(weeks * 7))?;
                // `weeks` ≤ (left - 1) / 5, so this neither overflows nor underflows.
                left -= u32::try_from(weeks * 5).ok()?;
                continue;
            }
            day = day.succ_opt()?;
            if self.is_working_day(day) {
                left -= 1;
            }
        }
        Some(day)
    }

    /// The first holiday or working weekend day strictly after `d`.
    fn next_listed_after(&self, d: NaiveDate) -> Option<NaiveDate> {
        let after = d.succ_opt()?;
        let next_holiday = self.holidays.range(after..).next();
        let next_working = self.working_weekend_days.range(after..).next();
        match (next_holiday, next_working) {
            (Some(a), Some(b)) => Some(*a.min(b)),
            (a, b) => a.or(b).copied(),
        }
    }
}

fn is_weekend(d: NaiveDate) -> bool {
    matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

fn csv_error(e: &csv::Error) -> CalendarError {
    let line = e.position().map_or(0, csv::Position::line);
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("expected {expected_len} fields (date,kind,name), found {len}")
        }
        _ => e.to_string(),
    };
    CalendarError::Csv { line, message }
}

/// Why a calendar file was refused. Lines are counted from 1, the header being line 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// The first line is not `date,kind,name`.
    #[error("line 1: the header must be 'date,kind,name'")]
    Header,
    /// The CSV itself is broken (e.g. a row with the wrong number of fields).
    #[error("line {line}: {message}")]
    Csv {
        /// The line, or 0 if the reader could not tell.
        line: u64,
        /// What the CSV reader said.
        message: String,
    },
    /// A date not written as `YYYY-MM-DD`, or not a day of the calendar.
    #[error("line {line}: '{value}' is not a date written as YYYY-MM-DD")]
    BadDate {
        /// The line.
        line: u64,
        /// The text found.
        value: String,
    },
    /// A kind other than `holiday` or `working_day`.
    #[error("line {line}: kind '{value}' is neither 'holiday' nor 'working_day'")]
    UnknownKind {
        /// The line.
        line: u64,
        /// The text found.
        value: String,
    },
    /// A `working_day` on a weekday, which is a working day anyway.
    #[error("line {line}: {date} is a weekday; only a Saturday or Sunday can be made a working day")]
    WorkingDayNotOnWeekend {
        /// The line.
        line: u64,
        /// The date.
        date: NaiveDate,
    },
    /// A date listed as both a holiday and a working day.
    #[error("line {line}: {date} is listed both as a holiday and as a working day")]
    Conflict {
        /// The line of the second listing.
        line: u64,
        /// The date.
        date: NaiveDate,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn zero_working_days_after_a_date_is_the_date_itself() {
        let cal = WorkingCalendar::bundled();
        assert_eq!(cal.add_working_days(date("2025-03-08"), 0), date("2025-03-08"));
    }

    #[test]
    fn a_deadline_skips_the_weekend() {
        let cal = WorkingCalendar::bundled();
        // Thursday 2025-03-06 + 3 working days: Fri 7, Mon 10, Tue 11.
        assert_eq!(cal.add_working_days(date("2025-03-06"), 3), date("2025-03-11"));
        // From a Saturday, the first working day is Monday.
        assert_eq!(cal.add_working_days(date("2025-03-08"), 1), date("2025-03-10"));
    }

    #[test]
    fn a_deadline_skips_the_tet_break_of_2025() {
        let cal = WorkingCalendar::bundled();
        for d in ["2025-01-25", "2025-01-27", "2025-01-29", "2025-01-31", "2025-02-02"] {
            assert!(!cal.is_working_day(date(d)), "{d} was a day off for Tết");
        }
        // Thursday 2025-01-23 + 3 working days: Fri 24, then Tết (25 Jan – 2 Feb), Mon 3, Tue 4 Feb.
        assert_eq!(cal.add_working_days(date("2025-01-23"), 3), date("2025-02-04"));
    }

    #[test]
    fn a_saturday_made_a_working_day_counts() {
        let cal = WorkingCalendar::bundled();
        // 2025-04-26 (Saturday) was worked in exchange for Friday 2025-05-02.
        assert!(cal.is_working_day(date("2025-04-26")));
        assert!(!cal.is_working_day(date("2025-05-02")));
        // Friday 2025-04-25 + 1 working day is that Saturday.
        assert_eq!(cal.add_working_days(date("2025-04-25"), 1), date("2025-04-26"));
        // Tuesday 2025-04-29 + 1: 30/4, 1/5, 2/5 off, then the weekend: Monday 5 May.
        assert_eq!(cal.add_working_days(date("2025-04-29"), 1), date("2025-05-05"));
    }

    #[test]
    fn a_small_calendar_is_read_from_csv() {
        let cal = WorkingCalendar::from_csv(
            "date,kind,name\n2030-01-01,holiday,Tết Dương lịch\n 2030-01-05 , working_day ,\"Làm bù, thứ Bảy\"\n",
        )
        .unwrap();
        assert!(!cal.is_working_day(date("2030-01-01")));
        assert!(cal.is_working_day(date("2030-01-05")));
        assert!(!cal.is_working_day(date("2030-01-06")));
    }

    #[test]
    fn bad_calendar_files_are_refused_naming_the_line() {
        let head = "date,kind,name\n2030-01-01,holiday,Tết Dương lịch\n";
        let cases: &[(String, &str, &str)] = &[
            (format!("{head}2030-13-01,holiday,x\n"), "line 3", "a month 13"),
            (format!("{head}01/02/2030,holiday,x\n"), "line 3", "a day-first date"),
            (format!("{head}2030-01-02,day_off,x\n"), "line 3", "an unknown kind"),
            (format!("{head}2030-01-02,holiday\n"), "line 3", "a missing field"),
            (format!("{head}2030-01-02,working_day,x\n"), "line 3", "a working day on a Wednesday"),
            (format!("{head}\n2030-01-05,working_day,x\n2030-01-05,holiday,y\n"), "line 5", "a conflict"),
            ("day,kind,name\n".to_owned(), "line 1", "a wrong header"),
        ];
        for (data, line, reason) in cases {
            let err = WorkingCalendar::from_csv(data).expect_err(reason);
            assert!(err.to_string().starts_with(&format!("{line}:")), "{reason}: {err}");
        }
    }

    #[test]
    fn the_bundled_calendar_covers_2008_to_2027() {
        let cal = WorkingCalendar::bundled();
        for (d, why) in [
            ("2008-09-02", "National Day 2008"),
            ("2009-04-06", "compensating Hùng Kings' day 2009 on a Saturday"),
            ("2010-02-19", "Tết 2010, swapped for Saturday 2010-02-27"),
            ("2011-02-01", "Tết 2011, swapped for Sunday 2011-01-30"),
            ("2012-01-26", "Tết 2012"),
            ("2012-12-31", "swapped for Saturday 2013-01-05"),
            ("2013-02-15", "Tết 2013, swapped for Saturday 2013-02-23"),
            ("2014-01-28", "Tết 2014, swapped for Saturday 2014-01-25"),
            ("2014-09-01", "swapped for Saturday 2014-09-06"),
            ("2015-02-23", "Tết 2015, compensating mùng 3 on a Saturday"),
            ("2016-05-03", "compensating 1/5/2016 on a Sunday"),
            ("2017-01-31", "Tết 2017"),
            ("2018-02-20", "Tết 2018"),
            ("2019-04-29", "swapped for Saturday 2019-05-04"),
            ("2020-01-29", "Tết 2020"),
            ("2021-09-03", "National Day 2021, the adjacent day"),
            ("2022-02-04", "Tết 2022"),
            ("2023-05-03", "compensating 30/4/2023 on a Sunday"),
            ("2024-02-12", "Tết 2024"),
            ("2024-04-29", "swapped for Saturday 2024-05-04"),
            ("2025-09-01", "National Day 2025"),
            ("2026-02-16", "Tết 2026"),
            ("2026-04-27", "compensating Hùng Kings' day on a Sunday"),
            ("2027-01-01", "New Year 2027"),
        ] {
            assert!(!cal.is_working_day(date(d)), "{d}: {why}");
        }
        for (d, why) in [
            ("2011-01-30", "a Sunday worked before Tết 2011"),
            ("2013-01-05", "a Saturday worked for Monday 2012-12-31"),
            ("2014-01-25", "a Saturday worked before Tết 2014"),
            ("2014-02-08", "a Saturday worked after Tết 2014"),
            ("2014-12-27", "a Saturday worked for Friday 2015-01-02"),
            ("2024-05-04", "a Saturday worked for Monday 2024-04-29"),
        ] {
            assert!(cal.is_working_day(date(d)), "{d}: {why}");
        }
    }

    #[test]
    fn an_application_received_on_27_january_2014_is_due_after_the_tet_break() {
        let cal = WorkingCalendar::bundled();
        // Tết Giáp Ngọ 2014, as decided by the Prime Minister (Công văn 10525/VPCP-KGVX of
        // 12/12/2013, announced by the Ministry of Labour, Invalids and Social Affairs): civil
        // servants were off from Tuesday 28/1 to Wednesday 5/2/2014 (nine days) and worked
        // Saturday 25/1 and Saturday 8/2/2014 in exchange for Tuesday 28/1 and Wednesday 29/1.
        // Monday 2014-01-27 + 10 working days (the start itself is not counted):
        //   Tue 28/1 – Wed 5/2: Tết break, nothing counted
        //   1 Thu 6/2, 2 Fri 7/2, 3 Sat 8/2 (worked), Sun 9/2 off,
        //   4 Mon 10/2, 5 Tue 11/2, 6 Wed 12/2, 7 Thu 13/2, 8 Fri 14/2, Sat 15 and Sun 16/2 off,
        //   9 Mon 17/2, 10 Tue 18/2.
        // Without the Tết rows the answer would be Monday 2014-02-10.
        assert_eq!(cal.add_working_days(date("2014-01-27"), 10), date("2014-02-18"));
    }

    #[test]
    fn a_huge_count_saturates_instead_of_looping_or_panicking() {
        let cal = WorkingCalendar::bundled();
        assert_eq!(cal.add_working_days(date("2025-01-01"), u32::MAX), NaiveDate::MAX);
        assert_eq!(cal.checked_add_working_days(NaiveDate::MAX, 1), None);
    }

    /// The definition, one day at a time, to check the week-skipping shortcut against.
    fn walk(cal: &WorkingCalendar, start: NaiveDate, n: u32) -> NaiveDate {
        let (mut day, mut left) = (start, n);
        while left > 0 {
            day = day.succ_opt().unwrap();
            if cal.is_working_day(day) {
                left -= 1;
            }
        }
        day
    }

    proptest! {
        #[test]
        fn skipping_whole_weeks_gives_the_same_answer_as_walking_day_by_day(
            offset in 0i64..2200,
            n in 0u32..400,
        ) {
            let cal = WorkingCalendar::bundled();
            let start = date("2023-06-01") + chrono::Duration::days(offset);
            prop_assert_eq!(cal.add_working_days(start, n), walk(cal, start, n));
        }

        #[test]
        fn the_answer_is_a_working_day_after_the_start(offset in 0i64..2200, n in 1u32..100) {
            let cal = WorkingCalendar::bundled();
            let start = date("2023-06-01") + chrono::Duration::days(offset);
            let end = cal.add_working_days(start, n);
            prop_assert!(end > start && cal.is_working_day(end));
        }
    }
}
