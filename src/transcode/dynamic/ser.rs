//! Writing a binary message as canonical JSON, straight from its wire bytes (no intermediate
//! message), byte for byte as the generated impls write the same message: fields in their
//! order (see `plan`), defaults skipped, 64-bit integers as strings, bytes as base64, enums by
//! name (unknown numbers as numbers), map keys in order, non-finite floats as strings,
//! well-known types by the generated types' impls.

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::Engine as _;
use serde::ser::{Error as _, Serialize, SerializeMap, SerializeSeq, Serializer};

use super::plan::{MessagePlan, Plans, Scalar, Shape};
use super::shared::serialize_well_known;
use super::wire::{FIXED32, FIXED64, LEN, Raw, Reader, VARINT, WireError, unzigzag};

/// How deeply messages may nest (prost's recursion limit, so both paths refuse the same).
const MAX_DEPTH: usize = 100;

/// A message: its plan and its bytes (several spans for a message field given more than
/// once, which protobuf merges: their concatenation).
pub(super) struct MessageJson<'a> {
    pub(super) plans: &'a Plans,
    pub(super) index: usize,
    pub(super) spans: Spans<'a>,
    pub(super) depth: usize,
}

pub(super) enum Spans<'a> {
    One(&'a [u8]),
    Many(Vec<&'a [u8]>),
}

/// What the wire holds for one field.
enum Slot<'a> {
    Empty,
    One(Raw<'a>),
    /// A singular message field's occurrences.
    Message(Vec<&'a [u8]>),
    /// A repeated field's elements (for messages, their spans), or a map's entries.
    Many(Vec<Raw<'a>>),
}

fn wire_type(t: &Scalar) -> u8 {
    match t {
        Scalar::Double | Scalar::Fixed64 | Scalar::Sfixed64 => FIXED64,
        Scalar::Float | Scalar::Fixed32 | Scalar::Sfixed32 => FIXED32,
        Scalar::String | Scalar::Bytes | Scalar::Message(_) => LEN,
        _ => VARINT,
    }
}

fn wrong(plan: &MessagePlan, number: u32) -> String {
    format!("invalid wire type for field {number} of {}", plan.full_name)
}

/// Reads the wire into one slot per field; `chosen` gets each oneof's last member.
fn read<'a>(plan: &MessagePlan, bytes: &'a [u8]) -> Result<(Vec<Slot<'a>>, Vec<Option<usize>>), String> {
    let mut slots: Vec<Slot<'a>> = plan.fields.iter().map(|_| Slot::Empty).collect();
    let mut chosen = vec![None; plan.oneofs];
    let mut reader = Reader::new(bytes);
    let bad = |e: WireError| e.to_string();
    while let Some(field) = reader.field() {
        let (number, raw) = field.map_err(bad)?;
        let Some(i) = plan.field_numbered(number) else { continue };
        let f = &plan.fields[i];
        match (&f.shape, raw) {
            (Shape::Singular(Scalar::Message(_)), Raw::Bytes(b)) => match &mut slots[i] {
                Slot::Message(spans) => spans.push(b),
                slot => *slot = Slot::Message(vec![b]),
            },
            (Shape::Singular(t), raw) if raw.wire_type() == wire_type(t) => slots[i] = Slot::One(raw),
            (Shape::List(t), Raw::Bytes(packed)) if t.packable() => {
                let mut values = Reader::new(packed);
                while !values.is_empty() {
                    push(&mut slots[i], values.value(wire_type(t)).map_err(bad)?);
                }
            }
            (Shape::List(t), raw) if raw.wire_type() == wire_type(t) => push(&mut slots[i], raw),
            (Shape::Map(..), raw @ Raw::Bytes(_)) => push(&mut slots[i], raw),
            _ => return Err(wrong(plan, number)),
        }
        if let Some(o) = f.oneof {
            chosen[o] = Some(i);
        }
    }
    Ok((slots, chosen))
}

fn push<'a>(slot: &mut Slot<'a>, raw: Raw<'a>) {
    match slot {
        Slot::Many(values) => values.push(raw),
        other => *other = Slot::Many(vec![raw]),
    }
}

/// Whether a value is its type's default (not written for fields without presence).
fn is_default(t: &Scalar, raw: Raw<'_>) -> bool {
    match (t, raw) {
        (Scalar::Float, Raw::Fixed32(v)) => f32::from_bits(v) == 0.0,
        (Scalar::Double, Raw::Fixed64(v)) => f64::from_bits(v) == 0.0,
        (_, Raw::Varint(v) | Raw::Fixed64(v)) => v == 0,
        (_, Raw::Fixed32(v)) => v == 0,
        (_, Raw::Bytes(b)) => b.is_empty(),
    }
}

impl Serialize for MessageJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.depth > MAX_DEPTH {
            return Err(S::Error::custom("recursion limit reached"));
        }
        let plan = self.plans.get(self.index);
        let bytes: Cow<'_, [u8]> = match &self.spans {
            Spans::One(b) => Cow::Borrowed(b),
            Spans::Many(spans) => Cow::Owned(spans.concat()),
        };
        if let Some(wkt) = plan.well_known {
            return serialize_well_known(wkt, &bytes, serializer);
        }
        let (slots, chosen) = read(plan, &bytes).map_err(S::Error::custom)?;
        let mut map = serializer.serialize_map(None)?;
        for (i, (f, slot)) in plan.fields.iter().zip(&slots).enumerate() {
            if f.oneof.is_some_and(|o| chosen[o] != Some(i)) {
                continue;
            }
            let value = Value { plans: self.plans, depth: self.depth };
            match (&f.shape, slot) {
                (_, Slot::Empty) => {}
                (Shape::Singular(t), Slot::One(raw)) => {
                    if f.presence || !is_default(t, *raw) {
                        map.serialize_entry(&*f.json_name, &value.scalar(t, *raw))?;
                    }
                }
                (Shape::Singular(Scalar::Message(m)), Slot::Message(spans)) => {
                    let spans = if spans.len() == 1 { Spans::One(spans[0]) } else { Spans::Many(spans.clone()) };
                    let message = MessageJson { plans: self.plans, index: *m, spans, depth: self.depth + 1 };
                    map.serialize_entry(&*f.json_name, &message)?;
                }
                (Shape::List(t), Slot::Many(values)) => {
                    map.serialize_entry(&*f.json_name, &List { value, t, values })?;
                }
                (Shape::Map(k, v), Slot::Many(entries)) => {
                    map.serialize_entry(&*f.json_name, &Entries { value, k, v, entries })?;
                }
                _ => return Err(S::Error::custom("a field read in the wrong shape")),
            }
        }
        map.end()
    }
}

/// Writes values of a message's fields.
#[derive(Clone, Copy)]
struct Value<'a> {
    plans: &'a Plans,
    depth: usize,
}

impl<'a> Value<'a> {
    fn scalar(self, t: &'a Scalar, raw: Raw<'a>) -> ScalarJson<'a> {
        ScalarJson { value: self, t, raw }
    }
}

struct ScalarJson<'a> {
    value: Value<'a>,
    t: &'a Scalar,
    raw: Raw<'a>,
}

impl Serialize for ScalarJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The conversions prost makes when it decodes these types.
        match (self.t, self.raw) {
            (Scalar::Int32, Raw::Varint(v)) => s.serialize_i32(v as i32),
            (Scalar::Enum(e), Raw::Varint(v)) => {
                let n = v as i32;
                if e.full_name() == "google.protobuf.NullValue" {
                    return s.serialize_unit();
                }
                match e.get_value(n) {
                    Some(known) => s.serialize_str(known.name()),
                    None => s.serialize_i32(n),
                }
            }
            (Scalar::Int64, Raw::Varint(v)) => s.collect_str(&(v as i64)),
            (Scalar::Uint32, Raw::Varint(v)) => s.serialize_u32(v as u32),
            (Scalar::Uint64, Raw::Varint(v)) => s.collect_str(&v),
            (Scalar::Sint32, Raw::Varint(v)) => s.serialize_i32(unzigzag(v) as i32),
            (Scalar::Sint64, Raw::Varint(v)) => s.collect_str(&unzigzag(v)),
            (Scalar::Bool, Raw::Varint(v)) => s.serialize_bool(v != 0),
            (Scalar::Fixed32, Raw::Fixed32(v)) => s.serialize_u32(v),
            (Scalar::Sfixed32, Raw::Fixed32(v)) => s.serialize_i32(v as i32),
            // Non-finite values as the mapping's strings: `protojson::to_writer` writes them.
            (Scalar::Float, Raw::Fixed32(v)) => s.serialize_f32(f32::from_bits(v)),
            (Scalar::Fixed64, Raw::Fixed64(v)) => s.collect_str(&v),
            (Scalar::Sfixed64, Raw::Fixed64(v)) => s.collect_str(&(v as i64)),
            (Scalar::Double, Raw::Fixed64(v)) => s.serialize_f64(f64::from_bits(v)),
            (Scalar::String, Raw::Bytes(b)) => {
                s.serialize_str(std::str::from_utf8(b).map_err(|_| S::Error::custom("a string that is not UTF-8"))?)
            }
            (Scalar::Bytes, Raw::Bytes(b)) => s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b)),
            (Scalar::Message(m), Raw::Bytes(b)) => {
                let depth = self.value.depth + 1;
                MessageJson { plans: self.value.plans, index: *m, spans: Spans::One(b), depth }.serialize(s)
            }
            _ => Err(S::Error::custom("a value of the wrong wire type")),
        }
    }
}

/// A repeated field's values.
struct List<'a> {
    value: Value<'a>,
    t: &'a Scalar,
    values: &'a [Raw<'a>],
}

impl Serialize for List<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.values.len()))?;
        for raw in self.values {
            seq.serialize_element(&self.value.scalar(self.t, *raw))?;
        }
        seq.end()
    }
}

/// A map key, ordered as the generated code's `BTreeMap`s order keys.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Key<'a> {
    Bool(bool),
    Signed(i64),
    Unsigned(u64),
    Str(&'a str),
}

fn key<'a>(t: &Scalar, raw: Raw<'a>) -> Result<Key<'a>, String> {
    Ok(match (t, raw) {
        (Scalar::Bool, Raw::Varint(v)) => Key::Bool(v != 0),
        (Scalar::Int32, Raw::Varint(v)) => Key::Signed(i64::from(v as i32)),
        (Scalar::Int64, Raw::Varint(v)) => Key::Signed(v as i64),
        (Scalar::Sint32, Raw::Varint(v)) => Key::Signed(i64::from(unzigzag(v) as i32)),
        (Scalar::Sint64, Raw::Varint(v)) => Key::Signed(unzigzag(v)),
        (Scalar::Uint32, Raw::Varint(v)) => Key::Unsigned(u64::from(v as u32)),
        (Scalar::Uint64, Raw::Varint(v)) | (Scalar::Fixed64, Raw::Fixed64(v)) => Key::Unsigned(v),
        (Scalar::Fixed32, Raw::Fixed32(v)) => Key::Unsigned(u64::from(v)),
        (Scalar::Sfixed32, Raw::Fixed32(v)) => Key::Signed(i64::from(v as i32)),
        (Scalar::Sfixed64, Raw::Fixed64(v)) => Key::Signed(v as i64),
        (Scalar::String, Raw::Bytes(b)) => Key::Str(std::str::from_utf8(b).map_err(|_| "a map key that is not UTF-8")?),
        _ => return Err("a map key of the wrong type".into()),
    })
}

/// The default of a map entry's missing key or value.
fn default_raw(t: &Scalar) -> Raw<'static> {
    match wire_type(t) {
        FIXED64 => Raw::Fixed64(0),
        FIXED32 => Raw::Fixed32(0),
        LEN => Raw::Bytes(&[]),
        _ => Raw::Varint(0),
    }
}

/// A map field's entries, keys in order, the last of equal keys winning.
struct Entries<'a> {
    value: Value<'a>,
    k: &'a Scalar,
    v: &'a Scalar,
    entries: &'a [Raw<'a>],
}

impl Serialize for Entries<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut sorted = BTreeMap::new();
        for entry in self.entries {
            let Raw::Bytes(bytes) = entry else { continue };
            let (mut k, mut v) = (default_raw(self.k), default_raw(self.v));
            let mut reader = Reader::new(bytes);
            while let Some(field) = reader.field() {
                match field.map_err(S::Error::custom)? {
                    (1, raw) if raw.wire_type() == wire_type(self.k) => k = raw,
                    (2, raw) if raw.wire_type() == wire_type(self.v) => v = raw,
                    (1 | 2, _) => return Err(S::Error::custom("invalid wire type in a map entry")),
                    _ => {}
                }
            }
            sorted.insert(key(self.k, k).map_err(S::Error::custom)?, v);
        }
        let mut map = s.serialize_map(Some(sorted.len()))?;
        for (k, raw) in sorted {
            let value = self.value.scalar(self.v, raw);
            match k {
                Key::Bool(b) => map.serialize_entry(&b, &value)?,
                Key::Signed(i) => map.serialize_entry(&i, &value)?,
                Key::Unsigned(u) => map.serialize_entry(&u, &value)?,
                Key::Str(st) => map.serialize_entry(st, &value)?,
            }
        }
        map.end()
    }
}
