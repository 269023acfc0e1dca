"""What a failed job's ``error`` says, by what ended its run."""

import errno
import sqlite3

from collect_api.csvio import CsvProblem
from collect_api.jobs.failure import JobFailure
from collect_api.jobs.supervisor import DISK_FULL, error_document
from collect_api.kinds.csvsource import job_failure


def test_a_kinds_failure_keeps_its_code_message_and_details() -> None:
    failure = JobFailure("too many", code="too_many_errors", line=4, record=None)
    assert error_document(failure) == {"code": "too_many_errors", "message": "too many", "line": 4}


def test_a_csv_problem_becomes_a_failure_that_names_where() -> None:
    problem = CsvProblem("bad quote", line=7, record=6, column="email", code="bad_csv")
    assert error_document(job_failure(problem)) == {
        "code": "bad_csv",
        "message": "line 7, record 6, column 'email': bad quote",
        "line": 7,
        "record": 6,
        "column": "email",
    }


def test_a_full_disk_says_so_whichever_layer_raised_it() -> None:
    assert error_document(OSError(errno.ENOSPC, "No space left on device")) == DISK_FULL
    assert error_document(sqlite3.OperationalError("database or disk is full")) == DISK_FULL


def test_anything_else_is_internal_and_says_what_it_was() -> None:
    document = error_document(KeyError("columns"))
    assert document["code"] == "internal"
    assert "columns" in document["message"]
