//! Reading a protobuf JSON number: a JSON number, or a string holding one (`"1.5"`,
//! `"NaN"`, `"-Infinity"`, 64-bit integers as `"123"`).
//!
//! The code pbjson generates reads every numeric field through
//! `pbjson::private::NumberDeserialize`, an `#[serde(untagged)]` enum: serde buffers each
//! value and, for a plain JSON number, first tries (and fails) to read it as a string, which
//! builds an error message per number. A message of 768 floats paid over a third of a
//! millisecond for that. `build.rs` points the generated code at this type instead: the same
//! accepted inputs and values, read with one visitor and no buffering.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{self, Deserializer, Unexpected, Visitor};

/// A numeric field's value, read from a JSON number or a numeric string. Drop-in for
/// `pbjson::private::NumberDeserialize` (same derives, same public field).
#[derive(Debug, Copy, Clone, PartialOrd, PartialEq, Hash, Ord, Eq)]
pub struct NumberDeserialize<T>(pub T);

/// The numeric types protobuf fields use, with the conversions serde's own impls make.
pub trait JsonNumber: FromStr + Sized {
    /// From a non-negative JSON integer.
    fn from_u64(v: u64) -> Option<Self>;
    /// From a negative JSON integer.
    fn from_i64(v: i64) -> Option<Self>;
    /// From a JSON number with a fraction or exponent (integers reject these, as serde does).
    fn from_f64(v: f64) -> Option<Self>;
}

macro_rules! integer {
    ($($t:ty),*) => {$(
        impl JsonNumber for $t {
            fn from_u64(v: u64) -> Option<Self> {
                <$t>::try_from(v).ok()
            }
            fn from_i64(v: i64) -> Option<Self> {
                <$t>::try_from(v).ok()
            }
            fn from_f64(_: f64) -> Option<Self> {
                None
            }
        }
    )*};
}
integer!(i32, i64, u32, u64);

macro_rules! float {
    ($($t:ty),*) => {$(
        impl JsonNumber for $t {
            // The same `as` conversions as serde's impls for floats.
            fn from_u64(v: u64) -> Option<Self> {
                Some(v as $t)
            }
            fn from_i64(v: i64) -> Option<Self> {
                Some(v as $t)
            }
            fn from_f64(v: f64) -> Option<Self> {
                Some(v as $t)
            }
        }
    )*};
}
float!(f32, f64);

impl<'de, T> serde::Deserialize<'de> for NumberDeserialize<T>
where
    T: JsonNumber,
    <T as FromStr>::Err: fmt::Display,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);

        impl<T> Visitor<'_> for V<T>
        where
            T: JsonNumber,
            <T as FromStr>::Err: fmt::Display,
        {
            type Value = NumberDeserialize<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a string holding one")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                T::from_u64(v).map(NumberDeserialize).ok_or_else(|| E::invalid_value(Unexpected::Unsigned(v), &self))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                T::from_i64(v).map(NumberDeserialize).ok_or_else(|| E::invalid_value(Unexpected::Signed(v), &self))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                T::from_f64(v).map(NumberDeserialize).ok_or_else(|| E::invalid_type(Unexpected::Float(v), &self))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                v.parse().map(NumberDeserialize).map_err(E::custom)
            }
        }

        d.deserialize_any(V(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Differential: every input reads the same as through pbjson's own type.
    fn same<T>(json: &str)
    where
        T: JsonNumber + for<'de> serde::Deserialize<'de> + fmt::Debug,
        <T as FromStr>::Err: fmt::Display + std::error::Error,
    {
        let ours = serde_json::from_str::<NumberDeserialize<T>>(json).map(|n| n.0);
        let theirs = serde_json::from_str::<pbjson::private::NumberDeserialize<T>>(json).map(|n| n.0);
        match (&ours, &theirs) {
            // Compared as text so that NaN equals NaN.
            (Ok(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}"), "{json}"),
            (Err(_), Err(_)) => {}
            _ => panic!("{} for {json}: ours {ours:?}, pbjson {theirs:?}", std::any::type_name::<T>()),
        }
    }

    #[test]
    fn reads_what_pbjson_reads() {
        let inputs = [
            "0",
            "1",
            "-1",
            "42",
            "2147483647",
            "2147483648",
            "-2147483648",
            "-2147483649",
            "4294967295",
            "4294967296",
            "9223372036854775807",
            "9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "1.5",
            "-0.0",
            "1e3",
            "1E-7",
            "3.4028235e38",
            "1e39",
            "0.1",
            "\"1\"",
            "\"-7\"",
            "\"1.5\"",
            "\"1e3\"",
            "\"NaN\"",
            "\"Infinity\"",
            "\"-Infinity\"",
            "\"inf\"",
            "\"\"",
            "\" 1\"",
            "\"abc\"",
            "\"18446744073709551615\"",
            "true",
            "null",
            "[]",
            "{}",
        ];
        for json in inputs {
            same::<i32>(json);
            same::<i64>(json);
            same::<u32>(json);
            same::<u64>(json);
            same::<f32>(json);
            same::<f64>(json);
        }
    }

    #[test]
    fn reads_arrays_and_map_values() {
        let v: Vec<NumberDeserialize<f32>> = serde_json::from_str(r#"[1, -2, 0.5, "3.25", "NaN"]"#).unwrap();
        let v: Vec<f32> = v.into_iter().map(|n| n.0).collect();
        assert_eq!(&v[..4], &[1.0, -2.0, 0.5, 3.25]);
        assert!(v[4].is_nan());
        let m: std::collections::HashMap<String, NumberDeserialize<i64>> =
            serde_json::from_str(r#"{"a": "9007199254740993", "b": -1}"#).unwrap();
        assert_eq!(m["a"].0, 9_007_199_254_740_993);
        assert_eq!(m["b"].0, -1);
        let err = serde_json::from_str::<NumberDeserialize<i32>>("1.5").unwrap_err().to_string();
        assert!(err.contains("floating point"), "{err}");
    }
}
