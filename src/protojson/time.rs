//! `google.protobuf.Timestamp` and `google.protobuf.Duration`, with the JSON forms the
//! mapping specifies: RFC 3339 in UTC with a `Z` (`"1970-01-01T00:00:00Z"`) and seconds with
//! an `s` (`"1.5s"`), fractions of 0, 3, 6 or 9 digits, and the types' documented ranges.
//!
//! Hand-written because the crate the other well-known types come from (pbjson-types)
//! writes timestamps with `+00:00`, reads leap seconds into out-of-range nanos, lowercase
//! `t`/`z` and timestamps outside years 1–9999, and prints durations with out-of-range nanos
//! or seconds; and prost-wkt-types formats durations through an `f64`. The conversion from
//! days to a civil date is Howard Hinnant's `civil_from_days`, which needs no calendar crate.

use std::fmt::Write as _;

use serde::de::{self, Deserializer, Visitor};
use serde::{Serialize, Serializer};

/// A point in time: seconds and nanoseconds since the Unix epoch, in UTC.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Message)]
pub struct Timestamp {
    /// Seconds since 1970-01-01T00:00:00Z; from 0001-01-01T00:00:00Z to
    /// 9999-12-31T23:59:59Z.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Non-negative fractions of a second, 0 to 999,999,999.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// A signed span of time: seconds and nanoseconds of the same sign.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Message)]
pub struct Duration {
    /// Whole seconds, -315,576,000,000 to +315,576,000,000 (about 10,000 years).
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Fractions of a second, -999,999,999 to 999,999,999, with the sign of `seconds`.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

const MIN_TIMESTAMP: i64 = -62_135_596_800; // 0001-01-01T00:00:00Z
const MAX_TIMESTAMP: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
const MAX_DURATION: i64 = 315_576_000_000;
const NANOS: i32 = 1_000_000_000;

/// `.123`, `.123456` or `.123456789`: the shortest of the three that is exact; nothing for 0.
fn push_fraction(out: &mut String, nanos: u32) {
    if nanos == 0 {
        // Whole seconds: no fraction.
    } else if nanos.is_multiple_of(1_000_000) {
        let _ = write!(out, ".{:03}", nanos / 1_000_000);
    } else if nanos.is_multiple_of(1_000) {
        let _ = write!(out, ".{:06}", nanos / 1_000);
    } else {
        let _ = write!(out, ".{nanos:09}");
    }
}

/// (year, month, day) of the day `days` after 1970-01-01 (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days from 1970-01-01 to (year, month, day); the inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let doy = (153 * if month > 2 { month - 3 } else { month + 9 } + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl Timestamp {
    /// The canonical JSON text (without quotes), or why there is none.
    pub fn to_json_string(&self) -> Result<String, String> {
        if !(MIN_TIMESTAMP..=MAX_TIMESTAMP).contains(&self.seconds) {
            return Err(format!("timestamp seconds {} are outside years 1 to 9999", self.seconds));
        }
        let nanos = u32::try_from(self.nanos)
            .ok()
            .filter(|n| *n < NANOS as u32)
            .ok_or_else(|| format!("timestamp nanos {} are outside 0 to 999999999", self.nanos))?;
        let (days, secs) = (self.seconds.div_euclid(86_400), self.seconds.rem_euclid(86_400));
        let (year, month, day) = civil_from_days(days);
        let mut out = String::with_capacity(30);
        let _ = write!(out, "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
        push_fraction(&mut out, nanos);
        out.push('Z');
        Ok(out)
    }

    /// Reads RFC 3339 text: `YYYY-MM-DDTHH:MM:SS`, an optional fraction of 1 to 9 digits, and
    /// `Z` or an offset `±HH:MM`.
    pub fn from_json_str(text: &str) -> Result<Self, String> {
        let bad = || format!("\"{text}\" is not an RFC 3339 timestamp such as \"1970-01-01T00:00:00Z\"");
        let b = text.as_bytes();
        let num = |range: std::ops::Range<usize>| -> Option<u32> {
            let digits = b.get(range)?;
            digits.iter().all(u8::is_ascii_digit).then(|| digits.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
        };
        let seps = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
        if seps.iter().any(|&(i, c)| b.get(i) != Some(&c)) {
            return Err(bad());
        }
        let fields = (num(0..4), num(5..7), num(8..10), num(11..13), num(14..16), num(17..19));
        let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = fields else {
            return Err(bad());
        };
        let year = i64::from(year);
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return Err(bad());
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err(bad());
        }
        let mut rest = &text[19..];
        let mut nanos = 0;
        if let Some(fraction) = rest.strip_prefix('.') {
            let len = fraction.bytes().take_while(u8::is_ascii_digit).count();
            if !(1..=9).contains(&len) {
                return Err(bad());
            }
            nanos = fraction[..len].parse::<u32>().map_err(|_| bad())? * 10u32.pow(9 - len as u32);
            rest = &fraction[len..];
        }
        let offset = match rest.as_bytes() {
            b"Z" => 0,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let (h, m) = (num2(*h1, *h2).ok_or_else(bad)?, num2(*m1, *m2).ok_or_else(bad)?);
                if h > 23 || m > 59 {
                    return Err(bad());
                }
                let offset = i64::from(h * 3600 + m * 60);
                if *sign == b'-' { -offset } else { offset }
            }
            _ => return Err(bad()),
        };
        let seconds =
            days_from_civil(year, month, day) * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset;
        if !(MIN_TIMESTAMP..=MAX_TIMESTAMP).contains(&seconds) {
            return Err(format!("\"{text}\" is outside years 1 to 9999 in UTC"));
        }
        Ok(Self { seconds, nanos: nanos as i32 })
    }
}

fn num2(a: u8, b: u8) -> Option<u32> {
    (a.is_ascii_digit() && b.is_ascii_digit()).then(|| u32::from(a - b'0') * 10 + u32::from(b - b'0'))
}

impl Duration {
    /// The canonical JSON text (without quotes), or why there is none.
    pub fn to_json_string(&self) -> Result<String, String> {
        let (s, n) = (self.seconds, self.nanos);
        let out_of_range = s.unsigned_abs() > MAX_DURATION as u64 || n.unsigned_abs() >= NANOS as u32;
        if out_of_range || (s < 0 && n > 0) || (s > 0 && n < 0) {
            return Err(format!("duration of {s} seconds and {n} nanos is out of range or has mixed signs"));
        }
        let mut out = String::with_capacity(24);
        if s < 0 || n < 0 {
            out.push('-');
        }
        let _ = write!(out, "{}", s.unsigned_abs());
        push_fraction(&mut out, n.unsigned_abs());
        out.push('s');
        Ok(out)
    }

    /// Reads `[-]SECONDS[.FRACTION]s`, the fraction of 1 to 9 digits.
    pub fn from_json_str(text: &str) -> Result<Self, String> {
        let bad = || format!("\"{text}\" is not a duration such as \"1.5s\"");
        let body = text.strip_suffix('s').ok_or_else(bad)?;
        let (negative, body) = match body.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, body),
        };
        let (whole, fraction) = body.split_once('.').unwrap_or((body, ""));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || (body.contains('.') && !digits(fraction)) || fraction.len() > 9 {
            return Err(bad());
        }
        let seconds: i64 = whole
            .parse()
            .ok()
            .filter(|s| *s <= MAX_DURATION)
            .ok_or_else(|| format!("\"{text}\" is out of range (at most {MAX_DURATION} seconds either way)"))?;
        let nanos = if fraction.is_empty() {
            0
        } else {
            fraction.parse::<i32>().map_err(|_| bad())? * 10i32.pow(9 - fraction.len() as u32)
        };
        Ok(if negative { Self { seconds: -seconds, nanos: -nanos } } else { Self { seconds, nanos } })
    }
}

macro_rules! string_form {
    ($t:ty, $expecting:literal) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.to_json_string().map_err(serde::ser::Error::custom)?)
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$t, E> {
                        <$t>::from_json_str(v).map_err(E::custom)
                    }
                }
                deserializer.deserialize_str(V)
            }
        }
    };
}
string_form!(Timestamp, "an RFC 3339 timestamp string");
string_form!(Duration, "a duration string such as \"1.5s\"");

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64, nanos: i32) -> Result<String, String> {
        Timestamp { seconds, nanos }.to_json_string()
    }

    #[test]
    fn timestamps_are_z_normalized_with_0_3_6_or_9_digits() {
        assert_eq!(ts(0, 0).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(ts(0, 10_000_000).unwrap(), "1970-01-01T00:00:00.010Z");
        assert_eq!(ts(0, 10_000).unwrap(), "1970-01-01T00:00:00.000010Z");
        assert_eq!(ts(0, 10).unwrap(), "1970-01-01T00:00:00.000000010Z");
        assert_eq!(ts(-1, 999_999_999).unwrap(), "1969-12-31T23:59:59.999999999Z");
        assert_eq!(ts(951_782_400, 0).unwrap(), "2000-02-29T00:00:00Z");
        assert_eq!(ts(MIN_TIMESTAMP, 0).unwrap(), "0001-01-01T00:00:00Z");
        assert_eq!(ts(MAX_TIMESTAMP, 999_999_999).unwrap(), "9999-12-31T23:59:59.999999999Z");
        for (s, n) in [(MIN_TIMESTAMP - 1, 0), (MAX_TIMESTAMP + 1, 0), (0, -1), (0, NANOS), (i64::MIN, 0)] {
            assert!(ts(s, n).is_err(), "{s} {n}");
        }
    }

    #[test]
    fn every_day_round_trips() {
        // Every 97th day across the whole range, and the calendar's corners.
        let days = (MIN_TIMESTAMP / 86_400..=MAX_TIMESTAMP / 86_400).step_by(97).chain([-719_162, 0, 2_932_896]);
        for day in days {
            let t = Timestamp { seconds: day * 86_400 + 3_723, nanos: 5_000 };
            let text = t.to_json_string().unwrap();
            assert_eq!(Timestamp::from_json_str(&text), Ok(t), "{text}");
        }
    }

    #[test]
    fn reads_offsets_and_fractions() {
        let read = |s: &str| Timestamp::from_json_str(s);
        assert_eq!(read("1970-01-01T00:00:00Z"), Ok(Timestamp { seconds: 0, nanos: 0 }));
        assert_eq!(read("1970-01-01T01:00:00+01:00"), Ok(Timestamp { seconds: 0, nanos: 0 }));
        assert_eq!(read("1969-12-31T23:30:00-00:30"), Ok(Timestamp { seconds: 0, nanos: 0 }));
        assert_eq!(read("1970-01-01T00:00:00.5Z"), Ok(Timestamp { seconds: 0, nanos: 500_000_000 }));
        assert_eq!(read("1970-01-01T00:00:00.123456789Z"), Ok(Timestamp { seconds: 0, nanos: 123_456_789 }));
        for bad in [
            "1970-01-01t00:00:00Z",
            "1970-01-01T00:00:00z",
            "1970-01-01 00:00:00Z",
            "1970-01-01T00:00:00",
            "1970-01-01T00:00:60Z",
            "1970-02-30T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "1970-13-01T00:00:00Z",
            "1970-01-01T24:00:00Z",
            "1970-01-01T00:00:00.Z",
            "1970-01-01T00:00:00.1234567891Z",
            "1970-01-01T00:00:00+0100",
            "1970-01-01T00:00:00+24:00",
            "0000-12-31T23:59:59Z",
            "0001-01-01T00:00:00+00:01",
            "9999-12-31T23:59:59-00:01",
            "+1970-01-01T00:00:00Z",
            "1970-01-01T00:00:00Z ",
            "",
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        let d = |seconds, nanos| Duration { seconds, nanos }.to_json_string();
        assert_eq!(d(0, 0).unwrap(), "0s");
        assert_eq!(d(1, 500_000_000).unwrap(), "1.500s");
        assert_eq!(d(-1, -500_000_000).unwrap(), "-1.500s");
        assert_eq!(d(0, -1_000).unwrap(), "-0.000001s");
        assert_eq!(d(0, 1).unwrap(), "0.000000001s");
        assert_eq!(d(MAX_DURATION, 999_999_999).unwrap(), "315576000000.999999999s");
        for (s, n) in [(MAX_DURATION + 1, 0), (-MAX_DURATION - 1, 0), (0, NANOS), (1, -1), (-1, 1), (i64::MIN, 0)] {
            assert!(d(s, n).is_err(), "{s} {n}");
        }
        let read = Duration::from_json_str;
        assert_eq!(read("1.5s"), Ok(Duration { seconds: 1, nanos: 500_000_000 }));
        assert_eq!(read("-0.5s"), Ok(Duration { seconds: 0, nanos: -500_000_000 }));
        assert_eq!(read("3s"), Ok(Duration { seconds: 3, nanos: 0 }));
        assert_eq!(read("-315576000000.999999999s"), Ok(Duration { seconds: -MAX_DURATION, nanos: -999_999_999 }));
        for bad in
            ["1", "s", "-s", "1.s", ".5s", "1.1234567891s", "+1s", "1.-5s", "1.+5s", "315576000001s", "1e3s", " 1s"]
        {
            assert!(read(bad).is_err(), "{bad}");
        }
    }
}
