//! The graph against torchvision itself: for every spec in `specs/` and `tests/specs/`, the
//! parameter count, the MACs and the `state_dict` (names, order, shapes) equal what
//! `tools/gen_counts.py` recorded from torchvision's model (`tests/expected/counts.json`).

use resnet_compiler::summary::Summary;
use resnet_compiler::{Options, compile, spec::parse_yaml};

#[test]
fn params_macs_and_state_dict_equal_torchvision() {
    let counts: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(crate::root().join("tests/expected/counts.json")).unwrap(),
    )
    .unwrap();
    let specs = counts["specs"].as_object().unwrap();
    let mut checked = 0;
    for dir in ["specs", "tests/specs"] {
        for entry in std::fs::read_dir(crate::root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let spec = parse_yaml(&text, &path.display().to_string()).unwrap();
            let file = format!("{dir}/{}", path.file_name().unwrap().to_string_lossy());
            let (_, tv) = specs
                .iter()
                .find(|(_, v)| v["spec"] == file.as_str())
                .unwrap_or_else(|| panic!("{file} is not in counts.json: run tools/gen_counts.py"));
            let c = compile(&spec, &Options::default()).unwrap();
            let s = Summary::new(&c);
            assert_eq!(s.params as u64, tv["params"].as_u64().unwrap(), "{file}: params");
            assert_eq!(s.macs as u64, tv["macs"].as_u64().unwrap(), "{file}: MACs");
            let ours: Vec<(String, Vec<u64>)> = c
                .graph
                .state_dict()
                .into_iter()
                .map(|p| (p.name, p.shape.into_iter().map(|d| d as u64).collect()))
                .collect();
            let theirs: Vec<(String, Vec<u64>)> = serde_json::from_value(tv["state_dict"].clone()).unwrap();
            assert_eq!(ours, theirs, "{file}: state_dict");
            checked += 1;
        }
    }
    assert_eq!(checked, specs.len(), "every spec in counts.json has a file");
}
