"""What every demo's command line shares: flag checks that run before any data is loaded, and
one line on stderr with exit code 2 for every mistake a user can make (tracebacks are for bugs)."""
import argparse
import difflib
import math
import sys

from . import checkpoint, data


class Parser(argparse.ArgumentParser):
    """argparse with one line for a mistake (no usage block before it: --help has that) and a
    guess for a mistyped flag (Python < 3.14's argparse has none)."""

    def parse_args(self, args=None, namespace=None):
        args, extras = self.parse_known_args(args, namespace)
        if extras:
            flags = [s for action in self._actions for s in action.option_strings]
            typo = next((e.split("=")[0] for e in extras if e.startswith("-")), "")
            guess = difflib.get_close_matches(typo, flags, 1, 0.6) if typo else []
            self.error(f"unrecognized arguments: {' '.join(extras)}" + (f" (did you mean {guess[0]}?)" if guess else ""))
        return args

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class Formatter(argparse.RawDescriptionHelpFormatter):
    """--help with the module docstring as written and every flag's default shown (what the demo
    sets, not what a shared flag's declaration says); a default of None or False is not shown
    (0 and 0.0 are)."""

    def _get_help_string(self, action):
        text = action.help or ""
        shown = (action.default is not None and action.default is not False and action.default is not argparse.SUPPRESS
                 and action.option_strings)
        if shown and "%(default)" not in text and "Default:" not in text and "(default " not in text:
            text += (" " if text.rstrip().endswith((".", ")")) else ". ") + "Default: %(default)s"
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
