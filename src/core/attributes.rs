//! [`Attributes`]: the custom attributes of a user or group, by name — in the spec, in the
//! observed directory and in the plan's actions.
//!
//! A sorted vector, not a `BTreeMap`: almost every object carries one or two attributes (paasd's
//! ownership marker), and a B-tree allocates a node of ~0.5 KB for even one entry — 50 MB at
//! 100,000 managed users. Lookups are a binary search; (de)serialisation is a JSON object, as a
//! map's would be, in the same (sorted) order.

use std::fmt;
use std::ops::Index;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Attribute name → values (a single value is a one-element list), sorted by name, names unique.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes(Vec<(String, Vec<String>)>);

impl Attributes {
    pub const fn new() -> Self {
        Attributes(Vec::new())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(name))
    }

    pub fn get(&self, name: &str) -> Option<&Vec<String>> {
        self.find(name).ok().map(|i| &self.0[i].1)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// Sets `name` to `values`; returns the values it replaces.
    pub fn insert(&mut self, name: String, values: Vec<String>) -> Option<Vec<String>> {
        match self.find(&name) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, values)),
            Err(i) => {
                self.0.insert(i, (name, values));
                None
            }
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<Vec<String>> {
        self.find(name).ok().map(|i| self.0.remove(i).1)
    }

    /// In name order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Vec<String>)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(k, _)| k)
    }
}

/// Like a map's: for a repeated name the last value wins.
impl FromIterator<(String, Vec<String>)> for Attributes {
    fn from_iter<I: IntoIterator<Item = (String, Vec<String>)>>(iter: I) -> Self {
        let mut items: Vec<(String, Vec<String>)> = iter.into_iter().collect();
        // Stable: equal names keep their order, so the last one is kept by the dedup below.
        items.sort_by(|a, b| a.0.cmp(&b.0));
        items.reverse();
        items.dedup_by(|later, earlier| later.0 == earlier.0);
        items.reverse();
        items.shrink_to_fit();
        Attributes(items)
    }
}

impl<const N: usize> From<[(String, Vec<String>); N]> for Attributes {
    fn from(items: [(String, Vec<String>); N]) -> Self {
        items.into_iter().collect()
    }
}

impl Extend<(String, Vec<String>)> for Attributes {
    fn extend<I: IntoIterator<Item = (String, Vec<String>)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl<'a> IntoIterator for &'a Attributes {
    type Item = (&'a String, &'a Vec<String>);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, Vec<String>)>,
        fn(&'a (String, Vec<String>)) -> (&'a String, &'a Vec<String>),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl IntoIterator for Attributes {
    type Item = (String, Vec<String>);
    type IntoIter = std::vec::IntoIter<(String, Vec<String>)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl Index<&str> for Attributes {
    type Output = Vec<String>;
    /// Panics when the attribute is absent, like `BTreeMap`'s index.
    fn index(&self, name: &str) -> &Vec<String> {
        match self.get(name) {
            Some(v) => v,
            None => panic!("no attribute {name:?}"),
        }
    }
}

impl Serialize for Attributes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Attributes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Attributes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of attribute name to list of values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Attributes, A::Error> {
                let mut items = Vec::with_capacity(m.size_hint().unwrap_or(0));
                while let Some(entry) = m.next_entry::<String, Vec<String>>()? {
                    items.push(entry);
                }
                Ok(items.into_iter().collect())
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn behaves_like_a_sorted_map() {
        let mut a = Attributes::new();
        assert!(a.is_empty());
        assert_eq!(a.insert("shell".into(), vals(&["/bin/sh"])), None);
        assert_eq!(a.insert("avatar".into(), vals(&["x"])), None);
        assert_eq!(
            a.insert("shell".into(), vals(&["/bin/bash"])),
            Some(vals(&["/bin/sh"]))
        );
        assert_eq!(a.len(), 2);
        assert_eq!(a.keys().collect::<Vec<_>>(), ["avatar", "shell"]);
        assert_eq!(a["shell"], vals(&["/bin/bash"]));
        assert!(a.contains_key("avatar"));
        assert_eq!(a.remove("avatar"), Some(vals(&["x"])));
        assert_eq!(a.remove("avatar"), None);
        assert!(!a.contains_key("avatar"));
        assert_eq!(a.get("nope"), None);
    }

    #[test]
    fn collecting_keeps_the_last_value_of_a_repeated_name() {
        let a: Attributes = [
            ("b".to_string(), vals(&["1"])),
            ("a".to_string(), vals(&["2"])),
            ("b".to_string(), vals(&["3"])),
        ]
        .into();
        assert_eq!(
            a.iter().collect::<Vec<_>>(),
            [
                (&"a".to_string(), &vals(&["2"])),
                (&"b".to_string(), &vals(&["3"]))
            ]
        );
    }

    #[test]
    fn serialises_as_a_json_object_and_back() {
        let a: Attributes = [
            ("z".to_string(), vals(&["1", "2"])),
            ("a".to_string(), vals(&[])),
        ]
        .into();
        let text = serde_json::to_string(&a).expect("serialise");
        assert_eq!(text, r#"{"a":[],"z":["1","2"]}"#);
        let back: Attributes = serde_json::from_str(&text).expect("deserialise");
        assert_eq!(back, a);
        let unsorted: Attributes =
            serde_json::from_str(r#"{"z":["1"],"a":["2"]}"#).expect("deserialise");
        assert_eq!(unsorted.keys().collect::<Vec<_>>(), ["a", "z"]);
    }
}
