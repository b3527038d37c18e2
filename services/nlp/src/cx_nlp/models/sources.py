"""Where a Hugging Face model comes from: a local directory, or a hub id where the operator allows downloads."""

from __future__ import annotations

import logging
import re
from pathlib import Path

log = logging.getLogger(__name__)

HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<revision>[\w./-]+))?$")


class ModelSourceError(FileNotFoundError):
    """A model reference that is neither a local directory nor a hub id this process may download."""


def model_dir_for(ref: str | Path, *, hub_download: bool = False) -> Path:
    """The local directory of a model reference: a directory as it is; `org/name` or `org/name@revision` (a hub
    id) downloaded once into the Hugging Face cache when `hub_download` allows it."""
    p = Path(ref).expanduser()
    if p.is_dir():
        return p
    match = HUB_ID.match(str(ref))  # its first character is alphanumeric: never a relative, absolute or ~ path
    if match is None:
        raise ModelSourceError(f"model directory {p} does not exist")
    if not hub_download:
        raise ModelSourceError(
            f"{ref} is not a local directory; as a Hugging Face hub id it needs CX_NLP_HUB_DOWNLOAD=true (and "
            "internet), or download it yourself and give its directory"
        )
    from huggingface_hub import snapshot_download

    try:
        path = snapshot_download(match["repo"], revision=match["revision"])
    except Exception as exc:  # offline, unknown repo or revision, no access: one line for the operator
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise ModelSourceError(f"cannot download {ref} from the Hugging Face hub: {reason}") from exc
    log.info("model %s from the hub cache at %s", ref, path)
    return Path(str(path))
