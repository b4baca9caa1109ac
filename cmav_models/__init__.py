"""cmav_models: reference networks, training and metrics for cross-modal audio-visual generation."""
