//! Engine tests on the real default model (fetched once into `~/.cache/agora-test`).

mod support;

mod batching;
mod generation;
mod scoring;
mod template;
