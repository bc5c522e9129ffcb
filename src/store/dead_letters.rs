//! Dead letters: listing, inspecting, replaying and purging them.
