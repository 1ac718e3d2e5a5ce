resnet_macros::resnet! {
    pub mod net {
        spec: "data/no_such_spec.yaml",
    }
}

fn main() {}
