"""The plug-ins of a session (image editor, ADSS segmenter), built from what session.json records."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

from gsedit.edit.session import SessionFolder


def plugin_settings(editor: str, ip2p, adss) -> dict:
    """What session.json records about the plug-ins, so a resumed session rebuilds the same ones."""
    return {
        "editor": editor,
        "ip2p": dataclasses.asdict(ip2p),
        "adss": _jsonable(dataclasses.asdict(adss)),
    }


def _jsonable(data):
    if isinstance(data, dict):
        return {k: _jsonable(v) for k, v in data.items()}
    return str(data) if isinstance(data, Path) else data


def config_from_dict(cls, data: dict):
    """A (nested) config dataclass from its `dataclasses.asdict` form, as session.json stores it."""
    hints = typing.get_type_hints(cls, include_extras=False)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind) and isinstance(value, dict):
            value = config_from_dict(kind, value)
        elif value is not None and (kind is Path or Path in typing.get_args(kind)):
            value = Path(value)
        values[f.name] = value
    return cls(**values)


def build_editor(plugins: dict, device):
    """The session's image editor (InstructPix2Pix loads its weights here: seconds to minutes)."""
    if plugins["editor"] == "synthetic":
        from gsedit.models.synthetic import SyntheticEditor

        return SyntheticEditor()
    from gsedit.models.ip2p import IP2PConfig, IP2PEditor

    return IP2PEditor.from_pretrained(config_from_dict(IP2PConfig, plugins["ip2p"]), device)


def build_adss(settings: dict, device):
    from gsedit.models.adss import ADSS, ADSSConfig

    return ADSS.from_pretrained(config_from_dict(ADSSConfig, settings), device)


def needs_adss(session: SessionFolder) -> bool:
    """Whether the pending turns of `session` need ADSS (its segmenter, or --keep on an unlabelled scene)."""
    return session.settings.segmenter == "adss" or (
        any(r.keep for r in session.pending()) and not _labelled_input(session)
    )


def _labelled_input(session: SessionFolder) -> bool:
    from gsedit.scene.files import scene_label_names

    return bool(scene_label_names(session.scene_path(0)))
