"""A scanner for direct identifiers that left bronze: the generator's raw PHI values, looked for everywhere else.

The identifiers come from the landing files themselves (every PHI column of every
feed), so the scan needs no knowledge of the generator. Each place is one scope:

    scanner = PhiScanner.from_landing(landing_root)
    findings = [
        *scanner.lakehouse(lakehouse_root),            # every Delta table outside landing and bronze
        *scanner.dagster_run(instance, run_id),        # every event log entry, metadata value, run tag and config
        *scanner.mlflow(tracking_uri),                 # every run's params, tags, metrics keys and text artifacts
        *scanner.texts("alert payloads", payloads),    # any other text, e.g. alert bodies a channel sent
    ]
    assert not findings, "\\n".join(map(str, findings))

Findings say where and which kind of identifier, never the value itself.
"""

import csv
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from deltalake import DeltaTable

from healthcare_assets.domain.sources import SOURCES

# Layers allowed to hold identifiers in clear text.
CLEAR_TEXT_LAYERS = ("landing", "bronze")
# Identifier kinds distinctive enough to look for inside free text (a lone first name or a zip code is not:
# "Grace" or "12201" can be ordinary words and numbers in a log line); all kinds are looked for as table cells.
FREE_TEXT_KINDS = ("member_id", "full_name", "street_address", "date_of_birth")
_TEXT_SUFFIXES = (".txt", ".json", ".yaml", ".yml", ".csv", ".md", ".html", ".log", ".py", "MLmodel")


@dataclass(frozen=True)
class Finding:
    where: str
    kind: str

    def __str__(self) -> str:
        return f"{self.kind} in clear text at {self.where}"


def _landing_records(landing_root: Path) -> Iterable[tuple[str, dict]]:
    for name, source in SOURCES.items():
        for path in sorted((landing_root / name).glob("*/*")):
            text = path.read_bytes().decode("utf-8", errors="replace")
            if source.file_format == "csv":
                rows = csv.DictReader(io.StringIO(text))
            else:
                rows = (json.loads(line) for line in text.splitlines() if line.strip().startswith("{"))
            for row in rows:
                if isinstance(row, dict):
                    yield name, row


def _dob_kind(column: str) -> str:
    return "date_of_birth" if column in ("date_of_birth", "patient_dob") else column


class PhiScanner:
    """Looks for known identifier values (by kind) in tables and texts."""

    def __init__(self, identifiers: dict[str, set[str]]):
        self.identifiers = {kind: {v for v in values if v} for kind, values in identifiers.items()}
        self._by_value = {value: kind for kind, values in self.identifiers.items() for value in values}
        free = sorted((v for kind in FREE_TEXT_KINDS for v in self.identifiers.get(kind, ())), key=len, reverse=True)
        self._pattern = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, free)) + r")(?![\w-])") if free else None

    @classmethod
    def from_landing(cls, landing_root: str | Path) -> "PhiScanner":
        """Every PHI value the feeds delivered, minus values the feeds also carry as ordinary data.

        A date of birth equal to some service date, or a zip code equal to a procedure code,
        would otherwise be found in every claims table without being a leak.
        """
        identifiers: dict[str, set[str]] = {}
        ordinary: set[str] = set()
        for name, row in _landing_records(Path(landing_root)):
            source = SOURCES[name]
            phi = set(source.phi_columns)
            for column, value in row.items():
                if value is None or column is None:
                    continue
                text = str(value).strip()
                if column in phi:
                    identifiers.setdefault(_dob_kind(column), set()).add(text)
                else:
                    ordinary.add(text)
            if row.get("first_name") and row.get("last_name"):
                identifiers.setdefault("full_name", set()).add(f"{row['first_name']} {row['last_name']}".strip())
        ordinary |= {p.name for p in Path(landing_root).glob("*/*")}  # the delivery days
        return cls({kind: values - ordinary for kind, values in identifiers.items()})

    def count(self, kind: str) -> int:
        return len(self.identifiers.get(kind, ()))

    # -- scopes ----------------------------------------------------------------------------------
    def texts(self, where: str, texts: Iterable[str]) -> list[Finding]:
        """Free texts (log lines, JSON payloads, parameters); one finding per kind and text."""
        findings: list[Finding] = []
        if self._pattern is None:
            return findings
        for number, text in enumerate(texts):
            kinds = {self._by_value[m] for m in self._pattern.findall(text)}
            findings += [Finding(f"{where} #{number}", kind) for kind in sorted(kinds)]
        return findings

    def table(self, path: str | Path, where: str) -> list[Finding]:
        """Every cell of a Delta table, compared whole (a column holding names, ids, dates of birth)."""
        frame = DeltaTable(str(path)).to_pandas()
        findings = []
        for column in frame.columns:
            values = set(frame[column].dropna().astype(str))
            kinds = {self._by_value[v] for v in values & self._by_value.keys()}
            findings += [Finding(f"{where}.{column}", kind) for kind in sorted(kinds)]
            if frame[column].dtype == object:  # free text inside cells, e.g. a reason or a JSON column
                findings += self.texts(f"{where}.{column}", (v for v in values if len(v) > 12))
        return findings

    def lakehouse(self, root: str | Path) -> list[Finding]:
        """Every Delta table under the lakehouse root outside the clear-text layers."""
        findings = []
        tables = sorted(log.parent for log in Path(root).glob("*/*/_delta_log"))
        for path in tables:
            schema = path.parent.name
            if schema not in CLEAR_TEXT_LAYERS:
                findings += self.table(path, f"{schema}.{path.name}")
        return findings

    def dagster_run(self, instance: dg.DagsterInstance, run_id: str) -> list[Finding]:
        """Every event log entry of the run (messages, metadata, errors) plus its tags and config."""
        return self.texts(f"dagster run {run_id[:8]}", run_texts(instance, run_id))

    def mlflow(self, tracking_uri: str) -> list[Finding]:
        """Every MLflow run of every experiment: params, tags, metric names and text artifacts."""
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri)
        findings = []
        experiments = client.search_experiments()
        runs = client.search_runs([e.experiment_id for e in experiments]) if experiments else []
        for run in runs:
            where = f"mlflow run {run.info.run_id[:8]}"
            fields = [*run.data.params.items(), *run.data.tags.items(), *((k, "") for k in run.data.metrics)]
            findings += self.texts(where, (f"{key}={value}" for key, value in fields))
            findings += self.texts(f"{where} artifacts", _artifact_texts(client, run.info.run_id))
        return findings


def run_texts(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """A run as texts: each serialised event log entry, then the run's tags and config."""
    texts = [dg.serialize_value(entry) for entry in instance.all_logs(run_id)]
    run = instance.get_run_by_id(run_id)
    if run is not None:
        texts += [json.dumps(run.tags, default=str), json.dumps(run.run_config, default=str)]
    return texts


def _artifact_texts(client, run_id: str, folder: str | None = None) -> Iterable[str]:
    for artifact in client.list_artifacts(run_id, folder):
        if artifact.is_dir:
            yield from _artifact_texts(client, run_id, artifact.path)
        elif artifact.path.endswith(_TEXT_SUFFIXES):
            local = client.download_artifacts(run_id, artifact.path)
            yield Path(local).read_text(errors="replace")
