"""Compute Engine machine types a Vertex AI custom job can use: picking the smallest machine
of a family that has the cpu and memory a call asks for."""

from __future__ import annotations

from dataclasses import dataclass

#: Families with their sizes (vCPUs) and memory per vCPU in GB (Compute Engine's GB are GiB).
FAMILIES: dict[str, tuple[tuple[int, ...], float]] = {
    "n1-standard": ((1, 2, 4, 8, 16, 32, 64, 96), 3.75),
    "n1-highmem": ((2, 4, 8, 16, 32, 64, 96), 6.5),
    "n1-highcpu": ((2, 4, 8, 16, 32, 64, 96), 0.9),
    "n2-standard": ((2, 4, 8, 16, 32, 48, 64, 80, 96, 128), 4.0),
    "n2-highmem": ((2, 4, 8, 16, 32, 48, 64, 80, 96, 128), 8.0),
    "n2-highcpu": ((2, 4, 8, 16, 32, 48, 64, 80, 96), 1.0),
    "e2-standard": ((2, 4, 8, 16, 32), 4.0),
    "e2-highmem": ((2, 4, 8, 16), 8.0),
    "e2-highcpu": ((2, 4, 8, 16, 32), 1.0),
    "g2-standard": ((4, 8, 12, 16, 24, 32, 48, 96), 4.0),
}


@dataclass(frozen=True, slots=True)
class MachineType:
    name: str
    cpus: int
    memory_bytes: int


def parse(name: str) -> MachineType | None:
    """The shape of a machine type of a known family (`n1-standard-8`), else None."""
    family, _, size = name.rpartition("-")
    if family not in FAMILIES or not size.isdigit() or int(size) not in FAMILIES[family][0]:
        return None
    cpus = int(size)
    return MachineType(name, cpus, int(cpus * FAMILIES[family][1] * 2**30))


def smallest_fitting(base: str, cpu: float | None, memory_bytes: int | None) -> MachineType | None:
    """The smallest machine of `base`'s family with at least `cpu` vCPUs and `memory_bytes`;
    `base` itself when it fits; None when nothing of the family does (or the family is unknown)."""
    shape = parse(base)
    if shape is None:
        return None
    family = base.rpartition("-")[0]
    sizes, per_cpu = FAMILIES[family]
    for cpus in sizes:
        memory = int(cpus * per_cpu * 2**30)
        # never smaller than the stack's machine type, which is the floor of every call
        if cpus >= shape.cpus and cpus >= (cpu or 0) and memory >= (memory_bytes or 0):
            return MachineType(f"{family}-{cpus}", cpus, memory)
    return None
