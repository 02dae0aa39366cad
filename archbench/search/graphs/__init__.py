"""Topology search spaces: YAML files describing a family of neck graphs and its choices (``space``), and the
families they build (``merge_cells``: NAS-FPN's merge cells; ``pyramid_paths``: OPANAS's paths between pyramids)."""
