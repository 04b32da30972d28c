//! Reading a protobuf JSON number: a JSON number, or a string holding one (`"1.5"`,
//! `"NaN"`, `"-Infinity"`, 64-bit integers as `"123"`), by the rules of the canonical
//! mapping:
//!
//! - an integer field takes any number with an integral value in its range, however it is
//!   written: `100`, `1e2`, `100.0`, `"1e2"`; a fraction (`1.5`) or a value out of range is
//!   refused;
//! - a `float` or `double` field takes any number, and the strings `"NaN"`, `"Infinity"` and
//!   `"-Infinity"` (only those spellings); a `float` refuses a finite number beyond its range
//!   instead of turning it into infinity.
//!
//! The code pbjson generates reads numeric fields through `pbjson::private::NumberDeserialize`,
//! an `#[serde(untagged)]` enum: serde buffers each value and, for a plain JSON number, first
//! tries (and fails) to read it as a string, which builds an error message per number (a
//! message of 768 floats paid over a third of a millisecond for that), and it refuses `1e2`
//! for integers while taking `"inf"` for floats. `build.rs` points the generated code at this
//! type instead: one visitor, no buffering, the mapping's rules.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, Unexpected, Visitor};

/// A numeric field's value, read from a JSON number or a numeric string. Takes the place of
/// `pbjson::private::NumberDeserialize` in generated code (same derives, same public field).
#[derive(Debug, Copy, Clone, PartialOrd, PartialEq, Hash, Ord, Eq)]
pub struct NumberDeserialize<T>(pub T);

/// The numeric types protobuf fields use.
pub trait JsonNumber: Sized {
    /// The protobuf name of the type, for error messages.
    const NAME: &'static str;
    /// From a non-negative JSON integer.
    fn from_u64(v: u64) -> Option<Self>;
    /// From a negative JSON integer.
    fn from_i64(v: i64) -> Option<Self>;
    /// From a JSON number with a fraction or an exponent.
    fn from_f64(v: f64) -> Result<Self, String>;
    /// From a JSON string.
    fn from_text(v: &str) -> Result<Self, String>;
}

/// `v` as an integer, if it is integral and in `min..=max` (bounds exact as `f64`, given as
/// the exclusive upper bound `end`, a power of two).
fn integral(v: f64, min: f64, end: f64, name: &str) -> Result<f64, String> {
    if v.fract() != 0.0 || !v.is_finite() {
        return Err(format!("{v} is not an integer, as a {name} field needs"));
    }
    if v < min || v >= end {
        return Err(format!("{v} is out of range for a {name} field"));
    }
    Ok(v)
}

macro_rules! integer {
    ($($t:ty => $name:literal),*) => {$(
        impl JsonNumber for $t {
            const NAME: &'static str = $name;
            fn from_u64(v: u64) -> Option<Self> {
                <$t>::try_from(v).ok()
            }
            fn from_i64(v: i64) -> Option<Self> {
                <$t>::try_from(v).ok()
            }
            fn from_f64(v: f64) -> Result<Self, String> {
                // `MIN` and `MAX + 1` are powers of two, exact as `f64`; in that range and
                // integral, the conversion is exact.
                let end = (<$t>::MAX as f64) + 1.0;
                integral(v, <$t>::MIN as f64, end, $name).map(|v| v as $t)
            }
            fn from_text(v: &str) -> Result<Self, String> {
                if let Ok(n) = v.parse::<$t>() {
                    return Ok(n);
                }
                // `"1e2"`, `"100.0"`, `"-0"` for an unsigned field: any integral number.
                match v.parse::<f64>() {
                    Ok(f) if f.is_finite() && is_decimal(v) => Self::from_f64(f),
                    _ => Err(format!("\"{v}\" is not a number, as a {} field needs", $name)),
                }
            }
        }
    )*};
}
integer!(i32 => "int32", i64 => "int64", u32 => "uint32", u64 => "uint64");

/// Whether `v` is spelled as a decimal number (what Rust's parser takes beyond that,
/// `inf` and `nan` in any case, is not protobuf JSON).
fn is_decimal(v: &str) -> bool {
    let digits = v.strip_prefix(['-', '+']).unwrap_or(v);
    digits.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && digits.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
}

macro_rules! float {
    ($($t:ty => $name:literal),*) => {$(
        impl JsonNumber for $t {
            const NAME: &'static str = $name;
            fn from_u64(v: u64) -> Option<Self> {
                Some(v as $t)
            }
            fn from_i64(v: i64) -> Option<Self> {
                Some(v as $t)
            }
            fn from_f64(v: f64) -> Result<Self, String> {
                let narrowed = v as $t;
                if narrowed.is_infinite() && v.is_finite() {
                    return Err(format!("{v} is out of range for a {} field", $name));
                }
                Ok(narrowed)
            }
            fn from_text(v: &str) -> Result<Self, String> {
                match v {
                    "NaN" => Ok(<$t>::NAN),
                    "Infinity" => Ok(<$t>::INFINITY),
                    "-Infinity" => Ok(<$t>::NEG_INFINITY),
                    _ => match v.parse::<f64>() {
                        Ok(f) if is_decimal(v) => Self::from_f64(f),
                        _ => Err(format!("\"{v}\" is not a number, as a {} field needs", $name)),
                    },
                }
            }
        }
    )*};
}
float!(f32 => "float", f64 => "double");

impl<'de, T: JsonNumber> serde::Deserialize<'de> for NumberDeserialize<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);

        impl<T: JsonNumber> Visitor<'_> for V<T> {
            type Value = NumberDeserialize<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a number or a string holding one (a {} field)", T::NAME)
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                T::from_u64(v).map(NumberDeserialize).ok_or_else(|| E::invalid_value(Unexpected::Unsigned(v), &self))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                T::from_i64(v).map(NumberDeserialize).ok_or_else(|| E::invalid_value(Unexpected::Signed(v), &self))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                T::from_f64(v).map(NumberDeserialize).map_err(E::custom)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                T::from_text(v).map(NumberDeserialize).map_err(E::custom)
            }
        }

        d.deserialize_any(V(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read<T: JsonNumber>(json: &str) -> Result<T, String> {
        serde_json::from_str::<NumberDeserialize<T>>(json).map(|n| n.0).map_err(|e| e.to_string())
    }

    #[test]
    fn integers_take_every_spelling_of_an_integral_value() {
        for json in ["100", "1e2", "1E2", "100.0", "1.0e2", "\"100\"", "\"1e2\"", "\"100.0\"", "10000e-2"] {
            assert_eq!(read::<i32>(json), Ok(100), "{json}");
            assert_eq!(read::<u64>(json), Ok(100), "{json}");
        }
        assert_eq!(read::<u32>("-0"), Ok(0));
        assert_eq!(read::<u32>("\"-0\""), Ok(0));
        assert_eq!(read::<u32>("-0.0"), Ok(0));
        assert_eq!(read::<i32>("2147483647"), Ok(i32::MAX));
        assert_eq!(read::<i32>("-2147483648"), Ok(i32::MIN));
        assert_eq!(read::<i32>("-2.147483648e9"), Ok(i32::MIN));
        assert_eq!(read::<i64>("\"-9223372036854775808\""), Ok(i64::MIN));
        assert_eq!(read::<i64>("\"9223372036854775807\""), Ok(i64::MAX));
        assert_eq!(read::<u64>("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(read::<u64>("\"18446744073709551615\""), Ok(u64::MAX));
        // Beyond 2^53 a JSON number with an exponent is a double: the nearest one is taken.
        assert_eq!(read::<i64>("9.007199254740993e15"), Ok(9_007_199_254_740_992));
    }

    #[test]
    fn integers_refuse_fractions_ranges_and_non_numbers() {
        for json in ["1.5", "\"1.5\"", "1e-1", "\"1e-1\""] {
            let err = read::<i32>(json).unwrap_err();
            assert!(err.contains("is not an integer"), "{json}: {err}");
        }
        for json in ["2147483648", "-2147483649", "2.147483648e9", "\"2147483648\"", "1e300"] {
            assert!(read::<i32>(json).is_err(), "{json}");
        }
        for json in ["-1", "\"-1\"", "-1e0", "4294967296"] {
            assert!(read::<u32>(json).is_err(), "{json}");
        }
        assert!(read::<i64>("9223372036854775808").is_err());
        assert!(read::<i64>("9.3e18").is_err());
        assert!(read::<u64>("18446744073709551616").is_err());
        assert!(read::<u64>("1.8446744073709552e19").is_err());
        for json in
            ["\"\"", "\" 1\"", "\"1 \"", "\"abc\"", "\"inf\"", "\"NaN\"", "\"Infinity\"", "true", "null", "[]", "{}"]
        {
            assert!(read::<i32>(json).is_err(), "{json}");
            assert!(read::<i64>(json).is_err(), "{json}");
        }
    }

    #[test]
    fn floats_take_numbers_and_the_three_special_strings() {
        assert_eq!(read::<f64>("1.5"), Ok(1.5));
        assert_eq!(read::<f64>("\"1.5\""), Ok(1.5));
        assert_eq!(read::<f64>("-7"), Ok(-7.0));
        assert_eq!(read::<f64>("\"1e3\""), Ok(1000.0));
        assert_eq!(read::<f32>("3.4028235e38"), Ok(f32::MAX));
        assert_eq!(read::<f64>("\"Infinity\""), Ok(f64::INFINITY));
        assert_eq!(read::<f32>("\"-Infinity\""), Ok(f32::NEG_INFINITY));
        assert!(read::<f64>("\"NaN\"").unwrap().is_nan());
        assert_eq!(read::<f64>("18446744073709551615"), Ok(18_446_744_073_709_551_615.0));
        assert_eq!(read::<f64>("-0.0").map(f64::is_sign_negative), Ok(true));
        // Other spellings Rust's parser knows are not protobuf JSON.
        for json in ["\"nan\"", "\"inf\"", "\"-inf\"", "\"infinity\"", "\"+Infinity\"", "\"NAN\"", "\"\"", "\" 1\""] {
            assert!(read::<f64>(json).is_err(), "{json}");
            assert!(read::<f32>(json).is_err(), "{json}");
        }
        // A float refuses what it cannot hold instead of reading infinity.
        assert!(read::<f32>("1e39").is_err());
        assert!(read::<f32>("\"-1e39\"").is_err());
        assert_eq!(read::<f64>("1e39"), Ok(1e39));
        for json in ["true", "null", "[]", "{}"] {
            assert!(read::<f64>(json).is_err(), "{json}");
        }
    }

    #[test]
    fn reads_arrays_and_map_values() {
        let v: Vec<NumberDeserialize<f32>> = serde_json::from_str(r#"[1, -2, 0.5, "3.25", "NaN"]"#).unwrap();
        let v: Vec<f32> = v.into_iter().map(|n| n.0).collect();
        assert_eq!(&v[..4], &[1.0, -2.0, 0.5, 3.25]);
        assert!(v[4].is_nan());
        // Map keys arrive as strings.
        let m: std::collections::BTreeMap<NumberDeserialize<i64>, NumberDeserialize<i64>> =
            serde_json::from_str(r#"{"-3": "9007199254740993", "7": -1}"#).unwrap();
        let m: Vec<(i64, i64)> = m.into_iter().map(|(k, v)| (k.0, v.0)).collect();
        assert_eq!(m, [(-3, 9_007_199_254_740_993), (7, -1)]);
    }
}
