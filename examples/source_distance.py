"""How far generated pairs stray from their source: mean absolute difference to the source image (grey levels,
0-255) outside and inside the kept boxes, the outside-box diversity (per-pixel std across one source's
samples, averaged), and how much fine detail the samples keep: their mean |Laplacian| as a fraction of the
source's, inside and outside the boxes (1 = as sharp as the source; the autoencoder's round trip lowers it).
Used for the paper's remark that the conditional LDM tends to reproduce the source, and for PH2's blur.

    python examples/source_distance.py DATA GEN_DIR [GEN_DIR ...]

DATA holds the sources (images/, labels/); each GEN_DIR is a sampling job's output (images/<id>_<k>.png).
Sources larger than their samples are resized to the samples' size first, as sampling resizes them. The
measures are :mod:`augpaint_fast.data.fidelity`'s (examples/generator_fidelity.py uses them too).
"""
import sys
from pathlib import Path

from augpaint_fast.data.fidelity import source_rows, summarise

if __name__ == "__main__":
    data = Path(sys.argv[1])
    print("| folder | sources | samples | MAD to source outside boxes | inside boxes | outside-box diversity | "
          "detail kept inside boxes | outside |")
    print("|---|---|---|---|---|---|---|---|")
    for gen in map(Path, sys.argv[2:]):
        m = summarise(source_rows(data, gen))
        print(f"| {gen} | {m['sources']} | {m['samples']} | {m['mad_outside']:.1f} | {m['mad_inside']:.1f} | "
              f"{m['diversity_outside']:.1f} | {m['detail_inside']:.2f} | {m['detail_outside']:.2f} |")
