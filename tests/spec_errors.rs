//! Bad specs: each file in `tests/bad_specs/` gets every one of its errors, each with a line
//! and column inside the file; the messages are snapshotted so that a change is reviewed.

use resnet_compiler::spec::parse_yaml;

#[test]
fn every_bad_spec_gets_positioned_errors() {
    insta::glob!("bad_specs", "*.yaml", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let errors = parse_yaml(&text, &name).expect_err("a bad spec was accepted");
        let lines = crate::yaml_lines(&text);
        for e in &errors.0 {
            assert!(e.line >= 1 && e.line <= lines + 1, "{e}");
            assert!(e.column >= 1, "{e}");
            assert!(!e.message.is_empty());
        }
        insta::assert_snapshot!(errors.to_string());
    });
}

/// Positions checked by hand, one per kind of error source (syntax, type, rule, unknown key).
#[test]
fn positions_point_at_the_offending_node() {
    let text = "name: net\nblock: basic\nlayers: [2, 2]\ngroups: 2\nextra: 1\ninput: [1, 3, x, 4]\n";
    let errors = parse_yaml(text, "t.yaml").unwrap_err().0;
    let at: Vec<_> = errors.iter().map(|e| (e.line, e.column)).collect();
    assert_eq!(at, [(4, 9), (5, 1), (6, 15)], "{errors:?}");
    assert!(
        errors[0]
            .message
            .starts_with("BasicBlock only supports groups=1 and base_width=64")
    );
    assert!(errors[1].message.starts_with("unknown field `extra`"));
    assert!(errors[2].message.starts_with("input: invalid type: string \"x\""));

    let errors = parse_yaml("name: a\nlayers: [1,\n", "t.yaml").unwrap_err().0;
    assert_eq!(errors.len(), 1);
    assert!(errors[0].message.starts_with("invalid YAML: "), "{}", errors[0]);
    assert_eq!(errors[0].line, 3);

    // Block-style sequences point at the element too.
    let errors = parse_yaml("name: a\nblock: basic\nlayers:\n  - 2\n  - 0\n", "t.yaml")
        .unwrap_err()
        .0;
    assert_eq!((errors[0].line, errors[0].column), (5, 5), "{}", errors[0]);
}
