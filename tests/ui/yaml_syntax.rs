resnet_macros::resnet! {
    pub mod net {
        spec: "data/bad_yaml.yaml",
    }
}

fn main() {}
