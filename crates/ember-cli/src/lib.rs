//! clap argument groups every Ember tool flattens (device, data, training, output) and the error-to-exit-code edge
