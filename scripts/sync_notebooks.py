"""Keep the lesson notebooks' Colab badges and install cells, and the README's lesson table with its
Colab/Binder badges, in step with anime_lib.config.REPO_URL and the notebooks.

    python scripts/sync_notebooks.py            # fix badges / install cells, strip outputs (all notebooks)
    python scripts/sync_notebooks.py --check    # only report problems; exit 1 if there are any
    python scripts/sync_notebooks.py notebooks/04_cyclegan.ipynb   # just these files

Without --check the script rewrites what it can (badge, install cell, stored outputs) and then lists
what is left for a person to fix (parameters cell, required names, ...); it exits 1 if anything is left.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
try:
    from anime_lib import notebook_meta
except ImportError:  # run from a checkout where the library is not installed
    sys.path.insert(0, str(REPO_ROOT))
    from anime_lib import notebook_meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path,
                        help="notebooks to process (default: every notebooks/*.ipynb of the repository)")
    parser.add_argument("--check", action="store_true", help="report problems without changing any file")
    args = parser.parse_args(argv)

    paths = args.paths or sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
    if not paths:
        print("no notebooks found")
        return 0
    n_problems = 0
    for path in paths:
        if not args.check and notebook_meta.sync_notebook(path, strip=True):
            print(f"updated {path}")
        for problem in notebook_meta.check_notebook(path):
            print(f"{path}: {problem}")
            n_problems += 1
    readme = REPO_ROOT / "README.md"
    all_notebooks = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
    if notebook_meta.sync_readme(readme, all_notebooks, check=args.check):
        if args.check:
            print(f"{readme}: the lesson table is out of date (run python scripts/sync_notebooks.py)")
            n_problems += 1
        else:
            print(f"updated the lesson table in {readme}")
    verdict = "all notebooks follow the conventions" if not n_problems else f"{n_problems} problem(s)"
    print(f"{len(paths)} notebook(s) checked: {verdict}")
    return 1 if n_problems else 0


if __name__ == "__main__":
    sys.exit(main())
