"""Built-in topologies as small generators over a contiguous level range, one module per family.

Each generator returns plain spec data (``NeckSpec``), the same thing a YAML file holds:
``archbench specs show NAME --levels 3-7`` prints it, and the printed file loads back. The
``description`` of each spec states the choices its paper leaves open. :mod:`.registry` holds the
names; importing a family module registers it, in the order below (the order ``specs list`` shows).
"""

# Importing a family module registers it; this order is the order of `archbench specs list`.
# isort: off
from archbench.spec.families import fpn  # noqa: F401
from archbench.spec.families import panet  # noqa: F401
from archbench.spec.families import bifpn  # noqa: F401
from archbench.spec.families import efficientdet_table5  # noqa: F401
from archbench.spec.families import nasfpn  # noqa: F401
from archbench.spec.families import dla  # noqa: F401

# isort: on
from archbench.spec.families.registry import builtin_names, builtin_spec

__all__ = ["builtin_names", "builtin_spec"]
