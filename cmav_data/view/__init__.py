"""Static HTML views of a dataset (``cmav-data view``), and the blind rating page of a run.

- ``pages``: pure functions from plain records to HTML text (overview, recording pages);
- ``thumbs``: the per-pair media of a site (image thumbnail, LMS picture), content-keyed;
- ``site``: ``build_view`` reads a built or a shard dataset and writes the site;
- ``rate``: the blind rating page (``rate.html``) and the join of raters' CSVs with its key.

Every page is self-contained (script and style inline, media by relative path): it works opened
from disk (file://) and from any static server, and fetches nothing from the network.
"""

from cmav_data.view.site import ViewError, ViewResult, build_view

__all__ = ["ViewError", "ViewResult", "build_view"]
