"""The versions of the software that made an output, as recorded in it (build.json, demo.json,
features.json and the feature cache key).

Each output names the packages its bytes depend on; the order of the names is the order of the
record (build.json is written unsorted). A name is an installed distribution, read with
``importlib.metadata`` ("absent" when it is not installed: pyFFTW is optional), or one of the
components below, which are not distributions of their own.
"""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Callable, Iterable


def libsndfile_version() -> str:
    import soundfile

    return soundfile.__libsndfile_version__


def pyav_ffmpeg_version() -> str | None:
    """The libavcodec inside PyAV, which decodes and crops the videos of a build."""
    import av

    libavcodec = av.library_versions.get("libavcodec")
    return libavcodec and ".".join(map(str, libavcodec))


def ffmpeg_binary_version() -> str:
    """The ffmpeg program of imageio-ffmpeg, which encodes the demo corpus's videos."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_version()


COMPONENTS: dict[str, Callable[[], str | None]] = {"python": platform.python_version, "libsndfile": libsndfile_version}


def package_versions(names: Iterable[str], **components: Callable[[], str | None]) -> dict[str, str | None]:
    """name -> version, in the order of ``names``. ``components`` adds or overrides how a name is
    read (an output's "ffmpeg" is the FFmpeg that made its bytes: ``pyav_ffmpeg_version`` or
    ``ffmpeg_binary_version``)."""
    read = {**COMPONENTS, **components}
    out: dict[str, str | None] = {}
    for name in names:
        if name in read:
            out[name] = read[name]()
            continue
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out
