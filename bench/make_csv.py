"""The benchmarks' input: ``collect_api.samples``, under the name and command line they use.

    python bench/make_csv.py OUT.csv --rows N [--seed S] [--bom] [--lf] [--plain] [--teams]

is ``python -m collect_api.samples`` with the same options, and the scripts here (through
``benchlib``) import the generator as ``make_csv``. The module's docstring describes the files.
"""

import sys
from pathlib import Path

# The README runs this with a plain ``python3``, which may not have the package installed:
# then the checkout's own source is used (an installed package comes first on the path).
sys.path.append(str(Path(__file__).resolve().parent.parent / "src"))

from collect_api.samples import (
    HEADER,
    TEAMS_HEADER,
    main,
    responses,
    team_rows,
    write_responses_csv,
    write_teams_csv,
)

__all__ = [
    "HEADER",
    "TEAMS_HEADER",
    "main",
    "responses",
    "team_rows",
    "write_responses_csv",
    "write_teams_csv",
]

if __name__ == "__main__":
    sys.exit(main())
