"""The one error type of bad configuration, and one-line messages for Hydra's errors."""

from __future__ import annotations

from omegaconf.errors import (ConfigAttributeError, ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException,
                              ValidationError)


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the key."""


def describe_config_error(err: BaseException, prefix: str = "") -> str:
    """One line naming the key of a composition or validation error (Hydra or OmegaConf).

    Hydra wraps OmegaConf's error (the one that knows the key) as ``__cause__`` and adds
    advice that misleads here ("To append to your config use +key=..."), so the cause is
    preferred. A missing group option keeps Hydra's message: it lists the choices.
    ``prefix``: where the failing node sits (``dataset``) when the error's key is relative.
    """
    cause = err
    while cause is not None and not isinstance(cause, OmegaConfBaseException):
        cause = cause.__cause__ or cause.__context__  # Hydra re-raises with or without `from`
    if not isinstance(cause, OmegaConfBaseException):
        # Hydra's missing-option message lists the choices, then its search path (noise here).
        return " ".join(str(err).split("Config search path")[0].split())
    key = getattr(cause, "full_key", None) or ""
    if prefix and not key.startswith(prefix):
        key = f"{prefix}.{key}" if key else prefix
    msg = str(getattr(cause, "msg", None) or cause).splitlines()[0]
    schema = getattr(getattr(cause, "object_type", None), "__name__", None)
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)):
        parent = key.rpartition(".")[0] or "the config"
        return f"unknown config key '{key}': {parent} ({schema or 'its schema'}) has no such field; check the spelling"
    if isinstance(cause, MissingMandatoryValue):
        return f"config key '{key}' has no value: set it in its group file or on the command line ({key}=...)"
    if isinstance(cause, ValidationError):
        return f"invalid value for config key '{key}': {msg}"
    return f"invalid config at '{key}': {msg}"
