resnet_macros::resnet! {
    pub mod net {
        spec: "data/bad_config.yaml",
    }
}

fn main() {
    // The module still exists (as a stub), so this use adds no second error.
    let _ = net::INPUT_LEN;
}
