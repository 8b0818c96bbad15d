//! `wgtune eval`: what a model answers to held-out records, scored against their replies; with
//! `--compare`, the base model and the fine-tuned one side by side.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use wgtune::classify::{ClassificationReport, ClassificationScores, ClassifiedBy, LabelSet, evaluate_classifier};
use wgtune::data::{DataConfig, is_labelled_file, read_labelled_file};
use wgtune::device::DeviceChoice;
use wgtune::eval::{Answer, EvalReport, Summary, evaluate, load_cases};
use wgtune::session::{LoadedModel, trained_labels};

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Model: a Hugging Face folder, a .gguf file, ollama:NAME[:TAG], or a Hugging Face model id (owner/name: from the local cache, else downloaded into it).
    #[arg(long)]
    pub model: PathBuf,
    /// Trained weights: a PEFT adapter folder, a run directory, or one of its checkpoints [default: none, the base model].
    #[arg(long)]
    pub trained: Option<PathBuf>,
    /// Held-out records (prompt/completion, chat or alpaca; or text and label for a classifier; JSONL, JSON, CSV or Parquet).
    #[arg(long)]
    pub data: PathBuf,
    /// Evaluate the base model too and show the two side by side (needs --trained).
    #[arg(long)]
    pub compare: bool,
    /// Most tokens each answer may have.
    #[arg(long, default_value_t = 64)]
    pub max_new_tokens: usize,
    /// Evaluate only the first N records [default: all].
    #[arg(long)]
    pub limit: Option<usize>,
    /// How many answers to print (those that changed first with --compare, else the wrong ones first).
    #[arg(long, default_value_t = 5)]
    pub show: usize,
    /// Where to run: auto (a hardware GPU, else the CPU), wgpu or cpu.
    #[arg(long, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Also write the reports (every answer and its scores) as JSON here (a new file, unless --overwrite).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Replace the --json file when it exists.
    #[arg(long)]
    pub overwrite: bool,
}

pub fn run(args: EvalArgs) -> Result<()> {
    if args.compare && args.trained.is_none() {
        anyhow::bail!("--compare puts the base model beside trained weights: give them with --trained");
    }
    // Before any answer is generated, not after; never the records being evaluated.
    if let Some(path) = &args.json {
        wgtune::fsutil::check_file_target(path, &[&args.data], args.overwrite, "--overwrite")?;
    }
    let model_dir = super::progress::resolve_model(&args.model)?;
    let base = LoadedModel::load(&model_dir, args.device)?;
    let data = DataConfig { train_file: args.data.clone(), ..Default::default() };
    let trained_labels = args.trained.as_deref().map(trained_labels).transpose()?.flatten();
    if trained_labels.is_some() || base.model.num_labels().is_some() || is_labelled_file(&args.data, &data)? {
        return run_classification(&args, base, trained_labels.as_ref(), &data);
    }
    let (cases, skipped) = load_cases(&args.data, &data, &base.tokenizer, args.limit)?;
    println!("data           {} ({} records{})", args.data.display(), cases.len(), skipped_note(skipped.len()));
    for s in skipped.iter().take(3) {
        println!("  skipped line {}: {}", s.origin.line, s.reason);
    }
    let progress = |label: &'static str| move |done: usize, total: usize| eprint!("\r{label}: {done}/{total}");
    let base_report = if args.compare || args.trained.is_none() {
        let report = evaluate(&base.model, &base.tokenizer, &cases, args.max_new_tokens, progress("base model"))?;
        eprintln!();
        Some(report)
    } else {
        None
    };
    let tuned_report = match &args.trained {
        Some(trained) => {
            let tuned = base.with_trained(trained)?;
            let report = evaluate(&tuned.model, &tuned.tokenizer, &cases, args.max_new_tokens, progress("fine-tuned"))?;
            eprintln!();
            Some(report)
        }
        None => None,
    };
    let columns: Vec<(&str, &EvalReport)> =
        [("base", base_report.as_ref()), ("fine-tuned", tuned_report.as_ref())].into_iter().filter_map(|(n, r)| Some((n, r?))).collect();
    summary_table_ui(&columns);
    examples_ui(&columns, args.show);
    write_reports(args.json.as_deref(), &columns)
}

/// The reports as one JSON object, by column name, when `--json` asked for them.
fn write_reports<N: AsRef<str>, R: serde::Serialize>(path: Option<&std::path::Path>, columns: &[(N, &R)]) -> Result<()> {
    let Some(path) = path else { return Ok(()) };
    let json: serde_json::Map<String, serde_json::Value> =
        columns.iter().map(|(name, report)| (name.as_ref().to_string(), serde_json::to_value(report).unwrap_or_default())).collect();
    wgtune::fsutil::write_atomic(path, serde_json::to_string_pretty(&json)?.as_bytes())?;
    println!("reports        {}", path.display());
    Ok(())
}

/// `wgtune eval` on a classification file: accuracy, precision, recall and F1 of the base model
/// (its head, or zero-shot from the label names) and of the trained classifier.
fn run_classification(args: &EvalArgs, base: LoadedModel, labels: Option<&LabelSet>, data: &DataConfig) -> Result<()> {
    let labels = labels.or(base.model.config.labels.as_ref()).cloned();
    let (mut examples, labels, report) = read_labelled_file(&args.data, data, &base.tokenizer, labels.as_ref())?;
    if let Some(limit) = args.limit {
        examples.truncate(limit);
    }
    println!(
        "data           {} ({} records, classes {}{})",
        args.data.display(),
        examples.len(),
        labels.names.join(", "),
        skipped_note(report.skipped.len())
    );
    for s in report.skipped.iter().take(3) {
        println!("  skipped line {}: {}", s.origin.line, s.reason);
    }
    let base_report = if args.compare || args.trained.is_none() {
        eprintln!("base model: classifying {} records…", examples.len());
        Some(evaluate_classifier(&base.model, &base.tokenizer, &examples, &labels)?)
    } else {
        None
    };
    let tuned_report = match &args.trained {
        Some(trained) => {
            let tuned = base.with_trained(trained)?;
            eprintln!("fine-tuned: classifying {} records…", examples.len());
            Some(evaluate_classifier(&tuned.model, &tuned.tokenizer, &examples, &labels)?)
        }
        None => None,
    };
    let columns: Vec<(String, &ClassificationReport)> = [("base", base_report.as_ref()), ("fine-tuned", tuned_report.as_ref())]
        .into_iter()
        .filter_map(|(name, r)| {
            let r = r?;
            let name = if r.by == ClassifiedBy::ZeroShot { format!("{name} (0-shot)") } else { name.to_string() };
            Some((name, r))
        })
        .collect();
    let header: String = columns.iter().map(|(name, _)| format!("{name:>18}")).collect();
    println!("{:<24}{header}", "");
    for row in 0..4 {
        let name = columns[0].1.scores.measures()[row].0;
        let cells: String = columns.iter().map(|(_, r)| format!("{:>17.1}%", 100.0 * r.scores.measures()[row].1)).collect();
        println!("{name:<24}{cells}");
    }
    if let Some((name, last)) = columns.last() {
        confusion_ui(name, &last.scores, &labels);
    }
    let first = columns[0].1;
    let interesting = |i: usize| match columns.get(1) {
        Some((_, other)) => other.answers[i].predicted != first.answers[i].predicted,
        None => !first.answers[i].correct(),
    };
    let mut order: Vec<usize> = (0..first.answers.len()).collect();
    order.sort_by_key(|&i| !interesting(i));
    for &i in order.iter().take(args.show) {
        let a = &first.answers[i];
        println!("line {}: {}", a.line, a.text.trim());
        println!("  {:<18}{}", "reference:", a.reference);
        for (name, report) in &columns {
            let answer = &report.answers[i];
            println!("  {:<18}{} ({:.0} %)", format!("{name}:"), answer.predicted, 100.0 * answer.confidence);
        }
    }
    write_reports(args.json.as_deref(), &columns)
}

/// The confusion matrix: a row per true class, a column per predicted one.
fn confusion_ui(name: &str, scores: &ClassificationScores, labels: &LabelSet) {
    let width = labels.names.iter().map(|n| n.chars().count()).max().unwrap_or(4).max(5) + 2;
    println!("\nconfusion ({name}; rows: true class, columns: predicted)");
    let header: String = labels.names.iter().map(|n| format!("{n:>width$}")).collect();
    println!("{:<width$}{header}", "");
    for (row, counts) in scores.confusion.iter().enumerate() {
        let cells: String = counts.iter().map(|c| format!("{c:>width$}")).collect();
        println!("{:<width$}{cells}", labels.name(row));
    }
    println!();
}

fn skipped_note(n: usize) -> String {
    if n == 0 { String::new() } else { format!(", {n} skipped") }
}

fn summary_table_ui(columns: &[(&str, &EvalReport)]) {
    let header: String = columns.iter().map(|(name, _)| format!("{name:>12}")).collect();
    println!("{:<24}{header}", "");
    let names = Summary::default().measures().map(|(name, _)| name);
    for (row, name) in names.iter().enumerate() {
        let cells: String = columns.iter().map(|(_, r)| format!("{:>11.1}%", 100.0 * r.summary.measures()[row].1)).collect();
        println!("{name:<24}{cells}");
    }
}

/// The answers most worth reading: with two models, those whose answer changed; with one, the
/// wrong ones; then the rest.
fn examples_ui(columns: &[(&str, &EvalReport)], show: usize) {
    let Some((_, first)) = columns.first() else { return };
    let interesting = |i: usize, a: &Answer| match columns.get(1) {
        Some((_, other)) => other.answers.get(i).is_some_and(|b| b.answer != a.answer),
        None => !a.scores.contains,
    };
    let mut order: Vec<usize> = (0..first.answers.len()).collect();
    order.sort_by_key(|&i| !interesting(i, &first.answers[i]));
    for &i in order.iter().take(show) {
        let a = &first.answers[i];
        println!("line {}: {}", a.line, a.question.trim());
        println!("  {:<12}{}", "reference:", a.reference.trim());
        for (name, report) in columns {
            if let Some(answer) = report.answers.get(i) {
                println!("  {:<12}{}", format!("{name}:"), answer.answer);
            }
        }
    }
}
