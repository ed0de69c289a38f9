"""Files shipped inside the package: the tiny weights every command defaults to."""
from pathlib import Path

SHIPPED_WEIGHTS = Path(__file__).parent / "weights" / "tiny"  # trained on phantoms of seed 0 (`make weights`)
