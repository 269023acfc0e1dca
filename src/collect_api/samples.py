"""Sample CSVs for trying Collect: deterministic, seeded form responses and team memberships,
of any size.

A responses file has a header row followed by ``rows`` records with these columns::

    response_id,submitted_at,respondent_email,country,age,score,consent,comment

* ``response_id``      -- 1..N as text
* ``submitted_at``     -- RFC 3339 UTC timestamps (``2024-01-01T00:00:17Z``), strictly increasing
* ``respondent_email`` -- ``user123@example.org``
* ``country``          -- from a fixed list that includes non-ASCII names (``España``, ``日本``,
  ``Россия``, ``Österreich`` ...)
* ``age``              -- integer 16..90
* ``score``            -- decimal with two places, ``0.00``..``10.00``
* ``consent``          -- ``yes`` / ``no``
* ``comment``          -- free text

With ``nasty=True`` (the default) the comment -- and sometimes the country -- regularly
contains commas, double quotes, embedded LF and CRLF line breaks, non-ASCII text (accents, CJK,
emoji), leading/trailing spaces, and is sometimes empty. With ``nasty=False`` the comments are
plain ASCII without quotes or line breaks, which suits throughput benchmarks.

A teams file (``--teams``) holds memberships for ``POST /teams/imports``, with the columns
``team,member_email,member_name,role``; a team's name recurs with other casing and spacing.

Output is written with :func:`csv.writer` (``QUOTE_MINIMAL``), so it is valid RFC 4180 CSV;
quotes inside fields are escaped by doubling. The same arguments always give byte-identical
output: every random choice comes from ``random.Random(seed)``.

From the command line::

    python -m collect_api.samples OUT.csv --rows N [--seed S] [--bom] [--lf] [--plain] [--teams]

From Python (the tests, the benchmarks)::

    from collect_api.samples import HEADER, responses, write_responses_csv

    write_responses_csv(path, 1000, seed=42)
    expected = list(responses(1000, seed=42))  # records without the header
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
from collections.abc import Iterator
from datetime import date
from itertools import islice

HEADER: list[str] = [
    "response_id",
    "submitted_at",
    "respondent_email",
    "country",
    "age",
    "score",
    "consent",
    "comment",
]

# Countries used in every mode (no delimiter or quote characters, but plenty of non-ASCII).
COUNTRIES: list[str] = [
    "France",
    "Germany",
    "United Kingdom",
    "United States",
    "Canada",
    "Brazil",
    "India",
    "Côte d’Ivoire",
    "España",
    "日本",
    "Österreich",
    "Россия",
    "Türkiye",
    "México",
    "Ελλάδα",
    "中国",
    "대한민국",
    "São Tomé and Príncipe",
]

# Extra countries that need quoting; only used when nasty=True.
NASTY_COUNTRIES: list[str] = [
    "Korea, Republic of",
    "Iran, Islamic Republic of",
    'Congo "Brazzaville"',
]

PLAIN_COMMENTS: list[str] = [
    "Great service",
    "Would recommend to a friend",
    "ok",
    "Delivery was late",
    "N/A",
    "The form was easy to fill in",
    "Too many questions",
    "Support answered quickly",
    "Prices are a bit high",
    "Nothing to add",
    "Loved the new design",
    "Could be faster",
]

NASTY_COMMENTS: list[str] = [
    "Good, but slow",
    ", starts with a comma",
    "ends with a comma,",
    'He said "wow" twice',
    '"Quoted from the start"',
    '""',
    'a "b", c',
    "line one\nline two",
    "first line\r\nsecond line",
    'Multi-line:\r\n- item one, "a"\r\n- item two\n- item three',
    "trailing newline\n",
    "Très bien, merci 🎉",
    "素晴らしいサービスでした",
    "Отлично, спасибо!",
    "Ünïcödé: ñ ß ø å ç",
    "emoji 🎉🚀👍",
    "  leading spaces",
    "trailing spaces   ",
    "  both sides  ",
    "tab\tinside",
    "",
]

_EPOCH = date(2024, 1, 1)
_MAX_STEP_SECONDS = 90  # gap between two submissions: 1.._MAX_STEP_SECONDS seconds
_BATCH_ROWS = 10_000


def responses(rows: int, *, seed: int = 0, nasty: bool = True) -> Iterator[list[str]]:
    """Yield ``rows`` records (lists of str, header not included) for ``seed``.

    The sequence is fully determined by ``(rows, seed, nasty)``; a shorter ``rows`` gives a
    prefix of a longer one.
    """
    rand = random.Random(seed).random
    countries = COUNTRIES + NASTY_COUNTRIES if nasty else COUNTRIES
    comments = PLAIN_COMMENTS + NASTY_COMMENTS * 2 if nasty else PLAIN_COMMENTS
    n_countries = len(countries)
    n_comments = len(comments)
    epoch_ordinal = _EPOCH.toordinal()
    current_day = -1
    day_str = ""
    seconds = 0

    for response_id in range(1, rows + 1):
        seconds += 1 + int(rand() * _MAX_STEP_SECONDS)
        day, second_of_day = divmod(seconds, 86_400)
        if day != current_day:  # timestamps only move forward
            current_day = day
            day_str = date.fromordinal(epoch_ordinal + day).isoformat()
        hour, rest = divmod(second_of_day, 3600)
        minute, second = divmod(rest, 60)
        submitted_at = f"{day_str}T{hour:02d}:{minute:02d}:{second:02d}Z"

        country = countries[int(rand() * n_countries)]
        comment = comments[int(rand() * n_comments)]
        if nasty:
            roll = rand()
            if roll < 0.25:
                # Two fragments glued together (e.g. quotes followed by a line break).
                comment = f"{comment} {comments[int(rand() * n_comments)]}"
            elif roll < 0.28:
                country = f" {country} "
            elif roll < 0.30:
                country = ""

        score = int(rand() * 1001)  # hundredths, 0.00..10.00
        yield [
            str(response_id),
            submitted_at,
            f"user{1 + int(rand() * 100_000)}@example.org",
            country,
            str(16 + int(rand() * 75)),
            f"{score // 100}.{score % 100:02d}",
            "yes" if rand() < 0.8 else "no",
            comment,
        ]


def write_responses_csv(
    path: str | os.PathLike[str],
    rows: int,
    *,
    seed: int = 0,
    bom: bool = False,
    lineterminator: str = "\r\n",
    nasty: bool = True,
) -> int:
    """Write the header plus ``rows`` records to ``path``; return the number of bytes written.

    ``bom=True`` prefixes the file with a UTF-8 byte order mark. ``lineterminator`` ends each
    record; line breaks embedded in quoted fields are written exactly as generated.
    """
    records = responses(rows, seed=seed, nasty=nasty)
    with open(path, "w", newline="", encoding="utf-8") as f:
        if bom:
            f.write("\ufeff")
        writer = csv.writer(f, quoting=csv.QUOTE_MINIMAL, lineterminator=lineterminator)
        writer.writerow(HEADER)
        while batch := list(islice(records, _BATCH_ROWS)):
            writer.writerows(batch)
    return os.path.getsize(path)


TEAMS_HEADER: list[str] = ["team", "member_email", "member_name", "role"]
_TEAM_WORDS = ["Sales", "Support", "Research", "Field ops", "Équipe Nord", "東京", "Design"]


def team_rows(rows: int, *, seed: int = 0, teams: int = 40) -> Iterator[list[str]]:
    """Memberships of ``teams`` teams: team names repeat with other casing and spacing
    (the same team), members repeat in a team now and then, roles vary in case."""
    rng = random.Random(seed)
    names = [
        f"{_TEAM_WORDS[i % len(_TEAM_WORDS)]} {i // len(_TEAM_WORDS) + 1}" for i in range(teams)
    ]
    for _ in range(rows):
        name = rng.choice(names)
        spelled = rng.choice([name, name.upper(), f"  {name} ", name.lower()])
        person = rng.randrange(rows // 2 + 1)
        role = rng.choice(["member", "member", "member", "lead", "Member", "LEAD"])
        yield [spelled, f"person{person}@example.org", f"Person {person}", role]


def write_teams_csv(path: str | os.PathLike[str], rows: int, *, seed: int = 0) -> int:
    """Write a teams CSV (team, member_email, member_name, role); return its size."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\r\n")
        writer.writerow(TEAMS_HEADER)
        writer.writerows(team_rows(rows, seed=seed))
    return os.path.getsize(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a deterministic form-responses CSV.")
    parser.add_argument("out", help="path of the CSV file to write")
    parser.add_argument("--rows", type=int, required=True, help="number of records (no header)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--bom", action="store_true", help="start the file with a UTF-8 BOM")
    parser.add_argument("--lf", action="store_true", help='end records with "\\n", not "\\r\\n"')
    parser.add_argument(
        "--plain", action="store_true", help="plain ASCII comments, no quotes or line breaks"
    )
    parser.add_argument("--teams", action="store_true", help="write a teams CSV instead")
    args = parser.parse_args(argv)
    if args.rows < 0:
        parser.error("--rows must be >= 0")
    if args.teams:
        size = write_teams_csv(args.out, args.rows, seed=args.seed)
        print(f"wrote {args.rows} memberships, {size} bytes to {args.out}", file=sys.stderr)
        return 0

    size = write_responses_csv(
        args.out,
        args.rows,
        seed=args.seed,
        bom=args.bom,
        lineterminator="\n" if args.lf else "\r\n",
        nasty=not args.plain,
    )
    print(f"wrote {args.rows} rows, {size} bytes to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
