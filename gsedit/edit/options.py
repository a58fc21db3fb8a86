"""What a session is created with, and the checks of those options given by name (Python, YAML).

`SessionOptions` holds `gsedit edit`'s options less the turns, the folder and the console ones.
`session_options` builds it from a mapping named as the `gsedit edit` flags without dashes: edit
settings (`iters`, `seed`, ...) and ADSS options flat or under `adss`, `ip2p` and `sr` nested, as
`gsedit.Session.create` takes them and as the jobs of `gsedit batch` write them.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePath
from typing import Any, Literal

from gsedit.edit.config import DEFAULT_METHOD, EditConfig, load_preset
from gsedit.edit.refine_config import RefineConfig
from gsedit.errors import GseditError
from gsedit.models.adss_config import ADSSConfig
from gsedit.models.ip2p.config import IP2PConfig

Device = Literal["auto", "cpu", "cuda"]


@dataclass
class SessionOptions:
    """Everything a new session is built from besides its turns and its folder."""

    scene: Path | None = None
    """The input scene (see `gsedit edit --help`); None to resume a session."""
    cameras: str | None = None
    """Any --cameras source; None: a trainer folder's own."""
    iteration: int | None = None
    """Of a trainer's output folder: the iteration to load (default: the last)."""
    dataparser_transforms: Path | None = None
    """A nerfstudio run's dataparser_transforms.json mapping the cameras into its frame."""
    frame_check: bool = True
    """Refuse a scene and cameras that do not see each other."""
    export: str = ""
    """Comma-separated splat formats written beside every turn's scene.ply."""
    spz_axes: Literal["auto", "rub", "ply"] = "auto"
    """Axes of .spz files read (auto: those under which the cameras see the scene) and written (auto: rub)."""
    method: str = DEFAULT_METHOD
    """Method preset; `settings` starts from it."""
    editor: Literal["ip2p", "synthetic"] = "ip2p"
    """Image editor: InstructPix2Pix, or the offline synthetic stand-in."""
    settings: EditConfig = field(default_factory=EditConfig)
    ip2p: IP2PConfig = field(default_factory=IP2PConfig)
    adss: ADSSConfig = field(default_factory=ADSSConfig)
    sr: RefineConfig = field(default_factory=RefineConfig)



@dataclass
class PlannedSession(SessionOptions):
    """SessionOptions with the session's folder, the turns planned there (as --turn, --target and
    --keep give them) and the device: what a batch job and a comparison run."""

    out: Path = Path("session")
    turn: list[str] = field(default_factory=list)
    target: list[str] = field(default_factory=list)
    keep: list[str] = field(default_factory=list)
    device: Device = "auto"

#: options of SessionOptions given as they are (settings, adss: flat or nested; see session_options)
PLAIN_KEYS = ("scene", "cameras", "iteration", "dataparser_transforms", "frame_check", "export", "spz_axes", "method",
              "editor", "ip2p", "sr")


class OptionError(GseditError):
    """An option given by name that does not fit (its name or its value)."""


def resolve_device(device: Device):
    """The torch device of --device auto|cpu|cuda."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise GseditError("--device cuda was asked for, but PyTorch sees no CUDA device. Use --device cpu or auto.")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def options_of(source) -> SessionOptions:
    """The SessionOptions fields of `source`, any object with the same field names (the Edit
    command, a batch job, CompareOptions)."""
    return SessionOptions(**{f.name: getattr(source, f.name) for f in dataclasses.fields(SessionOptions)})


def option_names(extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Every name `session_options` takes (plus `extra`, the caller's own keys)."""
    return (*extra, *PLAIN_KEYS, "settings", "adss", *fields_of(EditConfig), *fields_of(ADSSConfig))


def check_names(values: dict[str, Any], extra: tuple[str, ...] = ()) -> None:
    """Raises OptionError for a key of `values` that is no option (nor one of `extra`), with the
    closest option's name."""
    known = option_names(extra)
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise OptionError(f"unknown option '{key}'{hint}; options are the `gsedit edit` flags.")


def session_options(values: dict[str, Any], base: Path, extra: tuple[str, ...] = ()) -> SessionOptions:
    """SessionOptions from `values` named as the `gsedit edit` flags (dashes or underscores).

    Args:
        base: relative paths (scene, cameras, path-valued options) are relative to this folder.
        extra: keys the caller handles itself (left out here, not refused).

    Raises:
        OptionError: an unknown name, a value of the wrong type, or edit settings out of range.
    """
    values = {str(k).replace("-", "_"): v for k, v in values.items()}
    check_names(values, extra)
    hints = typing.get_type_hints(SessionOptions, include_extras=False)
    plain = {k: convert(values[k], hints[k], k, base) for k in PLAIN_KEYS if k in values and k != "cameras"}
    if values.get("cameras") is not None:
        plain["cameras"] = cameras_spec(values["cameras"], base)
    settings, _ = load_preset(plain.get("method", DEFAULT_METHOD))
    nested = _nested(values, "settings", EditConfig, base)
    settings = replace(settings, **nested, **build(EditConfig, pick(values, fields_of(EditConfig)), base, partial=True))
    try:
        settings.validate()
    except GseditError as exc:
        raise OptionError(str(exc)) from None
    adss = {**_nested(values, "adss", ADSSConfig, base), **pick(values, fields_of(ADSSConfig))}
    return SessionOptions(settings=settings, adss=build(ADSSConfig, adss, base), **plain)


def _nested(values: dict, key: str, cls, base: Path) -> dict:
    """The fields of `values[key]`, a `cls` or a mapping of its fields, as a checked dict."""
    value = values.get(key)
    if value is None:
        return {}
    if isinstance(value, cls):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(cls)}
    return build(cls, value, base, partial=True)


def cameras_spec(value, base: Path) -> str:
    """A --cameras value: `orbit:...` as written, a path made absolute from `base`."""
    if not isinstance(value, (str, PurePath)):
        raise OptionError(f"cameras: expected a path or orbit:N[@WxH], got {kind(value)}")
    value = str(value)
    return value if value.startswith("orbit:") else str(base / Path(value).expanduser())


def pick(options: dict, keys: tuple[str, ...]) -> dict:
    return {k: options[k] for k in keys if k in options}


def fields_of(cls) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def kind(value) -> str:
    return "nothing" if value is None else f"a {type(value).__name__} ({value!r:.60})"


def build(cls, data, base: Path, partial: bool = False):
    """A config dataclass (or, `partial`, a dict of its checked fields) from a mapping."""
    if isinstance(data, cls) and not partial:
        return data
    if not isinstance(data, dict):
        raise OptionError(f"expected a mapping for {cls.__name__}, found {kind(data)}")
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    names = fields_of(cls)
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise OptionError(f"unknown {cls.__name__} options {unknown}; known: {', '.join(names)}")
    hints = typing.get_type_hints(cls, include_extras=False)
    values = {k: convert(v, hints[k], k, base) for k, v in data.items()}
    return values if partial else cls(**values)


def convert(value, hint, key: str, base: Path):
    """`value` checked against the type `hint` (paths made absolute from `base`)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if args and type(None) in args:  # X | None
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        if value not in args:
            raise OptionError(f"{key}: expected one of {list(args)}, got {value!r}")
        return value
    if origin is list:  # target, keep, turns: one string or a list of strings
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) or v is None for v in items):
            raise OptionError(f"{key}: expected a string or a list of strings, got {kind(value)}")
        return items
    if dataclasses.is_dataclass(hint):
        return build(hint, value, base)
    checks = {bool: (bool,), int: (int,), float: (int, float), str: (str,), Path: (str, PurePath)}
    ok = isinstance(value, checks[hint]) and (hint is bool or not isinstance(value, bool))
    if not ok:
        raise OptionError(
            f"{key}: expected {hint.__name__ if hint is not Path else 'a path'}, got {kind(value)}"
        )
    if hint is Path:
        return base / Path(value).expanduser()
    return float(value) if hint is float else value
