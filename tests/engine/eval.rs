//! `wgtune eval`'s engine: records become questions with references exactly as training renders
//! them, and a model that learned its data answers it where the base model does not.

use std::sync::mpsc::channel;

use wgtune::data::DataConfig;
use wgtune::device::DeviceChoice;
use wgtune::eval::{evaluate, load_cases};
use wgtune::model::ModelFolder;
use wgtune::session::LoadedModel;
use wgtune::train::{EventSink, RunStart, train};

use crate::common::{fixture, one_run_at_a_time};
use crate::e2e::tiny_config;

fn data(path: &std::path::Path) -> DataConfig {
    DataConfig { train_file: path.to_path_buf(), ..Default::default() }
}

/// Each record's prompt is its rendered text up to the reply, and the reference is the reply; a
/// plain-text file has no replies and is refused, naming the file and the reason.
#[test]
fn records_become_questions_with_their_replies() {
    let tokenizer = ModelFolder::open(&fixture("tiny-llama")).unwrap().tokenizer().unwrap();
    let chat = fixture("data/chat.jsonl");
    let (cases, skipped) = load_cases(&chat, &data(&chat), &tokenizer, None).unwrap();
    assert_eq!((cases.len(), skipped.len()), (8, 0));
    let (first, question) = &cases[0];
    assert_eq!((question.as_str(), first.reference.as_str()), ("What is the capital of France?", "The capital of France is Paris."));
    assert_eq!(first.origin.line, 1);
    let whole = wgtune::data::render(
        &wgtune::data::Sample::Chat(vec![
            wgtune::tokenizer::Message::new("user", "What is the capital of France?"),
            wgtune::tokenizer::Message::new("assistant", "The capital of France is Paris."),
        ]),
        &tokenizer,
        false,
    )
    .unwrap();
    assert!(
        whole.text.starts_with(&first.prompt.text) && whole.text[first.prompt.text.len()..].starts_with("The capital of France is Paris.")
    );
    assert_eq!(load_cases(&chat, &data(&chat), &tokenizer, Some(3)).unwrap().0.len(), 3);

    let csv = fixture("data/prompt_completion.csv");
    let (cases, _) = load_cases(&csv, &data(&csv), &tokenizer, None).unwrap();
    assert!(!cases.is_empty() && cases.iter().all(|(c, q)| !c.reference.is_empty() && c.prompt.text == *q));

    let text = fixture("data/text.jsonl");
    let err = load_cases(&text, &data(&text), &tokenizer, None).unwrap_err().to_string();
    assert!(err.contains("text.jsonl") && err.contains("no record to evaluate: a plain-text record has no reply"), "{err}");
}

/// Fine-tuned until it knows its eight answers, the tiny model gives most of them word for word;
/// the random base model gives none.
#[test]
fn a_model_that_learned_its_data_answers_it() {
    let _turn = one_run_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let mut config = tiny_config(&dir.path().join("run"), DeviceChoice::Cpu);
    config.max_steps = Some(120);
    let (_tx, rx) = channel();
    let summary = train(&config, RunStart::New, &EventSink::none(), &rx).unwrap();
    let chat = fixture("data/chat.jsonl");
    let base = LoadedModel::load(&config.model, DeviceChoice::Cpu).unwrap();
    let (cases, _) = load_cases(&chat, &data(&chat), &base.tokenizer, None).unwrap();
    let mut calls = 0;
    let before = evaluate(&base.model, &base.tokenizer, &cases, 64, |_, _| calls += 1).unwrap();
    assert_eq!((calls, before.answers.len()), (8, 8));
    assert_eq!(before.summary.exact_match, 0.0, "{:?}", before.answers);
    let tuned = base.with_trained(&summary.final_checkpoint).unwrap();
    let after = evaluate(&tuned.model, &tuned.tokenizer, &cases, 64, |_, _| {}).unwrap();
    assert!(after.summary.exact_match >= 0.75, "{:?}", after.answers);
    assert!(after.summary.token_f1 > before.summary.token_f1 + 0.5, "{:?} against {:?}", after.summary, before.summary);
    let right = after.answers.iter().find(|a| a.scores.exact).unwrap();
    assert_eq!(right.answer, right.reference);
}
