"""How the command-line programs end on an error they expect: one line `<program>: <message>` on stderr, no traceback.

mixlab.main, experiments.sweep, experiments.demo and data_gen.prepare run their work inside `one_line_errors(name)`:
- bad input (a config key or flag out of range, a config or sweep file that is missing or raises, a damaged token
  store, a store of another tokenizer, a run folder of another run or held by another process, a checkpoint that
  cannot be written or read) is refused with exit status 2 (EXIT_REFUSED);
- a multi-process run that loses a process, or whose processes do not all join in time (mixlab.distributed), fails
  with exit status 1 (EXIT_LOST), at once: the shutdown barrier would wait for the lost process.
`--debug` raises these errors with their traceback instead. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence

from absl import flags

EXIT_REFUSED = 2
EXIT_LOST = 1
DEBUG_HELP = "Raise the errors reported in one line (bad input, a damaged store, a lost process) with a traceback."
_DEBUG = flags.DEFINE_bool("debug", False, DEBUG_HELP)
_program = "mixlab"


def debug_asked(argv: Sequence[str] | None = None) -> bool:
    """--debug: the parsed absl flag, or before (and without) absl parsing, the word among the arguments."""
    if flags.FLAGS.is_parsed():
        return _DEBUG.value
    return "--debug" in (sys.argv[1:] if argv is None else argv)


def exit_status(error: BaseException) -> int | None:
    """EXIT_REFUSED or EXIT_LOST for an error reported in one line; None for any other (a bug: a traceback)."""
    from data_gen.web import StoreIntegrityError, TokenizerMismatchError
    from mixlab import distributed
    from mixlab.checkpoint import CheckpointError
    from mixlab.config import ConfigError, ConfigMismatchError

    if isinstance(error, distributed.DistributedError):
        return EXIT_LOST
    refused = (ConfigError, ConfigMismatchError, CheckpointError, StoreIntegrityError, TokenizerMismatchError)
    return EXIT_REFUSED if isinstance(error, refused) else None


def no_arguments(argv: Sequence[str]) -> None:
    """ConfigError for positional arguments after absl's flags (absl would report them as a usage error)."""
    from mixlab.config import ConfigError

    if len(argv) > 1:
        raise ConfigError(f"unexpected arguments {list(argv[1:])}: every argument is a --flag=value")


def one_line(error: BaseException) -> str:
    """The error's message on one line (its lines joined)."""
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip())


def fail_now(error: BaseException, status: int = EXIT_LOST) -> None:
    """Print `<program>: <message>` and end the process at once (os._exit: no atexit, no waiting on other threads);
    for a watchdog thread, or when the shutdown would wait for processes that are gone."""
    print(f"{_program}: {one_line(error)}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(status)


@contextlib.contextmanager
def one_line_errors(program: str) -> Iterator[None]:
    """Report the expected errors raised inside as one line on stderr and exit (see the module docstring)."""
    global _program
    _program = program
    try:
        yield
    except Exception as e:
        status = exit_status(e)
        if status is None or debug_asked():
            raise
        if status == EXIT_LOST:
            fail_now(e, status)
        print(f"{program}: {one_line(e)}", file=sys.stderr)
        sys.exit(status)


def flags_parser(program: str) -> Callable[[list[str]], list[str]]:
    """For absl's app.run(flags_parser=...): a flag that does not parse (unknown, of the wrong type, required and
    missing) is one line and exit status 2, instead of absl's two lines and status 1."""

    def parse(argv: list[str]) -> list[str]:
        try:
            return flags.FLAGS(argv)
        except flags.Error as e:
            if debug_asked(argv):
                raise
            print(f"{program}: {one_line(e)} (--helpshort lists the flags)", file=sys.stderr)
            sys.exit(EXIT_REFUSED)

    return parse


class ArgumentParser(argparse.ArgumentParser):
    """argparse with --debug, and a flag that does not parse as one line and exit status 2 (no usage lines)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_argument("--debug", action="store_true", help=DEBUG_HELP)

    def error(self, message: str):
        print(f"{self.prog}: {message} (--help lists the flags)", file=sys.stderr)
        sys.exit(EXIT_REFUSED)
