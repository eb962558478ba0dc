"""SageMaker training instance types kitaru can choose from a call's `resources`.

A call's cpu / memory / gpu / accelerator are mapped to the smallest instance of this table
that has them all (fewest GPUs, then vCPUs, then memory), so a request is never silently
under-provisioned. An instance type outside the table can still be used, by naming it in the
stack's `instance_type` or the call's `options={"instance_type": ...}`: kitaru then passes it
on and checks nothing it does not know.
"""

from __future__ import annotations

from dataclasses import dataclass

from kitaru_core.errors import ResourceError
from kitaru_core.interfaces import Resources

_GIB = 2**30


@dataclass(frozen=True, slots=True)
class Instance:
    """One instance type: vCPUs, memory (GiB), GPUs and the GPU's name."""

    name: str
    vcpus: int
    memory_gib: float
    gpus: int = 0
    gpu_name: str | None = None


def _family(prefix: str, sizes: list[tuple[str, int, float, int]], gpu_name: str | None = None
            ) -> list[Instance]:
    return [Instance(f"ml.{prefix}.{size}", cpu, mem, gpus, gpu_name if gpus else None)
            for size, cpu, mem, gpus in sizes]


#: Current-generation general purpose, compute, memory and GPU families (AWS's published specs).
INSTANCES: tuple[Instance, ...] = (
    *_family("m5", [("large", 2, 8, 0), ("xlarge", 4, 16, 0), ("2xlarge", 8, 32, 0),
                    ("4xlarge", 16, 64, 0), ("12xlarge", 48, 192, 0), ("24xlarge", 96, 384, 0)]),
    *_family("c5", [("xlarge", 4, 8, 0), ("2xlarge", 8, 16, 0), ("4xlarge", 16, 32, 0),
                    ("9xlarge", 36, 72, 0), ("18xlarge", 72, 144, 0)]),
    *_family("r5", [("large", 2, 16, 0), ("xlarge", 4, 32, 0), ("2xlarge", 8, 64, 0),
                    ("4xlarge", 16, 128, 0), ("8xlarge", 32, 256, 0), ("12xlarge", 48, 384, 0),
                    ("16xlarge", 64, 512, 0), ("24xlarge", 96, 768, 0)]),
    *_family("g4dn", [("xlarge", 4, 16, 1), ("2xlarge", 8, 32, 1), ("4xlarge", 16, 64, 1),
                      ("8xlarge", 32, 128, 1), ("12xlarge", 48, 192, 4), ("16xlarge", 64, 256, 1)],
             "nvidia-tesla-t4"),
    *_family("g5", [("xlarge", 4, 16, 1), ("2xlarge", 8, 32, 1), ("4xlarge", 16, 64, 1),
                    ("8xlarge", 32, 128, 1), ("12xlarge", 48, 192, 4), ("16xlarge", 64, 256, 1),
                    ("24xlarge", 96, 384, 4), ("48xlarge", 192, 768, 8)], "nvidia-a10g"),
    *_family("p3", [("2xlarge", 8, 61, 1), ("8xlarge", 32, 244, 4), ("16xlarge", 64, 488, 8)],
             "nvidia-tesla-v100"),
    *_family("p4d", [("24xlarge", 96, 1152, 8)], "nvidia-a100"),
    *_family("p5", [("48xlarge", 192, 2048, 8)], "nvidia-h100"),
)
BY_NAME = {i.name: i for i in INSTANCES}
#: GPU names an `accelerator` may give (besides an `ml.*` instance type).
GPU_NAMES = tuple(sorted({i.gpu_name for i in INSTANCES if i.gpu_name}))


def fits(instance: Instance, res: Resources) -> str | None:
    """None if `instance` provides `res`, else the first field it falls short on."""
    memory = res.memory_bytes()
    if res.cpu is not None and res.cpu > instance.vcpus:
        return "cpu"
    if memory is not None and memory > instance.memory_gib * _GIB:
        return "memory"
    if res.gpu and res.gpu > instance.gpus:
        return "gpu"
    if res.accelerator and res.accelerator.startswith("ml.") and res.accelerator != instance.name:
        return "accelerator"
    if res.accelerator and not res.accelerator.startswith("ml.") and res.accelerator != instance.gpu_name:
        return "accelerator"
    return None


def choose(res: Resources, *, named: str | None, default: str) -> str:
    """The instance type for a call: `named` (the call's `options`), else `default` (the
    stack's) when it has what `res` asks for, else the smallest in the table that does.

    Raises `ResourceError` naming the field no instance (or the named one) can provide.
    """
    _check_accelerator(res)
    accel_type = res.accelerator if res.accelerator and res.accelerator.startswith("ml.") else None
    if named is not None:
        if accel_type and accel_type != named:
            raise ResourceError(
                f"options instance_type={named!r} and accelerator={accel_type!r} disagree; give one of them"
            )
        known = BY_NAME.get(named)
        short = fits(known, res) if known is not None else None
        if short is not None:
            raise ResourceError(f"options instance_type={named!r} cannot provide {_field(res, short)}; "
                                f"{_offer(known)}: name a larger instance or lower `{short}`")
        return named
    if accel_type:
        return accel_type
    if res.cpu is None and res.memory is None and not res.gpu and res.accelerator is None:
        return default
    current = BY_NAME.get(default)
    if current is not None and fits(current, res) is None:
        return default
    candidates = [i for i in INSTANCES if fits(i, res) is None]
    if not candidates:
        short = _widest_gap(res)
        raise ResourceError(
            f"no SageMaker instance kitaru knows provides {_field(res, short)} together with the "
            f"call's other resources; lower `{short}` or name an instance type with "
            "options={'instance_type': 'ml....'} (see docs/sagemaker.md)"
        )
    best = min(candidates, key=lambda i: (i.gpus, i.vcpus, i.memory_gib))
    return best.name


def _check_accelerator(res: Resources) -> None:
    accel = res.accelerator
    if accel is None:
        return
    if accel.startswith("ml."):
        if accel in BY_NAME and not BY_NAME[accel].gpus:
            raise ResourceError(f"accelerator={accel!r} has no GPU; name it as options instance_type instead")
        return
    if accel not in GPU_NAMES:
        raise ResourceError(
            f"accelerator={accel!r} is not a GPU the sagemaker target knows; use one of "
            f"{', '.join(GPU_NAMES)} or an ml.* GPU instance type"
        )


def _widest_gap(res: Resources) -> str:
    """The field no instance in the table provides on its own (or the first that fails)."""
    for name in ("gpu", "accelerator", "cpu", "memory"):
        alone = Resources(**{name: getattr(res, name)}) if getattr(res, name) is not None else None
        if alone is not None and not any(fits(i, alone) is None for i in INSTANCES):
            return name
    return "memory" if res.memory is not None else "cpu"


def _field(res: Resources, name: str) -> str:
    return f"{name}={getattr(res, name)!r}"


def _offer(instance: Instance) -> str:
    gpus = f", {instance.gpus} x {instance.gpu_name}" if instance.gpus else ""
    return f"it has {instance.vcpus} vCPUs, {instance.memory_gib:g} GiB{gpus}"
