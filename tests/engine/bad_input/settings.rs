//! Hyperparameters and sampling settings out of range: each refused with the setting named,
//! before any weight is loaded.

use super::harness::{Sandbox, refused, s, train_args};

#[test]
fn training_settings_out_of_range_are_named() {
    let cases: &[(&str, &[&str], &str)] = &[
        ("rank 0", &["--rank", "0"], "`method.rank`: must be at least 1"),
        (
            "a rank beyond the layers",
            &["--rank", "100000"],
            "`method.rank`: 100000 is larger than q_proj's smaller dimension (64 × 64); use a rank of at most 64",
        ),
        ("a negative alpha", &["--alpha=-1"], "`method.alpha`: must be a positive number, not -1"),
        ("alpha NaN", &["--alpha", "NaN"], "`method.alpha`: must be a positive number, not NaN"),
        ("dropout of 1.5", &["--lora-dropout", "1.5"], "`method.dropout`: must be in [0, 1)"),
        ("an unknown target module", &["--target-modules", "q_proj,foo"], "unknown module `foo`"),
        ("learning rate 0", &["--lr", "0"], "`optim.lr`: must be a positive number"),
        ("an infinite learning rate", &["--lr", "inf"], "`optim.lr`: must be a positive number"),
        ("beta1 of 1", &["--beta1", "1"], "`optim.beta1/beta2`: must be in [0, 1)"),
        ("a warm-up ratio of 2", &["--warmup-ratio", "2"], "`optim.warmup_ratio`"),
        ("batch size 0", &["--batch-size", "0"], "`batch_size`: must be at least 1"),
        ("accumulation 0", &["--grad-accumulation", "0"], "`grad_accumulation`: must be at least 1"),
        ("max_seq_len 1", &["--max-seq-len", "1"], "`max_seq_len`: must be at least 2"),
        ("a validation fraction of 1.5", &["--validation-fraction", "1.5"], "`validation_fraction`: must be in [0, 1)"),
        (
            "more top layers than the model has",
            &["--method", "top-layers", "--top-layers", "9"],
            "`method.layers`: must be between 1 and 2",
        ),
        ("modules that match nothing", &["--method", "modules", "--modules", "nothing"], "no parameter matches"),
        ("an unknown method", &["--method", "qlora"], "unknown --method `qlora`"),
        ("zero steps", &["--max-steps", "0"], "`max_steps`: must be at least 1"),
        ("a negative weight decay", &["--weight-decay=-0.1"], "`optim.weight_decay`: must be 0 or a positive number, not -0.1"),
        ("gradient clipping at NaN", &["--max-grad-norm", "NaN"], "`optim.max_grad_norm`: must be 0 or a positive number, not NaN"),
        ("epsilon 0", &["--eps", "0"], "`optim.eps`: must be a small positive number, not 0"),
        (
            "a packed base under full fine-tuning",
            &["--method", "full", "--base-quant", "int4"],
            "`base_quant`: int4 packs a frozen base, and only LoRA freezes it: full fine-tuning trains base weights",
        ),
    ];
    for (case, flags, expected) in cases {
        let sandbox = Sandbox::new();
        let model = sandbox.model();
        let data = sandbox.write("d.jsonl", r#"{"prompt": "Hi ", "completion": "Hello."}"#);
        let run = sandbox.path("run");
        let mut args = train_args(&model, &data, &run);
        args.extend(*flags);
        refused(case, &sandbox, &args, &[expected]);
    }
}

#[test]
fn a_settings_file_with_a_typo_or_a_bad_value_is_named() {
    let sandbox = Sandbox::new();
    let config = sandbox.write("run.toml", "batch_sise = 3\n");
    refused("typo in run.toml", &sandbox, &["train", "--config", s(&config)], &[s(&config), "batch_sise"]);
    let config = sandbox.write("run2.toml", "batch_size = -3\n");
    refused("negative batch size in run.toml", &sandbox, &["train", "--config", s(&config)], &[s(&config), "batch_size"]);
}

#[test]
fn sampling_settings_out_of_range_are_named() {
    let cases: &[(&str, &[&str], &str)] = &[
        ("a negative temperature", &["--temperature=-1"], "`temperature`: must be 0 (greedy) or more, not -1"),
        ("temperature NaN", &["--temperature", "NaN"], "`temperature`: must be 0 (greedy) or more, not NaN"),
        ("top-p above 1", &["--top-p", "1.5"], "`top_p`: must be in (0, 1], not 1.5"),
        ("top-p 0", &["--top-p", "0"], "`top_p`: must be in (0, 1], not 0"),
        ("no new tokens", &["--max-new-tokens", "0"], "`max_new_tokens`: must be at least 1"),
    ];
    for (case, flags, expected) in cases {
        let sandbox = Sandbox::new();
        let model = sandbox.model();
        let mut args = vec!["generate", "--model", s(&model), "--prompt", "Hi", "--device", "cpu"];
        args.extend(*flags);
        refused(case, &sandbox, &args, &[expected]);
    }
    // The tiny model's context is 256 tokens.
    let sandbox = Sandbox::new();
    let model = sandbox.model();
    let prompt = "the quick brown fox ".repeat(200);
    let args = ["generate", "--model", s(&model), "--prompt", &prompt, "--device", "cpu"];
    refused(
        "a prompt longer than the context",
        &sandbox,
        &args,
        &["the prompt is", "tokens, which leaves no room in the model's context of 256 (max_position_embeddings); shorten it"],
    );
}

/// The memory check refuses an estimate over the device's memory and proposes settings that fit
/// (a whole model is too small to exceed this machine, so the check is driven directly).
#[test]
fn a_run_too_big_for_the_device_is_refused_with_a_setting_that_fits() {
    let config = wgtune::model::ModelConfig::from_json(
        r#"{"model_type": "llama", "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536,
        "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "tie_word_embeddings": true}"#,
        std::path::Path::new("config.json"),
    )
    .unwrap();
    let mut run = wgtune::train::TrainConfig { batch_size: 64, ..Default::default() };
    run.data.max_seq_len = 4096;
    let limit = 8u64 << 30;
    let err = wgtune::inspect::check_fits(&config, &run, false, 4096, limit, "CPU (2 threads)").unwrap_err().to_string();
    assert!(err.starts_with("this run needs about "), "{err}");
    assert!(err.contains("more than the 8.00 GiB of memory on CPU (2 threads); with --gradient-checkpointing --batch-size"), "{err}");
    // What it proposes really fits.
    let batch: usize = err.split("--batch-size ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    run.batch_size = batch;
    run.gradient_checkpointing = true;
    assert!(wgtune::inspect::check_fits(&config, &run, false, 4096, limit, "CPU").is_ok(), "{err}");
    run.batch_size = batch * 2;
    assert!(wgtune::inspect::check_fits(&config, &run, false, 4096, limit, "CPU").is_err(), "the largest batch that fits: {err}");
    // Nothing fits when the weights alone do not.
    let err = wgtune::inspect::check_fits(&config, &run, false, 4096, 100 << 20, "CPU").unwrap_err().to_string();
    assert!(err.contains("no setting fits (the weights alone take"), "{err}");
}
