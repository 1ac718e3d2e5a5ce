resnet_macros::resnet! {
    pub mod tiny {
        spec: "data/tiny.yaml",
        winograd: "no",
        winograd: false,
    }
}

fn main() {}
