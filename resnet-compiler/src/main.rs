fn main() {
    for path in std::env::args().skip(1) {
        let text = std::fs::read_to_string(&path).unwrap();
        match resnet_compiler::spec::parse_yaml(&text, &path) {
            Ok(s) => println!("ok {s:?}"),
            Err(e) => println!("{e}"),
        }
    }
}
