//! The protobuf canonical JSON mapping ("ProtoJSON"), as far as the generated code does not
//! carry it by itself.
//!
//! pbjson generates a serde impl per message from `proto/`; this module supplies what those
//! impls call and what pbjson leaves out or gets wrong:
//!
//! - [`NumberDeserialize`]: numeric fields (`1e2` for an integer, `"NaN"` for a float);
//! - [`OpenEnum`]: enum fields (unknown numbers written and read as numbers);
//! - [`NullOr`]: `null` for any field (its default, or the value of `Value`/`NullValue`);
//! - the well-known types whose JSON is special: [`Timestamp`], [`Duration`], [`Struct`],
//!   [`Value`], [`ListValue`], [`NullValue`], [`FieldMask`], the wrappers, and [`Any`] (with
//!   the lookup of packed types registered at run time, see [`any`]);
//! - [`to_writer`] and [`from_slice`]: canonical text out (non-finite floats as strings,
//!   whole numbers without a fraction) and in (with one nesting-depth limit).
//!
//! `build.rs` points the generated code here. This module uses nothing else of the crate,
//! so the dependency runs one way: generated code → `protojson`.

pub mod any;
pub mod enums;
pub mod null;
pub mod number;
pub mod read;
pub mod time;
pub mod value;
pub mod wrappers;
pub mod write;

pub use any::Any;
pub use enums::OpenEnum;
pub use null::NullOr;
pub use number::NumberDeserialize;
pub use read::{DEFAULT_MAX_DEPTH, PARSER_MAX_DEPTH, ReadError, check_depth, from_slice};
pub use time::{Duration, Timestamp};
pub use value::{ListValue, NullField, NullValue, Struct, Value};
pub use wrappers::{
    BoolValue, BytesValue, DoubleValue, FieldMask, FloatValue, Int32Value, Int64Value, StringValue, UInt32Value,
    UInt64Value,
};
pub use write::to_writer;
