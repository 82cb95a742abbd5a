"""A table and a scoring request checked against the same contract get the same verdicts on the same values."""

import pandas as pd
import pytest

from mlkit.contract import check_contract
from mlkit.scoring import Batch, RowChecker

PATTERNS = {"email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"}
CASES = [
    ({"dtype": "integer"}, ["3", 2.0, 7, "2.5", True, False, "x", None, 1e300]),
    ({"dtype": "integer", "nullable": False, "min": 0, "max": 10}, [0, 10, -1, 11, "5", None, 3.5]),
    ({"dtype": "float", "nullable": False, "min": 0, "max": 100}, [71.5, 100, 130, -1, "high", None, "12", False]),
    ({"dtype": "boolean"}, [True, False, "false", "TRUE", "1", "0", "maybe", 1.5, None]),
    ({"dtype": "string", "allowed": ["pro", "basic", 5]}, ["pro", "gold", 5, "5", None]),
    ({"dtype": "string"}, ["anything", "write to ada@example.org", None]),
    ({"dtype": "datetime"}, ["2026-01-02T03:04:05", "2026-01-02", "yesterday", None]),
]


def _contract(spec: dict) -> dict:
    return {"contract": "c", "columns": {"x": {**spec, "required": True}}, "forbidden_patterns": PATTERNS}


def _frame_verdict(spec: dict, value) -> set:
    report = check_contract(pd.DataFrame({"x": pd.Series([value], dtype=object)}), _contract(spec))
    return {failure["check"] for failure in report.failures}


def _request_verdict(spec: dict, value) -> set:
    _, failures, _ = RowChecker(_contract(spec), ["x"]).check(Batch.from_records([{"x": value}]))
    return {failure["check"] for failure in failures}


@pytest.mark.parametrize(("spec", "value"), [(spec, value) for spec, values in CASES for value in values])
def test_a_value_gets_the_same_verdict_in_a_table_and_in_a_request(spec, value):
    assert _frame_verdict(spec, value) == _request_verdict(spec, value)


def test_a_whole_request_column_and_a_table_column_fail_the_same_rows():
    spec = {"dtype": "float", "nullable": False, "min": 0, "max": 100}
    values = [71.5, 12, 130, None, "high", -3, 99.5]
    report = check_contract(pd.DataFrame({"x": pd.Series(values, dtype=object)}), _contract(spec))
    _, failures, rejected = RowChecker(_contract(spec), ["x"]).check(Batch.from_split(["x"], [[v] for v in values]))
    assert {f["check"]: f["failing"] for f in report.failures} == {f["check"]: f["count"] for f in failures}
    assert rejected == 4
