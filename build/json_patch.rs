//! Rewrites the serde impls pbjson-build generates so that they follow the canonical JSON
//! mapping where pbjson 0.9 does not, by pointing them at `src/protojson`:
//!
//! 1. numeric fields are read by `crate::protojson::NumberDeserialize` (`1e2` for integers;
//!    one visitor instead of pbjson's untagged enum);
//! 2. enum fields are written and read through `crate::protojson::OpenEnum`, so unknown
//!    numbers are kept (pbjson fails the message, or refuses the number); `NullValue` fields
//!    through `crate::protojson::NullField` (always `null`);
//! 3. every field is read through `crate::protojson::NullOr`, so `null` means the default
//!    (pbjson refuses it for scalars, lists and maps) and is a value for
//!    `google.protobuf.Value` and `NullValue` (pbjson drops it);
//! 4. maps rebuilt for writing (those with 64-bit, bytes or enum values) are `BTreeMap`s, so
//!    their keys come out in order (the fields themselves are `BTreeMap`s: `btree_map(".")`).
//!
//! The generated code is text, so each rewrite checks that it found what it rewrites and
//! that nothing of the old shape is left; a new generator version that changes the shape
//! fails the build here, with the rule that no longer applies, instead of silently losing a
//! rule. The generator's version is pinned in Cargo.toml for the same reason.

const NUMBER: &str = "crate::protojson::NumberDeserialize";
const OPEN_ENUM: &str = "crate::protojson::OpenEnum";
/// `google.protobuf.NullValue` has one value, `null`: its fields get a type of their own.
const NULL_VALUE: &str = "crate::protojson::NullValue";
const NULL_FIELD: &str = "crate::protojson::NullField";
const NULL_OR: &str = "crate::protojson::NullOr";
const OPTION: &str = "::std::option::Option<";

/// What a package declares, to know which rewrites must have found something.
#[derive(Default, Debug, Clone, Copy)]
pub struct Expect {
    /// Some field (or map value) is numeric.
    pub numbers: bool,
    /// Some field (or map value) is an enum.
    pub enums: bool,
}

/// Rewrites `code`, the `.serde.rs` of package `pkg`; panics (failing the build) if the
/// code does not have the shape the rewrites are written for.
pub fn patch(pkg: &str, code: &str, expect: Expect) -> String {
    let fail = |what: &str| -> ! {
        panic!(
            "build.rs: the JSON code pbjson-build generated for `{pkg}` does not have the shape \
             build/json_patch.rs rewrites ({what}). Was pbjson-build upgraded? Adapt the rewrite."
        )
    };

    // 1. Numbers.
    let numbers = code.matches("::pbjson::private::NumberDeserialize").count();
    let code = code.replace("::pbjson::private::NumberDeserialize", NUMBER);
    if expect.numbers && numbers == 0 {
        fail("no numeric field is read through ::pbjson::private::NumberDeserialize");
    }
    if code.matches("NumberDeserialize").count() != code.matches(NUMBER).count() {
        fail("a numeric field is read through another NumberDeserialize");
    }

    // 2. Enums, writing: `Enum::try_from(v).map_err(.. "Invalid variant" ..)?` becomes
    //    `OpenEnum::<Enum>::try_from(v)`, which cannot fail.
    let code = open_enum_writes(&code, expect.enums).unwrap_or_else(|e| fail(&e));

    // 2, 3. Reading: every field statement `name__ = …;` of the visitors.
    let code = field_reads(&code).unwrap_or_else(|e| fail(&e));
    if code.contains(" as i32") {
        fail("an enum field is still converted with `as i32`");
    }
    if expect.enums && !code.contains(&format!("{OPEN_ENUM}<")) {
        fail("no enum field is read as an enum");
    }

    // 4. Maps rebuilt for writing.
    let code = code.replace("let v: std::collections::HashMap<_, _> =", "let v: std::collections::BTreeMap<_, _> =");
    if code.contains("HashMap") {
        fail("a map is still a HashMap");
    }
    code
}

fn open_enum_writes(code: &str, expect: bool) -> Result<String, String> {
    let marker = "serde::ser::Error::custom(format!(\"Invalid variant {}\"";
    let mut out = String::with_capacity(code.len() + 1024);
    let mut rest = code;
    let mut found = 0;
    while let Some(at) = rest.find(marker) {
        let before = &rest[..at];
        let call = before.rfind("::try_from(").ok_or("an \"Invalid variant\" error without a try_from")?;
        let start = before[..call].rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).map_or(0, |i| i + 1);
        let ty = &before[start..call];
        if ty.is_empty() || ty == "i32" {
            return Err(format!("an \"Invalid variant\" error after `{ty}::try_from`"));
        }
        out.push_str(&before[..start]);
        out.push_str(&if ty == NULL_VALUE { NULL_FIELD.to_string() } else { format!("{OPEN_ENUM}::<{ty}>") });
        out.push_str(&before[call..]);
        out.push_str(marker);
        rest = &rest[at + marker.len()..];
        found += 1;
    }
    out.push_str(rest);
    if expect && found == 0 {
        return Err("no enum field is written through `Enum::try_from`".into());
    }
    Ok(out)
}

/// Rewrites each `name__ = EXPR;` statement (a field read in a visitor).
fn field_reads(code: &str) -> Result<String, String> {
    let mut out = String::with_capacity(code.len() + 4096);
    let mut rest = code;
    while let Some(at) = rest.find("__ = ") {
        let head = &rest[..at + 5];
        out.push_str(head);
        let tail = &rest[at + 5..];
        let line_start = head.rfind('\n').map_or(0, |i| i + 1);
        if head[line_start..].trim_start().starts_with("let mut ") {
            // `let mut name__ = None;`: a declaration, not a read.
            rest = tail;
            continue;
        }
        let end = tail.find(";\n").ok_or("a field statement without an end")?;
        out.push_str(&read_through_null_or(&open_enum_reads(tail[..end].trim())?)?);
        rest = &tail[end..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `map_.next_value::<G>()?REST` → (G, REST); `map_.next_value()?REST` → ("_", REST).
fn split_next_value(expr: &str) -> Result<(String, &str), String> {
    if let Some(rest) = expr.strip_prefix("map_.next_value()?") {
        return Ok(("_".into(), rest));
    }
    let generic = expr.strip_prefix("map_.next_value::<").ok_or_else(|| format!("a field read `{expr}`"))?;
    let mut depth = 1;
    for (i, c) in generic.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => {
                depth -= 1;
                if depth == 0 {
                    let rest = generic[i + 1..].strip_prefix("()?").ok_or_else(|| format!("a field read `{expr}`"))?;
                    return Ok((generic[..i].to_string(), rest));
                }
            }
            _ => {}
        }
    }
    Err(format!("a field read `{expr}`"))
}

/// In a statement that converts an enum with `as i32`, reads `OpenEnum<E>` for `E` instead.
fn open_enum_reads(expr: &str) -> Result<String, String> {
    if !expr.contains(" as i32") {
        return Ok(expr.to_string());
    }
    let (prefix, inner) = match expr.strip_prefix("Some(") {
        Some(inner) => ("Some(", inner),
        None => ("", expr),
    };
    let (ty, rest) = split_next_value(inner.trim_start())?;
    let wrapped = wrap_enum(&ty)?;
    Ok(format!("{prefix}map_.next_value::<{wrapped}>()?{}", rest.replace(" as i32", ".0")))
}

/// `E` → `OpenEnum<E>`, also as the element of an `Option`, a `Vec` or a map's value.
fn wrap_enum(ty: &str) -> Result<String, String> {
    for container in [OPTION, "Vec<"] {
        if let Some(inner) = ty.strip_prefix(container).and_then(|t| t.strip_suffix('>')) {
            return Ok(format!("{container}{}>", wrap_enum(inner)?));
        }
    }
    if let Some(args) = ty.strip_prefix("std::collections::BTreeMap<").and_then(|t| t.strip_suffix('>')) {
        let (key, value) = args.split_once(", ").ok_or_else(|| format!("a map type `{ty}`"))?;
        return Ok(format!("std::collections::BTreeMap<{key}, {}>", wrap_enum(value)?));
    }
    if ty.contains(['<', ',']) || ty == "_" {
        return Err(format!("an enum read as `{ty}`"));
    }
    Ok(if ty == NULL_VALUE { NULL_FIELD.to_string() } else { format!("{OPEN_ENUM}<{ty}>") })
}

/// Every field read goes through `NullOr`: `Some(READ)` and `Option<T>` reads alike.
fn read_through_null_or(expr: &str) -> Result<String, String> {
    if let Some(inner) = expr.strip_prefix("Some(").and_then(|e| e.strip_suffix(')')) {
        let (ty, rest) = split_next_value(inner.trim())?;
        let rest = rest.trim_end();
        return Ok(if rest.is_empty() {
            format!("map_.next_value::<{NULL_OR}<{ty}>>()?.0")
        } else {
            format!("map_.next_value::<{NULL_OR}<{ty}>>()?.0.map(|x| x{rest})")
        });
    }
    let (ty, rest) = split_next_value(expr)?;
    if ty == "_" {
        // A message field: already an `Option`.
        return Ok(format!("map_.next_value::<{NULL_OR}<_>>()?.0{rest}"));
    }
    let inner = ty
        .strip_prefix(OPTION)
        .and_then(|t| t.strip_suffix('>'))
        .ok_or_else(|| format!("a field read as `{ty}`, neither Some(..) nor an Option"))?;
    Ok(format!("map_.next_value::<{NULL_OR}<{inner}>>()?.0{rest}"))
}
