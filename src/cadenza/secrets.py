"""Secrets: values read with ``secret("NAME")`` and params marked secret are shown as ``***``
in every log line, event, error and alert cadenza writes.

The values are kept in one process-wide set. Masking replaces each known value wherever it
appears in text; a secret shorter than 4 characters is refused, as masking it would mangle
ordinary output.

A secret param given for one run (a trigger, ``--param``, a backfill) is stored sealed: a
``{"cadenza_sealed": <Fernet token>}`` marker in the run's params, shown as ``***`` everywhere,
opened by the runner that starts the run. The key is ``CADENZA_SECRET_KEY``, else a key file
made in the store's folder on first use (docs/secrets.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cadenza.exceptions import CadenzaError

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

MASK = "***"
MIN_LENGTH = 4
_known: set[str] = set()
_lock = threading.Lock()


def register(value: str) -> None:
    """Mask ``value`` from now on, in this process (and processes forked after)."""
    if len(value) < MIN_LENGTH:
        raise CadenzaError(
            f"A secret must be at least {MIN_LENGTH} characters long to be masked safely; "
            f"this one has {len(value)}."
        )
    with _lock:
        _known.add(value)


def register_param(name: str, value: Any) -> None:
    """Mask a secret param's value in every form it may be printed in: the value itself if it
    is text, else ``str()``, ``repr()`` and JSON of it (``Param(987654321, secret=True)``)."""
    if isinstance(value, str):
        forms = {value}
    else:
        forms = {str(value), repr(value)}
        with contextlib.suppress(TypeError, ValueError):
            forms.add(json.dumps(value))
    short = sorted(f for f in forms if len(f) < MIN_LENGTH)
    if short:
        raise CadenzaError(
            f"Secret param {name!r} prints as {short[0]!r}, shorter than {MIN_LENGTH} "
            "characters: masking it would mangle ordinary output. Use a longer value, or do "
            "not mark the param secret."
        )
    for form in forms:
        register(form)


def secret(name: str, default: str | None = None, *, env_file: str | Path = ".env") -> str:
    """The secret ``name`` from the environment, else from ``env_file``; masked from now on."""
    value = os.environ.get(name)
    if value is None and Path(env_file).is_file():
        from dotenv import dotenv_values  # here: a run that reads no secret needs no dotenv

        value = dotenv_values(env_file).get(name)
    if value is None:
        value = default
    if value is None:
        raise CadenzaError(
            f"Secret {name!r} is not set: export {name}=... or add it to {str(env_file)!r}."
        )
    register(value)
    return value


def mask(text: str) -> str:
    """``text`` with every known secret replaced by ``***``."""
    if not _known:
        return text
    for value in sorted(_known, key=len, reverse=True):  # longest first: no partial leftovers
        if value in text:
            text = text.replace(value, MASK)
    return text


def mask_data(data: Any) -> Any:
    """``mask`` applied to every string in JSON-like data; a sealed secret shows as ``***``."""
    if isinstance(data, str):
        return mask(data) if _known else data
    if isinstance(data, Mapping):
        if is_sealed(data):
            return MASK
        return {k: mask_data(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [mask_data(v) for v in data]
    return data


def masked_params(params: Mapping[str, Any], secret_names: Iterable[str]) -> dict[str, Any]:
    """Params as they may be stored or shown: secret ones as ``***``."""
    hidden = set(secret_names)
    return {k: (MASK if k in hidden else mask_data(v)) for k, v in params.items()}


SEALED = "cadenza_sealed"
"""The one key of the marker a sealed secret param is stored as."""
KEY_ENV = "CADENZA_SECRET_KEY"
KEY_FILE = "secret_key"
"""The key file in the store's folder, used when CADENZA_SECRET_KEY is not set."""
_MAKE_KEY = ("python -c 'from cryptography.fernet import Fernet; "
             "print(Fernet.generate_key().decode())'")
_process_key: list[bytes] = []
"""The key of workspaces in memory (no folder to keep one in): this process's own."""


class SecretKeyError(CadenzaError):
    """A sealed secret param cannot be opened (or sealed): the key is missing, malformed or not
    the one it was sealed with. ``.param`` names the param (empty when no param is at stake)."""

    def __init__(self, message: str, param: str = "") -> None:
        super().__init__(message)
        self.param = param


def is_sealed(value: Any) -> bool:
    """True for the marker a secret param given for one run is stored as."""
    return isinstance(value, Mapping) and len(value) == 1 and isinstance(value.get(SEALED), str)


def sealed_params(params: Mapping[str, Any], secret_names: Iterable[str],
                  given: Iterable[str], home: Path | None) -> dict[str, Any]:
    """Params as a run stores them: the secret ones named in ``given`` (set for this run, not
    taken from the pipeline) sealed with the key of ``home`` (None: a workspace in memory),
    the other secret ones as ``***`` (a runner takes their defaults again)."""
    hidden = set(secret_names)
    chosen = hidden & set(given)
    if not chosen:  # nothing to seal: no key, no cryptography import
        return masked_params(params, hidden)
    fernet, _ = _fernet(home)
    return {k: ({SEALED: fernet.encrypt(json.dumps(v).encode()).decode()} if k in chosen
                else MASK if k in hidden else mask_data(v)) for k, v in params.items()}


def unseal(name: str, value: Mapping[str, Any], home: Path | None) -> Any:
    """The value of the sealed secret param ``name``; SecretKeyError (one line, naming the
    param) if this host's key is not the one it was sealed with."""
    from cryptography.fernet import InvalidToken

    fernet, source = _fernet(home, name, create=False)
    try:
        return json.loads(fernet.decrypt(str(value[SEALED]).encode()))
    except (InvalidToken, ValueError):
        raise SecretKeyError(
            f"Secret param {name!r} of this run was sealed with another key than {source}'s: "
            f"set {KEY_ENV} to the key the trigger used (its host's {KEY_ENV}, else the "
            f"{KEY_FILE} file in its store folder), then retry the run.", name,
        ) from None


def _fernet(home: Path | None, param: str = "", *, create: bool = True
            ) -> tuple[Fernet, str]:
    """The Fernet of this host's key and where the key came from (for messages). Without
    ``create`` (to open a sealed value), a missing key is an error, not a new key."""
    from cryptography.fernet import Fernet

    text = os.environ.get(KEY_ENV, "").strip()
    if text:
        source = KEY_ENV
    elif home is None:
        if not _process_key:
            _process_key.append(Fernet.generate_key())
        return Fernet(_process_key[0]), "this process"
    else:
        path = home / KEY_FILE
        if not create and not path.exists():
            raise SecretKeyError(
                f"Secret param {param!r} of this run was sealed with a key this host does not "
                f"have: {KEY_ENV} is not set and {str(path)!r} does not exist. Set {KEY_ENV} to "
                "the key the trigger used (its host's, or its store folder's "
                f"{KEY_FILE} file), then retry the run.", param,
            )
        text, source = _key_file(path, home), str(path)
    try:
        return Fernet(text.encode()), source
    except ValueError:  # never the text itself: it is a secret
        raise SecretKeyError(
            f"{source} holds {len(text)} characters that are not a Fernet key (44 characters "
            f"of URL-safe base64); set {KEY_ENV} to the key the trigger used, or make a new "
            f"one with {_MAKE_KEY}.", param,
        ) from None


def _key_file(path: Path, home: Path) -> str:
    """The key in ``path``, made private on first use (the first of two racing writers wins)."""
    from cadenza._files import file_mode, make_home, write_once

    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    from cryptography.fernet import Fernet  # here: only the first sealing of a store makes one

    make_home(home)
    return write_once(path, lambda: Fernet.generate_key() + b"\n", file_mode(home))
