"""Resumable training checkpoints: adapter, optimizer, RNG states and data position, written atomically.

Tensors go to safetensors and everything else to JSON, so resuming never unpickles a file.
A checkpoint is a folder `step-NNNNNN`, staged under a dot-name and renamed into place once
complete: a crash mid-write leaves the previous checkpoint, never half of a new one. Each holds a
provenance record, keyed with the workspace key, naming its files, fingerprint and folder: resuming
trusts only checkpoints this workspace wrote for this run (a copied or edited one is set aside).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from adapterops.errors import AdapterOpsError
from adapterops.signing import keyed_hash
from adapterops.storage import file_digest

PREFIX = "step-"
PROVENANCE_FILE = "provenance.json"
CHECKPOINT_FILES = ("adapter.safetensors", "optimizer.safetensors", "rng.safetensors", "state.json")
log = logging.getLogger(__name__)


@dataclass
class TrainingState:
    """Where training stands after `step` optimizer steps: data order, queue and the loss curve so far."""
    step: int = 0
    queue: list[int] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    fingerprint: str = ""


def checkpoint_fingerprint(path: Path) -> str | None:
    """The run fingerprint a checkpoint was written for (data, model and settings); None if unreadable."""
    try:
        return json.loads((path / "state.json").read_text(encoding="utf-8")).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


def checkpoint_name(step: int) -> str:
    return f"{PREFIX}{step:06d}"


def latest_checkpoint(directory: Path | None) -> Path | None:
    """The complete checkpoint with the most steps, or None (staging folders are ignored)."""
    if directory is None or not directory.is_dir():
        return None
    done = [p for p in directory.glob(f"{PREFIX}*") if (p / "state.json").is_file()]
    return max(done, key=lambda p: p.name) if done else None


def _provenance_mac(folder: Path, run_dir: Path) -> tuple[dict, str]:
    """The checkpoint's file digests and their keyed hash, bound to the run folder it belongs to."""
    files = {name: file_digest(folder / name) for name in CHECKPOINT_FILES}
    fingerprint = json.loads((folder / "state.json").read_text(encoding="utf-8"))["fingerprint"]
    body = json.dumps({"files": files, "fingerprint": fingerprint, "run": str(run_dir.resolve())}, sort_keys=True)
    return files, keyed_hash(body.encode("utf-8"), "checkpoint")


def provenance_problem(path: Path) -> str | None:
    """Why the checkpoint at `path` cannot be trusted (None: this workspace wrote it, in this folder, unchanged)."""
    try:
        recorded = json.loads((path / PROVENANCE_FILE).read_text(encoding="utf-8"))
        _, mac = _provenance_mac(path, path.parent)
    except FileNotFoundError:
        return "it has no provenance record (written elsewhere, or before records were kept)"
    except (OSError, ValueError, KeyError) as error:
        return f"it cannot be read back ({type(error).__name__})"
    if not hmac.compare_digest(str(recorded.get("mac", "")), mac):
        return "its files, fingerprint or folder differ from what this workspace recorded when it wrote them"
    return None


def resumable_checkpoint(directory: Path | None) -> Path | None:
    """The newest checkpoint this run wrote; untrusted ones are set aside (`.refused-step-N`) and logged."""
    while (latest := latest_checkpoint(directory)) is not None:
        problem = provenance_problem(latest)
        if problem is None:
            return latest
        aside = latest.with_name(f".refused-{latest.name}-{time.time_ns()}")
        try:
            latest.rename(aside)
        except FileNotFoundError:
            continue      # another process of this run (another rank) set it aside first
        log.warning("Not resuming from %s: %s. Set aside as %s; training starts from the previous trusted checkpoint "
                    "or from scratch.", latest, problem, aside.name)
    return None


def _flatten_optimizer(state_dict: dict) -> tuple[dict, dict]:
    """Optimizer state split into tensors (for safetensors) and plain values (for JSON)."""
    import torch

    tensors, plain = {}, {"param_groups": state_dict["param_groups"], "state": {}}
    for index, values in state_dict["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value.detach().contiguous().cpu()
            else:
                plain["state"].setdefault(str(index), {})[key] = value
    return tensors, plain


def _unflatten_optimizer(tensors: dict, plain: dict) -> dict:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    for index, values in plain["state"].items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": plain["param_groups"]}


def _rng_tensors(order) -> dict:
    import torch

    tensors = {"torch": torch.get_rng_state(), "data_order": order.get_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = state
    return tensors


def _write_synced(path: Path, write) -> None:
    write(path)
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def save_checkpoint(directory: Path, state: TrainingState, named_params: dict, optimizer, order,
                    keep: int) -> Path:
    """Write step-N atomically (stage, fsync, rename), then drop all but the `keep` newest."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    target = directory / checkpoint_name(state.step)
    staging = directory / f".{target.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    adapter = {name: p.detach().contiguous().cpu() for name, p in named_params.items()}
    optimizer_tensors, optimizer_plain = _flatten_optimizer(optimizer.state_dict())
    _write_synced(staging / "adapter.safetensors", lambda p: save_file(adapter, str(p)))
    _write_synced(staging / "optimizer.safetensors", lambda p: save_file(optimizer_tensors, str(p)))
    _write_synced(staging / "rng.safetensors", lambda p: save_file(_rng_tensors(order), str(p)))
    document = {"step": state.step, "queue": state.queue, "history": state.history,
                "fingerprint": state.fingerprint, "optimizer": optimizer_plain}
    _write_synced(staging / "state.json", lambda p: p.write_text(json.dumps(document), encoding="utf-8"))
    files, mac = _provenance_mac(staging, directory)
    _write_synced(staging / PROVENANCE_FILE, lambda p: p.write_text(json.dumps({"files": files, "mac": mac}), encoding="utf-8"))
    if target.exists():
        shutil.rmtree(target)
    staging.replace(target)
    for old in sorted(p for p in directory.glob(f"{PREFIX}*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def load_checkpoint(path: Path, named_params: dict, optimizer, order, fingerprint: str) -> TrainingState:
    """Restore adapter weights, optimizer, RNG states and data position in place; returns the state."""
    import torch
    from safetensors.torch import load_file

    document = json.loads((path / "state.json").read_text(encoding="utf-8"))
    if document["fingerprint"] != fingerprint:
        raise AdapterOpsError(f"The checkpoint {path} was written for other data, model or training settings; "
                              "run without --resume to start over, or restore the settings it was written with.")
    adapter = load_file(str(path / "adapter.safetensors"))
    if set(adapter) != set(named_params):
        raise AdapterOpsError(f"The checkpoint {path} holds other adapter weights than this model's; run without --resume.")
    with torch.no_grad():
        for name, param in named_params.items():
            param.copy_(adapter[name].to(param.device, param.dtype))
    optimizer.load_state_dict(_unflatten_optimizer(load_file(str(path / "optimizer.safetensors")), document["optimizer"]))
    rng = load_file(str(path / "rng.safetensors"))
    torch.set_rng_state(rng["torch"])
    order.set_state(rng["data_order"])
    if torch.cuda.is_available():
        cuda = [rng[f"cuda.{i}"] for i in range(torch.cuda.device_count()) if f"cuda.{i}" in rng]
        if cuda:
            torch.cuda.set_rng_state_all(cuda)
    return TrainingState(document["step"], document["queue"], document["history"], document["fingerprint"])
