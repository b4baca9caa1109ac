"""Prebuilt shards: publish a built dataset as Parquet shards, download them safely, verify, load.

- ``publish``: built dataset (manifest.parquet + media) -> ``data/<split>-NNNNN-of-NNNNN.parquet``
  with the media embedded, ``README.md`` (dataset card) and ``index.json`` (sizes, sha256s).
- ``download``: registry name or index URL -> a verified local copy (resume, retries, mirrors, cache).
- ``verify``: a published/downloaded copy against ``index.json``, or a built one against its manifest.
- ``load_pairs``: either kind of copy as the same pandas DataFrame.
"""

from cmav_data.shards.download import (
    BlobCache,
    ChecksumMismatchError,
    DownloadConfig,
    DownloadError,
    DownloadReport,
    LocalWriteError,
    UnknownDatasetError,
    default_cache_dir,
    download,
    load_registry,
    resolve_source,
)
from cmav_data.shards.index import BadIndexError, HashState, IndexedFile, ShardIndex, ShardsError, parse_size, read_index
from cmav_data.shards.load import load_pairs
from cmav_data.shards.publish import BadDatasetError, publish
from cmav_data.shards.verify import VerifyReport, verify

__all__ = [
    "BadDatasetError", "BadIndexError", "BlobCache", "ChecksumMismatchError", "DownloadConfig",
    "DownloadError", "DownloadReport", "HashState", "LocalWriteError", "IndexedFile", "ShardIndex", "ShardsError",
    "UnknownDatasetError", "VerifyReport", "default_cache_dir", "download", "load_pairs",
    "load_registry", "parse_size", "publish", "read_index", "resolve_source", "verify",
]
