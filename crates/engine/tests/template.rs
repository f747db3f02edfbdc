//! The GGUF's Jinja template, rendered by minijinja, against llama.cpp's own rendering.

use agora_engine::ChatMessage;

use crate::support::shared;

fn conversations() -> Vec<Vec<ChatMessage>> {
    vec![
        vec![
            ChatMessage::new("system", "You are terse."),
            ChatMessage::new("user", "What is 2+2?"),
        ],
        vec![
            ChatMessage::new("system", "Answer in French."),
            ChatMessage::new("user", "Hello!"),
            ChatMessage::new("assistant", "Bonjour !"),
            ChatMessage::new("user", "How are you? Ünïcödé ✓"),
        ],
        vec![
            ChatMessage::new("system", ""),
            ChatMessage::new("user", "line one\nline two\n\n  indented"),
        ],
    ]
}

#[test]
fn rendered_prompt_and_token_ids_match_llama_cpp() {
    let engine = shared();
    for conversation in conversations() {
        let ours = engine.template().render(&conversation, true).unwrap();
        let theirs = engine.render_with_llama_cpp(&conversation).unwrap();
        assert_eq!(ours, theirs, "rendered prompts differ");
        assert_eq!(
            engine.tokenize_chat(&conversation).unwrap(),
            engine.tokenize(&theirs),
            "token ids differ"
        );
    }
}

#[test]
fn template_adds_the_default_system_prompt_llama_cpp_leaves_out() {
    // SmolLM2's Jinja template inserts its own system message when none is given; llama.cpp's
    // built-in ChatML renderer does not run that logic. We follow the model's template.
    let engine = shared();
    let conversation = [ChatMessage::new("user", "Hi")];
    let ours = engine.template().render(&conversation, true).unwrap();
    assert!(ours.starts_with("<|im_start|>system\nYou are a helpful AI assistant named SmolLM"));
    assert!(ours.ends_with("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"));
    let theirs = engine.render_with_llama_cpp(&conversation).unwrap();
    assert!(
        ours.ends_with(&theirs),
        "llama.cpp's rendering is ours minus the system prompt"
    );
}
