//! Rendering Hugging Face chat templates (Jinja) with minijinja, configured the way transformers
//! configures Jinja: `trim_blocks`, `lstrip_blocks`, Python string methods, `raise_exception`
//! and `strftime_now`.

use minijinja::{Environment, ErrorKind, context};

use crate::error::{Error, Result};
use crate::tokenizer::Message;

/// The work one rendering may do, in minijinja's fuel: an instruction costs one, and 64 bytes of
/// text made (output, concatenations, filter results) cost one. A template comes from a stranger's
/// model folder; this bound stops one that loops or doubles a string before it takes a noticeable
/// time or memory (64 MB of text at most), while a real template rendering a long conversation
/// uses well under a hundredth of it.
pub const FUEL: u64 = 1_000_000;

pub fn render(template: &str, messages: &[Message], add_generation_prompt: bool, bos_token: &str, eos_token: &str) -> Result<String> {
    let mut env = Environment::new();
    env.set_fuel(Some(FUEL));
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
        .map_err(|e| Error::Template(e.to_string()))?;
    env.set_syntax(syntax);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    minijinja_contrib::add_to_environment(&mut env);
    env.add_function("raise_exception", |message: String| -> std::result::Result<String, minijinja::Error> {
        Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
    });
    env.add_function("strftime_now", |format: String| -> String { strftime_now(&format) });
    env.add_template("chat", template).map_err(|e| Error::Template(format!("cannot parse the chat template: {e}")))?;
    let tmpl = env.get_template("chat").map_err(|e| Error::Template(e.to_string()))?;
    tmpl.render(context! {
        messages => messages
            .iter()
            .map(|m| context! { role => m.role.clone(), content => m.content.clone() })
            .collect::<Vec<_>>(),
        add_generation_prompt => add_generation_prompt,
        bos_token => bos_token,
        eos_token => eos_token,
        tools => minijinja::Value::from(()),
    })
    .map_err(|e| Error::Template(describe(&e)))
}

/// The system prompt `template` puts in a conversation that has none (SmolLM2's "You are a
/// helpful AI assistant named SmolLM…"), found by rendering: the text `S` for which a
/// conversation with system message `S` renders exactly as one without. `None` where the
/// template adds none, or its rendering cannot be told apart that way.
pub fn default_system_prompt(template: &str) -> Option<String> {
    const MARK: &str = "\u{1}wgtune-system\u{1}";
    let user = Message::new("user", "\u{2}");
    let without = render(template, std::slice::from_ref(&user), true, "", "").ok()?;
    let marked = render(template, &[Message::new("system", MARK), user.clone()], true, "", "").ok()?;
    let (before, after) = marked.split_once(MARK)?;
    let prompt = without.strip_prefix(before)?.strip_suffix(after)?;
    let confirmed = render(template, &[Message::new("system", prompt), user], true, "", "").ok()? == without;
    (confirmed && !prompt.is_empty()).then(|| prompt.to_string())
}

fn describe(e: &minijinja::Error) -> String {
    match e.detail() {
        _ if e.kind() == ErrorKind::OutOfFuel => format!(
            "rendering stopped: the template did more work than any chat template needs (the bound is {FUEL} steps or {} MB of text{})",
            FUEL * 64 / 1_000_000,
            e.line().map(|line| format!("; it was at line {line}")).unwrap_or_default()
        ),
        Some(detail) if e.kind() == ErrorKind::InvalidOperation => detail.to_string(),
        _ => e.to_string(),
    }
}

/// The few `strftime` codes chat templates use for "today's date", from the system clock.
fn strftime_now(format: &str) -> String {
    let days = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() / 86_400).unwrap_or(0) as i64;
    let (year, month, day) = civil_from_days(days);
    const MONTHS: [&str; 12] =
        ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
    format
        .replace("%Y", &year.to_string())
        .replace("%m", &format!("{month:02}"))
        .replace("%d", &format!("{day:02}"))
        .replace("%B", MONTHS[(month - 1) as usize])
        .replace("%b", &MONTHS[(month - 1) as usize][..3])
}

/// Days since 1970-01-01 to (year, month, day), from Howard Hinnant's date algorithms.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are helpful.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn renders_chatml_like_transformers() {
        let out = render(CHATML, &[Message::new("user", "Hi")], true, "", "").unwrap();
        assert_eq!(out, "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    }

    #[test]
    fn python_string_methods_and_raise_exception_work() {
        let t = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('Conversation must start with user') }}{% endif %}{{ messages[0]['content'].strip().upper() }}";
        assert_eq!(render(t, &[Message::new("user", "  hi ")], false, "", "").unwrap(), "HI");
        let err = render(t, &[Message::new("assistant", "x")], false, "", "").unwrap_err();
        assert!(err.to_string().contains("Conversation must start with user"), "{err}");
    }

    /// Templates written to hurt: one that doubles a string 40 times (a terabyte) and one that
    /// loops 10⁹ times stop on the fuel bound, quickly, naming it and the line; a real template
    /// over a long conversation (2,000 messages, 1 MB) renders within it.
    #[test]
    fn hostile_templates_run_out_of_fuel_and_real_ones_do_not() {
        let doubling = "{% set ns = namespace(s='ab') %}\n{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}";
        let looping = "{% for i in range(100000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}";
        for (what, template) in [("doubling", doubling), ("looping", looping)] {
            let started = std::time::Instant::now();
            let err = render(template, &[Message::new("user", "Hi")], true, "", "").unwrap_err().to_string();
            assert!(err.contains("rendering stopped") && err.contains("1000000 steps or 64 MB"), "{what}: {err}");
            assert!(err.contains("line 2") || what == "looping", "{what}: {err}");
            // Not a timing target: a bound that did not hold would run for minutes.
            assert!(started.elapsed() < std::time::Duration::from_secs(20), "{what}: {:?}", started.elapsed());
        }
        let long: Vec<Message> = (0..2000).map(|i| Message::new(if i % 2 == 0 { "user" } else { "assistant" }, &"x".repeat(500))).collect();
        let out = render(CHATML, &long, true, "", "").unwrap();
        assert_eq!(out.matches("<|im_start|>").count(), 2002);
    }

    #[test]
    fn a_default_system_prompt_is_found_where_the_template_has_one() {
        assert_eq!(default_system_prompt(CHATML).as_deref(), Some("You are helpful."));
        let plain = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}";
        assert_eq!(default_system_prompt(plain), None);
    }

    #[test]
    fn civil_dates_are_right() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_786), (2026, 11, 29));
    }
}
