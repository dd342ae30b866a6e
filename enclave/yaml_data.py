"""Read a YAML file into a pydantic model, with errors that name the file and the field."""
from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


def load_model(path: Path, model: type[Model], error: type[Exception]) -> Model:
    """``model`` from the mapping in ``path``; any problem raises ``error`` naming file and field."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except (OSError, yaml.YAMLError) as exc:
        raise error(f"{path}: {exc}") from None
    if not isinstance(raw, dict):
        raise error(f"{path}: expected a mapping of fields")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise error(f"{path}: field {where}: {first['msg']}") from None
