//! Integration tests of agora-types, one binary with a module per area.

mod tests {
    mod amounts;
    mod encoding;
    mod keys;
    mod merkle;
    mod params;
    mod wire;
}
