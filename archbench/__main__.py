"""``python -m archbench`` (also what ``torchrun -m archbench`` starts)."""

from archbench.cli import main

main()
