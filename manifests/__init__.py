"""The committed reference tables, installed as the package ``cmav_data.reference`` (see pyproject.toml).

An ``__init__`` makes the folder a regular package, which editable installs map like any other;
the tables are read through ``cmav_data.manifests``.
"""
