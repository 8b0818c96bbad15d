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
    let first = &cases[0];
    assert_eq!((first.question.as_str(), first.reference.as_str()), ("What is the capital of France?", "The capital of France is Paris."));
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
    let ids = tokenizer.tokenize(&whole).unwrap().ids;
    assert!(ids.starts_with(&first.prompt_ids) && ids.len() > first.prompt_ids.len());
    let rest = tokenizer.decode(&ids[first.prompt_ids.len()..]).unwrap();
    assert!(rest.starts_with("The capital of France is Paris."), "{rest:?}");
    assert_eq!(load_cases(&chat, &data(&chat), &tokenizer, Some(3)).unwrap().0.len(), 3);

    // A run's tokenized validation records give the same questions as the file.
    let dataset = wgtune::data::Dataset::load(&data(&chat), &tokenizer, 0).unwrap();
    let from_examples = wgtune::eval::cases_from_examples(&dataset.train, &tokenizer).unwrap();
    assert_eq!(from_examples.len(), 8);
    for (a, b) in from_examples.iter().zip(&cases) {
        assert_eq!((&a.prompt_ids, &a.reference, a.origin.line), (&b.prompt_ids, &b.reference, b.origin.line));
        assert_eq!(a.question, b.question, "the question read back from the rendered prompt");
    }

    let csv = fixture("data/prompt_completion.csv");
    let (cases, _) = load_cases(&csv, &data(&csv), &tokenizer, None).unwrap();
    assert!(!cases.is_empty() && cases.iter().all(|c| !c.reference.is_empty() && !c.prompt_ids.is_empty()));

    let text = fixture("data/text.jsonl");
    let err = load_cases(&text, &data(&text), &tokenizer, None).unwrap_err().to_string();
    assert!(err.contains("text.jsonl") && err.contains("no record to evaluate: a plain-text record has no reply"), "{err}");
}

/// Fine-tuned until it knows its eight answers, the tiny model gives most of them word for word;
/// the random base model gives none. The run's own evaluations (validating on the same records)
/// answer its first four and record how they score, from nothing at step 0 to most at the end.
#[test]
fn a_model_that_learned_its_data_answers_it() {
    let _turn = one_run_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let mut config = tiny_config(&dir.path().join("run"), DeviceChoice::Cpu);
    config.max_steps = Some(120);
    config.eval_every = 60;
    config.data.validation_file = Some(fixture("data/chat.jsonl"));
    let (_tx, rx) = channel();
    let summary = train(&config, RunStart::New, &EventSink::none(), &rx).unwrap();
    let (_, evals) = wgtune::train::read_metrics(&config.output_dir).unwrap();
    let generated: Vec<_> = evals.iter().map(|e| e.generation.clone().expect("answers at every evaluation")).collect();
    assert_eq!(generated.len(), 3, "steps 0, 60 and 120");
    assert!(generated.iter().all(|g| g.answers.len() == 4), "{generated:?}");
    assert_eq!(generated[0].summary.exact_match, 0.0);
    assert!(generated[2].summary.exact_match >= 0.5, "{:?}", generated[2]);
    let chat = fixture("data/chat.jsonl");
    let base = LoadedModel::load(&config.model, DeviceChoice::Cpu).unwrap();
    let (cases, _) = load_cases(&chat, &data(&chat), &base.tokenizer, None).unwrap();
    let mut progress = Vec::new();
    let before = evaluate(&base.model, &base.tokenizer, &cases, 64, |done, total| progress.push((done, total))).unwrap();
    assert_eq!((progress, before.answers.len()), (vec![(8, 8)], 8), "one batch of eight");
    assert_eq!(before.answers.iter().map(|a| a.line).collect::<Vec<_>>(), cases.iter().map(|c| c.origin.line).collect::<Vec<_>>());
    assert_eq!(before.summary.exact_match, 0.0, "{:?}", before.answers);
    let tuned = base.with_trained(&summary.final_checkpoint).unwrap();
    let after = evaluate(&tuned.model, &tuned.tokenizer, &cases, 64, |_, _| {}).unwrap();
    assert!(after.summary.exact_match >= 0.75, "{:?}", after.answers);
    assert!(after.summary.token_f1 > before.summary.token_f1 + 0.5, "{:?} against {:?}", after.summary, before.summary);
    let right = after.answers.iter().find(|a| a.scores.exact).unwrap();
    assert_eq!(right.answer, right.reference);
}
