//! Hostile datasets: each bad record is named by file, line and reason, never trained on
//! silently, and with `--bad-records skip` (the default) listed in `RUN_DIR/skipped.jsonl`.

use super::harness::{Sandbox, refused, s, succeeds, train_args};

const GOOD: &str = r#"{"prompt": "What is two and three? ", "completion": "Five."}"#;
const CHAT_GOOD: &str = r#"{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}"#;

/// (case, file name, contents, what the message says after `FILE:`)
const BAD_RECORDS: &[(&str, &str, &str, &str)] = &[
    ("invalid JSON line", "d.jsonl", "GOOD\n{\"prompt\": \"unterminated\nGOOD\n", ":2: invalid JSON"),
    ("a JSON line that is not an object", "d.jsonl", "GOOD\n[1, 2]\n", ":2: expected a JSON object, found an array"),
    (
        "a number where text is expected",
        "d.jsonl",
        "GOOD\n{\"prompt\": \"Two and three?\", \"completion\": 5}\n",
        ":2: field `completion` is a number, expected text",
    ),
    (
        "a boolean where text is expected",
        "d.jsonl",
        "GOOD\n{\"prompt\": true, \"completion\": \"Yes.\"}\n",
        ":2: field `prompt` is a boolean, expected text",
    ),
    ("an empty completion", "d.jsonl", "GOOD\n{\"prompt\": \"Say nothing.\", \"completion\": \"\"}\n", ":2: field `completion` is empty"),
    (
        "an alpaca output that is an object",
        "d.jsonl",
        "{\"instruction\": \"a\", \"output\": \"b\"}\n{\"instruction\": \"a\", \"output\": {\"x\": 1}}\n",
        ":2: field `output` is an object, expected text",
    ),
    (
        "an empty alpaca output",
        "d.jsonl",
        "{\"instruction\": \"a\", \"output\": \"b\"}\n{\"instruction\": \"a\", \"input\": \"\", \"output\": \" \"}\n",
        ":2: field `output` is empty",
    ),
    (
        "an empty assistant reply",
        "d.jsonl",
        "CHAT\n{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"\"}]}\n",
        ":2: messages[1]: empty assistant reply",
    ),
    (
        "an unknown chat role",
        "d.jsonl",
        "CHAT\n{\"messages\": [{\"role\": \"narrator\", \"content\": \"Once\"}, {\"role\": \"assistant\", \"content\": \"Hi.\"}]}\n",
        ":2: messages[0]: unknown role `narrator`",
    ),
    (
        "an unknown ShareGPT speaker",
        "d.jsonl",
        "{\"conversations\": [{\"from\": \"human\", \"value\": \"Hi\"}, {\"from\": \"gpt\", \"value\": \"Yo.\"}]}\n{\"conversations\": [{\"from\": \"alien\", \"value\": \"Hi\"}, {\"from\": \"gpt\", \"value\": \"Yo.\"}]}\n",
        ":2: conversations[0]: unknown from `alien`",
    ),
    ("messages that are not a list", "d.jsonl", "CHAT\n{\"messages\": \"hello\"}\n", ":2: field `messages` must be an array of messages"),
    ("an empty conversation", "d.jsonl", "CHAT\n{\"messages\": []}\n", ":2: field `messages` is empty"),
    ("a message without content", "d.jsonl", "CHAT\n{\"messages\": [{\"role\": \"user\"}]}\n", ":2: messages[0]: missing field `content`"),
    (
        "a conversation with no reply",
        "d.jsonl",
        "CHAT\n{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}\n",
        ":2: no tokens to train on",
    ),
    ("invalid UTF-8 in one line", "d.jsonl", "GOOD\n{\"prompt\": \"\u{0}\", \"completion\": \"x\"}\nGOOD\n", ":2: invalid UTF-8 at byte"),
    ("a text record of blanks", "d.jsonl", "{\"text\": \"Some text.\"}\n{\"text\": \"   \"}\n", ":2: field `text` is empty"),
    ("a CSV row with a missing column", "d.csv", "prompt,completion\nHi ,Hello.\nonly one column\n", ":3: invalid CSV row"),
    ("invalid UTF-8 in a CSV row", "d.csv", "prompt,completion\nHi ,Hello.\nHi ,\u{0}\n", ":3: invalid UTF-8 in field 2"),
    ("a JSON array element that is a number", "d.json", "[\nGOOD,\n7\n]", ":3: expected a JSON object, found a number"),
    ("a missing field", "d.jsonl", "GOOD\n{\"prompt\": \"no completion\"}\n", ":2: missing field `completion`"),
];

/// Writes a case's file, with `GOOD`/`CHAT` standing for good records and `\0` for a byte
/// that is not UTF-8.
fn write_case(sandbox: &Sandbox, name: &str, contents: &str) -> std::path::PathBuf {
    let text = contents.replace("GOOD", GOOD).replace("CHAT", CHAT_GOOD);
    let bytes: Vec<u8> = text.bytes().map(|b| if b == 0 { 0xFF } else { b }).collect();
    sandbox.write(name, bytes)
}

#[test]
fn each_bad_record_stops_the_run_with_its_file_line_and_reason() {
    for (case, name, contents, expected) in BAD_RECORDS {
        let sandbox = Sandbox::new();
        let model = sandbox.model();
        let data = write_case(&sandbox, name, contents);
        let run = sandbox.path("run");
        let at = format!("{}{expected}", s(&data));
        refused(case, &sandbox, &train_args(&model, &data, &run), &[&at]);
    }
}

#[test]
fn skipped_records_are_listed_in_the_terminal_and_in_skipped_jsonl() {
    let sandbox = Sandbox::new();
    let model = sandbox.model();
    // Every bad record of the corpus after one good one, in one file of the prompt/completion shape.
    let bad: Vec<&str> =
        BAD_RECORDS.iter().filter(|c| c.1 == "d.jsonl" && c.2.starts_with("GOOD")).map(|c| c.2.lines().nth(1).unwrap()).collect();
    let contents = format!("GOOD\n{}\nGOOD\n", bad.join("\n"));
    let data = write_case(&sandbox, "d.jsonl", &contents);
    let run = sandbox.path("run");
    let mut args = train_args(&model, &data, &run);
    args.truncate(args.len() - 2);
    let stdout = succeeds("skip", &args);
    assert!(stdout.contains(&format!("skipped {}:2: invalid JSON", s(&data))), "{stdout}");
    assert!(stdout.contains(&format!("{} records skipped", bad.len())), "{stdout}");
    assert!(stdout.contains("skipped.jsonl"), "{stdout}");
    let listed = std::fs::read_to_string(run.join("skipped.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = listed.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), bad.len());
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["file"], s(&data));
        assert_eq!(line["line"], i + 2);
        assert!(!line["reason"].as_str().unwrap().is_empty());
    }
}

#[test]
fn a_byte_order_mark_keeps_the_first_record() {
    let sandbox = Sandbox::new();
    let model = sandbox.model();
    for name in ["d.jsonl", "d.csv", "d.json"] {
        let contents = match name {
            "d.csv" => "prompt,completion\nHi ,Hello.\nBye ,Goodbye.\n".to_string(),
            "d.json" => format!("[{GOOD},\n{GOOD}]"),
            _ => format!("{GOOD}\n{GOOD}\n"),
        };
        let data = sandbox.write(name, [b"\xEF\xBB\xBF".as_slice(), contents.as_bytes()].concat());
        let run = sandbox.path(&format!("run-{name}"));
        let stdout = succeeds(name, &train_args(&model, &data, &run));
        assert!(stdout.contains("2 training"), "{name}: {stdout}");
    }
}

#[test]
fn whole_file_problems_name_the_file_and_line() {
    let cases: &[(&str, &str, &str, &str)] = &[
        ("a truncated JSON array", "d.json", "[\nGOOD,\n{\"prompt\": ", ":3: invalid JSON"),
        ("a JSON object with no records array", "d.json", "{\"rows\": []}", "expected a JSON array of records"),
        (
            "fields of no known shape",
            "d.jsonl",
            "{\"question\": \"a\", \"answer\": \"b\"}\n",
            ":1: cannot tell the dataset format from the fields [answer, question]",
        ),
        ("an empty file", "d.jsonl", "", "nothing to train on: 0 records read"),
        ("only bad lines", "d.jsonl", "{oops}\n[]\n", "nothing to train on"),
    ];
    for (case, name, contents, expected) in cases {
        let sandbox = Sandbox::new();
        let model = sandbox.model();
        let data = write_case(&sandbox, name, contents);
        let run = sandbox.path("run");
        let mut args = train_args(&model, &data, &run);
        args.truncate(args.len() - 2);
        refused(case, &sandbox, &args, &[s(&data), expected]);
    }
}

#[test]
fn a_missing_or_unreadable_dataset_is_named() {
    let sandbox = Sandbox::new();
    let model = sandbox.model();
    let run = sandbox.path("run");
    let missing = sandbox.path("missing.jsonl");
    refused("missing dataset", &sandbox, &train_args(&model, &missing, &run), &[s(&missing), "No such file"]);
    let folder = sandbox.path("a-folder.jsonl");
    std::fs::create_dir_all(&folder).unwrap();
    refused("a folder as dataset", &sandbox, &train_args(&model, &folder, &run), &[s(&folder)]);
}

#[test]
fn a_bad_validation_record_names_the_validation_file() {
    let sandbox = Sandbox::new();
    let model = sandbox.model();
    let data = write_case(&sandbox, "train.jsonl", "GOOD\nGOOD\n");
    let validation = write_case(&sandbox, "val.jsonl", "GOOD\n{\"prompt\": 3, \"completion\": \"x\"}\n");
    let run = sandbox.path("run");
    let mut args = train_args(&model, &data, &run);
    args.extend(["--validation", s(&validation)]);
    let at = format!("{}:2: field `prompt` is a number", s(&validation));
    refused("bad validation record", &sandbox, &args, &[&at]);
}

#[test]
fn a_record_over_the_size_limit_is_skipped_unread() {
    let sandbox = Sandbox::new();
    let model = sandbox.model();
    // 1.9 MiB of completion: over the 1 MiB per-record limit at max_seq_len 512.
    let huge = format!(r#"{{"prompt": "Hi ", "completion": "{}"}}"#, "word ".repeat(400_000));
    let data = sandbox.write("d.jsonl", format!("{GOOD}\n{huge}\n{GOOD}\n"));
    let run = sandbox.path("run");
    let at = format!("{}:2: record of 1.9 MiB is over the per-record limit of 1.0 MiB", s(&data));
    refused("huge record", &sandbox, &train_args(&model, &data, &run), &[&at]);
}

#[test]
fn a_forced_format_that_does_not_fit_and_a_long_record_are_named() {
    let sandbox = Sandbox::new();
    let model = sandbox.model();
    let data = write_case(&sandbox, "d.jsonl", "GOOD\n");
    let run = sandbox.path("run");
    let mut args = train_args(&model, &data, &run);
    args.extend(["--format", "chat"]);
    let at = format!("{}:1: missing field `messages`", s(&data));
    refused("forced chat format", &sandbox, &args, &[&at]);

    let long = format!(r#"{{"prompt": "Hi. ", "completion": "{}"}}"#, "fox jumps over the lazy dog. ".repeat(20));
    let data = sandbox.write("long.jsonl", format!("{GOOD}\n{long}\n"));
    let mut args = train_args(&model, &data, &run);
    args.extend(["--max-seq-len", "32", "--long-records", "error"]);
    let at = format!("{}:2:", s(&data));
    refused("long record", &sandbox, &args, &[&at, "longer than max_seq_len 32"]);
}

/// A dataset with columns of its own names trains through `--columns`; a mapped column a record
/// lacks, and a field no shape reads, are named in the user's terms.
#[test]
fn columns_of_other_names_are_mapped_and_named_in_errors() {
    let sandbox = Sandbox::new();
    let model = sandbox.model();
    let data = sandbox.write("qa.csv", "id,question,answer\n1,What is two and three? ,Five.\n2,Say hi. ,Hi.\n");
    let run = sandbox.path("run");
    let mut args = train_args(&model, &data, &run);
    args.extend(["--columns", "prompt=question,completion=answer"]);
    let stdout = succeeds("mapped columns", &args);
    assert!(stdout.contains("2 training"), "{stdout}");
    assert!(std::fs::read_to_string(run.join("run.toml")).unwrap().contains("completion = \"answer\""));

    let data = sandbox.write("qa.jsonl", "{\"question\": \"Hi\", \"answer\": \"Hello.\"}\n{\"question\": \"Bye\", \"reply\": \"Bye.\"}\n");
    let run = sandbox.path("run2");
    let mut args = train_args(&model, &data, &run);
    args.extend(["--columns", "prompt=question,completion=answer"]);
    let at = format!("{}:2: missing column `answer` (mapped to `completion`)", s(&data));
    refused("a mapped column missing", &sandbox, &args, &[&at]);
    let mut args = train_args(&model, &data, &run);
    args.extend(["--columns", "question=prompt"]);
    refused("an unknown field", &sandbox, &args, &["`question` is not a field wgtune reads (instruction, input, output"]);
}

/// A Parquet dataset (how Hugging Face stores datasets) trains through a column mapping, flat or
/// a list-of-struct conversation; a file that is not Parquet is named.
#[test]
fn a_parquet_dataset_trains_through_its_columns() {
    let sandbox = Sandbox::new();
    let model = sandbox.model();
    let data = crate::common::fixture("data/qa.parquet");
    for (i, mapping) in ["prompt=question,completion=answer", "messages=conversation"].into_iter().enumerate() {
        let run = sandbox.path(&format!("run-{i}"));
        let mut args = train_args(&model, &data, &run);
        args.extend(["--columns", mapping]);
        let stdout = succeeds(mapping, &args);
        assert!(stdout.contains("3 training"), "{mapping}: {stdout}");
    }
    let broken = sandbox.write("broken.parquet", "PAR1 not really");
    let run = sandbox.path("run-broken");
    refused("a broken Parquet file", &sandbox, &train_args(&model, &broken, &run), &[s(&broken), "not a readable Parquet file"]);
    // Found by `wgtune-fuzz dataset`: a dictionary-encoded page whose dictionary is not there made
    // the parquet crate panic ("Decoder for dict should have been set").
    let damaged =
        sandbox.write("damaged.parquet", std::fs::read(crate::common::fixture("fuzz/parquet-without-its-dictionary.parquet")).unwrap());
    let expected = [&format!("{}:1: unreadable Parquet row: the file is damaged", s(&damaged)) as &str];
    refused("a Parquet page without its dictionary", &sandbox, &train_args(&model, &damaged, &run), &expected);
}

/// Classification datasets: a label that is missing, empty, a float or a list, one class only, a
/// validation label the training file lacks, and a dataset of the other task each stop the run
/// with the file, the line and the field.
#[test]
fn bad_classification_records_name_the_file_line_and_field() {
    const A: &str = r#"{"text": "Great.", "label": "good"}"#;
    const B: &str = r#"{"text": "Awful.", "label": "bad"}"#;
    let cases: &[(&str, &str, &str, &str)] = &[
        ("a missing label", "classification", "<a>\n<b>\n{\"text\": \"Fine.\"}\n", ":3: missing field `label`"),
        ("an empty label", "classification", "<a>\n<b>\n{\"text\": \"Fine.\", \"label\": \" \"}\n", ":3: field `label` is empty"),
        (
            "a float label",
            "classification",
            "<a>\n<b>\n{\"text\": \"Fine.\", \"label\": 0.5}\n",
            ":3: field `label` is the number 0.5: a label is a string or an integer",
        ),
        (
            "a list label",
            "classification",
            "<a>\n<b>\n{\"text\": \"Fine.\", \"label\": [\"good\"]}\n",
            ":3: field `label` is an array: a label is a string or an integer",
        ),
        ("a missing text", "classification", "<a>\n<b>\n{\"label\": \"good\"}\n", ":3: missing field `text`"),
        ("one class only", "classification", "<a>\n<a>\n", "every record has the label `good`: a classifier needs at least two classes"),
        (
            "no label column at all",
            "classification",
            "{\"text\": \"Fine.\"}\n",
            ":1: no `label` field in the fields [text]: a classification dataset has `text` and `label` fields",
        ),
        (
            "a chat dataset for a classifier",
            "classification",
            "CHAT\n",
            ":1: no `label` field: the fields [messages] make a chat dataset, for --task causal-lm",
        ),
        (
            "a classification dataset for a language model",
            "causal-lm",
            "<a>\n<b>\n",
            ":1: the record has `text` and `label` fields, a classification dataset: train a classifier on it with --task classification",
        ),
    ];
    for (case, task, contents, expected) in cases {
        let sandbox = Sandbox::new();
        let model = sandbox.model();
        let data = write_case(&sandbox, "d.jsonl", &contents.replace("<a>", A).replace("<b>", B));
        let run = sandbox.path("run");
        let mut args = train_args(&model, &data, &run);
        args.extend(["--task", task]);
        let at = if expected.starts_with(':') { format!("{}{expected}", s(&data)) } else { format!("{}: {expected}", s(&data)) };
        refused(case, &sandbox, &args, &[&at]);
    }

    let sandbox = Sandbox::new();
    let model = sandbox.model();
    let data = sandbox.write("train.jsonl", format!("{A}\n{B}\n"));
    let validation = sandbox.write("val.jsonl", format!("{A}\n{{\"text\": \"Meh.\", \"label\": \"so-so\"}}\n"));
    let run = sandbox.path("run");
    let mut args = train_args(&model, &data, &run);
    args.extend(["--task", "classification", "--validation", s(&validation)]);
    let at = format!("{}:2: field `label`: `so-so` is not a class of the training file {} (bad, good)", s(&validation), s(&data));
    refused("an unseen validation label", &sandbox, &args, &[&at]);
}
