"""A scanner for direct identifiers that left bronze: the generator's raw PHI values, looked for everywhere else.

The identifiers come from the landing files themselves (every PHI column of every
feed), so the scan needs no knowledge of the generator. Each place is one scope:

    scanner = PhiScanner.from_landing(landing_root)
    findings = [
        *scanner.lakehouse(lakehouse_root),            # every Delta table outside landing and bronze
        *scanner.dagster_run(instance, run_id),        # every event log entry, metadata value, run tag and config
        *scanner.mlflow(tracking_uri),                 # every run, logged model, artifact file and registered model
        *scanner.payloads("alerts", bodies),           # the exact bytes alert channels delivered
        *scanner.texts("log", lines),                  # any other text
    ]
    assert not findings, "\\n".join(map(str, findings))

Findings say where and which kind of identifier, never the value itself.
"""

import csv
import email
import email.policy
import gzip
import io
import json
import re
import tempfile
import zipfile
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


@dataclass(frozen=True)
class Finding:
    where: str
    kind: str

    def __str__(self) -> str:
        return f"{self.kind} in clear text at {self.where}"


def _json_records(text: str) -> Iterable[dict]:
    """The records of a JSON-lines file; a malformed bad record (cut off mid-line) has none to read."""
    for line in text.splitlines():
        if line.strip().startswith("{"):
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def _landing_records(landing_root: Path) -> Iterable[tuple[str, dict]]:
    for name, source in SOURCES.items():
        for path in sorted((landing_root / name).glob("*/*")):
            text = path.read_bytes().decode("utf-8", errors="replace")
            if source.file_format == "csv":
                rows = csv.DictReader(io.StringIO(text))
            else:
                rows = _json_records(text)
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
        # binary files hold strings next to arbitrary bytes (lengths, opcodes): no token boundaries there
        self._by_bytes = {value.encode(): kind for value, kind in self._by_value.items() if kind in FREE_TEXT_KINDS}
        self._bytes_pattern = (
            re.compile(b"|".join(map(re.escape, sorted(self._by_bytes, key=len, reverse=True)))) if free else None
        )

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
            findings += [Finding(f"{where} #{number}", kind) for kind in sorted(self._kinds(text))]
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

    def mlflow(self, tracking_uri: str, scanned: list[str] | None = None) -> list[Finding]:
        """Everything the tracking store and registry hold: experiments (names, tags); runs (names, params, tags,
        metric names); logged models (params, tags); every artifact file of runs and logged models, text decoded and
        binary model files (pickles, CatBoost/XGBoost models) byte for byte; registered models and their versions
        (descriptions, tags, aliases). `scanned` collects the artifact files looked at."""
        from mlflow.entities import ViewType
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        findings = []
        experiments = client.search_experiments(view_type=ViewType.ALL)
        ids = [e.experiment_id for e in experiments]
        for experiment in experiments:
            fields = [experiment.name, *_pairs(experiment.tags)]
            findings += self._fields(f"mlflow experiment {experiment.experiment_id}", fields)
        runs = _all_pages(lambda token: client.search_runs(ids, run_view_type=ViewType.ALL, page_token=token))
        for run in runs if ids else []:
            where = f"mlflow run {run.info.run_id[:8]}"
            data = run.data
            fields = [run.info.run_name or "", *_pairs(data.params), *_pairs(data.tags), *data.metrics]
            findings += self._fields(where, fields)
            if client.list_artifacts(run.info.run_id):  # a run that logged no file has no artifact folder
                findings += self._artifacts(where, run.info.artifact_uri, tracking_uri, scanned)
        models = _all_pages(lambda token: client.search_logged_models(ids, page_token=token))
        for model in models if ids else []:
            where = f"mlflow logged model {model.model_id}"
            findings += self._fields(where, [model.name, *_pairs(model.params), *_pairs(model.tags)])
            if client.list_logged_model_artifacts(model.model_id):
                findings += self._artifacts(where, model.artifact_location, tracking_uri, scanned)
        for registered in _all_pages(lambda token: client.search_registered_models(page_token=token)):
            where = f"mlflow registered model {registered.name}"
            fields = [registered.name, registered.description or "", *_pairs(registered.tags)]
            findings += self._fields(where, [*fields, *_pairs(registered.aliases)])
            versions = client.search_model_versions(f"name = '{registered.name}'")
            for version in versions:
                fields = [version.description or "", version.source or "", *_pairs(version.tags), *version.aliases]
                findings += self._fields(f"{where} version {version.version}", fields)
        return findings

    def payloads(self, where: str, bodies: Iterable[bytes]) -> list[Finding]:
        """Delivered alert bodies, as received: the exact bytes, and their decoded form (JSON with its \\u escapes
        resolved, an e-mail's decoded headers and body parts), so no transfer encoding hides an identifier."""
        findings = []
        for number, raw in enumerate(bodies):
            texts = [raw.decode("utf-8", errors="replace"), *_decoded(raw)]
            findings += [Finding(f"{where} #{number}", kind) for kind in sorted(set().union(*map(self._kinds, texts)))]
        return findings

    def _fields(self, where: str, fields: Iterable[str]) -> list[Finding]:
        """Short texts of one place (names, key=value pairs), reported as one place."""
        kinds = set().union(*(self._kinds(str(text)) for text in fields))
        return [Finding(where, kind) for kind in sorted(kinds)]

    def _kinds(self, text: str) -> set[str]:
        return {self._by_value[m] for m in self._pattern.findall(text)} if self._pattern is not None else set()

    def _artifacts(self, where: str, artifact_uri: str, tracking_uri: str, scanned: list[str] | None) -> list[Finding]:
        """Every file under an artifact root, downloaded through MLflow (so remote stores work too)."""
        import mlflow.artifacts

        findings = []
        with tempfile.TemporaryDirectory() as folder:
            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=artifact_uri, dst_path=folder, tracking_uri=tracking_uri
                )
            )
            for path in sorted(p for p in local.rglob("*") if p.is_file()):
                name = path.relative_to(local).as_posix()
                if scanned is not None:
                    scanned.append(name)
                findings += [
                    Finding(f"{where} artifact {name}{inner}", kind)
                    for inner, kind in self._file_hits(path.read_bytes())
                ]
        return findings

    def _file_hits(self, data: bytes, inner: str = "") -> list[tuple[str, str]]:
        """(place inside the file, kind) of every identifier in a file's bytes: archives are opened, UTF-8 text is
        scanned for whole tokens, anything else (pickles, model binaries) for the identifiers' bytes anywhere."""
        if data[:4] == b"PK\x03\x04" and zipfile.is_zipfile(io.BytesIO(data)):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                return [
                    hit
                    for member in archive.namelist()
                    if not member.endswith("/")
                    for hit in self._file_hits(archive.read(member), f"{inner}!{member}")
                ]
        if data[:2] == b"\x1f\x8b":
            return self._file_hits(gzip.decompress(data), f"{inner}!gunzip")
        try:
            kinds = self._kinds(data.decode("utf-8"))
        except UnicodeDecodeError:
            kinds = {self._by_bytes[m] for m in self._bytes_pattern.findall(data)} if self._bytes_pattern else set()
        return [(inner, kind) for kind in sorted(kinds)]


def _decoded(raw: bytes) -> list[str]:
    try:
        return [json.dumps(json.loads(raw), ensure_ascii=False)]
    except ValueError:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        headers = [f"{name}: {value}" for name, value in message.items()]
        parts = [part.get_content() for part in message.walk() if not part.is_multipart()]
        return [*headers, *(p if isinstance(p, str) else p.decode("utf-8", errors="replace") for p in parts)]


def _pairs(mapping) -> list[str]:
    return [f"{key}={value}" for key, value in dict(mapping or {}).items()]


def _all_pages(fetch) -> list:
    """Every item of a paged MLflow search."""
    items, token = [], None
    while True:
        page = fetch(token)
        items += list(page)
        token = page.token
        if not token:
            return items


def run_texts(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """A run as texts: each serialised event log entry, then the run's tags and config."""
    texts = [dg.serialize_value(entry) for entry in instance.all_logs(run_id)]
    run = instance.get_run_by_id(run_id)
    if run is not None:
        texts += [json.dumps(run.tags, default=str), json.dumps(run.run_config, default=str)]
    return texts
