//! GGUF against what llama.cpp's `gguf` package wrote and decoded (`tests/fixtures/make_gguf.py`):
//! the reader and dequantizers bit for bit, every type; damaged files named; and a model opened
//! from GGUF against the same model's Hugging Face folder.

use wgtune::gguf::{GgmlType, GgufFile, repack};
use wgtune::model::{ForwardOptions, ModelFolder, ModelWeights, RopeScaling};

use crate::common::{Golden, fixture, values};

#[test]
fn every_type_decodes_bit_for_bit_as_gguf_does() {
    let file = GgufFile::open(&fixture("gguf/quants.gguf")).unwrap();
    assert_eq!(file.version, 3);
    assert_eq!(file.get_str("general.architecture").unwrap(), "llama");
    assert!(file.get_str("wgtune.fixture").unwrap().starts_with("quantized blocks"));
    let types = [
        ("f32", GgmlType::F32),
        ("f16", GgmlType::F16),
        ("bf16", GgmlType::Bf16),
        ("q8_0", GgmlType::Q8_0),
        ("q4_0", GgmlType::Q4_0),
        ("q4_1", GgmlType::Q4_1),
        ("q4_k", GgmlType::Q4K),
        ("q5_k", GgmlType::Q5K),
        ("q6_k", GgmlType::Q6K),
    ];
    assert_eq!(file.names().count(), 2 * types.len());
    for (name, ggml_type) in types {
        let info = file.info(name).unwrap();
        assert_eq!((info.shape.as_slice(), info.ggml_type), ([3, 512].as_slice(), ggml_type), "{name}");
        let ours = file.read(name).unwrap();
        let reference = file.read(&format!("ref.{name}")).unwrap();
        assert_eq!(ours.len(), 3 * 512, "{name}");
        let differing = ours.iter().zip(&reference).position(|(a, b)| a.to_bits() != b.to_bits());
        assert_eq!(differing, None, "{name}: first differing value at {differing:?}");
        // The reference is not trivially zero (the fixture's scales are real).
        assert!(reference.iter().filter(|v| **v != 0.0).count() > 1000, "{name}");
    }
}

/// Q8_0 and Q4_K blocks become a LoRA base as they are: what the packed base holds dequantizes
/// exactly to what `gguf` dequantizes from the file. Q4_0 and Q4_1 keep their numbers with their
/// scales rounded to 8-bit sub-scales: within 1/120 of a super-block's largest value (half a
/// sub-scale step on the scale, times 15, and on the minimum), an eighth of a Q4_0 step. Other
/// types do not repack.
#[test]
fn blocks_repack_into_a_lora_base() {
    let file = GgufFile::open(&fixture("gguf/quants.gguf")).unwrap();
    for (name, bits, exact) in [("q8_0", 8, true), ("q4_k", 4, true), ("q4_0", 4, false), ("q4_1", 4, false)] {
        let info = file.info(name).unwrap();
        let packed = repack(info.ggml_type, file.raw(name).unwrap(), 3, 512, bits).unwrap_or_else(|| panic!("{name} repacks"));
        let reference = file.read(&format!("ref.{name}")).unwrap();
        let ours = packed.dequantize();
        if exact {
            let differing = ours.iter().zip(&reference).position(|(a, b)| a != b);
            assert_eq!(differing, None, "{name}: first differing value at {differing:?}");
            continue;
        }
        for (s, (ours, reference)) in ours.chunks(256).zip(reference.chunks(256)).enumerate() {
            let largest = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
            let worst = ours.iter().zip(reference).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(worst <= largest / 120.0, "{name}, super-block {s}: off by {worst} against a largest value of {largest}");
        }
    }
    for (name, bits) in [("q8_0", 4), ("q4_1", 8), ("q6_k", 4), ("f16", 8)] {
        let info = file.info(name).unwrap();
        assert!(repack(info.ggml_type, file.raw(name).unwrap(), 3, 512, bits).is_none(), "{name} as {bits} bits");
    }
}

/// The tiny Llama's Q8_0 GGUF as an int8 LoRA base: each projection is the file's blocks (Q and K
/// unpermuted like the values), and the model gives the logits of the same file loaded dense.
#[test]
fn a_q8_0_gguf_is_an_int8_base_as_it_is() {
    use wgtune::model::{BaseQuant, Precision};
    let q8 = ModelFolder::open(&fixture("gguf/tiny-llama-q8_0.gguf")).unwrap();
    for name in q8.weights.names().into_iter().filter(|n| n.starts_with("model.layers.") && n.ends_with("proj.weight")) {
        let shape = q8.weights.shape(&name).unwrap();
        let packed = q8.weights.read_packed(&name, &shape, 8).unwrap().unwrap_or_else(|| panic!("{name} repacks"));
        assert_eq!(packed.dequantize(), q8.weights.read(&name, &shape).unwrap().values, "{name}");
    }
    for dev in crate::common::devices() {
        let dense = logits(&q8, &dev.device);
        let model = q8.load_in(&dev.device, Precision::F32, BaseQuant::Int8).unwrap();
        assert!(model.layers[0].self_attn.q_proj.as_ref().is_some_and(|q| q.packed.is_some()));
        let inputs = Golden::open(&fixture("tiny-llama").join("golden.safetensors"));
        let hidden = model.hidden_states(inputs.ids("input_ids", &dev.device), None, ForwardOptions::default());
        let worst = worst_difference(&values(model.logits(hidden)).0, &dense);
        assert!(worst < 1e-4, "int8 base from Q8_0 on {}: logits differ by {worst}", dev.choice);
    }
}

#[test]
fn damaged_and_unsupported_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("gguf/quants.gguf")).unwrap();
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("truncated data", bytes[..bytes.len() - 100].to_vec(), "lies past the end of the file: is it truncated?"),
        ("truncated header", bytes[..200].to_vec(), "does not fit in the file (at least 576 bytes, and 184 are left): it is truncated"),
        ("truncated tensor table", bytes[..700].to_vec(), "the GGUF header ends early"),
        ("not GGUF", b"PK\x03\x04 a zip file".to_vec(), "not a GGUF file"),
        ("a damaged count", [&bytes[..8], &u64::MAX.to_le_bytes(), &bytes[16..]].concat(), "is past the bound of 16777216"),
    ];
    for (case, bytes, expected) in cases {
        let path = dir.path().join("model.gguf");
        std::fs::write(&path, bytes).unwrap();
        let err = GgufFile::open(&path).err().unwrap_or_else(|| panic!("{case}: opened")).to_string();
        assert!(err.starts_with(&path.display().to_string()) && err.contains(expected), "{case}: {err}");
    }
    let unsupported = fixture("gguf/unsupported.gguf");
    let err = GgufFile::open(&unsupported).err().unwrap().to_string();
    assert!(err.contains("tensor `blk.0.attn_q.weight` is Q5_0, which wgtune does not read (F32, F16, BF16, Q8_0"), "{err}");
}

/// Logits of the golden inputs, flattened.
fn logits(folder: &ModelFolder, device: &burn::tensor::Device) -> Vec<f32> {
    let inputs = Golden::open(&fixture("tiny-llama").join("golden.safetensors"));
    let model = folder.load(device).unwrap();
    let hidden = model.hidden_states(inputs.ids("input_ids", device), None, ForwardOptions::default());
    values(model.logits(hidden)).0
}

fn worst_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// The tiny Llama converted as llama.cpp converts it gives the folder's logits: the same at F32,
/// and within Q8_0's own error quantized.
#[test]
fn a_gguf_model_gives_the_logits_of_its_hugging_face_folder() {
    let folder = ModelFolder::open(&fixture("tiny-llama")).unwrap();
    let gguf = ModelFolder::open(&fixture("gguf/tiny-llama.gguf")).unwrap();
    let q8 = ModelFolder::open(&fixture("gguf/tiny-llama-q8_0.gguf")).unwrap();
    assert_eq!(gguf.config.num_parameters(), folder.config.num_parameters());
    assert_eq!((folder.storage(), gguf.storage(), q8.storage()), ("float32".into(), "F32 (GGUF)".into(), "Q8_0 (GGUF)".into()));
    assert_eq!((gguf.config.head_dim, gguf.config.tie_word_embeddings, gguf.config.eos_token_ids.clone()), (16, true, vec![2]));
    // llama.cpp kept only the rope factors; the Llama 3 parameters behind them are recovered.
    assert_eq!(gguf.config.rope_scaling, folder.config.rope_scaling);
    for dev in crate::common::devices() {
        let reference = logits(&folder, &dev.device);
        let worst = worst_difference(&logits(&gguf, &dev.device), &reference);
        assert_eq!(worst, 0.0, "F32 GGUF on {}: logits differ by {worst}", dev.choice);
        // Q8_0 moves each weight by up to half a step; through two random layers the logits
        // move by a few percent of their range.
        let worst = worst_difference(&logits(&q8, &dev.device), &reference);
        let scale = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(worst > 1e-4 && worst < 0.05 * scale, "Q8_0 GGUF on {}: logits differ by {worst} (largest {scale})", dev.choice);
    }
    // Every Q8_0 weight is within half a quantization step (its block's largest |w| / 127 / 2) of
    // the folder's, plus what rounding the step to f16 moves the largest value (127 × 2⁻¹¹ steps).
    for name in folder.weights.names().into_iter().filter(|n| n.ends_with("proj.weight")) {
        let shape = folder.weights.shape(&name).unwrap();
        let (exact, quantized) = (folder.weights.read(&name, &shape).unwrap().values, q8.weights.read(&name, &shape).unwrap().values);
        for (block, (e, q)) in exact.chunks(32).zip(quantized.chunks(32)).enumerate() {
            let step = e.iter().fold(0.0f32, |m, v| m.max(v.abs())) / 127.0;
            let worst = worst_difference(e, q);
            let bound = step * (0.5 + 127.0 / 2048.0);
            assert!(worst <= bound, "{name} block {block}: off by {worst}, more than {bound}");
        }
    }
    // Q and K really were permuted in the file, and unpermuted on reading.
    let name = "model.layers.0.self_attn.q_proj.weight";
    let ModelWeights::Gguf(model) = &gguf.weights else { panic!("a GGUF model") };
    let stored = model.file.read("blk.0.attn_q.weight").unwrap();
    let read = gguf.weights.read(name, &[64, 64]).unwrap().values;
    assert_ne!(stored, read);
    assert_eq!(read, folder.weights.read(name, &[64, 64]).unwrap().values);
}

#[test]
fn a_gguf_tokenizer_tokenizes_as_the_folder_tokenizer_does() {
    let folder = ModelFolder::open(&fixture("tiny-llama")).unwrap().tokenizer().unwrap();
    let gguf = ModelFolder::open(&fixture("gguf/tiny-llama.gguf")).unwrap().tokenizer().unwrap();
    let texts = ["What is the capital of France?", "  two  spaces, digits 12345 and ünïcödé\nnew line", "<|im_start|>user\nHi<|im_end|>"];
    for text in texts {
        assert_eq!(gguf.encode(text, true).unwrap(), folder.encode(text, true).unwrap(), "{text:?}");
        let ids = folder.encode(text, true).unwrap();
        assert_eq!(gguf.decode(&ids).unwrap(), folder.decode(&ids).unwrap(), "{text:?}");
    }
    assert_eq!((gguf.eos_token_ids.clone(), gguf.pad_token_id), (folder.eos_token_ids.clone(), folder.pad_token_id));
    let chat = [wgtune::tokenizer::Message::new("user", "Hi"), wgtune::tokenizer::Message::new("assistant", "Hello.")];
    assert_eq!(gguf.apply_chat_template(&chat, false).unwrap(), folder.apply_chat_template(&chat, false).unwrap());
}

/// From the command line: LoRA over a GGUF model, generation with the result, and a merged
/// export that transformers' layout reloads with the same logits as the adapter gives.
#[test]
fn lora_trains_over_a_gguf_model_and_exports_a_hugging_face_folder() {
    let _turn = crate::common::one_run_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let (model, data, run) = (fixture("gguf/tiny-llama.gguf"), fixture("data/chat.jsonl"), dir.path().join("run"));
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let wgtune = |args: &[String]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wgtune")).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    #[rustfmt::skip]
    wgtune(&["train", "--model", &s(&model), "--data", &s(&data), "--output", &s(&run), "--device", "cpu", "--max-steps", "3", "--lr", "1e-2", "--plain"].map(String::from));
    wgtune(
        &["generate", "--model", &s(&model), "--trained", &s(&run), "--prompt", "Hi", "--max-new-tokens", "3", "--device", "cpu"]
            .map(String::from),
    );
    let merged = dir.path().join("merged");
    wgtune(&["export", "--model", &s(&model), "--trained", &s(&run), "--merged", &s(&merged)].map(String::from));

    let exported = ModelFolder::open(&merged).unwrap();
    assert_eq!(exported.dtype(), wgtune::model::WeightDtype::F32);
    let device = burn::tensor::Device::flex();
    let tuned = wgtune::session::LoadedModel::load(&model, wgtune::device::DeviceChoice::Cpu).unwrap().with_trained(&run).unwrap();
    let inputs = Golden::open(&fixture("tiny-llama").join("golden.safetensors"));
    let hidden = tuned.model.hidden_states(inputs.ids("input_ids", &device), None, ForwardOptions::default());
    let adapted = values(tuned.model.logits(hidden)).0;
    let worst = worst_difference(&logits(&exported, &device), &adapted);
    assert!(worst < 1e-4, "the merged export's logits differ from the adapter's by {worst}");
    assert!(worst_difference(&adapted, &logits(&ModelFolder::open(&model).unwrap(), &device)) > 1e-3, "training changed the model");
}

/// `ollama:NAME[:TAG]` finds the model's GGUF blob through Ollama's manifest; a model that is not
/// installed is named with the command that installs it.
#[test]
fn an_ollama_model_opens_by_name() {
    let store = tempfile::tempdir().unwrap();
    let hex = "0123abcd".repeat(8);
    let digest = format!("sha256:{hex}");
    let manifest = store.path().join("manifests/registry.ollama.ai/library/tiny/q8");
    std::fs::create_dir_all(manifest.parent().unwrap()).unwrap();
    let layers = serde_json::json!({"schemaVersion": 2, "layers": [
        {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:ffff", "size": 10},
        {"mediaType": "application/vnd.ollama.image.model", "digest": digest, "size": 109152},
    ]});
    std::fs::write(&manifest, layers.to_string()).unwrap();
    std::fs::create_dir_all(store.path().join("blobs")).unwrap();
    let blob = store.path().join(format!("blobs/sha256-{hex}"));
    std::fs::copy(fixture("gguf/tiny-llama-q8_0.gguf"), &blob).unwrap();

    assert_eq!(wgtune::hub::ollama_model("tiny:q8", store.path()).unwrap(), blob);
    let err = wgtune::hub::ollama_model("tiny", store.path()).unwrap_err().to_string();
    assert!(err.contains("Ollama model `tiny:latest` is not installed (run `ollama pull tiny:latest`)"), "{err}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wgtune"))
        .args(["generate", "--model", "ollama:tiny:q8", "--prompt", "Hi", "--max-new-tokens", "2", "--device", "cpu"])
        .env("OLLAMA_MODELS", store.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Our Q8_0, Q4_0 and F16 encoders give the bytes `gguf` gave for the same values.
#[test]
fn quantizing_matches_gguf_byte_for_byte() {
    let file = GgufFile::open(&fixture("gguf/quants.gguf")).unwrap();
    let values = file.read("f32").unwrap();
    for (name, ggml_type) in [("f16", GgmlType::F16), ("q8_0", GgmlType::Q8_0), ("q4_0", GgmlType::Q4_0)] {
        let ours = ggml_type.quantize(&values).unwrap();
        assert!(ours == file.raw(name).unwrap(), "{name}: our encoding differs from gguf's");
    }
}

/// The tiny Llama with the fixture's PEFT adapter, merged on the CPU.
fn tuned_tiny_llama() -> wgtune::session::LoadedModel {
    // Attaching the adapter draws its initial values from the process-wide generator.
    let _turn = crate::common::one_run_at_a_time();
    wgtune::session::LoadedModel::load(&fixture("tiny-llama"), wgtune::device::DeviceChoice::Cpu)
        .unwrap()
        .with_trained(&fixture("tiny-llama/adapter"))
        .unwrap()
}

fn model_logits(model: &wgtune::model::CausalLm, device: &burn::tensor::Device) -> Vec<f32> {
    let inputs = Golden::open(&fixture("tiny-llama").join("golden.safetensors"));
    let hidden = model.hidden_states(inputs.ids("input_ids", device), None, ForwardOptions::default());
    values(model.logits(hidden)).0
}

/// A merged GGUF export reads back (by our reader, as llama.cpp's converter would have written
/// it) with the adapted model's logits and the folder's tokenizer; Q8_0 within its error.
#[test]
fn a_merged_gguf_export_reads_back_as_the_adapted_model() {
    let dir = tempfile::tempdir().unwrap();
    let tuned = tuned_tiny_llama();
    let device = burn::tensor::Device::flex();
    let adapted = model_logits(&tuned.model, &device);
    let (f32_file, q8_file) = (dir.path().join("tiny-f32.gguf"), dir.path().join("tiny-q8_0.gguf"));
    tuned.export_gguf(&f32_file, GgmlType::F32, false, |_, _| {}).unwrap();
    tuned.export_gguf(&q8_file, GgmlType::Q8_0, false, |_, _| {}).unwrap();

    let exported = ModelFolder::open(&f32_file).unwrap();
    assert_eq!(exported.config.rope_scaling, tuned.folder.config.rope_scaling);
    let worst = worst_difference(&logits(&exported, &device), &adapted);
    assert!(worst < 1e-5, "F32 GGUF export: logits differ from the adapted model's by {worst}");
    let q8 = ModelFolder::open(&q8_file).unwrap();
    let ModelWeights::Gguf(q8_model) = &q8.weights else { panic!("a GGUF model") };
    assert_eq!(q8_model.file.info("blk.0.attn_q.weight").unwrap().ggml_type, GgmlType::Q8_0);
    assert_eq!(q8_model.file.info("blk.0.attn_norm.weight").unwrap().ggml_type, GgmlType::F32);
    let worst = worst_difference(&logits(&q8, &device), &adapted);
    assert!(worst > 1e-4 && worst < 0.2, "Q8_0 GGUF export: logits differ by {worst}");

    // The tokenizer written from tokenizer.json tokenizes as the folder's does.
    let (ours, theirs) = (exported.tokenizer().unwrap(), tuned.folder.tokenizer().unwrap());
    for text in ["What is the capital of France?", "<|im_start|>user\n12 apples<|im_end|>"] {
        assert_eq!(ours.encode(text, true).unwrap(), theirs.encode(text, true).unwrap(), "{text:?}");
    }
    assert_eq!(
        (ours.eos_token_ids.clone(), ours.pad_token_id, ours.chat_template()),
        (theirs.eos_token_ids.clone(), theirs.pad_token_id, theirs.chat_template())
    );
}

/// The adapter GGUF holds llama.cpp's names, layout and alpha: A as PEFT's, B with the rows of
/// Q and K in llama.cpp's order.
#[test]
fn a_gguf_adapter_holds_peft_factors_in_llama_cpp_layout() {
    let dir = tempfile::tempdir().unwrap();
    let tuned = tuned_tiny_llama();
    let out = dir.path().join("lora.gguf");
    tuned.export_gguf_adapter(&out, false).unwrap();
    let file = GgufFile::open(&out).unwrap();
    assert_eq!(file.get_str("general.type").unwrap(), "adapter");
    assert_eq!(file.get_str("adapter.type").unwrap(), "lora");
    assert_eq!(file.get_str("general.architecture").unwrap(), "llama");
    assert_eq!(file.get("adapter.lora.alpha").unwrap().as_f64(), Some(8.0));
    assert_eq!(file.names().count(), 2 * 7 * 2, "A and B of 7 modules in 2 layers");

    let peft =
        wgtune::model::WeightFiles::open_files(&[fixture("tiny-llama/adapter/adapter_model.safetensors")], &fixture("tiny-llama/adapter"))
            .unwrap();
    let peft_name = |module: &str, factor: &str| format!("base_model.model.model.layers.0.{module}.lora_{factor}.weight");
    for (module, gguf) in [("mlp.up_proj", "ffn_up"), ("self_attn.v_proj", "attn_v")] {
        for factor in ["A", "B"] {
            let name = format!("blk.0.{gguf}.weight.lora_{}", factor.to_lowercase());
            let shape = file.info(&name).unwrap().shape.clone();
            assert_eq!(file.read(&name).unwrap(), peft.read(&peft_name(module, factor), &shape).unwrap().values, "{name}");
        }
    }
    // q_proj's B: 4 heads of 16 rows, each head's rotary halves interleaved.
    let b = peft.read(&peft_name("self_attn.q_proj", "B"), &[64, 4]).unwrap().values;
    let ours = file.read("blk.0.attn_q.weight.lora_b").unwrap();
    assert_ne!(ours, b);
    for (row_gguf, row_hf) in [(0, 0), (1, 8), (2, 1), (17, 24)] {
        assert_eq!(ours[row_gguf * 4..row_gguf * 4 + 4], b[row_hf * 4..row_hf * 4 + 4], "row {row_gguf}");
    }
}

#[test]
fn an_ollama_export_is_a_gguf_and_a_modelfile() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ollama");
    tuned_tiny_llama().export_ollama(&out, GgmlType::Q8_0, false, |_, _| {}).unwrap();
    let modelfile = std::fs::read_to_string(out.join("Modelfile")).unwrap();
    assert!(modelfile.starts_with("FROM ./model.gguf\nTEMPLATE \"\"\""), "{modelfile}");
    assert!(modelfile.contains("PARAMETER stop \"<|im_end|>\""), "{modelfile}");
    assert!(ModelFolder::open(&out.join("model.gguf")).is_ok());
    // The folder exists now: a second export is refused, and a GGUF file target too.
    let err = tuned_tiny_llama().export_ollama(&out, GgmlType::Q8_0, false, |_, _| {}).unwrap_err().to_string();
    assert!(err.contains("exists and is not empty"), "{err}");
    let err = tuned_tiny_llama().export_gguf(&out.join("model.gguf"), GgmlType::F16, false, |_, _| {}).unwrap_err().to_string();
    assert!(err.contains("exists; choose another name, or pass --overwrite"), "{err}");
}

/// Gemma as llama.cpp computes it exports with its norms as the factors they multiply by and its
/// soft-capping and window keys; a Gemma whose attention scale llama.cpp fixes otherwise (the
/// fixture's query_pre_attn_scalar 24 over 16-wide heads) is refused, saying why, before anything
/// is written. (`scripts/check_gguf_families.sh` runs such exports in llama.cpp.)
#[test]
fn gemma_exports_as_llama_cpp_computes_it_or_is_refused_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let _turn = crate::common::one_run_at_a_time();
    let load = |model: &std::path::Path| {
        wgtune::session::LoadedModel::load(model, wgtune::device::DeviceChoice::Cpu)
            .unwrap()
            .with_trained(&fixture("tiny-gemma2/adapter"))
            .unwrap()
    };
    let tuned = load(&fixture("tiny-gemma2"));
    let err = tuned.export_gguf(&dir.path().join("m.gguf"), GgmlType::F16, false, |_, _| {}).unwrap_err().to_string();
    assert!(
        err.contains("llama.cpp cannot run this gemma2 model as transformers does: its attention scales by 1/√24 (query_pre_attn_scalar)"),
        "{err}"
    );
    let err = tuned.export_ollama(&dir.path().join("ollama"), GgmlType::F16, false, |_, _| {}).unwrap_err().to_string();
    assert!(err.contains("query_pre_attn_scalar"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    // The same model with its attention scaled by 1/√head_dim, as llama.cpp scales it.
    let model = dir.path().join("gemma2");
    std::fs::create_dir(&model).unwrap();
    for entry in std::fs::read_dir(fixture("tiny-gemma2")).unwrap().flatten().filter(|e| e.path().is_file()) {
        std::fs::copy(entry.path(), model.join(entry.file_name())).unwrap();
    }
    let config = std::fs::read_to_string(model.join("config.json"))
        .unwrap()
        .replace("\"query_pre_attn_scalar\": 24", "\"query_pre_attn_scalar\": 16");
    std::fs::write(model.join("config.json"), config).unwrap();
    let out = dir.path().join("gemma2.gguf");
    load(&model).export_gguf(&out, GgmlType::F32, false, |_, _| {}).unwrap();
    let file = GgufFile::open(&out).unwrap();
    assert_eq!(file.get_str("general.architecture").unwrap(), "gemma2");
    assert_eq!(file.get("gemma2.attn_logit_softcapping").unwrap().as_f64(), Some(2.0));
    assert_eq!(file.get("gemma2.final_logit_softcapping").unwrap().as_f64(), Some(3.0));
    assert_eq!(file.get("gemma2.attention.sliding_window").unwrap().as_f64(), Some(4.0));
    let source = wgtune::model::WeightFiles::open_files(&[model.join("model.safetensors")], &model).unwrap();
    for (hf, gguf) in [
        ("model.layers.1.post_attention_layernorm.weight", "blk.1.post_attention_norm.weight"),
        ("model.layers.1.pre_feedforward_layernorm.weight", "blk.1.ffn_norm.weight"),
        ("model.layers.1.post_feedforward_layernorm.weight", "blk.1.post_ffw_norm.weight"),
        ("model.norm.weight", "output_norm.weight"),
    ] {
        let weight = source.read(hf, &[64]).unwrap().values;
        let stored: Vec<f32> = weight.iter().map(|w| w + 1.0).collect();
        assert_eq!(file.read(gguf).unwrap(), stored, "{gguf}: 1 + weight");
    }
    // And back: the GGUF opens as the model it came from.
    let unadapted = dir.path().join("gemma2-base.gguf");
    wgtune::session::LoadedModel::load(&model, wgtune::device::DeviceChoice::Cpu)
        .unwrap()
        .export_gguf(&unadapted, GgmlType::F32, false, |_, _| {})
        .unwrap();
    let device = burn::tensor::Device::flex();
    let (folder, gguf) = (ModelFolder::open(&model).unwrap(), ModelFolder::open(&unadapted).unwrap());
    assert_eq!(gguf.config.query_pre_attn_scalar, 16.0);
    assert_eq!((gguf.config.attn_logit_softcapping, gguf.config.final_logit_softcapping), (Some(2.0), Some(3.0)));
    let worst = worst_difference(&logits(&gguf, &device), &logits(&folder, &device));
    assert!(worst < 1e-5, "Gemma 2 from GGUF: logits {worst:e} from the folder's");
}

/// Phi-3 exports with q, k and v in one tensor, gate and up in another, its partial rotation and
/// LongRoPE's factors as the tensors and keys llama.cpp reads.
#[test]
fn phi3_exports_its_stacked_projections_and_longrope_factors() {
    let dir = tempfile::tempdir().unwrap();
    let _turn = crate::common::one_run_at_a_time();
    let model = wgtune::session::LoadedModel::load(&fixture("tiny-phi3"), wgtune::device::DeviceChoice::Cpu).unwrap();
    let out = dir.path().join("phi3.gguf");
    model.export_gguf(&out, GgmlType::F32, false, |_, _| {}).unwrap();
    let file = GgufFile::open(&out).unwrap();
    assert_eq!(file.get_str("general.architecture").unwrap(), "phi3");
    assert_eq!(file.get("phi3.rope.dimension_count").unwrap().as_f64(), Some(8.0), "half of the 16-wide heads rotate");
    assert_eq!(file.get("phi3.rope.scaling.original_context_length").unwrap().as_f64(), Some(16.0));
    let attn_factor = file.get("phi3.rope.scaling.attn_factor").unwrap().as_f64().unwrap();
    assert!((attn_factor - (1.0 + 4f64.ln() / 16f64.ln()).sqrt()).abs() < 1e-6, "{attn_factor}");
    assert_eq!(file.read("rope_factors_long.weight").unwrap(), [1.2, 2.5, 4.0, 7.5]);
    assert_eq!(file.read("rope_factors_short.weight").unwrap(), [1.0, 1.3, 2.1, 3.4]);
    assert_eq!(file.info("blk.0.attn_qkv.weight").unwrap().shape, [128, 64], "q, k and v of 64 + 32 + 32 rows");
    assert_eq!(file.info("blk.0.ffn_up.weight").unwrap().shape, [192, 64], "gate and up, 96 rows each");
    assert!(file.info("output.weight").is_some() && file.info("blk.0.attn_q.weight").is_none());
    // And back: the GGUF opens as the model it came from, LongRoPE and all.
    let device = burn::tensor::Device::flex();
    let (folder, gguf) = (ModelFolder::open(&fixture("tiny-phi3")).unwrap(), ModelFolder::open(&out).unwrap());
    assert_eq!(gguf.config.rotary_dim, folder.config.rotary_dim);
    let RopeScaling::LongRope { original_max_position_embeddings: 16, ref long_factor, .. } = gguf.config.rope_scaling else {
        panic!("{:?}", gguf.config.rope_scaling)
    };
    assert_eq!(long_factor.iter().map(|&f| f as f32).collect::<Vec<_>>(), [1.2, 2.5, 4.0, 7.5], "stored in f32");
    let worst = worst_difference(&logits(&gguf, &device), &logits(&folder, &device));
    assert!(worst < 1e-5, "Phi-3 from GGUF: logits {worst:e} from the folder's");
}

/// A SentencePiece tokenizer (Llama 2's and Mistral's kind) in GGUF: the merges derived from its
/// pieces' scores, with byte fallback, give the ids and the text `sentencepiece` itself gives.
#[test]
fn a_sentencepiece_gguf_tokenizer_tokenizes_as_sentencepiece_does() {
    let file = GgufFile::open(&fixture("gguf/spm-tokenizer.gguf")).unwrap();
    let (json, _) = wgtune::gguf::tokenizer_files(&file).unwrap();
    let tokenizer: tokenizers::Tokenizer = json.to_string().parse().unwrap();
    let cases: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(fixture("gguf/spm-tokenizer.json")).unwrap()).unwrap();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let encoding = tokenizer.encode(text, true).unwrap();
        assert_eq!(encoding.get_ids(), want.as_slice(), "{text:?}");
        assert_eq!(tokenizer.decode(&want, true).unwrap(), case["decoded"].as_str().unwrap(), "{text:?} decoded");
    }
}
