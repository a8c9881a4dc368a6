//! `ember info --arch`: parameter and MAC counts derived from a config, without weights.

mod common;

use common::*;

#[test]
fn lightvit_tiny_reports_the_official_parameters_and_both_flop_counts() {
    let info = stdout_json(&run(&["info", "--arch", "lightvit_tiny"]));
    assert_eq!(info["parameters"], 9_377_698);
    assert_eq!(info["input_size"], 224);
    let g = |k: &str| (info["gmacs"][k].as_f64().unwrap() * 1000.0).round() / 1000.0;
    assert_eq!(g("official_counter"), 0.733);
    assert_eq!(g("window_attention_included"), 0.765);
}

#[test]
fn resnet18_matches_torchvision() {
    let info = stdout_json(&run(&["info", "--arch", "resnet18"]));
    assert_eq!(info["parameters"], 11_689_512);
    let g = info["gmacs"]["convs_and_classifier"].as_f64().unwrap();
    assert!((g - 1.814).abs() < 5e-4, "{g}");
}

#[test]
fn an_input_lightvit_cannot_window_is_bad_input() {
    assert_bad_input(
        &run(&["info", "--arch", "lightvit_tiny_32", "--input-size", "28"]),
        "does not split into 2x2 windows",
    );
}
