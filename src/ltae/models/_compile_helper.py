"""``python -m ltae.models._compile_helper FILE``: compile the nutpie model in FILE (written by
:func:`ltae.models.compile_cache.compile_in_helper`) into the compile cache, then exit.

A new process loads every pytensor operation from pytensor's disk cache, so the model it links and
saves is the same machine code that every later run loads; see ``compile_in_helper``."""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path


def main(path: str) -> int:
    os.environ["LTAE_COMPILE_HELPER"] = "1"  # no helper of its own
    from ltae.models import sampling

    # our own file, written by the parent process into a private temporary folder
    model, var_names = pickle.loads(Path(path).read_bytes())  # noqa: S301
    sampling._compile_nutpie_numba(model, var_names)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
