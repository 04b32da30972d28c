//! A message type's JSON plan, computed once per type: its fields in the order the
//! generated code writes them, their JSON names, and the names JSON input may use.
//!
//! The generated (pbjson) impls write the fields outside any oneof in declaration order
//! (a proto3 `optional` field counts as outside: its oneof is synthetic), then each oneof's
//! set member, oneofs in declaration order. prost-reflect's own serde impls write fields in
//! number order and maps in hash order, so the codec walks messages itself, by these plans.

use std::collections::HashMap;
use std::sync::Arc;

use prost_reflect::{DescriptorPool, FieldDescriptor, Kind, MessageDescriptor};

use super::shared::WellKnown;

/// How a field's value is written and read.
#[derive(Debug, Clone)]
pub(super) struct FieldPlan {
    pub(super) field: FieldDescriptor,
    /// The name it is written under (lowerCamelCase, or the declared `json_name`).
    pub(super) json_name: Box<str>,
    pub(super) shape: Shape,
    /// The oneof (not a synthetic one) this field belongs to: its index in the message.
    pub(super) oneof: Option<usize>,
}

/// A field's shape.
#[derive(Debug, Clone)]
pub(super) enum Shape {
    Singular(Kind),
    List(Kind),
    /// Key kind, value kind.
    Map(Kind, Kind),
}

/// One message type's plan.
#[derive(Debug)]
pub(super) struct MessagePlan {
    pub(super) well_known: Option<WellKnown>,
    /// In the order they are written.
    pub(super) fields: Vec<FieldPlan>,
    /// Every name a JSON object may use for a field (its JSON name and its proto name),
    /// to the field's index in `fields`.
    pub(super) by_name: HashMap<Box<str>, usize>,
}

/// The plans of every message type of one descriptor pool.
#[derive(Debug, Default)]
pub(super) struct Plans {
    by_type: HashMap<Box<str>, Arc<MessagePlan>>,
}

impl Plans {
    /// Plans for every message type in `pool`.
    pub(super) fn new(pool: &DescriptorPool) -> Self {
        let by_type = pool.all_messages().map(|m| (Box::from(m.full_name()), Arc::new(plan(&m)))).collect();
        Self { by_type }
    }

    /// The plan of `desc`. Every type of the pool has one; a type from elsewhere gets one
    /// built on the spot.
    pub(super) fn get(&self, desc: &MessageDescriptor) -> Arc<MessagePlan> {
        match self.by_type.get(desc.full_name()) {
            Some(plan) => plan.clone(),
            None => Arc::new(plan(desc)),
        }
    }
}

fn plan(desc: &MessageDescriptor) -> MessagePlan {
    let well_known = WellKnown::of(desc.full_name());
    let proto = desc.descriptor_proto();
    // Declaration order: the order of the fields in the descriptor.
    let declared: Vec<FieldPlan> =
        proto.field.iter().filter_map(|f| desc.get_field(f.number() as u32)).map(|f| field_plan(&f)).collect();
    let mut fields: Vec<FieldPlan> = declared.iter().filter(|f| f.oneof.is_none()).cloned().collect();
    for index in 0..desc.oneofs().len() {
        fields.extend(declared.iter().filter(|f| f.oneof == Some(index)).cloned());
    }
    let mut by_name = HashMap::new();
    for (i, f) in fields.iter().enumerate() {
        by_name.insert(Box::from(f.field.name()), i);
        by_name.insert(f.json_name.clone(), i);
    }
    MessagePlan { well_known, fields, by_name }
}

fn field_plan(field: &FieldDescriptor) -> FieldPlan {
    let shape = if field.is_map() {
        match field.kind() {
            Kind::Message(entry) => {
                Shape::Map(entry.map_entry_key_field().kind(), entry.map_entry_value_field().kind())
            }
            // A map field's type is always its entry message.
            other => Shape::Singular(other),
        }
    } else if field.is_list() {
        Shape::List(field.kind())
    } else {
        Shape::Singular(field.kind())
    };
    // The oneof's index among the message's oneofs (synthetic ones, of proto3 `optional`
    // fields, do not count: such a field is written like any other).
    let oneof = field
        .containing_oneof()
        .filter(|o| !o.is_synthetic())
        .and_then(|o| field.parent_message().oneofs().position(|other| other.name() == o.name()));
    FieldPlan { json_name: field.json_name().into(), oneof, field: field.clone(), shape }
}
