"""Unity Catalog governance as data: who may do what on which schema, and which columns are PHI.

`governance_statements` turns the declaration into idempotent SQL (GRANT, COMMENT,
SET TAGS) for one environment's catalog; a job applies it on Databricks.
PHI flags come from the feed contracts in `sources.py`, so a new PHI column is
tagged without touching this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from healthcare_assets.domain.sources import SOURCES, Source

# Privileges per role on each schema (role names match EnvironmentProfile.principals).
WRITE = ("USE SCHEMA", "SELECT", "MODIFY", "CREATE TABLE")
READ = ("USE SCHEMA", "SELECT")
ROLE_PRIVILEGES: dict[str, dict[str, tuple[str, ...]]] = {
    # the pipeline's service principal owns the medallion writes
    "pipeline": {"landing": READ, "bronze": WRITE, "silver": WRITE, "gold": WRITE},
    # engineers debug ingestion: they read every layer, bronze (raw PHI) included
    "data_engineers": {"bronze": READ, "silver": READ, "gold": READ},
    # scientists see pseudonymised features only
    "data_scientists": {"gold": READ},
    # compliance reviews the pseudonymised layers
    "auditors": {"silver": READ, "gold": READ},
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


def governance_statements(catalog: str, principals: Mapping[str, str]) -> list[str]:
    """Everything the grants job applies to one environment's catalog, in order."""
    return grant_statements(catalog, principals) + documentation_statements(catalog, table_docs())
