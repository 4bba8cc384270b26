"""A store's settings (``StoreConfig``), one frozen group per concern.

The store records its settings by their flat names (``nprobe``, ``tier``, ...), the
spelling of every release so far, so a store opens under this release and the last one
alike; ``StoreConfig.flat`` and ``StoreConfig.from_record`` convert. The flat names as
constructor keywords and attributes are deprecated (docs/deprecations.md, 14 and 15).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from latestore.deprecation import warn_deprecated

if TYPE_CHECKING:  # the index brings FAISS; the records are imported without it
    from latestore.index.ranking import SearchParams
    from latestore.index.token_index import IndexParams


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StorageConfig(_Group):
    """How SQL keeps a page (all build time: fixed once the store exists)."""

    vector_dtype: Literal["float16", "float32", "int8"] = Field(
        default="float16",
        description="How token vectors are stored in SQL. int8 keeps one byte per "
        "dimension plus a float32 scale per token.",
    )
    tier: Literal["full", "compact", "compact-only"] = Field(
        default="full",
        description="Storage tier. full: candidates from FAISS, ranks over the rerank "
        "copy. compact: residual codes (compact_bits per dimension over k-means "
        "centroids) find and score candidates; the final n_rerank pages are scored "
        "exactly on full-precision vectors read from SQL for them. compact-only: SQL "
        "keeps only the codes; final scores are exact MaxSim over the decoded codes. "
        "See docs/compact-tier.md.",
    )
    compact_bits: Literal[1, 2, 4] = Field(
        default=2, description="Bits per dimension of a compact tier's residual codes."
    )
    text_analyzer: str = Field(
        default="english",
        pattern=r"^[a-z][a-z0-9_]{0,62}$",
        description="Full-text analyzer of page text: english (stemmed), simple "
        "(unstemmed); trigram on SQLite; any text search configuration on PostgreSQL.",
    )


class IndexConfig(_Group):
    """The candidate token index (the ``ivf_`` settings are build time)."""

    ivf_min_tokens: int = Field(
        default=100_000,
        ge=1,
        description="Token count from which the candidate index is an IVF; below it, a flat index.",
    )
    ivf_nlist: int | None = Field(
        default=None, ge=1, description="IVF lists; None: about the square root of the tokens."
    )
    ivf_codec: Literal["PQ", "SQ8", "SQfp16", "Flat", "none"] = Field(
        default="PQ", description="How the IVF compresses token vectors; none: always flat."
    )
    candidate_search: Literal["auto", "faiss", "torch"] = Field(
        default="auto",
        description="Candidate token search: the persisted FAISS index (FAISS GPU when "
        "installed), torch (exact matmul and top-k over all tokens on the rerank "
        "device), or auto: torch on CUDA without a FAISS GPU build, else FAISS.",
    )


class MemoryConfig(_Group):
    """The rerank's copy of the page vectors."""

    memory_dtype: Literal["float16", "float32", "int8"] | None = Field(
        default=None,
        description="How the exact rerank holds vectors in RAM; None: as stored. "
        "float32 doubles the memory to skip a conversion per query.",
    )
    vector_cache: Literal["memory", "disk"] = Field(
        default="disk",
        description="Where the copy lives: the heap, or disk: a persisted, verified file "
        "in the index folder, memory-mapped, so opening reads only what changed since it "
        "was written and resident memory stays flat as the store grows (unlinked scratch "
        "files for a store without an index folder; see docs/vector-file.md).",
    )


class DeviceConfig(_Group):
    """Ranking on a GPU."""

    exact: bool = Field(
        default=True,
        description="On a GPU with the fused kernel, rank by exact MaxSim over every "
        "allowed page (they are resident, so a query reads them once at memory speed) "
        "instead of through candidates.",
    )
    precision: Literal["exact", "fast"] = Field(
        default="exact",
        description="Query precision of the GPU kernel. exact: float32 queries as two "
        "float16 halves, scores within about 2e-7 of float64; fast: one float16 "
        "product, about 2e-5 relative. The CPU is always exact.",
    )
    budget_mb: int = Field(
        default=512,
        ge=1,
        description="Largest temporary memory one search may take on the device, in "
        "MiB, whatever the number of queries, query tokens or pages.",
    )
    memory_share: float = Field(
        default=0.7,
        gt=0.0,
        le=0.95,
        description="Share of the device's memory the resident page matrix may take; "
        "past it the store ranks through candidates from the host copy.",
    )


class SearchConfig(_Group):
    """How a search ranks by default (each may be set per call, ``SearchTuning``)."""

    mode: Literal["maxsim", "hybrid", "lexical"] = Field(
        default="maxsim", description="Ranking used when search() is given no mode."
    )
    k_per_token: int = Field(
        default=128,
        ge=1,
        le=65_536,
        description="Nearest page tokens fetched per query token by the candidate search.",
    )
    nprobe: int = Field(default=16, ge=1, description="IVF lists searched per query token.")
    n_rerank: int = Field(
        default=256,
        ge=1,
        description="Candidate pages scored by exact MaxSim after the approximate ranking.",
    )
    widen_above_tokens: int = Field(
        default=1_000_000,
        ge=0,
        description="Past this many tokens (those a query may see), k_per_token grows "
        "with the square root of the growth and n_rerank with its fourth root, so "
        "quality holds as the store grows (4x and 2x at 16M tokens); 0 keeps them fixed.",
    )
    exhaustive_max_tokens: int = Field(
        default=60_000,
        ge=0,
        description="When the pages a query may see hold at most this many tokens, all "
        "of them are scored exactly instead of through candidates.",
    )
    window_scoring: Literal["best", "union"] | None = Field(
        default=None,
        description="How a page encoded in several windows scores. best: its best "
        "window's exact MaxSim, over the rows the page stores for that window (no "
        "long-page bias; docs/ranking-quality.md); union: MaxSim over all its windows' "
        "rows. None: the store's recorded choice: best for a store created with this "
        "release, union for older stores. A store records the value it is created with; "
        "a value given at open applies to that session. Pages written before revision "
        "0008 score as the union either way until re-encoded.",
    )


class HybridConfig(_Group):
    """How the hybrid mode fuses its two rankings (per call: ``HybridOptions``)."""

    fusion: Literal["convex", "rrf", "weighted"] = Field(
        default="convex",
        description="Normalised scores mixed with a lexical share set per query by the "
        "rankings' agreement (convex), reciprocal-rank fusion, or a fixed weighted sum "
        "of normalised scores.",
    )
    lexical_weight: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="The lexical ranking's share (convex: its largest share); None is "
        "the rule's default (convex 0.9; rrf and weighted 0.5, plain RRF or an even sum).",
    )
    rrf_k: int = Field(default=60, ge=1, description="The RRF rank offset.")
    depth: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="Pages taken from each ranking before fusion (at least k).",
    )


class MaintenanceConfig(_Group):
    """When the derived index is snapshotted and the change log pruned."""

    snapshot_every_tokens: int = Field(
        default=250_000,
        ge=1,
        description="Tokens written between snapshots of the derived index (at least).",
    )
    snapshot_every_fraction: float = Field(
        default=0.1,
        ge=0.0,
        le=10.0,
        description="Also wait for this fraction of the store's tokens between "
        "snapshots: a snapshot is rewritten whole, so a fixed interval alone would make "
        "total snapshot writes grow with the square of the store's size.",
    )
    change_log_keep: int = Field(
        default=10_000,
        ge=0,
        description="Write transactions whose change-log rows are kept after they are "
        "in a snapshot; another process whose index is older reloads it from SQL.",
    )


# Each group's field that a flat (recorded, pre-0.2 keyword) name stands for.
_GROUPS: dict[str, type[_Group]] = {
    "storage": StorageConfig,
    "index": IndexConfig,
    "memory": MemoryConfig,
    "device": DeviceConfig,
    "search": SearchConfig,
    "hybrid": HybridConfig,
    "maintenance": MaintenanceConfig,
}
_RENAMED = {
    "device_exact": ("device", "exact"),
    "device_precision": ("device", "precision"),
    "device_budget_mb": ("device", "budget_mb"),
    "device_memory_share": ("device", "memory_share"),
    "search_mode": ("search", "mode"),
    "hybrid_depth": ("hybrid", "depth"),
}
_FLAT_OF = {where: flat for flat, where in _RENAMED.items()}
FLAT_NAMES: dict[str, tuple[str, str]] = {
    _FLAT_OF.get((group, name), name): (group, name)
    for group, kind in _GROUPS.items()
    for name in kind.model_fields
}


def _moves(names: Iterable[str]) -> str:
    return ", ".join(f"{name} -> {'.'.join(FLAT_NAMES[name])}" for name in names)


# Fixed once the store exists (flat names, as recorded).
BUILD_TIME_FIELDS = (
    "vector_dtype",
    "ivf_min_tokens",
    "ivf_nlist",
    "ivf_codec",
    "text_analyzer",
    "tier",
    "compact_bits",
)


class StoreConfig(BaseModel):
    """Build-time and query-time settings, recorded in the store at creation.

    One frozen group per concern: ``storage`` (how SQL keeps pages), ``index`` (the
    candidate index), ``memory`` (the rerank's copy), ``device`` (GPU ranking),
    ``search`` (default ranking), ``hybrid`` (fusion) and ``maintenance`` (snapshots,
    change log). Query-time settings may be changed at any open, or per search call;
    build-time ones (``BUILD_TIME_FIELDS``) are fixed once the store exists.

    Examples
    --------
    >>> config = StoreConfig(search=SearchConfig(nprobe=32), storage=StorageConfig(tier="compact"))
    >>> config.search.nprobe, config.storage.tier, config.index.ivf_codec
    (32, 'compact', 'PQ')
    """

    model_config = ConfigDict(extra="forbid")

    storage: StorageConfig = StorageConfig()
    index: IndexConfig = IndexConfig()
    memory: MemoryConfig = MemoryConfig()
    device: DeviceConfig = DeviceConfig()
    search: SearchConfig = SearchConfig()
    hybrid: HybridConfig = HybridConfig()
    maintenance: MaintenanceConfig = MaintenanceConfig()

    @model_validator(mode="before")
    @classmethod
    def _flat_to_groups(cls, data: Any, info: ValidationInfo) -> Any:
        """Move flat settings (``nprobe=8``) into their groups; warn unless recorded."""
        if not isinstance(data, Mapping):
            return data
        flat = [key for key in data if key in FLAT_NAMES]
        if not flat:
            return data
        if not (info.context or {}).get("recorded"):
            warn_deprecated(
                f"flat StoreConfig settings are deprecated; give them by group ({_moves(flat)})",
                also_skip=("pydantic",),  # the validator runs inside StoreConfig(...)
            )
        out = {key: value for key, value in data.items() if key not in FLAT_NAMES}
        for key in flat:
            group, name = FLAT_NAMES[key]
            given = out.get(group)
            if isinstance(given, BaseModel):
                given = given.model_dump(exclude_unset=True)
            out[group] = {**(given or {}), name: data[key]}
        return out

    @classmethod
    def from_record(cls, recorded: Mapping[str, Any]) -> StoreConfig:
        """The settings a store recorded (flat names, or groups), without a warning."""
        return cls.model_validate(dict(recorded), context={"recorded": True})

    def flat(self) -> dict[str, Any]:
        """Every setting by its flat name: what the store records."""
        return {name: getattr(getattr(self, g), f) for name, (g, f) in FLAT_NAMES.items()}

    def setting(self, name: str) -> Any:
        """One setting by its flat name."""
        group, field = FLAT_NAMES[name]
        return getattr(getattr(self, group), field)

    def is_given(self, name: str) -> bool:
        """Whether a setting (flat name) was given, rather than left at its default."""
        group, field = FLAT_NAMES[name]
        return group in self.model_fields_set and field in getattr(self, group).model_fields_set

    def updated(self, changes: Mapping[str, Any]) -> Self:
        """A copy with settings changed by flat name, not revalidated (checked callers)."""
        by_group: dict[str, dict[str, Any]] = {}
        for name, value in changes.items():
            group, field = FLAT_NAMES[name]
            by_group.setdefault(group, {})[field] = value
        return super().model_copy(
            update={g: getattr(self, g).model_copy(update=u) for g, u in by_group.items()}
        )

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """As pydantic's; a flat name in ``update`` (deprecated) goes to its group."""
        flat = {k: v for k, v in (update or {}).items() if k in FLAT_NAMES}
        if not flat:
            return super().model_copy(update=update, deep=deep)
        warn_deprecated(
            "StoreConfig.model_copy(update=...) with flat settings is deprecated; update "
            f"their groups ({_moves(flat)})"
        )
        rest = {k: v for k, v in (update or {}).items() if k not in flat}
        copied = super().model_copy(update=rest, deep=deep)
        return copied.updated(flat)

    def index_params(self) -> IndexParams:
        from latestore.index.token_index import IndexParams

        index = self.index
        return IndexParams(
            ivf_min_tokens=index.ivf_min_tokens,
            ivf_nlist=index.ivf_nlist,
            ivf_codec=index.ivf_codec,
        )

    def search_params(self) -> SearchParams:
        from latestore.index.ranking import SearchParams

        search, device = self.search, self.device
        return SearchParams(
            k_per_token=search.k_per_token,
            nprobe=search.nprobe,
            n_rerank=search.n_rerank,
            widen_above_tokens=search.widen_above_tokens,
            exhaustive_max_tokens=search.exhaustive_max_tokens,
            device_exact=device.exact,
            device_precision=device.precision,
        )

    if not TYPE_CHECKING:  # mypy keeps flagging flat reads; at run time they still work

        def __getattr__(self, name: str) -> Any:
            where = FLAT_NAMES.get(name)
            if where is None:
                return super().__getattr__(name)
            warn_deprecated(f"StoreConfig.{name} is deprecated; read StoreConfig.{'.'.join(where)}")
            return getattr(getattr(self, where[0]), where[1])
