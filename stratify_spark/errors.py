"""Exception classes and the process exit codes that jobs map them to."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of the `jobs/` entry points, stable for schedulers."""

    SUCCESS = 0
    RUN_FAILED = 1
    BAD_CONFIG = 2
    BAD_INPUT = 3
    NOTHING_TO_DO = 4


class StratifyError(Exception):
    """Base class of every error the package raises on purpose."""

    exit_code = ExitCode.RUN_FAILED


class ConfigError(StratifyError):
    """A config file, a command-line argument or an identifier is invalid."""

    exit_code = ExitCode.BAD_CONFIG


class InputError(StratifyError):
    """Source data cannot be read or does not match the declared config."""

    exit_code = ExitCode.BAD_INPUT


class RunFailedError(StratifyError):
    """A segmentation run failed after it was recorded as running."""

    exit_code = ExitCode.RUN_FAILED
