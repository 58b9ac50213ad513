//! Keys of a team server (issue #22): who may use it, which models, how fast and how much.
//! Only the SHA-256 of a key's secret is kept; budgets run over calendar periods in UTC.

use serde::{Deserialize, Serialize};

use crate::record::now_ms;

/// One key as it is stored: never the secret, only its hash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Its name, unique (`alice`, `ci`).
    pub name: String,
    /// The SHA-256 (lowercase hex) of the secret; also the owner of the chats made with it.
    pub hash: String,
    /// Globs of the models it may use (`openai:*`); empty: any the server allows.
    pub models: Vec<String>,
    /// Requests a minute, at most.
    pub rpm: Option<u64>,
    /// Tokens (read and written) a minute, at most.
    pub tpm: Option<u64>,
    /// Requests running at once, at most.
    pub concurrent: Option<u64>,
    /// Dollars it may spend a period.
    pub budget: Option<Budget>,
    /// When it was made (Unix ms).
    pub created_at: i64,
    /// When it was revoked (Unix ms); a revoked key is refused.
    pub revoked_at: Option<i64>,
}

/// One finished turn as usage reports read it.
#[derive(Clone, Debug, PartialEq)]
pub struct UsageRow {
    /// The model that answered.
    pub model: Option<String>,
    /// Whose turn it was (the SHA-256 of the key or token; `""` for the local user).
    pub owner: String,
    /// When it was asked (Unix ms).
    pub created_at: i64,
    /// Its token counts.
    pub usage: Option<oy3o::Usage>,
    /// What it cost.
    pub cost_usd: Option<f64>,
}

/// A spending limit: `usd` dollars per `period`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// US dollars.
    pub usd: f64,
    /// The period it renews over.
    pub period: Period,
}

/// A budget period, in UTC calendar terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// From 00:00 UTC.
    Day,
    /// From Monday 00:00 UTC.
    Week,
    /// From the first of the month, 00:00 UTC.
    Month,
}

const DAY_MS: i64 = 86_400_000;

impl Period {
    /// `day`, `week` or `month`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
        }
    }

    /// Reads `day`, `week` or `month` (also `d`, `w`, `m`, `daily`, `weekly`, `monthly`).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "day" | "d" | "daily" => Some(Self::Day),
            "week" | "w" | "weekly" => Some(Self::Week),
            "month" | "m" | "mo" | "monthly" => Some(Self::Month),
            _ => None,
        }
    }

    /// The start (Unix ms) of the period that holds `at_ms`.
    ///
    /// ```
    /// use oy3o_store::Period;
    /// let at = 1_000_000_000_000; // 2001-09-09 01:46:40 UTC, a Sunday
    /// assert_eq!(Period::Day.start(at), 999_993_600_000); // 2001-09-09 00:00
    /// assert_eq!(Period::Week.start(at), 999_475_200_000); // Monday 2001-09-03
    /// assert_eq!(Period::Month.start(at), 999_302_400_000); // 2001-09-01
    /// ```
    pub fn start(self, at_ms: i64) -> i64 {
        let day = at_ms.div_euclid(DAY_MS);
        match self {
            Self::Day => day * DAY_MS,
            // 1970-01-01 was a Thursday: Monday is 3 days before a day number divisible by 7.
            Self::Week => (day - (day + 3).rem_euclid(7)) * DAY_MS,
            Self::Month => {
                let (y, m, _) = civil_from_days(day);
                days_from_civil(y, m, 1) * DAY_MS
            }
        }
    }

    /// The start (Unix ms) of the period after the one that holds `at_ms`.
    pub fn next_start(self, at_ms: i64) -> i64 {
        let start = self.start(at_ms);
        match self {
            Self::Day => start + DAY_MS,
            Self::Week => start + 7 * DAY_MS,
            Self::Month => {
                let (y, m, _) = civil_from_days(start.div_euclid(DAY_MS));
                let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                days_from_civil(y, m, 1) * DAY_MS
            }
        }
    }
}

impl Budget {
    /// Reads `USD/PERIOD`: `10/day`, `$25/month`, `5.5/week`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (usd, period) = text.split_once('/').ok_or_else(|| {
            format!("budget {text:?}: write dollars per period, such as 10/day or 25/month")
        })?;
        let usd: f64 = usd
            .trim()
            .trim_start_matches('$')
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("budget {text:?}: {usd:?} is not a number of dollars"))?;
        let period = Period::parse(period)
            .ok_or_else(|| format!("budget {text:?}: the period is day, week or month"))?;
        Ok(Self { usd, period })
    }
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "${}/{}", self.usd, self.period.as_str())
    }
}

impl KeyRecord {
    /// A new key named `name` for the secret whose hash is `hash`, with no limit.
    pub fn new(name: &str, hash: &str) -> Self {
        Self {
            name: name.to_owned(),
            hash: hash.to_owned(),
            models: Vec::new(),
            rpm: None,
            tpm: None,
            concurrent: None,
            budget: None,
            created_at: now_ms(),
            revoked_at: None,
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`,
/// https://howardhinnant.github.io/date_algorithms.html#days_from_civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (the inverse of [`days_from_civil`], same source).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_start_at_utc_calendar_boundaries() {
        let dec_1 = days_from_civil(2026, 12, 1) * DAY_MS;
        let at = dec_1 + 5 * DAY_MS + 20 * 3_600_000; // Sunday 2026-12-06 20:00
        assert_eq!(Period::Day.start(at), dec_1 + 5 * DAY_MS);
        assert_eq!(
            Period::Week.start(at),
            days_from_civil(2026, 11, 30) * DAY_MS
        );
        assert_eq!(Period::Month.start(at), dec_1);
        assert_eq!(
            Period::Month.next_start(at),
            days_from_civil(2027, 1, 1) * DAY_MS
        );
        assert_eq!(Period::Day.next_start(at), dec_1 + 6 * DAY_MS);
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        assert_eq!(days_from_civil(1970, 1, 1), 0);
    }

    #[test]
    fn budgets_read_dollars_per_period_and_refuse_anything_else() {
        assert_eq!(
            Budget::parse("$25/month").unwrap(),
            Budget {
                usd: 25.0,
                period: Period::Month
            }
        );
        assert_eq!(Budget::parse("0.5/day").unwrap().period, Period::Day);
        for bad in ["10", "x/day", "-1/day", "10/year", "inf/day"] {
            assert!(Budget::parse(bad).is_err(), "{bad}");
        }
    }
}
