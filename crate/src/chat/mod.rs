//! Chat templates: the model's own Jinja template (GGUF `tokenizer.chat_template` or
//! tokenizer_config.json) rendered with minijinja the way Hugging Face renders it (Jinja2 with
//! `trim_blocks` and `lstrip_blocks`, `raise_exception`, Python-style `tojson`, `strftime_now`,
//! Python string methods).

mod pyjson;

use minijinja::{context, Environment, ErrorKind, Value};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One chat message, as in OpenAI's API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Message {
        Message { role: role.to_string(), content: content.to_string() }
    }
}

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
}

/// What a template sees besides the messages.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    pub add_generation_prompt: bool,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    /// Extra variables (`date_string`, `enable_thinking`, `tools`...) as a JSON object.
    pub extra: Option<serde_json::Value>,
}

fn raise_exception(msg: String) -> std::result::Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
}

impl ChatTemplate {
    pub fn new(source: &str) -> Result<ChatTemplate> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", pyjson::tojson);
        env.add_template_owned("chat", source.to_string()).map_err(|e| Error::Template(format!("does not parse: {e}")))?;
        Ok(ChatTemplate { env })
    }

    pub fn render(&self, messages: &[Message], opts: &RenderOptions) -> Result<String> {
        let tmpl = self.env.get_template("chat").map_err(|e| Error::Template(e.to_string()))?;
        let base = context! {
            messages => messages,
            add_generation_prompt => opts.add_generation_prompt,
            bos_token => opts.bos_token.clone().unwrap_or_default(),
            eos_token => opts.eos_token.clone().unwrap_or_default(),
        };
        let ctx = match &opts.extra {
            Some(extra) => context! { ..Value::from_serialize(extra), ..base },
            None => base,
        };
        tmpl.render(ctx).map_err(|e| {
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            Error::Template(msg)
        })
    }
}

/// `strftime_now(format)`: the current UTC date in `%d`, `%b`, `%B`, `%Y`, `%m`, `%H`, `%M`, `%S`.
fn strftime_now(format: String) -> String {
    format_date(crate::clock::unix_seconds(), &format)
}

pub(crate) fn format_date(unix: i64, format: &str) -> String {
    const MONTHS: [&str; 12] = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
    // Howard Hinnant's days-to-civil.
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('m') => out.push_str(&format!("{m:02}")),
            Some('Y') => out.push_str(&y.to_string()),
            Some('b') => out.push_str(&MONTHS[(m - 1) as usize][..3]),
            Some('B') => out.push_str(MONTHS[(m - 1) as usize]),
            Some('H') => out.push_str(&format!("{:02}", secs / 3600)),
            Some('M') => out.push_str(&format!("{:02}", secs / 60 % 60)),
            Some('S') => out.push_str(&format!("{:02}", secs % 60)),
            Some(o) => {
                out.push('%');
                out.push(o);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_dates_like_strftime() {
        // 2024-07-26 13:05:09 UTC
        assert_eq!(super::format_date(1_721_999_109, "%d %b %Y %H:%M:%S %B %m"), "26 Jul 2024 13:05:09 July 07");
        assert_eq!(super::format_date(0, "%Y-%m-%d"), "1970-01-01");
        assert_eq!(super::format_date(951_782_400, "%d %b %Y"), "29 Feb 2000");
    }
}
