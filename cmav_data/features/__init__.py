"""Audio features of built datasets: specs, librosa reference, fast torch path, Parquet cache, Dataset.

Modules: ``specs`` (config dataclasses), ``reference`` (librosa per chunk), ``fast`` (batched
torch), ``store`` (Parquet shards + cache key, memory-mapped training arrays), ``dataset`` (torch Dataset). The representation x depth
experiment of the 2017 paper trains models, so it is ``cmav_models.compare_features``.
"""
