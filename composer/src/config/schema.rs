//! The description's keys as data, and the JSON Schema made from them.
//!
//! Every map of the description is a [`Section`]: its keys, each with the
//! kind of value it takes ([`Kind`]) and a one-line description. The decoder
//! (`decode/`) owns the sections, one beside each decoder, and checks a map's
//! keys against its section (unknown keys, "did you mean") and enum values
//! against the tables the section names; [`json_schema`] renders the same
//! sections as a JSON Schema (draft-07, what yaml-language-server reads
//! best) for editors. So a key added to the decoder is in the schema, and a
//! key the schema lists is one the decoder reads.
//!
//! Scope: the schema checks shapes, key names, enum values and the grammar
//! of sizes and numbers. It requires no key: a layer is a part of a
//! description and may leave out anything (`image:`, a partition's content),
//! so what must be present is checked by `validate` on the merged whole, as
//! are ranges, cross-key rules and input paths. Every value may be null (in
//! a layered description null removes a layer's value) and every
//! non-text value may be written as `${VAR}` (expanded before decoding).
//!
//! Rejected: deriving the schema from the model types with a derive macro
//! (schemars): the model is what decoding produces (spans, defaults,
//! resolved paths), not what is written, and a second, derived description
//! of the keys could drift from the decoder's checks; writing the schema by
//! hand, for the same reason.

use crate::units::UNITS;
use serde_json::{json, Map, Value};

/// One map of the description.
pub struct Section {
    /// What the map is, for the schema's description.
    pub doc: &'static str,
    pub keys: &'static [KeySpec],
}

/// One key of a [`Section`].
pub struct KeySpec {
    pub name: &'static str,
    pub kind: Kind,
    pub doc: &'static str,
}

/// The kind of value a key takes, as the decoder reads it.
pub enum Kind {
    /// Any scalar, read as text.
    Text,
    /// A host path (a file or a directory).
    Path,
    Bool,
    /// A non-negative integer, decimal or `0x` hexadecimal.
    Uint,
    /// A size: a number with an optional unit (`64MiB`).
    Size,
    /// A size, `auto`, `auto +SIZE`, `auto +N%`, and `fill` when `fill`.
    SizeSpec {
        fill: bool,
    },
    /// A size or `auto`.
    SizeOrAuto,
    /// A whole percentage up to the given maximum, `%` optional.
    Percent(u64),
    /// Permission bits in octal.
    Mode,
    Uuid,
    /// A partition type: a shorthand, a GUID or an MBR byte.
    PartType,
    /// One of these names.
    Enum(&'static [&'static str]),
    /// One of these names, each optionally prefixed with `^` (switched off).
    Toggles(&'static [&'static str]),
    /// A nested map with its own keys.
    Map(&'static Section),
    /// A map of names the user chooses to values of one kind.
    MapOf(&'static Kind),
    List(&'static Kind),
    /// Any of these kinds.
    AnyOf(&'static [Kind]),
    /// One of several sections, chosen by the value of their `type:` key.
    Tagged(&'static [(&'static str, &'static Section)]),
}

impl Section {
    /// The key called `name`.
    pub fn key(&self, name: &str) -> Option<&KeySpec> {
        self.keys.iter().find(|k| k.name == name)
    }

    /// The key names, in the documented order.
    pub fn names(&self) -> Vec<&'static str> {
        self.keys.iter().map(|k| k.name).collect()
    }
}

/// The names of a `(name, value)` table, for [`Kind::Enum`] beside the
/// table the decoder maps names with.
pub const fn names<T, const N: usize>(table: &[(&'static str, T); N]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < N {
        out[i] = table[i].0;
        i += 1;
    }
    out
}

/// `${NAME}` somewhere in a string: expanded before decoding, so any value
/// may be given by a variable.
const VAR_PATTERN: &str = r"\$\{[A-Za-z0-9_]+\}";

/// The JSON Schema of a description whose top-level map is `top`.
pub fn json_schema(top: &Section) -> Value {
    let mut schema = section(top);
    if let Value::Object(m) = &mut schema {
        m.insert(
            "$schema".into(),
            json!("http://json-schema.org/draft-07/schema#"),
        );
        m.insert("title".into(), json!("image-composer description"));
    }
    schema
}

fn section(s: &Section) -> Value {
    let mut properties = Map::new();
    for k in s.keys {
        let mut alternatives = alternatives(&k.kind);
        let property = match alternatives.as_mut_slice() {
            // A map or a list: one schema, null added to its type (so a
            // validator's message names the map's problem, not "not null").
            [Value::Object(one)] if one.get("type").is_some_and(Value::is_string) => {
                let mut one = one.clone();
                if let Some(t) = one.remove("type") {
                    one.insert("type".into(), json!([t, "null"]));
                }
                one.insert("description".into(), json!(k.doc));
                Value::Object(one)
            }
            _ => {
                alternatives.push(json!({ "type": "null" }));
                json!({ "description": k.doc, "anyOf": alternatives })
            }
        };
        properties.insert(k.name.into(), property);
    }
    json!({
        "description": s.doc,
        "type": "object",
        "properties": properties,
        "additionalProperties": false,
    })
}

/// The regular expression of a size's text (`units::ByteSize`'s grammar).
fn size_body() -> String {
    let units: Vec<String> = UNITS
        .iter()
        .filter(|(u, _)| !u.is_empty())
        .map(|(u, _)| regex_escape(u))
        .collect();
    format!(r"[0-9_]+(\.[0-9]+)?\s*({})?", units.join("|"))
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = r"\^$.|?*+()[]{}".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

fn var() -> Value {
    json!({ "type": "string", "pattern": VAR_PATTERN })
}

fn pattern(p: String) -> Value {
    json!({ "type": "string", "pattern": p })
}

/// The schemas one of which a value of `kind` matches.
fn alternatives(kind: &Kind) -> Vec<Value> {
    let count = json!({ "type": "integer", "minimum": 0 });
    let size = || pattern(format!(r"^\s*{}\s*$", size_body()));
    match kind {
        Kind::Text => vec![json!({ "type": ["string", "number", "boolean"] })],
        Kind::Path => vec![json!({ "type": ["string", "number"] })],
        Kind::Bool => vec![json!({ "type": "boolean" }), var()],
        Kind::Uint => vec![
            count,
            pattern(r"^\s*(0[xX][0-9a-fA-F_]+|[0-9_]+)\s*$".into()),
            var(),
        ],
        Kind::Size => vec![count, size(), var()],
        Kind::SizeOrAuto => vec![count, size(), json!({ "const": "auto" }), var()],
        Kind::SizeSpec { fill } => {
            let term = format!(r"\s*\+\s*([0-9]+\s*%|{})", size_body());
            let mut v = vec![
                count,
                size(),
                pattern(format!(r"^\s*auto({term}){{0,2}}\s*$")),
            ];
            if *fill {
                v.push(json!({ "const": "fill" }));
            }
            v.push(var());
            v
        }
        Kind::Percent(max) => vec![
            json!({ "type": "integer", "minimum": 0, "maximum": max }),
            pattern(r"^\s*[0-9]+\s*%?\s*$".into()),
            var(),
        ],
        Kind::Mode => vec![count, pattern("^[0-7]{1,5}$".into()), var()],
        Kind::Uuid => vec![
            pattern(
                "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
                    .into(),
            ),
            var(),
        ],
        Kind::PartType => vec![
            json!({ "enum": crate::ptable::types::names() }),
            pattern(
                "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
                    .into(),
            ),
            pattern("^0[xX][0-9a-fA-F]{1,2}$".into()),
            count,
            var(),
        ],
        Kind::Enum(values) => vec![json!({ "enum": values }), var()],
        Kind::Toggles(values) => {
            let all: Vec<String> = values
                .iter()
                .flat_map(|v| [v.to_string(), format!("^{v}")])
                .collect();
            vec![json!({ "enum": all }), var()]
        }
        Kind::Map(s) => vec![section(s)],
        Kind::MapOf(k) => vec![json!({
            "type": "object",
            "additionalProperties": one_of(k),
        })],
        Kind::List(k) => vec![json!({ "type": "array", "items": one_of(k) })],
        Kind::AnyOf(kinds) => kinds.iter().flat_map(alternatives).collect(),
        Kind::Tagged(variants) => variants
            .iter()
            .map(|(tag, s)| {
                let mut v = section(s);
                // The tag chooses the section: only its own value fits.
                if let Some(Value::Object(t)) = v.pointer_mut("/properties/type") {
                    t.insert("anyOf".into(), json!([{ "const": tag }]));
                }
                v
            })
            .collect(),
    }
}

/// The schema of a value of `kind`: its one alternative, or all of them.
fn one_of(kind: &Kind) -> Value {
    let mut all = alternatives(kind);
    if all.len() == 1 {
        all.remove(0)
    } else {
        json!({ "anyOf": all })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_a_table_keep_its_order() {
        const T: [(&str, u8); 3] = [("b", 1), ("a", 2), ("c", 3)];
        assert_eq!(names(&T), ["b", "a", "c"]);
    }

    #[test]
    fn regex_escape_escapes_metacharacters() {
        assert_eq!(regex_escape("a.b+c"), r"a\.b\+c");
        assert_eq!(regex_escape("KiB"), "KiB");
    }
}
