r"""Snapshots: what one probe needs, written at a due step and probed afterwards.

A deferred monitor (``SpectrumMonitor(..., defer=True)``) does not probe during
training. At every due step it writes a *snapshot* -- every player's parameters and
buffers, the modules' ``training`` flags, the probe batch, the probe seed and the step --
and :func:`~specdiag.probe_snapshots` computes the spectra later, elsewhere, or in
parallel, from the same numbers: the same parameters, batch, seed and warm-start chain
give the same eigenvalues, bit for bit (Berard et al., 2020, computed their spectra
from checkpoints afterwards and paid nothing during training).

The directory
-------------
``manifest.json``
    Written once, atomically: ``schema`` (``"specdiag-snapshots"``),
    ``schema_version``, the players with their parameter names and shapes, the seed,
    how the batch is stored, and the monitor's settings (``config``).
``snapshot-0000000500.h5``
    One HDF5 file per step (h5py, numpy arrays and JSON attributes only: nothing is
    ever unpickled). Root attributes ``schema`` (``"specdiag-snapshot"``),
    ``schema_version``, ``step``, ``seed``, ``state`` (JSON: per entry -- each player,
    then the game's other modules -- the kind, the tensor names and, per tensor, its
    torch dtype, whether it is stored as raw bits, its shape, dataset and offset; the
    ``training`` flags of every submodule),
    ``batch`` (JSON structure of the batch, or ``null``) and ``batch_file`` (the file of
    a fixed probe batch, or ``""``). Datasets ``state/<numpy dtype>`` (every state tensor
    of that stored dtype, flattened and concatenated; the JSON gives each tensor's
    offset and shape) and ``batch/<i>``.
``batch-0000000000.h5``
    A fixed probe batch, written once at the first snapshot of a writer.

Tensors keep their dtype exactly: dtypes numpy lacks (``bfloat16``, the float8 types)
are stored as their raw bits (``uint16``, ``uint8``) with the torch dtype in the JSON.

Every file is written crash-safely, like a trace: the whole file is built in memory,
written to a temporary name in the same directory (``.snapshot-....h5.<pid>.tmp``),
flushed, ``fsync``-ed and renamed into place with ``os.replace``, so a killed training
run loses at most the snapshot in flight and never leaves a partial file under a final
name; :func:`read_snapshots` ignores temporary files and a new writer removes those a
killed one left behind.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import h5py
import numpy as np
import torch
from torch import nn

from ..errors import SpecdiagError
from ..game import Game

__all__ = [
    "SnapshotWriter",
    "Snapshot",
    "SnapshotError",
    "GameState",
    "read_snapshots",
    "open_snapshot",
    "read_manifest",
    "state_of",
    "load_state",
    "player_modules",
    "SNAPSHOT_SCHEMA",
    "SNAPSHOT_SCHEMA_VERSION",
]

PathLike = Union[str, "os.PathLike[str]"]

#: ``schema`` attribute of a snapshot file (the manifest's is ``"specdiag-snapshots"``).
SNAPSHOT_SCHEMA = "specdiag-snapshot"
MANIFEST_SCHEMA = "specdiag-snapshots"
#: ``"MAJOR.MINOR"``; a reader refuses a newer major version.
SNAPSHOT_SCHEMA_VERSION = "1.0"
MANIFEST = "manifest.json"
SNAPSHOT_NAME = re.compile(r"^snapshot-(\d+)\.h5$")
TEMPORARY = re.compile(r"^\.(snapshot-\d+\.h5|batch-\d+\.h5|manifest\.json)\.\d+\.tmp$")
#: Integer dtypes whose bits hold a tensor of a dtype numpy lacks, by element size.
_BITS = {1: (torch.uint8, np.uint8), 2: (torch.int16, np.uint16), 4: (torch.int32, np.uint32)}
_files = itertools.count()


class SnapshotError(SpecdiagError, ValueError):
    """A snapshot or its directory is missing, damaged, or does not fit the game.

    The message is one line naming the file and the problem.
    """


# --------------------------------------------------------------------------- game state


@dataclass
class GameState:
    """The values :meth:`Snapshot.load_into` copies into a game.

    Attributes
    ----------
    players : dict
        ``{player: state}``: a module player's ``state_dict()`` (parameters, frozen ones
        included, and persistent buffers), a tensor player's tensors in the order of
        :meth:`Game.parameters`.
    modules : list of dict
        ``state_dict()`` of each of the game's other modules (``Game(modules=...)``);
        empty: leave them as they are.
    training : list of list of bool, optional
        ``training`` flag of every submodule (``module.modules()`` order) of every
        module of :attr:`Game.modules`; ``None``: leave the flags as they are.
    """

    players: dict[str, Any]
    modules: list[Mapping[str, Any]]
    training: Optional[list[list[bool]]] = None


def player_modules(game: Game) -> tuple[dict[str, Optional[nn.Module]], list[nn.Module]]:
    """``({player: its module, or None for a tensor player}, the game's other modules)``.

    :attr:`Game.modules` lists the module players' modules in player order, then the
    modules given with ``modules=``; a tensor player's parameters are named
    ``"player[i]"`` (:meth:`Game.parameter_names`).
    """
    modules, owners, j = list(game.modules), {}, 0
    for player in game.player_names:
        tensors = game.parameter_names(player)[0] == f"{player}[0]"
        owners[player] = None if tensors else modules[j]
        j += int(not tensors)
    return owners, modules[j:]


def _training(game: Game) -> list[list[bool]]:
    return [[bool(m.training) for m in module.modules()] for module in game.modules]


def state_of(game: Game) -> GameState:
    """A copy of the game's parameters, buffers and ``training`` flags (on their devices).

    ``load_state(game, state_of(game))`` puts a game back exactly as it was.
    """
    owners, extras = player_modules(game)

    def copied(module: nn.Module) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in module.state_dict().items()}

    players: dict[str, Any] = {}
    for player, module in owners.items():
        players[player] = (
            copied(module)
            if module is not None
            else [p.detach().clone() for p in game.parameters(player)]
        )
    return GameState(players, [copied(m) for m in extras], _training(game))


def load_state(game: Game, state: GameState | Mapping[str, Any]) -> None:
    """Copy ``state`` into the game's players in place (under ``torch.no_grad``).

    Parameters
    ----------
    game : Game
    state : GameState or mapping
        A :class:`GameState`, or ``{player: state_dict() or list of tensors}`` (a user's
        checkpoint; the game's other modules and the flags are then left as they are).
        Values may be tensors or numpy arrays, on any device.

    Raises
    ------
    SnapshotError
        A player missing or unknown, a tensor missing, unexpected, of another shape or
        of another dtype: the message names it. Everything is checked before anything is
        copied, so a refused state leaves the game as it was.
    """
    if not isinstance(state, GameState):
        if not isinstance(state, Mapping):
            raise TypeError(
                "state must be a GameState or a mapping {player: state_dict() or list of "
                f"tensors}}, got {type(state).__name__}"
            )
        state = GameState(dict(state), [], None)
    pairs = _pairs(game, state)
    with torch.no_grad():
        for target, source in pairs:
            target.copy_(source)
    if state.training is not None:
        _set_training(game, state.training)


def _pairs(game: Game, state: GameState) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(game tensor, value)`` for every tensor of ``state``, checked."""
    players = set(game.player_names)
    missing, unknown = sorted(players - set(state.players)), sorted(set(state.players) - players)
    if missing or unknown:
        raise SnapshotError(
            f"the state does not fit the game (players {sorted(players)}): "
            + "; ".join(
                ([f"no state for player(s) {missing}"] if missing else [])
                + ([f"state for unknown player(s) {unknown}"] if unknown else [])
            )
        )
    owners, extras = player_modules(game)
    if state.modules and len(state.modules) != len(extras):
        raise SnapshotError(
            f"the state holds {len(state.modules)} other module(s), the game {len(extras)}"
        )
    pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
    for player, module in owners.items():
        where = f"player {player!r}"
        if module is not None:
            pairs += _module_pairs(module, state.players[player], where)
        else:
            names = game.parameter_names(player)
            pairs += _tensor_pairs(game.parameters(player), names, state.players[player], where)
    for j, (module, values) in enumerate(zip(extras, state.modules)):
        pairs += _module_pairs(module, values, f"module {j} of Game(modules=...)")
    return pairs


def _module_pairs(
    module: nn.Module, values: Any, where: str
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    if not isinstance(values, Mapping):
        raise SnapshotError(
            f"{where} is a module: its state must be a state_dict() mapping, got "
            f"{type(values).__name__}"
        )
    targets = module.state_dict(keep_vars=True)
    missing, unknown = (
        [k for k in targets if k not in values],
        [k for k in values if k not in targets],
    )
    if missing or unknown:
        hint = ""
        if any(str(k).startswith(("module.", "_orig_mod.")) for k in unknown):
            hint = " (keys of a DDP or torch.compile wrapper: strip 'module.' / '_orig_mod.')"
        raise SnapshotError(
            f"{where}: the state does not fit the module: "
            + "; ".join(
                ([f"missing {missing}"] if missing else [])
                + ([f"unexpected {unknown}"] if unknown else [])
            )
            + hint
        )
    return [_checked(targets[k], values[k], f"{where}, {k!r}") for k in targets]


def _tensor_pairs(
    params: Sequence[torch.Tensor], names: Sequence[str], values: Any, where: str
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    if isinstance(values, (Mapping, str, bytes)) or not isinstance(values, Sequence):
        raise SnapshotError(
            f"{where} is given as tensors: its state must be a list of {len(params)} "
            f"tensor(s) {list(names)}, got {type(values).__name__}"
        )
    if len(values) != len(params):
        raise SnapshotError(
            f"{where}: the state holds {len(values)} tensor(s), the player {len(params)} "
            f"({list(names)})"
        )
    return [_checked(p, v, f"{where}, {n!r}") for p, v, n in zip(params, values, names)]


def _checked(target: torch.Tensor, value: Any, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise SnapshotError(f"{where}: expected a tensor, got {type(value).__name__}")
    if value.dtype != target.dtype:
        raise SnapshotError(
            f"{where}: dtype {value.dtype} in the state, {target.dtype} in the game"
        )
    if value.shape != target.shape:
        raise SnapshotError(
            f"{where}: shape {tuple(value.shape)} in the state, {tuple(target.shape)} in the game"
        )
    return target, value


def _set_training(game: Game, flags: list[list[bool]]) -> None:
    modules = [list(m.modules()) for m in game.modules]
    if [len(m) for m in modules] != [len(f) for f in flags]:
        raise SnapshotError(
            "the stored training flags do not fit the game's modules (another architecture)"
        )
    for subs, values in zip(modules, flags):
        for sub, value in zip(subs, values):
            sub.training = bool(value)


# --------------------------------------------------------------------------- tensors <-> arrays


def _array(tensor: torch.Tensor, where: str) -> tuple[np.ndarray, bool]:
    """The tensor's values as a numpy array, and whether they are raw bits."""
    if tensor.layout != torch.strided or tensor.is_quantized or tensor.device.type == "meta":
        raise TypeError(f"{where}: a snapshot stores dense tensors, got a {tensor.layout} tensor")
    t = tensor.detach().cpu().resolve_conj().resolve_neg()
    try:
        return t.numpy(), False
    except TypeError:  # a dtype numpy lacks: keep its bits
        if t.element_size() not in _BITS:
            raise TypeError(f"{where}: cannot store dtype {t.dtype}") from None
        as_int, as_bits = _BITS[t.element_size()]
        return t.contiguous().view(as_int).numpy().view(as_bits), True


def _dtype(name: str, where: str) -> torch.dtype:
    dtype = getattr(torch, name.removeprefix("torch."), None)
    if not isinstance(dtype, torch.dtype):
        raise SnapshotError(f"{where}: unknown torch dtype {name!r}")
    return dtype


def _tensor(array: np.ndarray, dtype_name: str, raw: bool, where: str) -> torch.Tensor:
    dtype = _dtype(dtype_name, where)
    array = array if array.flags.c_contiguous else array.copy(order="C")  # keeps 0-d 0-d
    if raw:
        as_int = _BITS[array.dtype.itemsize][0]
        return torch.from_numpy(array.view(np.dtype(str(as_int).removeprefix("torch.")))).view(
            dtype
        )
    tensor = torch.from_numpy(array)
    if tensor.dtype != dtype:
        raise SnapshotError(f"{where}: stored as {array.dtype}, recorded as {dtype}")
    return tensor


# --------------------------------------------------------------------------- batches


def _encode(obj: Any, where: str, leaves: list[tuple[np.ndarray, str]]) -> Any:
    """The JSON structure of a batch; its arrays appended to ``leaves``."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return {"value": obj}
    if isinstance(obj, complex):
        return {"complex": [obj.real, obj.imag]}
    if isinstance(obj, torch.Tensor):
        array, raw = _array(obj, where)
        leaves.append((array, where))
        return {"tensor": len(leaves) - 1, "dtype": str(obj.dtype), "raw": raw,
                "requires_grad": bool(obj.requires_grad)}  # fmt: skip
    if isinstance(obj, (np.ndarray, np.generic)):
        if np.asarray(obj).dtype.kind in "OV":
            raise TypeError(f"the batch at {where} is a numpy array of objects: {_WHAT_TO_DO}")
        leaves.append((np.asarray(obj), where))
        return {"array" if isinstance(obj, np.ndarray) else "scalar": len(leaves) - 1}
    if type(obj) is dict:
        bad = next((k for k in obj if not isinstance(k, str)), None)
        if bad is not None:
            raise TypeError(f"the batch at {where} has a non-string key {bad!r}: {_WHAT_TO_DO}")
        return {"dict": [[k, _encode(v, f"{where}[{k!r}]", leaves)] for k, v in obj.items()]}
    if type(obj) in (list, tuple):
        kind = "list" if type(obj) is list else "tuple"
        return {kind: [_encode(v, f"{where}[{i}]", leaves) for i, v in enumerate(obj)]}
    raise TypeError(f"the batch at {where} is a {type(obj).__name__}: {_WHAT_TO_DO}")


_WHAT_TO_DO = (
    "a snapshot stores batches made of dicts (str keys), lists and tuples of tensors, numpy "
    "arrays, numbers, strings and None; pass probe_batch= such a structure, or save no batch "
    "and recreate it when probing (probe_snapshots(..., batch=...) or a --game function that "
    "returns (game, batch))"
)


def _decode(node: Any, arrays: list[np.ndarray], device: Any, where: str) -> Any:
    """The batch rebuilt from its JSON structure."""
    if not isinstance(node, dict) or len(node) == 0:
        raise SnapshotError(f"{where}: damaged batch structure")
    if "value" in node:
        return node["value"]
    if "complex" in node:
        return complex(*node["complex"])
    if "tensor" in node:
        t = _tensor(arrays[node["tensor"]], node["dtype"], node["raw"], where)
        t = t.to(device) if device is not None else t
        return t.requires_grad_(True) if node["requires_grad"] else t
    if "array" in node:
        return arrays[node["array"]]
    if "scalar" in node:
        return arrays[node["scalar"]][()]
    if "dict" in node:
        return {k: _decode(v, arrays, device, where) for k, v in node["dict"]}
    kind = "list" if "list" in node else "tuple"
    items = [_decode(v, arrays, device, where) for v in node.get(kind, [])]
    return items if kind == "list" else tuple(items)


def _write_batch(f: h5py.File, batch: Any) -> str:
    leaves: list[tuple[np.ndarray, str]] = []
    structure = _encode(batch, "batch", leaves)
    group = f.create_group("batch")
    for i, (array, where) in enumerate(leaves):
        try:
            group.create_dataset(str(i), data=array)
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"the batch at {where} cannot be stored ({error}): {_WHAT_TO_DO}"
            ) from None
    return json.dumps(structure)


def _read_batch(f: h5py.File, structure: str, device: Any, where: str) -> Any:
    group = f["batch"]
    arrays = [np.asarray(group[str(i)][()]) for i in range(len(group))]
    return _decode(json.loads(structure), arrays, device, where)


# --------------------------------------------------------------------------- files


def _write_atomic(path: Path, data: bytes) -> None:
    """``data`` into ``path``: a temporary file, flush, fsync, os.replace, fsync the folder."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # no directory handles (Windows): the rename is durable enough there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _h5_image(fill: Any) -> bytes:
    """The bytes of an HDF5 file built in memory by ``fill(file)``."""
    name = f"specdiag-snapshot-{os.getpid()}-{next(_files)}.h5"
    f = h5py.File(name, "w", driver="core", backing_store=False)
    try:
        fill(f)
        f.flush()
        return bytes(f.id.get_file_image())
    finally:
        f.close()


def _state_entries(game: Game) -> list[tuple[str, str, dict[str, torch.Tensor]]]:
    """``(key, kind, {name: tensor})`` of each player, then of each other module."""
    owners, extras = player_modules(game)
    entries = []
    for player, module in owners.items():
        if module is not None:
            entries.append((player, "module", module.state_dict()))
        else:
            names = game.parameter_names(player)
            entries.append((player, "tensors", dict(zip(names, game.parameters(player)))))
    entries += [(f"modules[{j}]", "other", m.state_dict()) for j, m in enumerate(extras)]
    return entries


def _write_state(f: h5py.File, game: Game) -> str:
    """Write every state tensor into one flat dataset per stored dtype; the state's JSON.

    Datasets ``state/float32``, ...: HDF5's cost is per dataset, so a few large ones
    write several times faster than one per tensor. The JSON says where each tensor sits.
    """
    flat: dict[str, list[np.ndarray]] = {}
    sizes: dict[str, int] = {}
    described = []
    for key, kind, tensors in _state_entries(game):
        placed = []
        for name, tensor in tensors.items():
            if not isinstance(tensor, torch.Tensor):
                raise TypeError(f"{key}: state_dict entry {name!r} is not a tensor")
            array, raw = _array(tensor, f"{key}, {name!r}")
            data = array.dtype.name
            placed.append(
                {
                    "dtype": str(tensor.dtype),
                    "raw": raw,
                    "shape": list(array.shape),
                    "data": data,
                    "offset": sizes.get(data, 0),
                }  # fmt: skip
            )
            flat.setdefault(data, []).append(array.reshape(-1))
            sizes[data] = sizes.get(data, 0) + array.size
        described.append({"key": key, "kind": kind, "names": list(tensors), "tensors": placed})
    for data, parts in flat.items():
        f.create_dataset(f"state/{data}", data=np.concatenate(parts))
    return json.dumps({"entries": described, "training": _training(game)})


def _read_state(f: h5py.File, where: Path) -> GameState:
    described = json.loads(f.attrs["state"])
    flat = {name: np.asarray(ds[()]) for name, ds in f["state"].items()} if "state" in f else {}
    players: dict[str, Any] = {}
    modules: list[Mapping[str, Any]] = []
    for entry in described["entries"]:
        tensors = []
        for t in entry["tensors"]:
            size = int(np.prod(t["shape"], dtype=np.int64))
            values = flat[t["data"]][t["offset"] : t["offset"] + size]
            if values.size != size:
                raise ValueError(f"{entry['key']}: dataset state/{t['data']} is too short")
            tensors.append(_tensor(values.reshape(t["shape"]), t["dtype"], t["raw"], str(where)))
        if entry["kind"] == "other":
            modules.append(dict(zip(entry["names"], tensors)))
        elif entry["kind"] == "tensors":
            players[entry["key"]] = tensors
        else:
            players[entry["key"]] = dict(zip(entry["names"], tensors))
    return GameState(players, modules, described["training"])


def _manifest(game: Game, seed: int, fixed: bool, config: Mapping[str, Any]) -> dict[str, Any]:
    owners, _ = player_modules(game)
    players = {
        p: {
            "kind": "tensors" if owners[p] is None else "module",
            "parameters": [
                [n, list(t.shape)] for n, t in zip(game.parameter_names(p), game.parameters(p))
            ],
        }
        for p in game.player_names
    }
    return {
        "schema": MANIFEST_SCHEMA,
        "schema_version": SNAPSHOT_SCHEMA_VERSION,
        "players": players,
        "dtype": str(game.dtype),
        "seed": seed,
        "probe_batch": "fixed" if fixed else "per snapshot",
        "config": dict(config),
    }


def read_manifest(directory: PathLike) -> dict[str, Any]:
    """The manifest of a snapshot directory, checked.

    Raises
    ------
    SnapshotError
        No manifest (not a snapshot directory), not JSON, another schema or a newer
        major version.
    """
    if not Path(directory).is_dir():
        raise SnapshotError(f"{directory}: no such directory")
    path = Path(directory) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SnapshotError(f"{directory}: not a snapshot directory (no {MANIFEST})") from None
    except (OSError, ValueError) as error:
        raise SnapshotError(f"{path}: unreadable manifest ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
        raise SnapshotError(f"{path}: not a specdiag snapshot manifest")
    _check_version(str(manifest.get("schema_version", "")), path)
    return manifest


def _check_version(version: str, path: Any) -> None:
    major = version.split(".")[0]
    if not major.isdigit():
        raise SnapshotError(f"{path}: unreadable schema_version {version!r}")
    if int(major) > int(SNAPSHOT_SCHEMA_VERSION.split(".")[0]):
        raise SnapshotError(f"{path}: written by a newer specdiag (schema {version}); upgrade")


# --------------------------------------------------------------------------- writing


class SnapshotWriter:
    """Writes snapshots of a game into a directory, one file per step.

    Parameters
    ----------
    directory : str or os.PathLike
        Created if missing. A directory that already holds snapshots of another game
        (other players, parameter names or shapes) is refused. One writer per
        directory: a new writer removes the temporary files a killed one left (under
        ``torch.distributed``, write from rank 0 only).
    game : Game
    probe_batch : object, optional
        A fixed probe batch: written once, to its own file, at the first :meth:`save`;
        every snapshot of this writer refers to it. ``None``: each :meth:`save` stores
        the batch passed to it.
    seed : int
        The probe seed (the monitor's ``seed``): :func:`~specdiag.probe_snapshots`
        probes with it, so the losses closure draws the same noise as an in-loop probe.
    config : mapping, optional
        JSON settings of the run to keep in the manifest (the monitor's ``every``,
        ``probe_batch`` and ``metadata``): the trace written from the snapshots stores
        them in its configuration as the in-loop monitor would.
    background : bool
        Write each file (its ``write``, ``fsync`` and rename) on a thread of the
        writer's own, so that :meth:`save` returns once the snapshot's image is built
        in memory: the state is copied at the step, the disk is waited on while training
        goes on. At most one write is in flight: a :meth:`save` first waits for the one
        before (and keeps its failure, see :meth:`failures`); :meth:`close` waits for
        the last. Default ``False``: :meth:`save` returns with the file in place. The
        monitor writes in the background.

    Attributes
    ----------
    directory : pathlib.Path
    n_saved : int
        Snapshots written by this writer (in the background: those whose write has
        finished).

    Raises
    ------
    TypeError
        A probe batch that a snapshot cannot store (the message names where in the nest).
    ValueError
        ``seed=None``: a deferred probe needs a seed, since its noise is drawn later.
    SnapshotError
        The directory holds snapshots of another game.
    """

    def __init__(
        self,
        directory: PathLike,
        game: Game,
        *,
        probe_batch: Any = None,
        seed: Optional[int] = 0,
        config: Optional[Mapping[str, Any]] = None,
        background: bool = False,
    ) -> None:
        if not isinstance(game, Game):
            raise TypeError(f"game must be a specdiag.Game, got {type(game).__name__}")
        if seed is None or isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(
                f"a snapshot needs an integer probe seed (its probe draws its noise later, "
                f"from that seed), got seed={seed!r}; pass seed=0 or another integer"
            )
        self.directory = Path(directory)
        self.game, self.seed = game, int(seed)
        self.n_saved = 0
        self._pool = (
            ThreadPoolExecutor(1, thread_name_prefix="specdiag-snapshots") if background else None
        )
        self._in_flight: Optional[tuple[int, Future[None]]] = None
        self._failed: list[tuple[int, BaseException]] = []
        self._fixed = probe_batch
        self._batch_file = ""
        if probe_batch is not None:  # refuse an unstorable batch now, not at the first save
            _encode(probe_batch, "probe_batch", [])
        self.directory.mkdir(parents=True, exist_ok=True)
        for stale in self.directory.iterdir():  # left by a killed writer
            if TEMPORARY.match(stale.name):
                stale.unlink(missing_ok=True)
        manifest = _manifest(game, self.seed, probe_batch is not None, _json(config))
        self._check_or_write_manifest(manifest)

    def _check_or_write_manifest(self, manifest: dict[str, Any]) -> None:
        path = self.directory / MANIFEST
        if not path.exists():
            _write_atomic(path, json.dumps(manifest, indent=1).encode("utf-8"))
            return
        existing = read_manifest(self.directory)
        if existing.get("players") != manifest["players"]:
            raise SnapshotError(
                f"{self.directory}: holds snapshots of another game (players or parameter "
                "shapes differ); write these snapshots to another directory"
            )

    def save(self, step: int, batch: Any = None) -> Path:
        """Write the snapshot of ``step``.

        It holds the players' parameters and buffers, the modules' ``training`` flags,
        the seed and the batch.

        Parameters
        ----------
        step : int
            The training step (``>= 0``); a snapshot of the same step is replaced.
        batch : object, optional
            The probe batch of this step; ignored when the writer has a fixed
            ``probe_batch``. ``None``: the snapshot stores no batch (the prober supplies
            one, see :func:`~specdiag.probe_snapshots`).

        Returns
        -------
        pathlib.Path
            The snapshot file (with ``background``, where it will be once its write,
            in flight until the next :meth:`save` or :meth:`close`, has finished).
        """
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ValueError(f"step must be an integer >= 0, got {step!r}")
        step = int(step)
        if self._fixed is not None and not self._batch_file:
            name = f"batch-{step:010d}.h5"
            _write_atomic(self.directory / name, _h5_image(self._fill_batch))
            self._batch_file = name

        no_batch = self._fixed is not None or batch is None

        def fill(f: h5py.File) -> None:
            f.attrs.update(
                {
                    "schema": SNAPSHOT_SCHEMA,
                    "schema_version": SNAPSHOT_SCHEMA_VERSION,
                    "step": np.int64(step),
                    "seed": np.int64(self.seed),
                    "state": _write_state(f, self.game),
                    "batch_file": self._batch_file,
                    "batch": "null" if no_batch else _write_batch(f, batch),
                }
            )

        self._wait()
        path = self.directory / f"snapshot-{step:010d}.h5"
        image = _h5_image(fill)
        if self._pool is None:
            _write_atomic(path, image)
            self.n_saved += 1
        else:
            self._in_flight = (step, self._pool.submit(_write_atomic, path, image))
        return path

    def _wait(self) -> None:
        """Wait for the write in flight, if any; count it, or keep its failure."""
        if self._in_flight is None:
            return
        step, future = self._in_flight
        self._in_flight = None
        error = future.exception()
        if error is None:
            self.n_saved += 1
        else:
            self._failed.append((step, error))

    def failures(self) -> list[tuple[int, BaseException]]:
        """The background writes that failed since the last call: ``(step, error)`` each.

        A write's failure (a full disk, say) is known at the next :meth:`save` or at
        :meth:`close`; nothing is raised for it, the caller decides. Always empty
        without ``background``, where :meth:`save` raises instead.
        """
        failed, self._failed = self._failed, []
        return failed

    def close(self) -> list[tuple[int, BaseException]]:
        """Wait for the write in flight and stop the writer's thread; idempotent.

        Returns
        -------
        list of (int, BaseException)
            What :meth:`failures` would, the last write's failure included.
        """
        self._wait()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        return self.failures()

    def _fill_batch(self, f: h5py.File) -> None:
        f.attrs.update(
            {
                "schema": SNAPSHOT_SCHEMA + "-batch",
                "schema_version": SNAPSHOT_SCHEMA_VERSION,
                "batch": _write_batch(f, self._fixed),
            }
        )

    def __repr__(self) -> str:
        return f"SnapshotWriter({str(self.directory)!r}, {self.n_saved} saved)"


def _json(config: Optional[Mapping[str, Any]]) -> dict[str, Any]:
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping, got {type(config).__name__}")
    return json.loads(json.dumps(dict(config), default=repr))


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Snapshot:
    """One snapshot file (see :func:`read_snapshots`).

    Attributes
    ----------
    step : int
    seed : int
        The probe seed.
    path : pathlib.Path
    has_batch : bool
        Whether the snapshot stores a probe batch (its own, or a fixed one in the
        directory); ``False`` when it was saved without one.
    """

    step: int
    seed: int
    path: Path
    has_batch: bool
    _batch: str
    _batch_file: str

    def state(self) -> GameState:
        """The stored values, as CPU tensors."""
        with _opened(self.path) as f:
            try:
                return _read_state(f, self.path)
            except (KeyError, ValueError, TypeError, OSError) as error:
                raise _damaged(self.path, error) from None

    def load_into(self, game: Game) -> None:
        """Copy the stored parameters, buffers and ``training`` flags into ``game``.

        In place (see :func:`load_state`); a mismatch raises :class:`SnapshotError`
        naming the snapshot and the tensor.
        """
        state = self.state()
        try:
            load_state(game, state)
        except SnapshotError as error:
            raise SnapshotError(f"{self.path}: {error}") from None

    def batch(self, device: torch.device | str | None = None) -> Any:
        """The stored probe batch, rebuilt.

        Tensors go to ``device`` (default the CPU); numpy arrays stay numpy arrays.
        ``None`` when :attr:`has_batch` is false.
        """
        if not self.has_batch:
            return None
        path = self.path.with_name(self._batch_file) if self._batch_file else self.path
        with _opened(path) as f:
            try:
                return _read_batch(f, str(f.attrs["batch"]), device, str(path))
            except (KeyError, ValueError, TypeError, IndexError, OSError) as error:
                raise _damaged(path, error) from None

    def __repr__(self) -> str:
        return f"Snapshot(step={self.step}, path={str(self.path)!r})"


def _damaged(path: Path, error: BaseException) -> SnapshotError:
    reason = " ".join(str(error).split()) or type(error).__name__
    return SnapshotError(f"{path}: damaged snapshot ({reason})")


class _opened:
    """``h5py.File(path, "r")`` with a one-line :class:`SnapshotError` for a bad file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> h5py.File:
        try:
            self.file = h5py.File(self.path, "r")
        except FileNotFoundError:
            raise SnapshotError(f"{self.path}: no such file") from None
        except OSError as error:
            raise _damaged(self.path, error) from None
        return self.file

    def __exit__(self, *exc: Any) -> None:
        self.file.close()


def open_snapshot(path: PathLike) -> Snapshot:
    """The snapshot in one file, its attributes checked.

    Raises
    ------
    SnapshotError
        Missing, not HDF5, damaged, not a snapshot, or written by a newer specdiag.
    """
    path = Path(path)
    with _opened(path) as f:
        attrs = dict(f.attrs)
        if str(attrs.get("schema", "")) != SNAPSHOT_SCHEMA:
            raise SnapshotError(f"{path}: not a specdiag snapshot (no schema {SNAPSHOT_SCHEMA!r})")
        _check_version(str(attrs.get("schema_version", "")), path)
        try:
            step, seed = int(attrs["step"]), int(attrs["seed"])
            batch, batch_file = str(attrs["batch"]), str(attrs["batch_file"])
            json.loads(attrs["state"])
        except (KeyError, ValueError, TypeError) as error:
            raise _damaged(path, error) from None
    has_batch = bool(batch_file) or json.loads(batch) is not None
    return Snapshot(step, seed, path, has_batch, batch, batch_file)


def read_snapshots(directory: PathLike) -> list[Snapshot]:
    """The snapshots of a directory, in step order (temporary files are ignored).

    Raises
    ------
    SnapshotError
        Not a snapshot directory (no manifest), or a snapshot file is damaged (the
        message names it).
    """
    directory = Path(directory)
    read_manifest(directory)
    names = sorted(
        (int(m.group(1)), name)
        for name in os.listdir(directory)
        if (m := SNAPSHOT_NAME.match(name))
    )
    snapshots = [open_snapshot(directory / name) for _, name in names]
    for (step, _), snap in zip(names, snapshots):
        if snap.step != step:
            raise SnapshotError(f"{snap.path}: holds step {snap.step}, its name says {step}")
    return snapshots
