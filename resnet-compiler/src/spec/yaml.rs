//! The YAML front end: spec files to [`RawSpec`], and diagnostics back to lines and columns.
//!
//! yaml_serde knows the position of every node while it deserializes, and attaches the
//! position of the current node to any error a visitor raises there. That is the only way it
//! exposes positions, so this module asks it questions by deserializing the document with
//! small visitors ("probes") that fail exactly at the node they are looking for: the position
//! of the error is the position of the node. Each field is also read by its own probe, so a
//! type error in one field does not hide the errors in the others. Specs are a few hundred
//! bytes; the extra parses cost microseconds and happen only on the way to an error message.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{Diagnostic, Field, FieldPath, RawSpec, Spec};

/// One error in a spec file, at a line and column (both 1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// The file, as the user named it.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong and what would be valid.
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
    }
}

/// Every error found in a spec file, in the order of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecErrors(pub Vec<SpecError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

/// Parses and validates the spec in `text`; `file` is used in messages only.
pub fn parse_yaml(text: &str, file: &str) -> Result<Spec, SpecErrors> {
    let doc = Document { text, file };
    let (raw, failed) = doc.read()?;
    if failed.is_empty() {
        return raw.validate().map_err(|diags| doc.locate_all(diags));
    }
    // Some fields could not be read. Their rules cannot be checked, but the others can, so
    // that one run reports every problem; a field that failed is not also "missing".
    let diags = raw.validate().err().unwrap_or_default();
    let diags = diags
        .into_iter()
        .filter(|d| !matches!(d.path, FieldPath::Missing(_)));
    let mut errors = failed;
    errors.extend(doc.locate_all(diags.collect()).0);
    errors.sort_by_key(|e| (e.line, e.column));
    Err(SpecErrors(errors))
}

struct Document<'a> {
    text: &'a str,
    file: &'a str,
}

impl Document<'_> {
    /// Reads every field that is well-typed; returns the errors about the others beside.
    /// Fails only when the document itself cannot be read.
    fn read(&self) -> Result<(RawSpec, Vec<SpecError>), SpecErrors> {
        let keys = self.keys()?;
        let mut errors = Vec::new();
        let mut raw = RawSpec::default();
        let mut seen = Vec::<Field>::new();
        for (index, key) in keys.iter().enumerate() {
            let Some(field) = key.as_deref().and_then(Field::from_key) else {
                errors.push(self.at(Probe::Key(index), unknown_key_message(key.as_deref())));
                continue;
            };
            if seen.contains(&field) {
                errors.push(self.at(Probe::Key(index), format!("field `{field}` is given twice")));
                continue;
            }
            seen.push(field);
            if let Err(e) = self.read_field(&mut raw, field, index) {
                errors.push(e);
            }
        }
        Ok((raw, errors))
    }

    /// The top-level keys, in order (`None` for a key that is not a string).
    fn keys(&self) -> Result<Vec<Option<String>>, SpecErrors> {
        if self.text.trim().is_empty()
            || self.text.lines().all(|l| {
                let l = l.trim();
                l.is_empty() || l.starts_with('#') || l == "---"
            })
        {
            return Err(SpecErrors(vec![self.error(
                1,
                1,
                "the spec is empty: expected a mapping of fields such as `name`, `block` and `layers`".into(),
            )]));
        }
        self.run(KeysSeed)
            .map_err(|e| SpecErrors(vec![self.yaml_error(&e, None)]))
    }

    fn read_field(&self, raw: &mut RawSpec, field: Field, index: usize) -> Result<(), SpecError> {
        fn get<T: DeserializeOwned>(doc: &Document<'_>, index: usize, field: Field) -> Result<T, SpecError> {
            doc.run(ValueSeed::<T>(index, PhantomData))
                .map_err(|e| doc.yaml_error(&e, Some(field)))
        }
        match field {
            Field::Name => raw.name = Some(get(self, index, field)?),
            Field::Block => raw.block = Some(get(self, index, field)?),
            Field::Layers => raw.layers = Some(get(self, index, field)?),
            Field::Groups => raw.groups = Some(get(self, index, field)?),
            Field::WidthPerGroup => raw.width_per_group = Some(get(self, index, field)?),
            // `null` is torchvision's `None`: the default.
            Field::ReplaceStrideWithDilation => raw.replace_stride_with_dilation = get(self, index, field)?,
            Field::NumClasses => raw.num_classes = Some(get(self, index, field)?),
            Field::Input => raw.input = Some(get(self, index, field)?),
            Field::Widths => raw.widths = Some(get(self, index, field)?),
            Field::Stem => raw.stem = Some(get(self, index, field)?),
            Field::Head => raw.head = Some(get(self, index, field)?),
            Field::Features => raw.features = Some(get(self, index, field)?),
        }
        Ok(())
    }

    fn run<T>(&self, seed: impl for<'de> DeserializeSeed<'de, Value = T>) -> Result<T, yaml_serde::Error> {
        seed.deserialize(yaml_serde::Deserializer::from_str(self.text))
    }

    /// Turns validation diagnostics into positioned errors, in the order of the file.
    fn locate_all(&self, diags: Vec<Diagnostic>) -> SpecErrors {
        let keys = self.keys().unwrap_or_default();
        let key_index = |field: Field| keys.iter().position(|k| k.as_deref() == Some(field.as_str()));
        let mut errors: Vec<SpecError> = diags
            .into_iter()
            .map(|d| {
                let probe = match d.path {
                    FieldPath::Document | FieldPath::Missing(_) => None,
                    FieldPath::UnknownKey(ref key) => keys
                        .iter()
                        .position(|k| k.as_deref() == Some(key))
                        .map(Probe::Key),
                    FieldPath::Field(f) => key_index(f).map(Probe::Value),
                    FieldPath::Element(f, i) => key_index(f).map(|k| Probe::Element(k, i)),
                };
                match probe {
                    Some(probe) => self.at(probe, d.message),
                    None => self.error(1, 1, d.message),
                }
            })
            .collect();
        errors.sort_by_key(|e| (e.line, e.column));
        SpecErrors(errors)
    }

    /// An error at the node `probe` finds (at the start of the file if it finds none).
    fn at(&self, probe: Probe, message: String) -> SpecError {
        let location = self.run(FailSeed(probe)).err().and_then(|e| e.location());
        match location {
            Some(l) => self.error(l.line(), l.column(), message),
            None => self.error(1, 1, message),
        }
    }

    fn error(&self, line: usize, column: usize, message: String) -> SpecError {
        SpecError {
            file: self.file.to_owned(),
            line,
            column,
            message,
        }
    }

    /// A yaml_serde error as a positioned error, with `field`'s expectations when it is
    /// about one field's value.
    fn yaml_error(&self, e: &yaml_serde::Error, field: Option<Field>) -> SpecError {
        let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        let mut message = e.to_string();
        // The position is printed in front; drop yaml_serde's own copy of it.
        let suffix = format!(" at line {line} column {column}");
        if let Some(at) = message.find(&suffix) {
            message.replace_range(at..at + suffix.len(), "");
        }
        let message = match field {
            Some(field) => {
                // yaml_serde says where inside the field (`layers[2]: ...`) and what Rust type
                // it wanted (`expected u64`); the position already says the first, and the
                // field's own description says the second better.
                let detail = match message.split_once(": ") {
                    Some((path, rest)) if path.starts_with(field.as_str()) => rest,
                    _ => &message,
                };
                let detail = detail.split(", expected ").next().unwrap_or(detail);
                format!("{field}: {detail}; expected {}", field.expected())
            }
            None => format!("invalid YAML: {message}"),
        };
        self.error(line, column, message)
    }
}

/// "unknown field", with the closest field name when one is close.
fn unknown_key_message(key: Option<&str>) -> String {
    let Some(key) = key else {
        return "a key that is not a string is not a spec field".into();
    };
    let closest = Field::ALL
        .iter()
        .map(|f| (strsim::damerau_levenshtein(key, f.as_str()), f.as_str()))
        .min();
    match closest {
        Some((d, name)) if d <= 2 || (d <= 4 && key.len() > 8) => {
            format!("unknown field `{key}`: did you mean `{name}`?")
        }
        _ => {
            let names: Vec<_> = Field::ALL.iter().map(|f| f.as_str()).collect();
            format!("unknown field `{key}`, expected one of: {}", names.join(", "))
        }
    }
}

/// Which node a [`FailSeed`] fails at.
#[derive(Debug, Clone, Copy)]
enum Probe {
    /// The key of the n-th top-level entry.
    Key(usize),
    /// The value of the n-th top-level entry.
    Value(usize),
    /// Element `i` of the value of the n-th top-level entry (the value itself if it is not a list).
    Element(usize, usize),
}

/// Reads the top-level keys, as strings where they are strings.
struct KeysSeed;

impl<'de> DeserializeSeed<'de> for KeysSeed {
    type Value = Vec<Option<String>>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for KeysSeed {
    type Value = Vec<Option<String>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping of spec fields such as `name`, `block` and `layers`")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut keys = Vec::new();
        while let Some(key) = map.next_key::<yaml_serde::Value>()? {
            map.next_value::<IgnoredAny>()?;
            keys.push(match key {
                yaml_serde::Value::String(s) => Some(s),
                _ => None,
            });
        }
        Ok(keys)
    }
}

/// Reads the value of the n-th top-level entry as `T`.
struct ValueSeed<T>(usize, PhantomData<T>);

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for ValueSeed<T> {
    type Value = T;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for ValueSeed<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let mut found = None;
        let mut index = 0;
        while map.next_key::<IgnoredAny>()?.is_some() {
            if index == self.0 {
                found = Some(map.next_value::<T>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
            index += 1;
        }
        found.ok_or_else(|| de::Error::custom("entry not found"))
    }
}

/// Fails at the node its [`Probe`] names, so that yaml_serde attaches that node's position.
struct FailSeed(Probe);

impl<'de> DeserializeSeed<'de> for FailSeed {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FailSeed {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut index = 0;
        loop {
            let here = match self.0 {
                Probe::Key(n) | Probe::Value(n) | Probe::Element(n, _) => n == index,
            };
            if here && matches!(self.0, Probe::Key(_)) {
                map.next_key_seed(Fail)?;
                return Ok(());
            }
            if map.next_key::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
            match self.0 {
                Probe::Value(_) if here => map.next_value_seed(Fail)?,
                Probe::Element(_, i) if here => map.next_value_seed(FailAtElement(i))?,
                _ => map.next_value::<IgnoredAny>()?,
            };
            index += 1;
        }
    }
}

/// Fails at whatever node it is given.
struct Fail;

impl<'de> DeserializeSeed<'de> for Fail {
    type Value = IgnoredAny;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<IgnoredAny, D::Error> {
        d.deserialize_any(self)
    }
}

macro_rules! fail_on {
    ($($method:ident($($ty:ty),*)),* $(,)?) => {$(
        fn $method<E: de::Error>(self, $(_: $ty),*) -> Result<IgnoredAny, E> {
            Err(E::custom("here"))
        }
    )*};
}

impl<'de> Visitor<'de> for Fail {
    type Value = IgnoredAny;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("anything")
    }
    fail_on!(
        visit_bool(bool),
        visit_i64(i64),
        visit_u64(u64),
        visit_i128(i128),
        visit_u128(u128),
        visit_f64(f64),
        visit_str(&str),
        visit_unit(),
        visit_none(),
    );
    fn visit_some<D: de::Deserializer<'de>>(self, _: D) -> Result<IgnoredAny, D::Error> {
        Err(de::Error::custom("here"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<IgnoredAny, A::Error> {
        Err(de::Error::custom("here"))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<IgnoredAny, A::Error> {
        Err(de::Error::custom("here"))
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> Result<IgnoredAny, A::Error> {
        Err(de::Error::custom("here"))
    }
}

/// Fails at element `i` of a sequence (at the node itself if it is not a sequence).
struct FailAtElement(usize);

impl<'de> DeserializeSeed<'de> for FailAtElement {
    type Value = IgnoredAny;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<IgnoredAny, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FailAtElement {
    type Value = IgnoredAny;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<IgnoredAny, A::Error> {
        for _ in 0..self.0 {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Err(de::Error::custom("here"));
            }
        }
        seq.next_element_seed(Fail)?;
        Err(de::Error::custom("here"))
    }
    fail_on!(
        visit_bool(bool),
        visit_i64(i64),
        visit_u64(u64),
        visit_f64(f64),
        visit_str(&str),
        visit_unit(),
    );
}
