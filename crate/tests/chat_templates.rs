//! The real chat templates render exactly what Jinja2 renders as Hugging Face configures it
//! (fixtures from tests/fixtures/make_fixtures.py).

mod common;

use pocketlm::chat::{ChatTemplate, Message, RenderOptions};

#[test]
fn real_templates_render_like_jinja2() {
    let fx = common::fixture("chat_templates.json");
    let extra = serde_json::json!({ "date_string": fx["date_string"] });
    let (mut rendered, mut refused) = (0, 0);
    for case in fx["cases"].as_array().unwrap() {
        let name = case["template"].as_str().unwrap();
        let src = std::fs::read_to_string(common::shared_models().join("chat-templates").join(name)).unwrap();
        let t = ChatTemplate::new(&src).unwrap_or_else(|e| panic!("{name}: {e}"));
        let messages: Vec<Message> = serde_json::from_value(case["messages"].clone()).unwrap();
        let opts = RenderOptions {
            add_generation_prompt: case["add_generation_prompt"].as_bool().unwrap(),
            bos_token: fx["bos_token"].as_str().map(str::to_string),
            eos_token: fx["eos_token"].as_str().map(str::to_string),
            extra: Some(extra.clone()),
        };
        let got = t.render(&messages, &opts);
        match case["expected"].as_str() {
            Some(want) => {
                assert_eq!(got.unwrap_or_else(|e| panic!("{name}: {e}")), want, "{name} with {} messages, add_generation_prompt {}", messages.len(), opts.add_generation_prompt);
                rendered += 1;
            }
            None => {
                let err = got.expect_err("Jinja2 refused this conversation; so must minijinja").to_string();
                let want = case["error"].as_str().unwrap();
                assert!(err.contains(want), "{name}: error {err:?} should carry Jinja2's {want:?}");
                refused += 1;
            }
        }
    }
    assert!(rendered >= 36, "rendered {rendered}");
    assert!(refused <= 6, "refused {refused}");
}

#[test]
fn a_template_that_does_not_parse_is_a_clear_error() {
    let err = ChatTemplate::new("{% for m in messages %}{{ m.content }").err().unwrap();
    assert_eq!(err.code(), "CHAT_TEMPLATE");
    assert!(err.to_string().contains("does not parse"), "{err}");
}

#[test]
fn tojson_writes_what_python_json_dumps_writes() {
    let t = ChatTemplate::new("{{ tools | tojson }}|{{ tools | tojson(indent=2) }}").unwrap();
    let extra = serde_json::json!({"tools": [{"name": "get_weather", "args": {"city": "Zürich <EU>", "n": 2, "f": 1.5, "ok": true, "none": null}}]});
    let out = t.render(&[], &RenderOptions { extra: Some(extra), ..Default::default() }).unwrap();
    let (flat, indented) = out.split_once('|').unwrap();
    assert_eq!(flat, r#"[{"name": "get_weather", "args": {"city": "Zürich <EU>", "n": 2, "f": 1.5, "ok": true, "none": null}}]"#);
    assert_eq!(indented, "[\n  {\n    \"name\": \"get_weather\",\n    \"args\": {\n      \"city\": \"Zürich <EU>\",\n      \"n\": 2,\n      \"f\": 1.5,\n      \"ok\": true,\n      \"none\": null\n    }\n  }\n]");
}
