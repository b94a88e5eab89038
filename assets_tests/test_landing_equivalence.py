"""The vectorised landing parser gives exactly the rows of the per-line parser it replaced (the oracle).

Good rows and quarantine rows alike (values, file, line number, raw text, reason), on generated feeds with bad
lines, on every crafted bad-input case of the other parser tests, and on values at the edges of each rule.
"""

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from assets_tests import landing_oracle
from assets_tests.test_bad_input import CLAIM_CASES, DRIFTED_HEADER, RX, RX_CASES, SPLIT_RECORD
from assets_tests.test_landing_parser import GOOD, HEADER
from assets_tests.test_landing_parser import RECEIVED as PARSER_RECEIVED
from healthcare_assets.domain.landing import REASON, parse_landing_file, parse_landing_files
from healthcare_assets.domain.sources import MEDICAL_CLAIMS, PHARMACY_CLAIMS, SOURCES, Source
from healthcare_assets.domain.synthetic import SyntheticConfig, generate_day, landing_file_path
from healthcare_assets.resources.delta import PARTITION_COLUMN
from healthcare_assets.transforms.bronze import parse_landing

FIRST_DAY = date(2026, 1, 1)
# Generated feeds with many bad lines of every kind (and duplicates): the roster day and an ordinary day.
CONFIG = SyntheticConfig(num_members=800, claims_per_day=600, rx_claims_per_day=400, bad_record_rate=0.08)
# Values at the edges of the type rules: signs, exponents, 64-bit and double limits, calendar and pandas date
# limits, blanks a strip removes, quotes, codes with trailing text.
EDGE_VALUES = [
    "",
    " ",
    "\u00a07\u2003",
    "+1",
    "-0",
    "1.",
    ".5",
    "1e5",
    "1E+05",
    "1e400",
    "-1e400",
    "1e-400",
    "inf",
    "NaN",
    "0x10",
    "1_000",
    "1,5",
    "9" * 19,
    "9" * 25,
    "9" * 320,
    "00012",
    "12.5",
    "70",
    "71",
    "2024-02-29",
    "2023-02-29",
    "2026-13-01",
    "2026-00-10",
    "0000-01-01",
    "1677-09-21",
    "1677-09-22",
    "2262-04-11",
    "2262-04-12",
    "2026-1-05",
    '"I10"',
    'a"b',
    "I10 ",
    "I10.X",
    "99213\n",
    "cardiology",
    "CARDIOLOGY",
]


def _rows(frame) -> list[tuple]:
    return [tuple(row) for row in frame.astype(object).where(frame.notna(), None).itertuples(index=False)]


def _assert_same(text: str, source: Source, received: date) -> None:
    new = parse_landing_file(text, source, "feed.file", received)
    old = landing_oracle.parse_landing_file(text, source, "feed.file", received)
    assert list(new.columns) == list(old.columns)
    assert _rows(new) == _rows(old)


@pytest.mark.parametrize("day", [FIRST_DAY, FIRST_DAY + timedelta(days=1)])
@pytest.mark.parametrize("name", list(SOURCES))
def test_generated_feeds_with_bad_lines_parse_identically(name, day):
    lines = generate_day(CONFIG, day).lines[name]
    text = "".join(f"{line}\n" for line in lines)
    new = parse_landing_file(text, SOURCES[name], "feed.file", day)
    assert new[REASON].notna().sum() > 0 or len(new) < 50  # the bad lines are there to be compared
    _assert_same(text, SOURCES[name], day)


def test_every_crafted_bad_line_parses_identically():
    claims = [line for line, _ in CLAIM_CASES] + SPLIT_RECORD
    _assert_same("\ufeff" + "\n".join([",".join(DRIFTED_HEADER), *claims]) + "\n", MEDICAL_CLAIMS, FIRST_DAY)
    _assert_same("\n".join(line for line, _ in RX_CASES) + "\n", PHARMACY_CLAIMS, FIRST_DAY)
    parser_lines = [
        GOOD.replace("CLM1", "", 1),
        'CLM2,"MCD000000002,1980-01-01',
        "CLM3,MCD000000003",
        "",
        "   ",
        GOOD.replace(",100.00", ",").replace(",12,", ",,"),
        GOOD + "\r",
        GOOD.replace("PRV1", "PRV\r1"),
        GOOD.replace("PRV1", '"PRV,1"'),
        GOOD.replace("PRV1", "PRV\x001"),
    ]
    _assert_same("\n".join([HEADER, GOOD, *parser_lines]) + "\r\n", MEDICAL_CLAIMS, PARSER_RECEIVED)


def test_edge_values_in_every_column_parse_identically():
    """Each edge value in each column of an otherwise good line, for a CSV feed and a JSON feed."""
    fields = GOOD.split(",")
    claim_lines = [
        ",".join(value if i == column else field for i, field in enumerate(fields)).replace("\n", " ")
        for column in range(len(fields))
        for value in EDGE_VALUES
    ]
    _assert_same("\n".join([HEADER, *claim_lines]) + "\n", MEDICAL_CLAIMS, PARSER_RECEIVED)
    json_values = [*EDGE_VALUES, 0, -1, 365, 366, 1e300, 2.5, True, None, [1], {"a": 1}, 10**30]
    rx_lines = [json.dumps({**RX, name: value}) for name in RX for value in json_values]
    rx_lines += [json.dumps({k: v for k, v in RX.items() if k != name}) for name in RX]
    _assert_same("\n".join(rx_lines) + "\n", PHARMACY_CLAIMS, PARSER_RECEIVED)


def test_random_mixtures_of_good_and_broken_fields_parse_identically():
    rng = np.random.default_rng(7)
    fields = GOOD.split(",")
    lines = []
    for _ in range(3000):
        line = list(fields)
        for column in rng.choice(len(fields), size=int(rng.integers(0, 4)), replace=False):
            line[column] = str(rng.choice(EDGE_VALUES)).replace("\n", " ")
        lines.append(",".join(line))
    _assert_same("\n".join([HEADER, *lines]) + "\n", MEDICAL_CLAIMS, PARSER_RECEIVED)


@pytest.mark.engine_fidelity
def test_the_spark_parse_of_a_days_feeds_equals_the_oracle_rows(spark, tmp_path: Path):
    """Through the engine (mapInArrow over the day's files): the same rows, typed as the bronze schema."""
    data = generate_day(CONFIG, FIRST_DAY + timedelta(days=1))
    for name, source in SOURCES.items():
        path = tmp_path / landing_file_path(source, data.day)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{line}\n" for line in data.lines[name]))
        expected = landing_oracle.parse_landing_file(path.read_text(), source, path.name, data.day)
        parsed = parse_landing(spark, str(tmp_path), source, [data.day]).toPandas()
        assert (parsed[PARTITION_COLUMN] == data.day).all()
        parsed = parsed.drop(columns=[PARTITION_COLUMN]).sort_values("_line_number").reset_index(drop=True)
        assert _rows(parsed) == _rows(expected), name


def test_files_parsed_together_give_each_files_own_rows_and_receipt_day():
    """Several days' files (one with another header layout, one empty) in one call: every file's rows as parsed
    alone, each with its own receipt day."""
    days = [FIRST_DAY + timedelta(days=n) for n in range(3)]
    texts = ["".join(f"{line}\n" for line in generate_day(CONFIG, day).lines["medical_claims"]) for day in days]
    texts.append("\ufeff" + "\n".join([",".join(DRIFTED_HEADER), *[line for line, _ in CLAIM_CASES]]) + "\n")
    texts.append("")
    files = [(text, f"file{n}.csv", days[min(n, 2)]) for n, text in enumerate(texts)]
    table, receipt = parse_landing_files(files, MEDICAL_CLAIMS)
    frame = table.to_pandas()
    frame["_day"] = receipt.to_pylist()
    for text, name, day in files:
        alone = landing_oracle.parse_landing_file(text, MEDICAL_CLAIMS, name, day)
        mine = frame[frame["_source_file"] == name]
        assert set(mine["_day"]) <= {day}
        assert _rows(mine.drop(columns=["_day"])) == _rows(alone), name
    assert len(frame) == sum(len(landing_oracle.parse_landing_file(t, MEDICAL_CLAIMS, n, d)) for t, n, d in files)
