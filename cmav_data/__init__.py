"""cmav_data: corpora, builders, features and shards for cross-modal audio-visual music datasets."""

__version__ = "0.1.0"
