//! `bcnet-search` end to end: `bench` against Channel-Bench-Macro (when its files are here:
//! `$EMBER_CBM_DIR`, default `../shared/benchmarks/channel-bench-macro`), and the refusals.

#[path = "../../../tests/common/output.rs"]
mod output;

use std::path::{Path, PathBuf};
use std::process::Output;

use output::{assert_bad_input, offline, ok_json};

fn tool(args: &[&str]) -> Output {
    offline(env!("CARGO_BIN_EXE_bcnet-search"))
        .env_remove("EMBER_CBM_DIR")
        .args(args)
        .output()
        .unwrap()
}

fn benchmark() -> Option<PathBuf> {
    let dir = std::env::var_os("EMBER_CBM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/benchmarks/channel-bench-macro")
        });
    let found = dir.join("Results_ResNet.json").is_file();
    if !found {
        eprintln!("bcnet-search: no benchmark at {}; skipped", dir.display());
    }
    found.then_some(dir)
}

#[test]
fn bench_searches_the_benchmark_and_ranks_recorded_scores() {
    let Some(dir) = benchmark() else { return };
    let dir = dir.to_str().unwrap();
    let r = ok_json(tool(&[
        "bench",
        "--benchmark",
        dir,
        "--family",
        "resnet",
        "--budget",
        "0.5",
        "--seeds",
        "3",
    ]));
    let row = &r["results"][0];
    assert_eq!(
        (row["family"].as_str(), row["budget"].as_f64()),
        (Some("ResNet"), Some(0.5))
    );
    assert_eq!(row["window"], 3419);
    for method in ["evolution", "random_search"] {
        let regret = row[method]["median_regret"].as_f64().unwrap();
        assert!((0.0..1.0).contains(&regret), "{row}");
    }

    let scores = format!("{dir}/supernet_scores/bin20_min1_autoslim_3_resnet.json");
    let r = ok_json(tool(&[
        "bench",
        "--benchmark",
        dir,
        "--family",
        "resnet",
        "--scores",
        &scores,
    ]));
    let kendall = r["results"][0]["kendall"].as_f64().unwrap();
    assert!((kendall - 0.656).abs() < 1e-3, "{r}");
}

#[test]
fn refuses_impossible_settings() {
    assert_bad_input(&tool(&["bench"]), "--benchmark DIR");
    let missing = tool(&["bench", "--benchmark", "/nonexistent"]);
    assert_bad_input(&missing, "/nonexistent");
    assert_bad_input(
        &tool(&["bench", "--benchmark", "/tmp", "--budget", "1.5"]),
        "--budget 1.5",
    );
    assert_bad_input(
        &tool(&["bench", "--benchmark", "/tmp", "--scores", "s.json"]),
        "--family",
    );
}
