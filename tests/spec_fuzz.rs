//! The spec parser never panics: truncated and mutated versions of every spec in `specs/`
//! end in a spec or in positioned errors. Deterministic, so a failure reproduces.

use std::panic::{AssertUnwindSafe, catch_unwind};

use resnet_compiler::{Options, compile, spec::parse_yaml};

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Fragments that YAML and the spec give meaning to.
const TOKENS: &[&str] = &[
    "[",
    "]",
    "{",
    "}",
    ":",
    ": ",
    ",",
    "-",
    "- ",
    "\n",
    "\t",
    " ",
    "#",
    "&a ",
    "*a",
    "!!str ",
    "!!binary ",
    "<<: ",
    "---\n",
    "...\n",
    "'",
    "\"",
    "|\n",
    ">\n",
    "?",
    "0",
    "-1",
    "1e9",
    "99999999999999999999999",
    ".inf",
    ".nan",
    "null",
    "~",
    "true",
    "yes",
    "layer",
    "layer4",
    "basic",
    "bottleneck",
    "features",
    "cifar",
    "groups: 64\n",
    "layers: [200, 200, 200, 200, 200, 200, 200, 200]\n",
    "input: [1024, 3, 16384, 16384]\n",
    "widths: [65536]\n",
    "\u{feff}",
    "é",
    "\0",
];

fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut s: Vec<u8> = text.as_bytes().to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(s.len() + 1);
        match rng.below(5) {
            0 if !s.is_empty() => {
                let len = 1 + rng.below(8.min(s.len() - at.min(s.len() - 1)));
                let at = at.min(s.len() - 1);
                s.drain(at..(at + len).min(s.len()));
            }
            1 | 2 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                s.splice(at..at, t.bytes());
            }
            3 if at < s.len() => {
                const BYTES: &[u8] = b" -:[]{},#&*!|>'\"0123456789\n\t";
                s[at] = BYTES[rng.below(BYTES.len())];
            }
            _ => {
                // Duplicate a line.
                let lines: Vec<&str> = text.lines().collect();
                let line = lines[rng.below(lines.len())];
                s.splice(at..at, format!("\n{line}\n").bytes());
            }
        }
    }
    String::from_utf8_lossy(&s).into_owned()
}

fn survives(text: &str) {
    let result = catch_unwind(AssertUnwindSafe(|| match parse_yaml(text, "fuzz.yaml") {
        Ok(spec) => {
            compile(&spec, &Options::default()).expect("a valid spec compiles");
        }
        Err(errors) => {
            assert!(!errors.0.is_empty());
            let lines = crate::yaml_lines(text);
            for e in &errors.0 {
                assert!(e.line >= 1 && e.line <= lines + 1 && e.column >= 1, "{e}");
            }
        }
    }));
    assert!(result.is_ok(), "the spec parser panicked on:\n{text:?}");
}

#[test]
fn truncated_specs_do_not_panic() {
    for path in crate::specs() {
        let text = std::fs::read_to_string(&path).unwrap();
        for end in (0..=text.len()).filter(|&i| text.is_char_boundary(i)) {
            survives(&text[..end]);
        }
    }
}

#[test]
fn mutated_specs_do_not_panic() {
    let mut rng = Rng(0x5eed);
    for path in crate::specs() {
        let text = std::fs::read_to_string(&path).unwrap();
        for _ in 0..1000 {
            survives(&mutate(&mut rng, &text));
        }
    }
}
