"""Unity Catalog governance as data: who may do what on which schema, and which columns are PHI.

`governance_statements` turns the declaration into idempotent SQL for one
environment's catalog: it creates the schemas and volumes it grants on, grants
(schemas, the model schema, volumes), then comments and tags the tables that
exist (a table not written yet is documented by the next run of the job).
PHI flags come from the feed contracts in `sources.py`, so a new PHI column is
tagged without touching this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from healthcare_assets.domain.sources import SOURCES, Source
from healthcare_assets.environments import MODEL_SCHEMA, OPS_SCHEMA, SCHEMAS, VOLUMES

# Privileges per role on each schema (role names match EnvironmentProfile.principals).
WRITE = ("USE SCHEMA", "SELECT", "MODIFY", "CREATE TABLE")
READ = ("USE SCHEMA", "SELECT")
# Unity Catalog models: registering a version needs CREATE MODEL, loading one (scoring, serving) EXECUTE.
REGISTER_MODELS = ("USE SCHEMA", "CREATE MODEL", "EXECUTE")
USE_MODELS = ("USE SCHEMA", "EXECUTE")
# the volumes' schema: files are read and written through volume privileges
USE_VOLUMES = ("USE SCHEMA",)
ROLE_PRIVILEGES: dict[str, dict[str, tuple[str, ...]]] = {
    # the pipeline's service principal owns the medallion writes, the models and the deployment's files
    "pipeline": {
        "landing": READ,
        "bronze": WRITE,
        "silver": WRITE,
        "gold": WRITE,
        "governance": WRITE,
        MODEL_SCHEMA: REGISTER_MODELS,
        OPS_SCHEMA: USE_VOLUMES,
    },
    # engineers debug ingestion: they read every layer, bronze (raw PHI) included
    "data_engineers": {"landing": USE_VOLUMES, "bronze": READ, "silver": READ, "gold": READ, "governance": READ},
    # scientists see pseudonymised features only, and may load the registered models
    "data_scientists": {"gold": READ, MODEL_SCHEMA: USE_MODELS},
    # compliance reviews the pseudonymised layers and the promotion audit log
    "auditors": {"silver": READ, "gold": READ, "governance": READ},
}
# Privileges per role on each volume (`schema.volume`): the pipeline reads the feeds and writes its own files.
VOLUME_PRIVILEGES: dict[str, dict[str, tuple[str, ...]]] = {
    "pipeline": {
        f"{volume.schema}.{volume.name}": ("READ VOLUME",)
        if volume.schema == "landing"
        else ("READ VOLUME", "WRITE VOLUME")
        for volume in VOLUMES
    },
    "data_engineers": {"landing.feeds": ("READ VOLUME",)},
}

PSEUDONYM_COLUMN = "member_key"


@dataclass(frozen=True)
class TableDoc:
    schema: str
    table: str
    comment: str
    contains_phi: bool
    phi_columns: tuple[str, ...] = ()


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _principal(name: str) -> str:
    if "`" in name:
        raise ValueError(f"principal {name!r} may not contain a backtick")
    return f"`{name}`"


def table_docs(sources: Mapping[str, Source] = SOURCES) -> list[TableDoc]:
    """Bronze tables hold the feeds as received (PHI columns tagged); silver carries pseudonyms only."""
    docs = []
    for name, source in sources.items():
        docs.append(
            TableDoc(
                "bronze",
                name,
                f"{source.description} As received; contains PHI (restricted to the pipeline and data engineers).",
                contains_phi=bool(source.phi_columns),
                phi_columns=tuple(source.phi_columns),
            )
        )
        docs.append(
            TableDoc(
                "silver",
                name,
                f"{source.description} Typed and deduplicated; member id replaced by the keyed pseudonym member_key.",
                contains_phi=False,
            )
        )
    return docs


def setup_statements(catalog: str) -> list[str]:
    """The schemas and volumes the grants name, created when missing (the catalog itself exists already)."""
    statements = [f"CREATE SCHEMA IF NOT EXISTS {catalog}.{schema}" for schema in (*SCHEMAS, MODEL_SCHEMA, OPS_SCHEMA)]
    statements += [
        f"CREATE VOLUME IF NOT EXISTS {catalog}.{volume.schema}.{volume.name} COMMENT {_quote(volume.comment)}"
        for volume in VOLUMES
    ]
    return statements


def grant_statements(catalog: str, principals: Mapping[str, str]) -> list[str]:
    """GRANTs for every role the environment names a principal for (roles without one are skipped)."""
    statements = []
    for role, schemas in ROLE_PRIVILEGES.items():
        principal = principals.get(role)
        if principal is None:
            continue
        statements.append(f"GRANT USE CATALOG ON CATALOG {catalog} TO {_principal(principal)}")
        for schema, privileges in schemas.items():
            statements.append(f"GRANT {', '.join(privileges)} ON SCHEMA {catalog}.{schema} TO {_principal(principal)}")
        for volume, privileges in VOLUME_PRIVILEGES.get(role, {}).items():
            statements.append(f"GRANT {', '.join(privileges)} ON VOLUME {catalog}.{volume} TO {_principal(principal)}")
    return statements


def documentation_statements(catalog: str, docs: list[TableDoc]) -> list[str]:
    """Table comments, a `contains_phi` table tag and a `phi` tag on each PHI column."""
    statements = []
    for doc in docs:
        table = f"{catalog}.{doc.schema}.{doc.table}"
        statements.append(f"COMMENT ON TABLE {table} IS {_quote(doc.comment)}")
        statements.append(f"ALTER TABLE {table} SET TAGS ('contains_phi' = '{str(doc.contains_phi).lower()}')")
        for column in doc.phi_columns:
            statements.append(f"ALTER TABLE {table} ALTER COLUMN {column} SET TAGS ('phi' = 'true')")
        if doc.schema != "bronze":
            statements.append(
                f"ALTER TABLE {table} ALTER COLUMN {PSEUDONYM_COLUMN} SET TAGS ('pseudonym' = 'hmac-sha256')"
            )
    return statements


def governance_statements(
    catalog: str, principals: Mapping[str, str], existing_tables: set[str] | None = None
) -> list[str]:
    """Everything the grants job applies to one environment's catalog, in order; table comments and tags only for
    the tables in `existing_tables` (`schema.table`), all of them when it is None."""
    docs = [d for d in table_docs() if existing_tables is None or f"{d.schema}.{d.table}" in existing_tables]
    return setup_statements(catalog) + grant_statements(catalog, principals) + documentation_statements(catalog, docs)
