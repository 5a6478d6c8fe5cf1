"""Spatial architecture description (``arch: 1``), validated with pydantic.

Every latency and cost may be 0 so the engine can be checked against queueing theory.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from octosim.errors import UserError
from octosim.model.loader import pydantic_error, require_mapping


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PeaSpec(_Strict):
    rows: int = Field(16, ge=1, le=4096)
    cols: int = Field(16, ge=1, le=4096)
    sram_kib: int = Field(512, ge=0, le=1 << 30)
    dataflow: Literal["os", "ws", "is"] = "os"


class TbuSpec(_Strict):
    peas: int = Field(16, ge=1, le=4096)
    # Speed-up of k PEAs on one task instance is 1 + (k - 1) * split_efficiency.
    split_efficiency: float = Field(0.9, ge=0.0, le=1.0)


class ClusterSpec(_Strict):
    tbus: int = Field(16, ge=1, le=4096)
    cbu_cycles: int = Field(20, ge=0, le=10**9)


class GridSpec(_Strict):
    rows: int = Field(1, ge=1, le=256)
    cols: int = Field(1, ge=1, le=256)


class NocSpec(_Strict):
    hop_cycles: int = Field(2, ge=0, le=10**6)
    link_bytes_per_cycle: float = Field(64.0, ge=1e-3, le=1e9)


class ControlPlaneSpec(_Strict):
    hop_cycles: int = Field(1, ge=0, le=10**6)


class MemorySpec(_Strict):
    """Off-chip memory behind controllers: ``edge`` puts one on every cluster of the grid's
    boundary (where a wafer's HBM or I/O dies sit), ``per_cluster`` one on every cluster;
    each cluster is served by its nearest controller (ties shared out evenly).
    ``bytes_per_cycle`` is the bandwidth of one controller."""

    bytes_per_cycle: float = Field(256.0, ge=1e-3, le=1e12)
    controllers: Literal["edge", "per_cluster"] = "edge"


class IoSpec(_Strict):
    """Where workflow instances enter: ``edge`` (the grid's boundary clusters), ``uniform``
    (every cluster) or a list of cluster ids. Their input bytes cross the NoC from there."""

    placement: Literal["edge", "uniform"] | list[int] = "edge"


class ReconfigSpec(_Strict):
    fixed_cycles: int = Field(500, ge=0, le=10**9)


class DefectSpec(_Strict):
    """Manufacturing defects: named units, and fractions of each kind drawn from ``seed``
    (resolved by :func:`octosim.hardware.defects.resolve_defects`; the same wafer whatever
    the run's seed or policy)."""

    # Global TBU index: cluster * tbus_per_cluster + tbu; PEA index likewise within the chip.
    dead_tbus: list[int] = Field(default_factory=list, max_length=1_000_000)
    dead_peas: list[int] = Field(default_factory=list, max_length=1_000_000)
    dead_routers: list[int] = Field(default_factory=list, max_length=65536)
    dead_pea_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    dead_tbu_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    dead_router_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    seed: int = Field(0, ge=0, le=2**63 - 1)


class ArchSpec(_Strict):
    arch: Literal[1]
    name: str = Field(min_length=1, max_length=100)
    description: str | None = None
    clock_ghz: float = Field(1.0, gt=0, le=100)
    pea: PeaSpec = PeaSpec()
    tbu: TbuSpec = TbuSpec()
    cluster: ClusterSpec = ClusterSpec()
    grid: GridSpec = GridSpec()
    noc: NocSpec = NocSpec()
    control_plane: ControlPlaneSpec = ControlPlaneSpec()
    memory: MemorySpec = MemorySpec()
    io: IoSpec = IoSpec()
    reconfig: ReconfigSpec = ReconfigSpec()
    defects: DefectSpec = DefectSpec()
    sources: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_defects(self) -> ArchSpec:
        n_clusters = self.grid.rows * self.grid.cols
        n_tbus = n_clusters * self.cluster.tbus
        n_peas = n_tbus * self.tbu.peas
        # UserError (not ValueError) so that pydantic lets it through with its exact place.
        if n_peas > 50_000_000:
            raise UserError(f"{n_peas} PEAs (grid x cluster.tbus x tbu.peas) is more than "
                            "this simulator supports (50M)", where="grid")
        for name, items, limit in (("dead_tbus", self.defects.dead_tbus, n_tbus),
                                   ("dead_peas", self.defects.dead_peas, n_peas),
                                   ("dead_routers", self.defects.dead_routers, n_clusters)):
            for i, x in enumerate(items):
                if not 0 <= x < limit:
                    raise UserError(f"index {x} outside 0..{limit - 1}",
                                    where=f"defects.{name}[{i}]")
        if isinstance(self.io.placement, list):
            if not self.io.placement:
                raise UserError("an empty list: give at least one cluster id, or edge or "
                                "uniform", where="io.placement")
            for i, x in enumerate(self.io.placement):
                if not 0 <= x < n_clusters:
                    raise UserError(f"cluster {x} outside 0..{n_clusters - 1}",
                                    where=f"io.placement[{i}]")
        return self

    @property
    def n_clusters(self) -> int:
        return self.grid.rows * self.grid.cols

    @property
    def n_tbus(self) -> int:
        return self.n_clusters * self.cluster.tbus

    @property
    def n_peas(self) -> int:
        return self.n_tbus * self.tbu.peas


def parse_arch(data: Any, file: str) -> ArchSpec:
    raw = require_mapping(data, file, "an architecture with arch: 1")
    if raw.get("arch") != 1:
        raise UserError("not an architecture file: expected 'arch: 1'", file=file, where="arch")
    try:
        return ArchSpec.model_validate(raw)
    except ValidationError as exc:
        raise pydantic_error(exc, file) from None
    except UserError as exc:
        raise exc.within(file=file) from None
