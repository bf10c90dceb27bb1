"""What every demo's command line shares: flag checks that run before any data is loaded, and
one line on stderr with exit code 2 for every mistake a user can make (tracebacks are for bugs)."""
import argparse
import math
import sys

from . import checkpoint, data


class Formatter(argparse.RawDescriptionHelpFormatter):
    """--help with the module docstring as written and every flag's default shown (what the demo
    sets, not what a shared flag's declaration says); a default of None or False is not shown."""

    def _get_help_string(self, action):
        text = action.help or ""
        shown = action.default not in (None, False, argparse.SUPPRESS) and action.option_strings
        if shown and "%(default)" not in text and "Default:" not in text:
            text += " Default: %(default)s"
        return text


class UserError(Exception):
    """A mistake in what the user asked for, found after parsing."""


def check_numbers(p, args, *, at_least_1=(), at_least_0=(), positive=()):
    """p.error (one line, exit 2) for a count below 1 or 0, or a rate that is not a finite number > 0."""
    for names, least in ((at_least_1, 1), (at_least_0, 0)):
        for name in names:
            v = getattr(args, name)
            if v is not None and v < least:
                p.error(f"--{name.replace('_', '-')} must be at least {least}, got {v}")
    for name in positive:
        v = getattr(args, name)
        if v is not None and not (math.isfinite(v) and v > 0):
            p.error(f"expected --{name.replace('_', '-')} > 0 (finite), got {v}")


class Stopped(Exception):
    """A run stopped by SIGINT or SIGTERM before its end (exit 130 or 143, the shells' codes)."""

    def __init__(self, message, signal_name):
        super().__init__(message)
        self.code = 143 if signal_name == "SIGTERM" else 130


def run(script, body, *args):
    """body(*args) with the user's mistakes turned into one line naming the file or flag and exit 2;
    a diverged run (minigan.trainer.TrainingDiverged) is exit 1, a stopped one (Stopped) 130 or 143."""
    from .trainer import BadOption, TrainingDiverged

    try:
        return body(*args) or 0
    except Stopped as e:
        print(f"{script}: {e}", file=sys.stderr)
        return e.code
    except TrainingDiverged as e:
        print(f"{script}: {e}", file=sys.stderr)
        return 1
    except BadOption as e:
        print(f"{script}: {e.flag_message}", file=sys.stderr)
        return 2
    except (UserError, checkpoint.CheckpointError, checkpoint.RunLocked, data.DataError) as e:
        print(f"{script}: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a folder that cannot be written, a full disk: the last checkpoint is intact
        print(f"{script}: cannot write {e.filename or 'the output'}: {e.strerror or e}", file=sys.stderr)
        return 2
