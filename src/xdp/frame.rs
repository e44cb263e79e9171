//! The frames the XDP path reads and writes (filled in by its own change).
