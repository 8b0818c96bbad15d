//! Models by Hugging Face id, against a stand-in for the Hub on 127.0.0.1 that serves its API and
//! file layout (the test starts and stops it; nothing else is reached): a download that opens, a
//! second call served by the cache, an interrupted download resumed, 404 and 401 named, a
//! corrupt file caught.

#[path = "../support/hub_stand_in.rs"]
pub mod hub_stand_in;

use hub_stand_in::{Behaviour, COMMIT, StandIn};
use wgtune::download::{DownloadProgress, download_model};
use wgtune::model::ModelFolder;

use crate::common::fixture;

#[test]
fn a_model_by_id_downloads_into_the_cache_and_opens() {
    let hub = StandIn::start(Behaviour::default());
    let cache = tempfile::tempdir().unwrap();
    let mut seen: Vec<DownloadProgress> = Vec::new();
    let folder = download_model("owner/tiny", &hub.hub(cache.path(), None), |p| seen.push(p.clone())).unwrap();
    assert!(folder.starts_with(cache.path().join("models--owner--tiny/snapshots").join(COMMIT)), "{}", folder.display());
    let model = ModelFolder::open(&folder).unwrap();
    assert_eq!(model.config.num_hidden_layers, ModelFolder::open(&fixture("tiny-llama")).unwrap().config.num_hidden_layers);
    model.tokenizer().unwrap();
    // The progress names each file and ends with the weights whole.
    let weights = std::fs::metadata(fixture("tiny-llama/model.safetensors")).unwrap().len();
    let last = seen.last().unwrap();
    assert_eq!((last.file.as_str(), last.index, last.files, last.bytes, last.total), ("model.safetensors", 6, 6, weights, weights));

    // A second call finds every file in the cache: no file is fetched again.
    let fetched = hub.requests().iter().filter(|r| r.contains("/resolve/") && !r.ends_with(" 0-0")).count();
    download_model("owner/tiny", &hub.hub(cache.path(), None), |_| {}).unwrap();
    let fetched_again = hub.requests().iter().filter(|r| r.contains("/resolve/") && !r.ends_with(" 0-0")).count();
    assert_eq!(fetched, 6);
    assert_eq!(fetched_again, fetched, "{:?}", hub.requests());
}

#[test]
fn an_interrupted_download_resumes_where_it_stopped() {
    let hub = StandIn::start(Behaviour { cut_once: Some("model.safetensors".into()), ..Behaviour::default() });
    let cache = tempfile::tempdir().unwrap();
    let err = download_model("owner/tiny", &hub.hub(cache.path(), None), |_| {}).unwrap_err().to_string();
    assert!(err.starts_with("model owner/tiny: "), "{err}");
    let folder = download_model("owner/tiny", &hub.hub(cache.path(), None), |_| {}).unwrap();
    let weights = std::fs::read(fixture("tiny-llama/model.safetensors")).unwrap();
    assert_eq!(std::fs::read(folder.join("model.safetensors")).unwrap(), weights);
    let resumed = format!("/owner/tiny/resolve/main/model.safetensors {}-", weights.len() / 2);
    assert!(hub.requests().contains(&resumed), "the second try asks for the rest only: {:?}", hub.requests());
}

#[test]
fn a_missing_model_a_gated_one_and_a_corrupt_file_are_named() {
    let hub = StandIn::start(Behaviour { corrupt: Some("model.safetensors".into()), ..Behaviour::default() });
    let cache = tempfile::tempdir().unwrap();
    let err = download_model("owner/nothing", &hub.hub(cache.path(), None), |_| {}).unwrap_err().to_string();
    assert!(err.contains("model owner/nothing: no such model on http://127.0.0.1:") && err.contains("(404)"), "{err}");
    let err = download_model("owner/gated", &hub.hub(cache.path(), None), |_| {}).unwrap_err().to_string();
    assert!(err.contains("model owner/gated: the Hub refused access (401/403)") && err.contains("HF_TOKEN"), "{err}");

    let err = download_model("owner/gated", &hub.hub(cache.path(), Some("secret")), |_| {}).unwrap_err().to_string();
    assert!(err.contains("model.safetensors arrived corrupt") && err.contains("it was deleted"), "{err}");

    // A small file goes by its git hash: checked too.
    let hub = StandIn::start(Behaviour { corrupt: Some("tokenizer.json".into()), ..Behaviour::default() });
    let other = tempfile::tempdir().unwrap();
    let err = download_model("owner/tiny", &hub.hub(other.path(), None), |_| {}).unwrap_err().to_string();
    assert!(err.contains("tokenizer.json arrived corrupt"), "{err}");
    let snapshot = cache.path().join("models--owner--gated/snapshots").join(COMMIT);
    assert!(snapshot.join("config.json").exists() && !snapshot.join("model.safetensors").exists());
}

#[test]
fn model_ids_are_told_from_paths() {
    assert!(wgtune::hub::is_hub_id("Qwen/Qwen3-0.6B"));
    assert!(wgtune::hub::is_hub_id("HuggingFaceTB/SmolLM2-135M-Instruct"));
    for not_an_id in ["model", "./a/b", "a/b/c", "/abs", "a/", "ollama:qwen", "a b/c", "data/train.jsonl", "models/m.gguf"] {
        assert!(!wgtune::hub::is_hub_id(not_an_id), "{not_an_id}");
    }
}

#[test]
fn a_dataset_split_by_id_downloads_and_is_found_again_in_the_cache() {
    use hub_stand_in::{TEST, TRAIN};
    let hub = StandIn::start(Behaviour::default());
    let cache = tempfile::tempdir().unwrap();
    let settings = hub.hub(cache.path(), None);
    let train = wgtune::download::download_dataset("owner/qa", None, "train", &settings, |_| {}).unwrap();
    assert!(train.ends_with(TRAIN), "{}", train.display());
    assert_eq!(std::fs::read(&train).unwrap(), std::fs::read(fixture("data/qa.parquet")).unwrap());
    let test = wgtune::download::download_dataset("owner/qa", None, "test", &settings, |_| {}).unwrap();
    assert!(test.ends_with(TEST), "{}", test.display());
    // Both splits are cached now: asked again, the Hub is not.
    let asked = hub.requests().len();
    wgtune::download::download_dataset("owner/qa", None, "train", &settings, |_| {}).unwrap();
    assert_eq!(hub.requests().len(), asked, "{:?}", hub.requests());
    let err = wgtune::download::download_dataset("owner/qa", None, "validation", &settings, |_| {}).unwrap_err().to_string();
    assert!(err.contains("dataset owner/qa: no Parquet file for split `validation`") && err.contains(TEST), "{err}");
    let err = wgtune::download::download_dataset("owner/none", None, "train", &settings, |_| {}).unwrap_err().to_string();
    assert!(err.contains("dataset owner/none: no such dataset") && err.contains("(404)"), "{err}");
}

/// `wgtune train --data owner/qa --validation-split test`: a Parquet dataset on the Hub, with
/// columns of its own mapped by --columns, trains end to end.
#[test]
fn a_parquet_dataset_by_id_with_its_own_columns_trains_from_the_command_line() {
    let hub = StandIn::start(Behaviour::default());
    let (cache, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let run = dir.path().join("run");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wgtune"))
        .env("HF_ENDPOINT", &hub.endpoint)
        .env("HF_HUB_CACHE", cache.path())
        .args(["train", "--model", fixture("tiny-llama").to_str().unwrap(), "--data", "owner/qa", "--validation-split", "test"])
        .args(["--columns", "prompt=question,completion=answer", "--max-steps", "3", "--device", "cpu", "--output", run.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{}", String::from_utf8_lossy(&out.stdout));
    let settings = std::fs::read_to_string(run.join("run.toml")).unwrap();
    assert!(settings.contains(hub_stand_in::TRAIN) && settings.contains(hub_stand_in::TEST), "{settings}");
    assert!(run.join("final").exists());
}

#[test]
fn the_hub_is_searched_for_model_ids() {
    let hub = StandIn::start(Behaviour::default());
    let cache = tempfile::tempdir().unwrap();
    let settings = hub.hub(cache.path(), None);
    assert_eq!(wgtune::download::search_models("tiny", &settings).unwrap(), ["owner/tiny"]);
    assert_eq!(wgtune::download::search_models("owner", &settings).unwrap(), ["owner/tiny", "owner/gated"]);
    assert!(wgtune::download::search_models("nothing", &settings).unwrap().is_empty());
    let offline = wgtune::download::Hub { endpoint: "http://127.0.0.1:9".into(), ..settings };
    let err = wgtune::download::search_models("tiny", &offline).unwrap_err().to_string();
    assert!(err.starts_with("search `tiny`: could not reach http://127.0.0.1:9"), "{err}");
}

/// A split in two shards reads as one file: their records joined in order, found again offline.
#[test]
fn a_split_of_several_shards_is_joined_into_one_file() {
    let hub = StandIn::start(Behaviour::default());
    let cache = tempfile::tempdir().unwrap();
    let settings = hub.hub(cache.path(), None);
    let joined = wgtune::download::download_dataset("owner/shards", None, "train", &settings, |_| {}).unwrap();
    assert!(joined.ends_with("datasets--owner--shards/wgtune-joined/default-train.jsonl"), "{}", joined.display());
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&joined).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 6, "three records a shard");
    assert_eq!(lines[0], lines[3], "the second shard follows the first");
    assert!(lines[0].get("question").is_some() && lines[0].get("conversation").is_some(), "{}", lines[0]);
    let asked = hub.requests().len();
    assert_eq!(wgtune::download::download_dataset("owner/shards", None, "train", &settings, |_| {}).unwrap(), joined);
    assert_eq!(hub.requests().len(), asked, "the second call stays offline");
}

/// A model in shards: the index names what to fetch; a file beside them that no loader needs is
/// left on the Hub.
#[test]
fn a_sharded_model_downloads_the_shards_its_index_names() {
    let hub = StandIn::start(Behaviour::default());
    let cache = tempfile::tempdir().unwrap();
    let folder = download_model("owner/sharded", &hub.hub(cache.path(), None), |_| {}).unwrap();
    let model = ModelFolder::open(&folder).unwrap();
    assert_eq!(model.config.architecture, wgtune::model::Architecture::Qwen2);
    model.load(&burn::tensor::Device::default()).unwrap();
    let fetched: Vec<String> = hub.requests().into_iter().filter(|r| r.ends_with(" 0-")).collect();
    assert_eq!(fetched.iter().filter(|r| r.contains("/model-0000")).count(), 5, "{fetched:?}");
    assert!(!hub.requests().iter().any(|r| r.contains("consolidated")), "{:?}", hub.requests());
}
