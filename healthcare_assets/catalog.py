"""What the asset catalog shows besides the data: column docs, column lineage, gate markers, code links.

Every asset module adopts these with one call each:

* `table_schema([(name, type), ...])` -> `dg.TableSchema` whose columns carry their
  descriptions (from `domain/columns.py`); the IO manager uses it for every table.
* `column_lineage(columns, passthrough={upstream_key: upstream_columns}, derived={column: [(key, column)]})`
  -> `{"dagster/column_lineage": ...}` for a materialisation's metadata.
* `schema_metadata(struct)` -> definition metadata with the columns of a table whose Spark schema is fixed.
* `gate_metadata(blocking)` -> check metadata that marks blocking checks as gates.
* `with_code_references(assets)` -> the assets with links to the file and line that define them.
"""

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import dagster as dg

from healthcare_assets.domain.columns import column_description

if TYPE_CHECKING:
    from dagster._core.definitions.assets.definition.cacheable_assets_definition import CacheableAssetsDefinition
    from pyspark.sql.types import StructType

ColumnSource = tuple[dg.AssetKey, str]
# What Dagster's module loaders and code-reference helpers take and return (the cacheable kind is not exported).
LoadedAsset: TypeAlias = "dg.AssetsDefinition | dg.SourceAsset | CacheableAssetsDefinition | dg.AssetSpec"


def table_schema(columns: Iterable[tuple[str, str]]) -> dg.TableSchema:
    """A column schema of (name, type) pairs, each column with its catalog description."""
    return dg.TableSchema(
        columns=[dg.TableColumn(name=name, type=dtype, description=column_description(name)) for name, dtype in columns]
    )


def schema_metadata(struct: "StructType") -> dict[str, dg.TableSchema]:
    """Definition metadata with a table's columns (a Spark schema), so the catalog shows them before the first
    materialisation."""
    return {"dagster/column_schema": table_schema((f.name, f.dataType.simpleString()) for f in struct.fields)}


def column_lineage(
    columns: Iterable[str],
    passthrough: Mapping[dg.AssetKey, Iterable[str]] | None = None,
    derived: Mapping[str, Sequence[ColumnSource]] | None = None,
) -> dict[str, dg.TableColumnLineage]:
    """Column lineage metadata: each column from its `derived` sources, else from the first upstream that has it.

    Columns found in neither (e.g. constants) have no lineage entry.
    """
    upstream = {key: set(names) for key, names in (passthrough or {}).items()}
    derived = derived or {}
    deps: dict[str, list[dg.TableColumnDep]] = {}
    for name in columns:
        if name in derived:
            deps[name] = [dg.TableColumnDep(asset_key=key, column_name=column) for key, column in derived[name]]
            continue
        for key, names in upstream.items():
            if name in names:
                deps[name] = [dg.TableColumnDep(asset_key=key, column_name=name)]
                break
    return {"dagster/column_lineage": dg.TableColumnLineage(deps_by_column=deps)}


def gate_metadata(blocking: bool) -> dict[str, str]:
    """Marks a check in the catalog: downstream steps of the same run wait for a blocking gate, and its failure
    stops them when the gate's severity is ERROR (a WARN failure is reported and they run)."""
    if blocking:
        return {"gate": "blocking: downstream assets in the same run wait for it; an ERROR failure stops them"}
    return {"gate": "warning: reported, downstream assets still run"}


PACKAGE_ROOT = Path(__file__).resolve().parent


def with_code_references(
    assets: Sequence[LoadedAsset], git_url: str | None = None, git_branch: str = "main"
) -> Sequence[LoadedAsset]:
    """The assets with a reference to the source file and line defining each; links to git when a URL is given.

    Without a URL the references are local file paths (what `dagster dev` on a laptop can open).
    """
    referenced = dg.with_source_code_references(assets)
    if git_url is None:
        return referenced
    return dg.link_code_references_to_git(
        referenced,
        git_url=git_url,
        git_branch=git_branch,
        file_path_mapping=dg.AnchorBasedFilePathMapping(
            local_file_anchor=PACKAGE_ROOT, file_anchor_path_in_repository=PACKAGE_ROOT.name
        ),
    )
